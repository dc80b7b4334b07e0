"""Held-out loss of a trained char-rnn: the job.conf's own net, its kCharRNN layer(s) reading
another text, tested by ``Driver.test`` (BPTTWorker.test: the per-step mean loss) over one pass.

    python -m singa.heldout -conf char-rnn-job.conf -checkpoint examples/char-rnn/checkpoint/step500-worker0 \\
        -text out/fortunes-test.txt [-steps N] [-cpu]

prints the mean loss per character in nats and in bits. Why a tool and not ``singa-run -test``:
``-test -set checkpoint_path=...`` already tests a checkpoint, but the text is a field of a layer
of the repeated ``neuralnet.layer``, which ``-set`` cannot address, and a pass over the whole text
needs ``test_steps`` computed from its length; everything else (the test net, loading and
checking the checkpoint, the BPTT test passes) is the Driver's.
"""
import argparse
import math
import os
import sys

from singa.errors import ConfigError, DataError, SingaError
from singa.proto import job_pb2, read_job_conf


def _charrnn_layers(job):
    layers = [ly for ly in job.neuralnet.layer if ly.type == job_pb2.kCharRNN]
    if not layers:
        raise ConfigError("Invalid net for a held-out char-rnn loss. Expected a kCharRNN data layer in "
                          "neuralnet. Received: layers %s\nhelp: pass the char-rnn job.conf that trained "
                          "the checkpoint" % [ly.name for ly in job.neuralnet.layer])
    return layers


def passes_of(nbytes, batchsize, unroll_len):
    """Test steps of one pass over a text of ``nbytes``: the windows kCharRNN reads before it wraps."""
    seg = nbytes // batchsize
    if seg <= unroll_len:
        raise DataError("Invalid held-out text for char-rnn. Expected at least batchsize * (unroll_len + 1) = %d "
                        "characters. Received: %d\nhelp: use a longer text" % (batchsize * (unroll_len + 1), nbytes))
    return (seg - 1) // unroll_len


def heldout_job(job, checkpoint, text, steps=None, cpu=True):
    """A copy of ``job`` that tests ``checkpoint`` on ``text``: every kCharRNN layer's path set to
    ``text``, ``checkpoint_path`` replaced, ``test_steps`` one pass (or ``steps``)."""
    out = job_pb2.JobProto()
    out.CopyFrom(job)
    layers = _charrnn_layers(out)
    if not os.path.isfile(text):
        raise DataError("Invalid value for `-text`. Expected an existing text file (relative to %s). Received: %r"
                        "\nhelp: singa-create-data fortunes out writes out/fortunes-test.txt" % (os.getcwd(), text))
    cc = layers[0].char_rnn_conf
    one_pass = passes_of(os.path.getsize(text), int(cc.batchsize), int(cc.unroll_len))
    for ly in layers:
        ly.char_rnn_conf.path = text
    del out.checkpoint_path[:]
    out.checkpoint_path.append(checkpoint)
    out.test_steps = one_pass if steps is None else min(int(steps), one_pass)
    if cpu:
        out.ClearField("gpu")
    return out


def heldout_loss(job, checkpoint, text, steps=None, cpu=True, seed=0):
    """{'nats', 'bits', 'steps', 'accuracy'}: the mean loss per character of ``checkpoint`` on ``text``."""
    from singa.driver import Driver
    tj = heldout_job(job, checkpoint, text, steps, cpu)
    res = Driver(seed=seed, verbose=False).test(tj)
    (m,) = res.test.values()
    return {"nats": m["loss"], "bits": m["loss"] / math.log(2), "steps": tj.test_steps,
            "accuracy": m.get("acc")}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m singa.heldout", description=__doc__.split("\n\n")[0])
    p.add_argument("-conf", required=True, help="the char-rnn job.conf that trained the checkpoint")
    p.add_argument("-checkpoint", required=True, help="e.g. examples/char-rnn/checkpoint/step500-worker0")
    p.add_argument("-text", required=True, help="the held-out text, e.g. out/fortunes-test.txt")
    p.add_argument("-steps", type=int, default=None, help="at most this many test steps (default: one pass)")
    p.add_argument("-cpu", action="store_true", help="ignore the conf's gpu ids")
    a = p.parse_args(argv)
    try:
        r = heldout_loss(read_job_conf(a.conf), a.checkpoint, a.text, a.steps, a.cpu)
    except SingaError as e:
        print("singa.heldout: error: %s" % e, file=sys.stderr)
        return 1
    print("held-out %s: %d steps, loss per char = %.6f nats = %.6f bits, accuracy = %.6f"
          % (a.text, r["steps"], r["nats"], r["bits"], r["accuracy"] or 0.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
