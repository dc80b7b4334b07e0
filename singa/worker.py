"""Worker: runs TrainOneBatch (alg kBP) and test rounds on its nets (SINGA's BPWorker).

In this single-process engine the worker also applies the updater to the owner params (the
job of SINGA's server threads); singa.cluster distributes that across MPI ranks.
"""
from singa.proto import job_pb2


class MetricAverager:
    """Running sums of per-batch metrics; ``pop()`` gives the averages and restarts."""

    def __init__(self):
        self.sums, self.n = {}, 0

    def add(self, metrics):
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def pop(self):
        out = {k: v / self.n for k, v in self.sums.items()} if self.n else {}
        self.sums, self.n = {}, 0
        return out


class BPWorker:
    """``fuse_updates``: let layers that can (kInnerProduct on NumPy) apply the update of their
    weights inside the weight-gradient GEMM when the updater's rule allows it (SGD without
    clipping); the maths is the same, without a gradient buffer or a separate pass over the
    weights. Off, or when the rule cannot, every param takes the ordinary updater path."""

    def __init__(self, train_net, updater, test_net=None, val_net=None, fuse_updates=True):
        self.train_net = train_net
        self.test_net = test_net
        self.val_net = val_net
        self.updater = updater
        self.fuse_updates = bool(fuse_updates)
        self.state = {p.name: updater.init_state(p.data) for p in train_net.owner_params} if updater else {}
        self.train_metrics = MetricAverager()

    def train_one_batch(self, step):
        net = self.train_net
        net.forward(job_pb2.kTrain)
        self.train_metrics.add(net.metrics())
        fused = self.gemm_updates(step)
        net.backward(job_pb2.kTrain, fused)
        self.update(step, fused)

    def gemm_updates(self, step):
        """{param: GemmUpdate} for this step's params updated within backward (None if none)."""
        if not self.fuse_updates or self.updater is None:
            return None
        out = {}
        for p in self.train_net.fusable_params():
            plan = self.updater.gemm_update(step, p.data, self.state[p.name], lr_scale=p.lr_scale,
                                            wd_scale=p.wd_scale)
            if plan is not None:
                out[p] = plan
        return out or None

    def update(self, step, fused=None):
        for p in self.train_net.owner_params:
            plan = fused.get(p) if fused else None
            if plan is None or not plan.applied:
                # owner_grad averages over shares: SINGA's grad_scale = 1/num_shares.
                self.updater.apply(step, p.data, p.owner_grad(), self.state[p.name],
                                   lr_scale=p.lr_scale, wd_scale=p.wd_scale)
            p.version = step + 1

    def test(self, net, nsteps, flag):
        """Average metrics of ``nsteps`` batches of ``net`` (forward only)."""
        avg = MetricAverager()
        for _ in range(nsteps):
            net.forward(flag)
            avg.add(net.metrics())
        return avg.pop()
