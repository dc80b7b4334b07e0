"""Fields of a job.conf that SINGA v0.3 read but that change nothing here: each gets one warning
naming it, so a conf that relies on one is not silently run differently (issue 18).

Implemented elsewhere, so not listed: ``softmax_conf.num_softmax_per_instance`` (kSoftmax),
``user_type`` (it selects the layer, as SINGA's Layer::Create did).
"""
from singa.proto import enum_name, job_pb2
from singa.unroll import wants_unrolling


def inert_fields(job):
    """One message per field of ``job`` that has no effect in this run."""
    out = []
    if job.debug:
        out.append("`debug: true` has no effect: SINGA v0.3 printed per-layer data and gradient norms at each "
                   "display; here the display line has the metrics (use `singa-run -show-net` to see the net "
                   "that runs)")
    net = job.neuralnet
    unrolled = wants_unrolling(net)
    for lp in net.layer:
        if lp.HasField("user_type") and lp.HasField("type") and lp.type != job_pb2.kUserLayer:
            out.append("layer '%s': `type: %s` is ignored beside `user_type: %r`, which selects the layer (as "
                       "SINGA's Layer::Create did)" % (lp.name, enum_name(job_pb2.LayerType, lp.type), lp.user_type))
        if not unrolled:
            fields = [f for f in ("unroll_index", "unroll_conn_type", "shift")
                      if (lp.HasField(f) if f == "unroll_index" else len(getattr(lp, f)))]
            if fields:
                out.append("layer '%s': %s ha%s no effect: the net is not unrolled (set `unroll_len` on the net or "
                           "the layer, with `train_one_batch { alg: kBPTT }`)" % (
                               lp.name, ", ".join("`%s`" % f for f in fields), "s" if len(fields) == 1 else "ve"))
    return out
