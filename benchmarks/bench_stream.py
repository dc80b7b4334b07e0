"""Record files beyond memory: the seed CIFAR-10 CNN (cifar10-job.conf's net, batch 100) trained from
a generated record file read into memory vs streamed from disk (singa.io.stream), each run in a
process of its own: steady samples/s and peak resident memory (VmHWM).

    python benchmarks/bench_stream.py [--sizes 1 4] [--workdir /tmp/singa-bench-stream] [--steps 10 60]

Files of ``--sizes`` GiB of CIFAR-10-shaped records (3x32x32 pixel bytes and a label, keys "%08d",
seeded) are written once. For the smallest size both paths run (SINGA_STORE_MB above and below the
file); the larger ones stream only (their in-memory run would need the file's size in memory).
The rate is the steady one between steps N0 and N1 (benchmarks.common.steady_rate), the median of
``--repeats`` runs alternating the paths; the streamed path's setup (one pass over the record
headers) is reported apart.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
CONF = os.path.join(ROOT, "examples", "singa-v0", "cifar10-job.conf")
RECORD = 3 * 32 * 32


def write_file(path, gib, seed=0):
    """A kvfile of CIFAR-10-shaped records, about ``gib`` GiB; returns the record count."""
    import numpy
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_pixel_records
    one = len(encode_pixel_records(numpy.zeros((1, RECORD), numpy.uint8), [0], (3, 32, 32))[0]) + 16 + 8
    n = int(gib * (1 << 30)) // one
    if os.path.exists(path) and os.path.getsize(path) == n * one:
        return n
    rng = numpy.random.default_rng(seed)
    chunk = 20000
    with KVFileWriter(path) as w:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            labels = rng.integers(0, 10, m)
            px = numpy.clip(rng.normal(0, 40, (m, RECORD)) + 100 + 10 * labels[:, None], 0, 255).astype(numpy.uint8)
            for i, rec in enumerate(encode_pixel_records(px, labels, (3, 32, 32))):
                w.insert("%08d" % (start + i), rec)
    return n


CHILD = r'''
import json, os, sys, time
sys.path.insert(0, %(root)r)
from benchmarks.common import steady_rate, stepper, train_net
from singa.proto import read_job_conf
from singa.updaters import create_updater
from singa.worker import BPWorker
job = read_job_conf(%(conf)r)
for lp in job.neuralnet.layer:
    if lp.HasField("store_conf"):
        lp.store_conf.path = %(path)r
        lp.store_conf.ClearField("mean_file")
t = time.perf_counter()
net = train_net(job)
setup = time.perf_counter() - t
data = net.data_layers[0]
worker = BPWorker(net, create_updater(job.updater))
rate = steady_rate(stepper(worker), 100, %(n0)d, %(n1)d)
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"rate": rate, "setup_s": setup, "streamed": bool(data._stream), "vmhwm_mib": int(hwm) / 1024}))
'''


def run(path, stream, n0, n1, stream_mb=256):
    env = dict(os.environ, PYTHONPATH=ROOT, SINGA_STORE_MB=str(stream_mb) if stream else "100000")
    code = CHILD % dict(root=ROOT, conf=CONF, path=path, n0=n0, n1=n1)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        raise SystemExit("run failed:\n" + r.stderr[-3000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["streamed"] == stream, out
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1, 4], help="GiB of each generated file")
    ap.add_argument("--workdir", default="/tmp/singa-bench-stream")
    ap.add_argument("--steps", type=int, nargs=2, default=(10, 60), metavar=("N0", "N1"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream-mb", type=int, default=256, help="SINGA_STORE_MB of the streamed runs")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    from benchmarks.common import blas_info
    print("BLAS: %s" % "; ".join(blas_info()))
    sizes = sorted(args.sizes)
    files = {}
    for g in sizes:
        path = os.path.join(args.workdir, "records-%gGiB.bin" % g)
        t = time.time()
        n = write_file(path, g)
        files[g] = path
        print("%s: %d records, %.2f GiB (%.0f s to write or find)" % (path, n, os.path.getsize(path) / (1 << 30),
                                                                     time.time() - t), flush=True)
    n0, n1 = args.steps
    rows = {}
    for _ in range(args.repeats):
        for g in sizes:
            for stream in ((False, True) if g == sizes[0] else (True,)):
                rows.setdefault((g, stream), []).append(run(files[g], stream, n0, n1, args.stream_mb))
    print("| file | path | samples/s (runs) | setup | peak RSS |")
    print("|---|---|---|---|---|")
    med = {}
    for (g, stream), rs in sorted(rows.items()):
        med[(g, stream)] = statistics.median(r["rate"] for r in rs)
        print("| %g GiB | %s | %.0f (%s) | %.1f s | %.0f MiB |" % (
            g, "streamed" if stream else "in memory", med[(g, stream)], ", ".join("%.0f" % r["rate"] for r in rs),
            statistics.median(r["setup_s"] for r in rs), max(r["vmhwm_mib"] for r in rs)))
    base = med.get((sizes[0], False))
    if base:
        for g in sizes:
            print("streamed %g GiB / in memory %g GiB: %.3f" % (g, sizes[0], med[(g, True)] / base))
    return med


if __name__ == "__main__":
    main()
