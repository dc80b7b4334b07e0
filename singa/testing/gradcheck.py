"""Finite-difference gradient checks for runtime layers (a user's own layers too: docs/user-layers.md).

``check_layer_gradients(conf, src_shapes)`` builds one layer from its LayerProto (or job.conf
text of a ``layer { ... }`` body) on a Backend (NumPy by default; pass a CuPy Backend to run
the same check on a GPU), fills its params with random values, feeds random inputs through
``Source`` objects and compares the gradients the layer computes (for every source and every
param) with central differences of a scalar objective:

* for ordinary layers ``f = sum(y * R)`` with a fixed random R, so the gradient fed to
  ``backward`` is R (for a layer with several output slots, kSlice, the sum over its slots,
  and ``backward`` gets one R per slot);
* for loss layers ``f = layer.metrics()['loss']`` and ``backward`` gets no gradient; the
  analytic gradient must equal ``loss_grad_factor * df/dx`` (EuclideanLoss reports
  sum((x-r)^2)/B but back-propagates (r-x)/B, so its factor is 0.5).

Before every forward the inputs are copied afresh (in-place layers may overwrite them) and
``layer.rng`` is re-seeded, so a layer that draws random numbers (dropout) draws the same ones
each time and stays a deterministic function of its inputs.

Every backend: without an explicit ``backend``, the check runs on NumPy and then the same layer,
params and inputs run on every device backend (``device_backends()``: the strict CuPy stand-in
always, real CuPy on a GPU), whose objective and analytic gradients must equal NumPy's (which
finite differences just verified) to rounding.
"""
import functools

import numpy

from singa import switches
from singa.backends import Backend, gpu_count
from singa.proto import LayerProto, job_pb2, parse_job_conf
import singa.layers  # noqa: F401  (registers the layer types)
from singa.layers.base import create_layer, type_name


class Source:
    """Stands for a source layer: the arrays a layer reads from it, nothing else."""

    def __init__(self, name, data=None, aux=None, is_data=False):
        self.name = name
        self.data = data
        self.aux = aux
        self.is_data = is_data


class GradientMismatch(AssertionError):
    pass


def as_layer_conf(conf):
    if isinstance(conf, LayerProto):
        return conf
    return parse_job_conf(conf, source="<layer conf>", message=LayerProto())


def build_layer(conf, src_shapes, backend=None, dtype=numpy.float64):
    """create_layer + setup; returns the layer (its out_shape is set)."""
    backend = backend or Backend(None)
    layer = create_layer(as_layer_conf(conf), backend, dtype)
    layer.setup([tuple(s) for s in src_shapes])
    return layer


def make_sources(layer, host_inputs, aux, data_srcs):
    names = list(layer.conf.srclayers) + ["src%d" % i for i in range(len(layer.conf.srclayers), len(host_inputs))]
    return [Source(names[i], None, aux.get(i), i in data_srcs) for i in range(len(host_inputs))]


class _Objective:
    """f(inputs, params) as a Python float, evaluated with a fresh forward pass."""

    def __init__(self, layer, sources, host_inputs, weights, flag, seed):
        self.layer, self.sources, self.host_inputs = layer, sources, host_inputs
        self.weights, self.flag, self.seed = weights, flag, seed
        self.backend = layer.backend

    def forward(self):
        for s, a in zip(self.sources, self.host_inputs):
            s.data = self.backend.asarray(a.copy(), dtype=self.layer.dtype)    # in-place layers overwrite it
        self.layer.rng = numpy.random.default_rng(self.seed)
        return self.layer.forward(self.flag, self.sources)

    def _outputs(self, y):
        """(output, weights) pairs: one, or one per slot of a multi-slot layer (kSlice)."""
        if isinstance(self.weights, list):
            return list(zip(self.layer.datavec, self.weights))
        return [(y, self.weights)]

    def __call__(self):
        y = self.forward()
        if self.layer.is_loss:
            return float(self.layer.metrics()["loss"])
        return float(sum(numpy.sum(numpy.asarray(self.backend.to_host(o), dtype=numpy.float64) * w)
                         for o, w in self._outputs(y)))

    def analytic(self):
        """(grads per source, grads per param) as float64 host arrays (None where none was returned)."""
        self.forward()
        grad = None
        if not self.layer.is_loss:
            # a copy: backward may turn the gradient it is given into dx in place
            grad = ([self.backend.asarray(w.copy(), dtype=self.layer.dtype) for w in self.weights]
                    if isinstance(self.weights, list) else self.backend.asarray(self.weights.copy(), dtype=self.layer.dtype))
        dsrcs = self.layer.backward(self.flag, self.sources, grad)
        if len(dsrcs) != len(self.sources):
            raise GradientMismatch("layer '%s' returned %d source gradients for %d sources"
                                   % (self.layer.name, len(dsrcs), len(self.sources)))
        host = lambda a: None if a is None else numpy.array(self.backend.to_host(a), dtype=numpy.float64)
        return [host(d) for d in dsrcs], [host(p.grad) for p in self.layer.params]


def _indices(shape, max_checks, rng):
    n = int(numpy.prod(shape))
    flat = numpy.arange(n) if max_checks is None or n <= max_checks else rng.choice(n, max_checks, replace=False)
    return [numpy.unravel_index(i, shape) for i in flat]


@functools.lru_cache(maxsize=1)
def device_backends():
    """The device backends every gradient check also runs on: the CuPy stand-in (device 0), and
    CuPy's device 0 when CuPy and a GPU are present."""
    with switches.using(SINGA_GPU_STANDIN=1):
        out = [Backend(0)]
    if gpu_count() > 0:
        out.append(Backend(0))
    return out


def _problem(conf, src_shapes, backend, dtype, data_srcs, inputs, aux, flag, seed, param_scale):
    """The layer with its params set, its sources and the objective, all from ``seed``."""
    rng = numpy.random.default_rng(seed)
    layer = build_layer(conf, src_shapes, backend, dtype)
    if data_srcs is None:
        data_srcs = {1} if (layer.is_loss or layer.has_metrics) and len(src_shapes) > 1 else set()
    data_srcs = set(data_srcs)
    for p in layer.params:
        p.set_values(rng.standard_normal(p.shape) * param_scale)
    if inputs is None:
        inputs = [rng.standard_normal(s) for s in src_shapes]
    host_inputs = [numpy.array(a, dtype=dtype) for a in inputs]
    aux = dict(aux or {})
    ncls = int(numpy.prod(src_shapes[0][1:]))
    for i in data_srcs:
        aux.setdefault(i, rng.integers(0, ncls, size=src_shapes[i][0]))
    sources = make_sources(layer, host_inputs, aux, data_srcs)
    slot_shapes = getattr(layer, "slot_shapes", None)     # kSlice: a weight array per output slot
    weights = [rng.standard_normal(sh) for sh in slot_shapes] if slot_shapes else rng.standard_normal(layer.out_shape)
    return layer, sources, host_inputs, _Objective(layer, sources, host_inputs, weights, flag, seed + 1), rng


def check_layer_gradients(conf, src_shapes, *, backend=None, dtype=numpy.float64, data_srcs=None,
                          inputs=None, aux=None, flag=job_pb2.kTrain, seed=0, eps=1e-6, rtol=1e-5,
                          atol=1e-8, loss_grad_factor=1.0, max_checks=None, param_scale=0.5):
    """Check a layer's analytic gradients against central differences; raise GradientMismatch.

    conf: LayerProto or its text. src_shapes: the sources' output shapes (batch first).
    data_srcs: indices of sources that are data layers (default: source 1 of a loss or metric
    layer). inputs: host arrays for the sources (default: standard normal). aux: {index: labels}
    (default for data sources: random ints in [0, outputs of source 0)). loss_grad_factor: the
    analytic gradient of a loss layer is this times the derivative of its reported loss.
    max_checks: check at most this many random elements per array. Returns
    {name: max abs error} for every checked array. Without ``backend``: NumPy, then every device
    backend must give NumPy's objective and analytic gradients.
    """
    setup = (conf, src_shapes)
    setup_kw = dict(dtype=dtype, data_srcs=data_srcs, inputs=inputs, aux=aux, flag=flag, seed=seed,
                    param_scale=param_scale)
    layer, sources, host_inputs, f, rng = _problem(*setup, backend or Backend(None), **setup_kw)
    dsrcs, dparams = f.analytic()
    if backend is None:
        _same_on_devices(setup, setup_kw, f(), dsrcs, dparams)
    # A second pass must give the same numbers: params' grads are overwritten, buffers reused.
    dsrcs2, dparams2 = f.analytic()
    for a, b, what in list(zip(dsrcs, dsrcs2, sources)) + list(zip(dparams, dparams2, layer.params)):
        if (a is None) != (b is None) or (a is not None and not numpy.array_equal(a, b)):
            raise GradientMismatch("gradient of %s changed between two identical steps (accumulated?)"
                                   % what.name)

    checks = []
    for i, (s, d) in enumerate(zip(sources, dsrcs)):
        if d is None:
            if not s.is_data:
                raise GradientMismatch("layer '%s' returned no gradient for source %d ('%s'), which is not "
                                       "a data layer" % (layer.name, i, s.name))
            continue
        if d.shape != host_inputs[i].shape:
            raise GradientMismatch("gradient for source '%s' has shape %s, the source has %s"
                                   % (s.name, d.shape, host_inputs[i].shape))
        checks.append(("source %d '%s'" % (i, s.name), d, host_inputs[i], None))
    for p, d in zip(layer.params, dparams):
        checks.append(("param '%s' (%s)" % (p.name, p.shape), d, None, p))

    report = {}
    failures = []
    for name, analytic, host, param in checks:
        worst = 0.0
        for idx in _indices(analytic.shape, max_checks, rng):
            if param is None:
                v = host[idx]
                host[idx] = v + eps
                fp = f()
                host[idx] = v - eps
                fm = f()
                host[idx] = v
            else:
                v = float(param.data[idx])
                param.data[idx] = v + eps
                fp = f()
                param.data[idx] = v - eps
                fm = f()
                param.data[idx] = v
            numeric = loss_grad_factor * (fp - fm) / (2 * eps) if layer.is_loss else (fp - fm) / (2 * eps)
            a = analytic[idx]
            err = abs(a - numeric)
            worst = max(worst, err)
            if not err <= atol + rtol * abs(numeric):
                failures.append("%s%s: analytic %.10g, numeric %.10g" % (name, tuple(int(i) for i in idx),
                                                                         a, numeric))
        report[name] = float(worst)
    if failures:
        raise GradientMismatch("layer '%s' (%s): %d gradient element(s) disagree with finite differences:\n  %s"
                               % (layer.name, layer.conf.user_type or type_name(layer.conf.type), len(failures),
                                  "\n  ".join(failures[:10])))
    return report


def _same_on_devices(setup, setup_kw, value, dsrcs, dparams):
    """The objective and the analytic gradients on every device backend equal NumPy's."""
    tol = dict(rtol=1e-9, atol=1e-12) if numpy.dtype(setup_kw["dtype"]) == numpy.float64 else \
        dict(rtol=1e-4, atol=1e-6)
    for dev in device_backends():
        layer, _, _, f, _ = _problem(*setup, dev, **setup_kw)
        value_dev = f()
        d_srcs, d_params = f.analytic()
        where = "layer '%s' on %r" % (layer.name, dev)
        if not numpy.isclose(value_dev, value, **tol):
            raise GradientMismatch("%s: objective %.12g, NumPy's %.12g" % (where, value_dev, value))
        for what, a, b in ([("source %d" % i, x, y) for i, (x, y) in enumerate(zip(d_srcs, dsrcs))]
                           + [("param '%s'" % p.name, x, y) for p, x, y in zip(layer.params, d_params, dparams)]):
            if (a is None) != (b is None):
                raise GradientMismatch("%s: gradient of %s is %s, NumPy's is %s" % (where, what, a is None and "None"
                                       or "an array", b is None and "None" or "an array"))
            if a is not None and not numpy.allclose(a, b, **tol):
                raise GradientMismatch("%s: gradient of %s differs from NumPy's by up to %.3g"
                                       % (where, what, float(numpy.max(numpy.abs(a - b)))))
