"""Where char-rnn's training step goes, by layer (the unrolled copies of a layer summed): each
layer's forward and backward timed over 10 steps of bench_rnn.py's net.

    python benchmarks/rnn_layer_times.py [GRUS]      # GRUS: 1 (job.conf, default) or 2
"""
import collections
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.bench_rnn import singa_step_fn
from benchmarks.common import set_threads
set_threads(2)
os.makedirs("/tmp/singa-bench", exist_ok=True)
step, _ = singa_step_fn(int(sys.argv[1]) if len(sys.argv) > 1 else 1, "/tmp/singa-bench")
for _ in range(3):
    step()
net = next(c.cell_contents for c in step.__closure__ if type(c.cell_contents).__name__ == "BPTTWorker").train_net
acc = collections.defaultdict(float)
for layer in net.layers:
    kind = layer.name.split("#", 1)[-1]
    for meth in ("forward", "backward"):
        f = getattr(layer, meth)
        def wrapped(*a, _f=f, _k=(kind, meth), **k):
            t = time.perf_counter()
            r = _f(*a, **k)
            acc[_k] += time.perf_counter() - t
            return r
        setattr(layer, meth, wrapped)
n = 10
t0 = time.perf_counter()
for _ in range(n):
    step()
total = (time.perf_counter() - t0) / n
print("step %.1f ms" % (total * 1e3))
for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
    print("  %-10s %-8s %6.1f ms  %4.1f%%" % (k[0], k[1], v / n * 1e3, 100 * v / n / total))
print("  other (updates, zeroing, loop) %.1f ms" % ((total - sum(acc.values()) / n) * 1e3))
