"""The Updater base class (SINGA's server-side optimisers, SINGA-V0.md 6.10) with explicit,
checkpointable state; the rules themselves are in ``singa.updaters.rules``.

An Updater holds only hyper-parameters; the per-param buffers live in a plain dict made by
``init_state`` (SINGA's names: ``history`` and ``update``), so a checkpoint is just those arrays.
``apply(step, data, grad, state, ...)`` changes ``data`` and ``state`` in place:

    lr = LRGen(step) * lr_scale          wd = weight_decay * wd_scale
    g  = clip(grad) * grad_scale         clipping only when clip_high > clip_low (SGD, Nesterov,
    if wd > 0: g += wd * data             AdaGrad, RMSProp), and on the raw gradient, as SINGA did

then the rule of the type (see each class). Speed: updates are memory bound. On a device (CuPy)
each rule is one fused elementwise kernel (``_kernel``: one pass reading g, w and the history,
writing w and the history) instead of one kernel per operation. On NumPy a big
param is walked in cache-sized chunks (``CHUNK`` elements) and every formula runs on the chunk
while it is in cache, with two small preallocated scratch buffers; the scalars lr, grad_scale
and wd are folded together so no rule makes an extra full pass for them. Chunks are independent,
so they may be shared out between threads (``set_num_threads``) with bit-identical results. NumPy
arrays that are not C-contiguous take the same formulas once on the whole arrays.

The user API's ``singa.model.Updater`` (and SGD, AdaGrad, ...) only builds the UpdaterProto these
classes are made from.
"""
import numpy

from singa import switches
from singa.backends import get_array_module, parallel
from singa.backends.fused import Kernel
from singa.errors import ConfigError, invalid
from singa.proto import enum_name, job_pb2
from singa.updaters.lr import check_number, create_lr_generator

# Elements per chunk: 4 float32 arrays of 512 KiB stay in L2/L3 while a rule runs on them.
CHUNK = 1 << 17
# A param is split between threads only from this many chunks on (below, thread hand-off costs more).
MIN_CHUNKS_PER_THREAD = 2

_threads = {"n": None}


def _default_threads():
    # One thread unless asked: extra threads sped up an update alone but not one right after a BLAS
    # matmul, whose spinning threads hold the cores (benchmarks/README.md, the MLP's item 5).
    return switches.integer("SINGA_UPDATER_THREADS", hint="unset it to use one thread") or 1


def set_num_threads(n):
    """Threads the NumPy updates may use for one big param (default 1, or ``SINGA_UPDATER_THREADS``).

    Chunks are independent, so results are bit-identical whatever the number. The threads are
    singa.backends.parallel's one pool.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise invalid("num_threads", "an integer >= 1", n)
    _threads["n"] = n


def get_num_threads():
    if _threads["n"] is None:
        _threads["n"] = _default_threads()
    return _threads["n"]


def _clip_bound(name, value):
    value = float(value)
    if value != value:      # NaN
        raise invalid(name, "a number (+-inf for no bound on that side)", value,
                      "e.g. `clip_low: -5 clip_high: 5`; clipping applies only when clip_high > clip_low")
    return value


class Updater:
    """Base class: common hyper-parameters, the LR schedule and the chunked driver.

    Subclasses set ``state_names`` (state dict keys), ``clips`` (whether clip_low/clip_high apply)
    and implement ``_rule(xp, d, g, hist, t, t2, lr, wd, gs)``: update ``d`` and the ``hist``
    arrays from gradient ``g``. ``t``/``t2`` are scratch arrays of the same shape; ``t`` may be
    ``g`` itself, so ``_rule`` must read ``g`` only in its first operation (which writes ``t``).
    For devices they also give the same rule as one CUDA C body, ``_kernel_body``: the names of its
    scalars and the body, in which ``gc`` is the clipped gradient, ``d`` is the param and the state
    arrays are named by ``kernel_state``; its operations come in ``_rule``'s order, so that without
    FMA contraction its numbers equal NumPy's. ``_kernel_args`` gives the scalars' values.

    One Updater may serve many params, but not from several threads at once (it owns the
    scratch buffers).
    """

    state_names = ()
    clips = False

    def __init__(self, proto, name="updater"):
        self.proto = proto
        self.name = name
        self.type_name = enum_name(job_pb2.UpdaterType, proto.type)
        self.lr_gen = create_lr_generator(proto.learning_rate, name + ".learning_rate")
        # Negative momentum or weight decay would be silently dropped (both apply only when > 0)
        # or, for Nesterov, flip the history's sign; NaN/inf ones poison every weight at step 0.
        self.momentum = check_number(name + ".momentum", proto.momentum,
                                     hint="momentum is a fraction of the last step kept, e.g. `momentum: 0.9`; "
                                          "leave it out (0) for none")
        self.weight_decay = check_number(name + ".weight_decay", proto.weight_decay,
                                         hint="L2 decay shrinks the weights, e.g. `weight_decay: 0.0005`; "
                                              "leave it out (0) for none")
        self.delta = check_number(name + ".delta", proto.delta,
                                  hint="it is added under a square root; leave it out to use the default 1e-8")
        # +-inf bounds are meaningful (one-sided clipping); NaN would silently turn clipping off
        self.clip_low = _clip_bound(name + ".clip_low", proto.clip_low)
        self.clip_high = _clip_bound(name + ".clip_high", proto.clip_high)
        self.clipping = self.clips and self.clip_high > self.clip_low
        self._scratch = {}   # (dtype, thread index) -> two CHUNK-sized buffers

    def __repr__(self):
        return "%s(lr=%r, momentum=%g, weight_decay=%g)" % (type(self).__name__, self.lr_gen,
                                                            self.momentum, self.weight_decay)

    def learning_rate(self, step):
        """The scheduled learning rate at ``step`` (before any param's lr_scale)."""
        return self.lr_gen(step)

    def _rate(self, step, lr_scale):
        """This step's rate for a param, refused when it is negative or not finite: a schedule
        whose fields are each valid can still get there (kLinear is not clamped and goes below
        zero past change_freq * base_lr / (base_lr - final_lr); kStep with gamma > 1 overflows),
        and a negative rate trains uphill without any error."""
        try:
            lr = float(self.lr_gen(step)) * lr_scale
        except OverflowError:           # a growing schedule (or a user's) past the float range
            lr = float("inf")
        if not (0.0 <= lr < float("inf")):
            raise ConfigError(
                "the learning rate of `%s.learning_rate` (%r) is %r at step %d (times the param's lr_scale %r): "
                "a rate must be finite and >= 0.\nhelp: check the schedule's fields (e.g. a kLinear final_lr "
                "below base_lr keeps falling past change_freq; a kStep gamma > 1 grows without bound) or stop "
                "training before that step" % (self.name, self.lr_gen, lr, step, lr_scale))
        return lr

    def init_state(self, data):
        """Fresh state for a param with values ``data``: zero buffers on the same array module."""
        xp = get_array_module(data)
        return {k: xp.zeros(data.shape, dtype=data.dtype) for k in self.state_names}

    def apply(self, step, data, grad, state, lr_scale=1.0, wd_scale=1.0, grad_scale=1.0):
        """One update of ``data`` (and of ``state``) in place from gradient ``grad`` at ``step``.

        ``grad`` may be overwritten (it is used as scratch when the arrays are not processed in
        chunks, e.g. on CuPy): do not rely on its contents afterwards.
        """
        lr = self._rate(step, lr_scale)
        wd = self.weight_decay * wd_scale
        wd = wd if wd > 0 else 0.0
        gs = float(grad_scale)
        hist = self._state_arrays(state, data)
        if grad.shape != data.shape:
            raise invalid("grad", "an array of the param's shape %s" % (data.shape,), "shape %s" % (grad.shape,),
                          "pass the gradient of this very param")
        if self._skip(lr, hist):
            return
        xp = get_array_module(data)
        arrays = (data, grad) + hist
        if xp is not numpy:
            self._apply_fused(xp, data, grad, hist, lr, wd, gs)
        elif all(a.flags.c_contiguous for a in arrays):
            self._apply_chunked(arrays, data.dtype, lr, wd, gs)
        else:
            # Whole strided arrays; grad doubles as the first scratch.
            t = grad if (grad.dtype == data.dtype and grad.flags.writeable) else xp.empty_like(data)
            t2 = xp.empty_like(data)
            self._rule(xp, data, grad, hist, t, t2, lr, wd, gs)

    # The rule as one device kernel ------------------------------------------------------
    kernel_state = ()       # names of the state arrays in the kernel body, in state_names order

    def _kernel_body(self):
        """(names of the body's scalars, CUDA C body); see the class docstring."""
        raise NotImplementedError

    def _kernel_args(self, lr, wd, gs):
        """Values of the scalars named by ``_kernel_body``, in order."""
        raise NotImplementedError

    def kernel(self):
        """This rule as one fused elementwise Kernel (param, gradient and state in one pass); built
        once per updater (its body depends only on the rule and whether it clips)."""
        k = self.__dict__.get("_kernel")
        if k is None:
            k = self._kernel = self._build_kernel()
        return k

    def _build_kernel(self):
        names, body = self._kernel_body()
        names = list(names) + (["lo", "hi"] if self.clipping else [])
        clipped = "min(max((T)g, lo), hi)" if self.clipping else "(T)g"
        body = "const T gc = %s;\n%s" % (clipped, body.strip())
        key = (body, tuple(names), self.kernel_state)
        k = _KERNELS.get(key)
        if k is None:
            k = _KERNELS[key] = Kernel(
                "G g, " + ", ".join("T " + n for n in names),
                ", ".join("T " + n for n in ("d",) + self.kernel_state),
                body, "singa_" + self.type_name[1:].lower(), scalars=names)
        return k

    def _apply_fused(self, xp, data, grad, hist, lr, wd, gs):
        t = data.dtype.type
        scalars = [t(v) for v in self._kernel_args(lr, wd, gs)]
        if self.clipping:
            scalars += [t(self.clip_low), t(self.clip_high)]
        self.kernel()(xp, grad, *scalars, data, *hist)

    def _skip(self, lr, hist):
        """True when the update provably changes nothing (stateless rule with lr 0, e.g. a frozen param)."""
        return lr == 0.0 and not hist

    def _state_arrays(self, state, data):
        try:
            hist = tuple(state[k] for k in self.state_names)
        except (KeyError, TypeError):
            raise invalid("state", "a dict with keys %s" % (list(self.state_names),),
                          sorted(state) if isinstance(state, dict) else type(state).__name__,
                          "make it with updater.init_state(data) for this %s updater" % self.type_name) from None
        for k, h in zip(self.state_names, hist):
            if h.shape != data.shape:
                raise invalid("state[%r]" % k, "an array of the param's shape %s" % (data.shape,),
                              "shape %s" % (h.shape,), "make it with updater.init_state(data)")
        return hist

    def _buffers(self, dtype, k):
        key = (dtype, k)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = (numpy.empty(CHUNK, dtype), numpy.empty(CHUNK, dtype))
        return buf

    def _apply_chunked(self, arrays, dtype, lr, wd, gs):
        flat = [a.reshape(-1) for a in arrays]
        n = flat[0].size
        nchunks = -(-n // CHUNK)
        nthreads = min(get_num_threads(), nchunks // MIN_CHUNKS_PER_THREAD)
        if nthreads <= 1:
            self._run_chunks(flat, dtype, 0, 0, nchunks, n, lr, wd, gs)
            return
        # Contiguous runs of chunks per thread (parallel.part); this thread takes the first run.
        def run(k, n_parts):
            r = parallel.part(nchunks, k, n_parts)
            self._run_chunks(flat, dtype, k, r.start, r.stop, n, lr, wd, gs)
        parallel.run(run, nthreads)

    def _run_chunks(self, flat, dtype, k, c0, c1, n, lr, wd, gs):
        b1, b2 = self._buffers(dtype, k)
        rule = self._rule
        for c in range(c0, c1):
            i = c * CHUNK
            j = min(n, i + CHUNK)
            d, g, *hist = [a[i:j] for a in flat]
            m = j - i
            rule(numpy, d, g, hist, b1[:m], b2[:m], lr, wd, gs)

    # Helpers shared by the rules --------------------------------------------------------
    def _grad_into(self, xp, d, g, t, t2, scale, wd_scale):
        """t = clip(g) * scale + wd_scale * d: the effective gradient, scaled as the rule wants."""
        if self.clipping:
            xp.clip(g, self.clip_low, self.clip_high, out=t)
            if scale != 1.0:
                t *= scale
        elif t is not g:
            xp.multiply(g, scale, out=t)
        elif scale != 1.0:
            t *= scale
        if wd_scale:
            xp.multiply(d, wd_scale, out=t2)
            t += t2

    def _rule(self, xp, d, g, hist, t, t2, lr, wd, gs):
        raise NotImplementedError

    def gemm_update(self, step, data, state, lr_scale=1.0, wd_scale=1.0):
        """A GemmUpdate doing this step's update of ``data`` inside the gradient product, or None
        when this rule cannot (the caller then applies the gradient with ``apply``). The gradient
        must be the param's own (grad_scale 1, i.e. no shares)."""
        return None


_KERNELS = {}       # (body, scalars, state names) -> Kernel, shared by updaters of the same rule
