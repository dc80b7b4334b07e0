"""Asynchronous training (Downpour, Distributed Hogwild) against synchronous training on
Fashion-MNIST, for the same number of training samples.

    python benchmarks/bench_async.py [--groups 2] [--steps 6000]   # starts every run itself

* sync: one worker, ``groups * steps`` steps of batch 64 (one process).
* Downpour: ``groups`` worker groups of one worker, ``steps`` steps each, one server in a
  process of its own (``server_worker_separate``): groups + 1 processes.
* Hogwild: ``groups`` worker groups and as many server groups, co-located, the server groups
  syncing every ``sync_freq`` updates: ``groups`` processes.

The model: an MLP 784-512-256-10 (ReLU, softmax), SGD with momentum 0.9 and the rate 0.05,
0.01, 0.002 from 0, 1/2, 3/4 of each worker's steps (the updater runs on the servers for the
asynchronous runs). Test accuracy on all 10,000 test images, 10 times during training (rank 0,
with the values its group last pulled) and at the end (the job's final values); ``last3_acc``
averages the last three.
Every process uses one BLAS thread. Prints one JSON line per run and a table.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

MODES = {
    # mode: (Cluster keywords given the number of groups, processes)
    "sync": (lambda g: {}, lambda g: 1),
    "downpour": (lambda g: dict(nworker_groups=g, server_worker_separate=True), lambda g: g + 1),
    "hogwild": (lambda g: dict(nworker_groups=g, nserver_groups=g), lambda g: g),
}


def train(args):
    """One run, inside the processes mpiexec started (or alone for sync)."""
    from singa.datasets import fashion_mnist
    from singa.model import SGD, Cluster, Dense, Sequential
    X_train, X_test, workspace = fashion_mnist.load_data(workspace=args.workspace)
    m = Sequential("fashion-mlp", [sys.argv[0]])
    m.add(Dense(512, init="uniform", activation="relu"))
    m.add(Dense(256, init="uniform", activation="relu"))
    m.add(Dense(10, init="uniform", activation="softmax"))
    cluster = Cluster(workspace, **MODES[args.mode][0](args.groups), sync_freq=args.sync_freq)
    steps = args.steps * (args.groups if args.mode == "sync" else 1)
    # the rate falls by 5x at half and at three quarters of each worker's steps, so the end of
    # training is stable enough to compare runs (at a fixed rate the test accuracy moves by a
    # point or two from one evaluation to the next)
    momentum = args.momentum if args.mode == "sync" or args.async_momentum is None else args.async_momentum
    sgd = SGD(lr=args.lr, momentum=momentum, lr_type="manual", step=(0, steps // 2, steps * 3 // 4),
              step_lr=(args.lr, args.lr / 5, args.lr / 25))
    m.compile(loss="categorical_crossentropy", optimizer=sgd, cluster=cluster)
    t = time.perf_counter()
    m.fit(X_train, nb_epoch=steps, with_test=True, seed=args.seed)
    # tested 10 times during training (rank 0, on group 0's values) and at the end
    r = m.evaluate(X_test, batch_size=100, test_steps=100, test_freq=steps // 10)
    secs = time.perf_counter() - t
    return steps, secs, r.test, momentum


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6000, help="steps per asynchronous group (sync: groups x steps)")
    ap.add_argument("--sync-freq", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--lr", type=float, default=0.05, help="the first rate (then /5 at 1/2, /25 at 3/4)")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--async-momentum", type=float, default=None,
                    help="momentum of the asynchronous runs (default: --momentum); asynchrony adds some of its own")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--workspace", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:                       # inside a run
        steps, secs, tests, momentum = train(args)
        from singa.cluster import mpi
        if (mpi.world().rank if mpi.world() else 0) == 0:
            last = [tests[k]["acc"] for k in sorted(tests)[-3:]]
            print("RESULT " + json.dumps({"mode": args.mode, "groups": args.groups, "steps": steps, "seed": args.seed,
                                          "lr": args.lr, "momentum": momentum,
                                          "samples": steps * 64 * (1 if args.mode == "sync" else args.groups),
                                          "wall_s": round(secs, 1), "test": tests[max(tests)],
                                          "acc_last3": sum(last) / len(last),
                                          "acc_by_step": {k: round(v["acc"], 4) for k, v in sorted(tests.items())}}),
                  flush=True)
        return
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", SINGA_REPLICAS="1", PYTHONPATH=ROOT)
    rows = []
    for seed in args.seeds:
        for mode in args.modes:
            n = MODES[mode][1](args.groups)
            with tempfile.TemporaryDirectory() as ws:
                cmd = [sys.executable, __file__, "--mode", mode, "--groups", str(args.groups), "--steps",
                       str(args.steps), "--sync-freq", str(args.sync_freq), "--workspace", ws, "--seed", str(seed),
                       "--lr", str(args.lr), "--momentum", str(args.momentum)]
                if args.async_momentum is not None:
                    cmd += ["--async-momentum", str(args.async_momentum)]
                if n > 1:
                    cmd = [mpiexec, "-n", str(n)] + cmd
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode:
                    sys.exit("%s failed:\n%s%s" % (mode, out.stdout[-3000:], out.stderr[-3000:]))
                res = json.loads(re.findall(r"^RESULT (.*)$", out.stdout, re.M)[-1])
                res["processes"] = n
                servers = re.findall(r"^Servers .*$", out.stdout, re.M)
                if servers:
                    res["servers"] = servers[-1]
                print(json.dumps(res), flush=True)
                rows.append(res)
    print("\n%-9s %4s %5s %9s %8s %9s %9s %8s" % ("mode", "seed", "procs", "samples", "wall_s", "test_acc",
                                                 "last3_acc", "loss"))
    for r in rows:
        print("%-9s %4d %5d %9d %8.1f %9.4f %9.4f %8.4f" % (r["mode"], r["seed"], r["processes"], r["samples"],
                                                           r["wall_s"], r["test"]["acc"], r["acc_last3"],
                                                           r["test"]["loss"]))


if __name__ == "__main__":
    main()
