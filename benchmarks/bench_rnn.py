"""Training throughput of char-rnn (SINGA's char-rnn-job.conf) on singa's NumPy engine and on
PyTorch CPU nn.GRU, side by side in one run.

    python benchmarks/bench_rnn.py [--nets charrnn1 charrnn2 rnnlm] [--threads 2] [--repeats 5] [--profile]
    python benchmarks/bench_rnn.py --rnnlm          # the same as --nets rnnlm

The conf's sizes: unroll 50, batch 50, vocab 101, GRU(s) of 512, float32, RMSProp (singa's rule on
both sides, torch_charrnn.SingaRMSProp for torch). ``--layers 1`` is job.conf as it is; ``2`` adds
gru2 on top of gru1 as sample.conf builds it (6 params, no biases; torch's second layer keeps
nn.GRU's input-side biases). singa runs the conf's unrolled net (251 layers for one GRU) with
BPTTWorker on a kCharRNN over a seeded random text; torch runs torch_charrnn's nn.GRU model on the
same kind of windows. Alternating A B A B, medians of ``--repeats`` steady-rate measurements,
characters/s (= 2500 per step), the ratio to PyTorch, and the achieved GFLOP/s (training = 3 x
forward; forward per char 2 * (sum over GRUs of 3 (in * 512 + 512 * 512) + 512 * 101)) as a
fraction of the machine's float32 GEMM rate. ``--profile`` prints singa's top functions (cProfile).

``--nets rnnlm`` (or ``--rnnlm``): the training step of SINGA's rnnlm-job.conf (user layers kData,
kEmbedding word_dim 15 / vocab 3720, kHidden, kLoss nclass 100; alg kBP, so BPWorker as the Driver
picks it; kSGD at the conf's lr 0.1) on a seeded WordRecord kvfile that torch_rnnlm.write_word_records
makes with singa.io.rnnlm_data's vocabulary, classes and writer (Zipf(1) words, a </s> every ~12
tokens: 100 classes from 1 word to a few hundred), against torch_rnnlm's PyTorch model of the same
maths on the same windows (one kData window a step, max_window 10), singa's initial params copied in.
Before timing, ``--check`` steps (default 5) must give the same per-word loss on both to 1e-4
relative. Words/s = target words trained (a window's w) per second over ``--rnnlm-steps`` steps, both
sides stepping through the same windows; FLOP per word trained = 3 x forward, forward per word
2 D^2 (h W) + 2 D (nclass + size of the target word's class) with D = 15 (embedding lookups and the
element-wise work not counted), the class size averaged over the file's records.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.common import start, steady_rate, stepper, train_net  # noqa: E402

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "singa-v0", "char-rnn-job.conf")
CONF_2GRU = os.path.join(os.path.dirname(CONF), "char-rnn", "char-rnn-job-2gru.conf")
RNNLM_CONF = os.path.join(os.path.dirname(CONF), "rnnlm-job.conf")
RNNLM_STEPS = 100                  # steps per rnnlm measurement (--rnnlm-steps; ~ 570 words)
U, B, V, H = 50, 50, 101, 512


def train_flop_per_char(layers):
    fwd = 2 * (3 * (V * H + H * H) + 3 * (layers - 1) * (H * H + H * H) + H * V)
    return 3 * fwd


def write_text(workdir, n=200000, seed=0):
    """A seeded random text over 101 byte values and its vocab.txt: kCharRNN's files."""
    import numpy as np
    vocab = bytes(range(27, 27 + V))
    rng = np.random.default_rng(seed)
    text = np.frombuffer(vocab, np.uint8)[rng.integers(0, V, n)].tobytes()
    paths = os.path.join(workdir, "bench_rnn.txt"), os.path.join(workdir, "bench_rnn_vocab.txt")
    for path, data in zip(paths, (text, vocab)):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def char_rnn_job(layers, text, vocab):
    """char-rnn-job.conf (2 layers: char-rnn-job-2gru.conf, gru2 as sample.conf builds it) with the
    bench's text."""
    from singa.proto import read_job_conf
    if layers not in (1, 2):
        raise SystemExit("--layers: 1 or 2")
    job = read_job_conf(CONF if layers == 1 else CONF_2GRU)
    job.ClearField("gpu")
    data = next(ly for ly in job.neuralnet.layer if ly.name == "data")
    data.char_rnn_conf.path, data.char_rnn_conf.vocab_path = text, vocab
    return job


def singa_step_fn(layers, workdir):
    from singa.updaters import create_updater
    from singa.worker import BPTTWorker
    job = char_rnn_job(layers, *write_text(workdir))
    net = train_net(job)
    return stepper(BPTTWorker(net, create_updater(job.updater))), len(net.layers)


def torch_step_fn(layers, seed=0):
    import numpy as np
    import torch
    from benchmarks import torch_charrnn as tc
    g = torch.Generator().manual_seed(seed)
    gru = torch.nn.GRU(V, H, num_layers=layers)
    out = torch.nn.Linear(H, V)
    with torch.no_grad():
        for name, p in list(gru.named_parameters()) + list(out.named_parameters()):
            if name.startswith("bias_hh"):          # SINGA's GRU: no hidden-side bias
                p.zero_()
                p.requires_grad_(False)
            else:
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * tc.INIT)
    params = [p for p in gru.parameters() if p.requires_grad] + list(out.parameters())
    opt = tc.SingaRMSProp(params)
    ids = np.random.default_rng(seed).integers(0, V, 200000)
    batches = tc.Batches(ids, B, U)
    eye = torch.eye(V)
    state = {"step": 0}

    def step():
        w = torch.from_numpy(next(batches))
        logits = out(gru(eye[w[:-1]])[0])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), w[1:].reshape(-1)) * U
        loss.backward()
        opt.step(state["step"])
        state["step"] += 1
    return step


def rnnlm_flop_per_word(rows, d=15, nclass=100):
    """Training FLOP per word: 3 x (2 d^2 + 2 d (nclass + mean class size of the records))."""
    return 3 * (2 * d * d + 2 * d * (nclass + float((rows[:, 3] - rows[:, 2]).mean())))


def rnnlm_singa(path, conf=RNNLM_CONF, seed=0):
    """(step, net): rnnlm-job.conf's train net on the kvfile ``path``, trained by BPWorker (alg kBP)
    with the conf's updater; step() trains one window and returns (summed loss, words)."""
    from singa.proto import job_pb2, read_job_conf, rnnlm_pb2
    from singa.updaters import create_updater
    from singa.worker import BPWorker
    job = read_job_conf(conf)
    if job.train_one_batch.alg != job_pb2.kBP:
        raise SystemExit("%s: expected alg kBP" % conf)
    for ly in job.neuralnet.layer:
        if ly.user_type == "kData":
            ly.Extensions[rnnlm_pb2.data_conf].path = path
    net = train_net(job, seed=seed)
    worker = BPWorker(net, create_updater(job.updater))
    state = {"step": 0}

    def step():
        worker.train_one_batch(state["step"])
        state["step"] += 1
        m = worker.train_metrics.last["loss"]
        return float(m) * m.weight, int(m.weight)
    return step, net


def rnnlm_steps(workdir, check=5, seed=0):
    """(rows, singa step, torch step or None, the check's largest relative loss difference)."""
    from singa.io.rnnlm_data import read_word_records
    from benchmarks import torch_rnnlm as tr
    path = os.path.join(workdir, "bench_rnnlm.bin")
    tr.write_word_records(path, seed=seed)
    rows, _ = read_word_records(path)
    sstep, net = rnnlm_singa(path, seed=seed)
    try:
        import torch  # noqa: F401
    except ImportError:
        return rows, sstep, None, None
    import numpy as np
    tstep, _ = tr.train_step_fn(rows, [np.array(p.data) for p in net.owner_params])
    worst = 0.0
    for k in range(check):             # same params, same windows: the same loss, step after step
        (a, na), (b, nb) = sstep(), tstep()
        if na != nb:
            raise SystemExit("rnnlm check: step %d trained %d words on singa, %d on torch" % (k, na, nb))
        worst = max(worst, abs(a - b) / abs(a))
    if worst > 1e-4:
        raise SystemExit("rnnlm check: singa and torch losses differ by %.2e relative (> 1e-4)" % worst)
    return rows, sstep, tstep, worst


def words_rate(step, n=RNNLM_STEPS):
    import time
    t, words = time.perf_counter(), 0
    for _ in range(n):
        words += step()[1]
    return words / (time.perf_counter() - t)


def bench_rnnlm(args, gemm):
    rows, sstep, tstep, worst = rnnlm_steps(args.workdir, args.check)
    if args.profile:
        profile(sstep, n=200)
    runs = [("singa", sstep)] + ([("PyTorch", tstep)] if tstep else [])
    for _, step in runs:
        for _ in range(20 * args.warmup):
            step()
    rates = {name: [] for name, _ in runs}
    for _ in range(args.repeats):
        for name, step in runs:          # alternating A B A B, the same windows on both
            rates[name].append(words_rate(step, args.rnnlm_steps))
    flop = rnnlm_flop_per_word(rows)
    sizes = rows[:, 3] - rows[:, 2]
    print("rnnlm (rnnlm-job.conf: vocab 3720, word_dim 15, nclass 100, max_window 10; %d records, class sizes "
          "%d..%d, mean %.1f over the records), %.1f kFLOP per word trained%s:"
          % (len(rows), sizes.min(), sizes.max(), sizes.mean(), flop / 1e3,
             "" if worst is None else "; check: losses agree to %.1e relative" % worst))
    t = statistics.median(rates["PyTorch"]) if tstep else None
    for name, _ in runs:
        r = statistics.median(rates[name])
        line = "  %-8s %7.0f words/s (%6.1f us/word, %5.2f%% of GEMM rate)" % (
            name, r, 1e6 / r, 100 * r * flop / 1e9 / gemm)
        if t and name != "PyTorch":
            line += " | ratio to PyTorch %.2fx" % (r / t)
        print(line, flush=True)


def profile(step, n=5, top=25):
    import cProfile
    import pstats
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        step()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", choices=["charrnn1", "charrnn2", "rnnlm"], default=None,
                    help="what to measure (default: charrnn1 charrnn2, or --layers's)")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="char-rnn GRUs: --nets charrnnN")
    ap.add_argument("--rnnlm", action="store_true", help="the same as --nets rnnlm")
    ap.add_argument("--rnnlm-steps", type=int, default=RNNLM_STEPS, help="rnnlm: steps (windows) per measurement")
    ap.add_argument("--check", type=int, default=5, help="rnnlm: steps whose losses singa and torch must agree on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/singa-bench")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile 5 singa steps first (rnnlm: 200; top 25 by own time)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch, gemm = start(args.threads)
    nets = args.nets or (["rnnlm"] if args.rnnlm else ["charrnn%d" % n for n in args.layers])
    for net in nets:
        if net == "rnnlm":
            bench_rnnlm(args, gemm)
            continue
        layers = int(net[len("charrnn"):])
        sstep, nlayers = singa_step_fn(layers, args.workdir)
        if args.profile:
            profile(sstep)
        runs = [("singa", sstep)] + ([("PyTorch", torch_step_fn(layers))] if torch else [])
        for _, step in runs:             # warm-up: the first steps are slower (allocation, RMSProp history)
            for _ in range(args.warmup):
                step()
        rates = {name: [] for name, _ in runs}
        for _ in range(args.repeats):
            for name, step in runs:          # alternating A B A B
                rates[name].append(steady_rate(step, U * B, n0=2, n1=6))
        flop = train_flop_per_char(layers)
        t = statistics.median(rates["PyTorch"]) if torch else None
        print("%d GRU(s) of %d (singa's unrolled net: %d layers), %.2f MFLOP per char trained:"
              % (layers, H, nlayers, flop / 1e6))
        for name, _ in runs:
            r = statistics.median(rates[name])
            line = "  %-8s %7.0f chars/s (%5.3f s/step, %3.0f%% of GEMM rate)" % (
                name, r, U * B / r, 100 * r * flop / 1e9 / gemm)
            if t and name != "PyTorch":
                line += " | ratio to PyTorch %.2fx" % (r / t)
            print(line, flush=True)


if __name__ == "__main__":
    main()
