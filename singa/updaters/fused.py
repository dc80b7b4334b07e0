"""The GEMM-fused update: a param's update done inside the layer's gradient product.

One contract between the layers that write a gradient with a product (kInnerProduct, the
convolutions, the RBM) and the worker. A layer asks the param where its gradient goes,

    target, alpha, beta, done = param.grad_sink()
    target = alpha * G + beta * target      # G: the gradient it would have written to param.grad
    done(index)                             # after each block of target written (default: all)

By default the sink is the gradient buffer itself: ``(param.grad, 1, 0, no-op)``. For one step
the worker installs a ``GemmUpdate`` as the sink of each param whose rule can fold its update
into the product (``installed``; the rule says so with ``Updater.gemm_update``). Plain SGD then
writes the weights (w = (1 - lr*wd)*w - lr*G), momentum its history (h = momentum*h - lr*G),
``done`` finishes the update (momentum: h -= lr*wd*w; w += h) and marks it ``applied``, and the
worker's updater skips the param that step: no gradient buffer, no separate pass over the
weights. For a sum over several backward passes into one param (the unrolled copies of a
recurrent net share their params), the worker installs ``Accumulate`` sinks instead: G is added
to the gradient buffer.
"""
import threading
from contextlib import contextmanager

import numpy

from singa.backends import blas, get_array_module

# Rows of a momentum tail are walked in groups of this many elements (the updaters' CHUNK,
# singa.updaters.rules): a group's h and w stay in cache for both operations.
GROUP = 1 << 17

_local = threading.local()


def _local_buffer(dtype):
    """A GROUP-sized scratch array of this thread (a layer may finish blocks on several threads)."""
    bufs = _local.__dict__.setdefault("bufs", {})
    b = bufs.get(dtype)
    if b is None:
        b = bufs[dtype] = numpy.empty(GROUP, dtype)
    return b


def keep(index=Ellipsis):
    """The default sink's ``done``: the gradient is complete as written."""


class GemmUpdate:
    """One step of a param's update done inside the layer's weight-gradient GEMM.

    The layer computes ``target = alpha * G + beta * target`` where G is the gradient product it
    would have written to ``param.grad`` (plain SGD: target is the weights, beta = 1 - lr*wd;
    momentum: target is the history h, beta = momentum), then calls ``done(index)`` for each
    block of the param it wrote: ``finish`` on that block, and ``applied`` set so the worker
    skips the param this step.
    """

    __slots__ = ("data", "target", "alpha", "beta", "wd_lr", "applied")

    def __init__(self, data, target, alpha, beta, wd_lr=0.0):
        self.data, self.target = data, target
        self.alpha, self.beta, self.wd_lr = float(alpha), float(beta), float(wd_lr)
        self.applied = False

    def done(self, index=Ellipsis):
        self.finish(index)
        self.applied = True

    def finish(self, index=Ellipsis):
        """Momentum only: ``h -= lr*wd*w; w += h`` on ``data[index]`` (run after the GEMM of that block)."""
        if self.target is self.data:
            return
        h, w = self.target[index], self.data[index]
        xp = get_array_module(w)
        if not self.wd_lr and h.flags.c_contiguous and w.flags.c_contiguous:
            blas.axpy(1.0, h, w)      # one BLAS pass (plain xp code off NumPy)
            return
        if xp is not numpy or w.ndim != 2:
            if self.wd_lr:
                h -= self.wd_lr * w
            w += h
            return
        # Rows in cache-sized groups, so each group is read once for both operations.
        cols = max(1, w.shape[1])
        step = max(1, GROUP // cols)
        t = _local_buffer(w.dtype) if self.wd_lr else None
        for r in range(0, w.shape[0], step):
            hr, wr = h[r:r + step], w[r:r + step]
            if t is not None:
                tr = t[:hr.size].reshape(hr.shape)
                numpy.multiply(wr, self.wd_lr, out=tr)
                hr -= tr
            wr += hr


class Accumulate:
    """A sink adding G to the gradient buffer (``grad = G + grad``) instead of overwriting it."""

    __slots__ = ("target",)
    alpha = beta = 1.0
    done = staticmethod(keep)

    def __init__(self, grad):
        self.target = grad


def accumulating(params):
    """{param: Accumulate} for ``params``: install them (``installed``) for the passes to sum."""
    return {p: Accumulate(p.grad) for p in params}


def gemm_plans(updater, step, params, state):
    """{param: GemmUpdate} for the ``params`` whose update ``updater`` can do inside their
    gradient products this step (None if none).

    A layer writes its share's gradient; the rule takes the owner's, the mean over the shares,
    hence alpha / len(shares). The callers offer only params whose other shares add nothing
    (kInnerProduct: one share; the RBM's weight: RBMHid's share adds 0), and for one or two
    shares the division is exact, so the numbers are the updater path's."""
    out = {}
    for p in params:
        plan = updater.gemm_update(step, p.data, state[p.name], lr_scale=p.lr_scale, wd_scale=p.wd_scale)
        if plan is not None:
            if len(p.shares) > 1:
                plan.alpha /= len(p.shares)
            out[p] = plan
    return out or None


@contextmanager
def installed(sinks):
    """``sinks`` ({Param: GemmUpdate}, or None) as the params' gradient sinks for one step,
    removed afterwards (also when the step fails)."""
    if not sinks:
        yield
        return
    for p, s in sinks.items():
        p.sink = s
    try:
        yield
    finally:
        for p in sinks:
            p.sink = None


def sum_into(xp, g, axis, sink):
    """A bias's gradient, the sum of ``g`` over ``axis``, written into its ``sink``."""
    target, alpha, beta, done = sink
    if alpha == 1.0 and beta == 0.0:
        xp.sum(g, axis=axis, out=target)
    else:
        s = xp.sum(g, axis=axis)
        if alpha != 1.0:
            s *= alpha
        if beta == 0.0:
            target[...] = s
        else:
            if beta != 1.0:
                target *= beta
            target += s
    done()


__all__ = ["GemmUpdate", "gemm_plans", "installed", "sum_into", "keep", "GROUP"]
