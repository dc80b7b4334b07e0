"""The seed MLP's products at one batch size, three ways, side by side (medians):

* ``numpy``: numpy.matmul (OpenBLAS threads each call itself);
* ``blas``: one direct BLAS call through singa.backends.blas (same threading as numpy);
* ``split``: the product split by output columns into one single-threaded BLAS call per thread.

    python benchmarks/bench_gemm.py [--batch 64] [--threads 2] [--repeats 9]

Products per layer (out x in): forward y = x W^T, backward dx = g W, weight gradient g^T x, and
the fused SGD update W += -lr g^T x (beta 1). Prints GFLOP/s per product and the total time.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import gemm_rate, set_threads  # noqa: E402

SIZES = [784, 2500, 2000, 1500, 1000, 500, 10]


def products(batch, rng):
    import numpy as np
    out = []
    for i, o in zip(SIZES, SIZES[1:]):
        x = rng.standard_normal((batch, i), dtype=np.float32)
        w = rng.standard_normal((o, i), dtype=np.float32) * 0.01
        g = rng.standard_normal((batch, o), dtype=np.float32)
        y = np.empty((batch, o), np.float32)
        dx = np.empty((batch, i), np.float32)
        dw = np.empty((o, i), np.float32)
        out.append(("%dx%d fwd" % (o, i), x, w.T, y, 0.0))
        out.append(("%dx%d dx" % (o, i), g, w, dx, 0.0))
        out.append(("%dx%d dW" % (o, i), g.T, x, dw, 0.0))
        out.append(("%dx%d dW+upd" % (o, i), g.T, x, w, 1.0))
    return out


def run_way(way, a, b, c, beta):
    import numpy as np
    from singa.backends import blas
    if way == "numpy":
        np.matmul(a, b, out=c)
    elif way == "blas":
        blas.gemm(a, b, c, -1e-3 if beta else 1.0, beta)
    else:
        n = c.shape[1]

        def part(k, nparts):
            s = blas.part(n, k, nparts)
            blas.gemm(a, b[:, s], c[:, s], -1e-3 if beta else 1.0, beta)
        blas.parallel(part)


def main():
    import numpy as np
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    set_threads(args.threads)
    print("GEMM rate (2048^3): %.1f GFLOP/s" % gemm_rate())
    rng = np.random.default_rng(0)
    ways = ("numpy", "blas", "split")
    totals = {w: 0.0 for w in ways}
    for name, a, b, c, beta in products(args.batch, rng):
        flop = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
        times = {w: [] for w in ways}
        for w in ways:
            run_way(w, a, b, c, beta)
        for _ in range(args.repeats):
            for w in ways:
                t = time.perf_counter()
                run_way(w, a, b, c, beta)
                times[w].append(time.perf_counter() - t)
        med = {w: statistics.median(times[w]) for w in ways}
        if not name.endswith("dW"):      # the step runs either dW or dW+upd
            for w in ways:
                totals[w] += med[w]
        print("%-18s " % name + "  ".join("%s %6.1f GFLOP/s" % (w, flop / med[w] / 1e9) for w in ways))
    print("total (fwd + dx + dW+upd): " + "  ".join("%s %.2f ms" % (w, 1e3 * totals[w]) for w in ways))


if __name__ == "__main__":
    main()
