"""The device kernels of the layers: each CUDA C body beside the NumPy code it mirrors.

A layer with a NumPy body and a device kernel has two named methods, ``forward_cpu`` and
``forward_device`` (and the backward pair), and ``singa.layers.base.Layer`` chooses between them
once per backend. The kernels are ``fused.Kernel`` bodies: one pass over memory where the NumPy
code takes several, their operations in the NumPy code's order, so the CuPy stand-in (which
compiles each body as C++, ``singa.testing.standin_kernels``) gives NumPy's numbers and
tests/test_fused_kernels.py compiles every one with nvcc where it is installed.

* ``ACTIVATIONS``: the element-wise neuron layers (``singa.layers.neuron``), ``b`` from ``a``.
* ``DROPOUT_FORWARD``/``DROPOUT_BACKWARD``: kDropout, the mask drawn from the element's hash.
* ``POOL_MAX_FORWARD``/``POOL_MAX_BACKWARD``: MAX pooling (``singa.layers.pooling``).
* ``LRN_FORWARD``/``LRN_BACKWARD_T``/``LRN_BACKWARD``: kLRN (``singa.layers.lrn``).
* ``GRU_FORWARD``/``GRU_BACKWARD``: kGRU's gates and their gradients (``singa.layers.gru``).

(singa.random's UNIFORM and NORMAL stay beside the draws they mirror: they are the random
streams' definition, not a layer's.)
"""
from singa.backends.fused import Kernel
from singa.random import HASH_PREAMBLE

# SINGA's constants for the scaled tanh (LeCun): y = A * tanh(B * x).
STANH_A = 1.7159047
STANH_B = 0.66666667


# -- element-wise activations: forward a -> b, backward b (the gradient) from a (the output) ------
def _c(v):
    """A Python float as an exact C literal of type T."""
    return "(T)%.17g" % v


def _activation_kernel(name, body):
    return Kernel("T a", "T b", body, "singa_" + name)


ACTIVATIONS = {
    "relu_backward": _activation_kernel("relu_backward", "b = b * (T)(a > (T)0);"),
    "sigmoid_forward": _activation_kernel("sigmoid_forward", "b = tanh(a * (T)0.5) * (T)0.5 + (T)0.5;"),
    "sigmoid_backward": _activation_kernel("sigmoid_backward", "b = b * (a - a * a);"),
    "tanh_backward": _activation_kernel("tanh_backward", "b = b * ((T)1 - a * a);"),
    "stanh_forward": _activation_kernel("stanh_forward", "b = tanh(a * %s) * %s;" % (_c(STANH_B), _c(STANH_A))),
    "stanh_backward": _activation_kernel(
        "stanh_backward", "b = b * (a * a * %s + %s);" % (_c(-(STANH_B / STANH_A)), _c(STANH_A * STANH_B))),
}


# -- dropout ------------------------------------------------------------------------------------
# One pass each way: u = uniform from the element's hash (singa.random),
# keep = u < keep_ratio (both float32, as on NumPy), y = x * keep * (1/keep_ratio).
DROPOUT_FORWARD = Kernel(
    "T x, uint32 key, float32 keep, T scale", "bool m, T y",
    "m = singa_unit(singa_hash(i, key), 0.0f) < keep;\ny = x * (T)m * scale;",
    "singa_dropout_forward", scalars={"key", "keep", "scale"}, preamble=HASH_PREAMBLE)
DROPOUT_BACKWARD = Kernel("bool m, T scale", "T g", "g = g * (T)m * scale;", "singa_dropout_backward",
                          scalars={"scale"})


# -- MAX pooling --------------------------------------------------------------------------------
_GEOM = "int32 H, int32 W, int32 Ho, int32 Wo, int32 kh, int32 kw, int32 sh, int32 sw, int32 ph, int32 pw"
_GEOM_NAMES = {"H", "W", "Ho", "Wo", "kh", "kw", "sh", "sw", "ph", "pw"}
# Each output scans its window clipped to the image row by row and keeps the first maximum (as
# the NumPy path does) and its index in the image.
POOL_MAX_FORWARD = Kernel("raw T x, " + _GEOM, "T y, int32 arg", """
const long long wo = i % Wo, r = i / Wo, ho = r % Ho, img = r / Ho;
const int h0 = (int)ho * sh - ph, w0 = (int)wo * sw - pw;
int best_at = -1;
T best = 0;
for (int a = max(h0, 0); a < min(h0 + kh, H); ++a) {
  for (int b = max(w0, 0); b < min(w0 + kw, W); ++b) {
    const T v = x[img * H * W + a * W + b];
    if (best_at < 0 || v > best) { best = v; best_at = a * W + b; }
  }
}
y = best;
arg = best_at;
""", "singa_max_pool_forward", scalars=_GEOM_NAMES)
# Each input cell sums the gradients of the windows it won, in output order (the order of the
# NumPy path's add.at, so the sums are the same).
POOL_MAX_BACKWARD = Kernel("raw T g, raw int32 arg, " + _GEOM, "T dx", """
const long long w = i % W, r = i / W, h = r % H, img = r / H;
const int me = (int)(h * W + w);
const int hl = (int)h + ph - kh + 1, wl = (int)w + pw - kw + 1;
const int ho0 = hl <= 0 ? 0 : (hl + sh - 1) / sh, ho1 = min(((int)h + ph) / sh, Ho - 1);
const int wo0 = wl <= 0 ? 0 : (wl + sw - 1) / sw, wo1 = min(((int)w + pw) / sw, Wo - 1);
T s = 0;
for (int ho = ho0; ho <= ho1; ++ho) {
  for (int wo = wo0; wo <= wo1; ++wo) {
    const long long o = (img * Ho + ho) * Wo + wo;
    if (arg[o] == me) s += g[o];
  }
}
dx = s;
""", "singa_max_pool_backward", scalars=_GEOM_NAMES)


# -- local response normalisation ---------------------------------------------------------------
def _window(term):
    """CUDA C for ``acc``, the window sum at channel c of element i in window_sum's order: the
    term at c, then at c-d and c+d for d = 1..half, each only inside [0, C). ``term`` is the
    summand with ``{k}`` for the channel. Layout (B, C, S), S values per channel."""
    at_c, below, above = (term.format(k=k) for k in ("c", "(c - d)", "(c + d)"))
    return ("const long long c = (i / S) % C, base = i - c * S;\n"
            "T acc = " + at_c + ";\n"
            "for (int d = 1; d <= half; ++d) {\n"
            "  if (c - d >= 0) acc += " + below + ";\n"
            "  if (c + d < C) acc += " + above + ";\n"
            "}\n")


_SHAPE = "int32 C, int32 S, int32 half"
LRN_FORWARD = Kernel("raw T x, " + _SHAPE + ", T alpha_n, T knorm, T beta, int32 mode", "T y, T norm, T scale",
                     _window("x[base + {k} * S] * x[base + {k} * S]") + """
norm = acc * alpha_n + knorm;
T sc;
if (mode == 0) { sc = sqrt(sqrt(norm)); sc = sc / norm; }     // beta 0.75, as neg_power
else if (mode == 1) { sc = sqrt(norm); sc = (T)1 / sc; }      // beta 0.5
else { sc = pow(norm, -beta); }
scale = sc;
y = x[i] * sc;
""", "singa_lrn_forward", scalars={"C", "S", "half", "alpha_n", "knorm", "beta", "mode"})
LRN_BACKWARD_T = Kernel("T g, T y, T norm", "T t", "t = g * y / norm;", "singa_lrn_backward_t")
LRN_BACKWARD = Kernel("raw T t, T x, T scale, " + _SHAPE + ", T c2", "T g",
                      _window("t[base + {k} * S]") + "g = g * scale - acc * x * c2;\n",
                      "singa_lrn_backward", scalars={"C", "S", "half", "c2"})


# -- kGRU ----------------------------------------------------------------------------------------
# One thread per (row, unit) of the (B, H) state; the gate buffers are (B, 3H) = [z | r | c]. On
# entry ``gates`` holds x W^T + b and ``hh`` the h W_h^T products (read only when has_h); the
# operations are GRULayer._gates_cpu's, in its order.
GRU_FORWARD = Kernel("raw T hh, T h, int32 H, int32 has_h", "raw T gates, T y", """
const long long o = (i / H) * 3 * H + i % H;
T z = gates[o], r = gates[o + H], c = gates[o + 2 * H];
if (has_h) { z = z + hh[o]; r = r + hh[o + H]; }
z = tanh(z * (T)0.5) * (T)0.5 + (T)0.5;
r = tanh(r * (T)0.5) * (T)0.5 + (T)0.5;
if (has_h) c = c + r * hh[o + 2 * H];
c = tanh(c);
gates[o] = z; gates[o + H] = r; gates[o + 2 * H] = c;
y = has_h ? (h - c) * z + c : c - z * c;
""", "singa_gru_forward", scalars={"H", "has_h"})
# GRULayer._grads_cpu: d = [dz | dr | dc], d3 = [dz | dr | dc r], dh = g z (SINGA's dh bug fixed).
GRU_BACKWARD = Kernel("T g, raw T gates, raw T hh, T h, int32 H, int32 has_h", "raw T d, raw T d3, T dh", """
const long long o = (i / H) * 3 * H + i % H;
const T z = gates[o], r = gates[o + H], c = gates[o + 2 * H];
const T t = (T)1 - z;
T dz = has_h ? h - c : -c;
dz = dz * g;
dz = dz * (t * z);
T dc = g * t;
dc = dc * ((T)1 - c * c);
T dr = (T)0;
if (has_h) { dr = dc * hh[o + 2 * H]; dr = dr * (((T)1 - r) * r); dh = g * z; }
d[o] = dz; d[o + H] = dr; d[o + 2 * H] = dc;
d3[o] = dz; d3[o + H] = dr; d3[o + 2 * H] = dc * r;
""", "singa_gru_backward", scalars={"H", "has_h"})
