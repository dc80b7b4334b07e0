"""Worker: runs TrainOneBatch (alg kBP) and test rounds on its nets (SINGA's BPWorker).

In this single-process engine the worker also applies the updater to the owner params (the
job of SINGA's server threads); singa.cluster distributes that across MPI ranks.
"""
import numpy

from singa import exchange, switches
from singa.backends import blas
from singa.backends.parallel import depth as threads_depth
from singa.errors import ConfigError, invalid
from singa.neuralnet import strip_unroll
from singa.proto import job_pb2
from singa.results import MetricSums
from singa.unroll import dynamic_sources
from singa.updaters.fused import accumulating, gemm_plans, installed

# Automatic replicas: at least this many samples per thread.
MIN_REPLICA_BATCH = 8


def partition_threads():
    """Whether a partitioned net runs each partition on a thread of its own (the default, as
    SINGA's workers of a group), or all partitions one after the other on this thread
    (``SINGA_PARTITION_SEQUENTIAL=1``; also when called from inside a thread part)."""
    return not switches.flag("SINGA_PARTITION_SEQUENTIAL") and not threads_depth()


def auto_replicas(net):
    """How many data-parallel replicas BPWorker uses by default (``SINGA_REPLICAS`` overrides):
    one per BLAS thread for convolution nets on NumPy, else 1.

    Why only convolution nets: their products are thin (few filters) and much of their step is
    memory-bound NumPy passes (lowering, pooling, LRN) that run on one core; a replica per core
    runs all of it in parallel (benchmarks/README.md, "Replicas", has the numbers). A dense
    net's step is a few large GEMMs that OpenBLAS already spreads over the cores, with the
    update fused into them, which replicas would give up."""
    env = switches.raw("SINGA_REPLICAS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise invalid("SINGA_REPLICAS", "a number of replicas >= 1 (1: off)", env,
                          hint="e.g. SINGA_REPLICAS=2, or unset it for the automatic choice")
        return n
    if net.backend.xp is not numpy or not blas.available():
        return 1
    if any(getattr(l, "writes_files", False) for l in net.layers):
        return 1        # an output layer writes one file (singa.layers.output)
    if not any(l.conf.type in (job_pb2.kConvolution, job_pb2.kCConvolution, job_pb2.kCudnnConv)
               for l in net.layers if not l.is_data):
        return 1
    return max(1, min(blas.num_threads(), net.batch_size // MIN_REPLICA_BATCH))


class MetricAverager:
    """Running sums of per-batch metrics; ``pop()`` gives the averages (to 15 significant digits)
    and restarts. A plain value counts once per batch; a ``singa.results.Weighted`` one by its
    weight (words), geometrically for a perplexity (singa.results.MetricSums)."""

    def __init__(self):
        self._sums = MetricSums()
        self.last = {}          # the metrics of the latest batch

    @property
    def n(self):
        return self._sums.n

    @property
    def sums(self):
        return self._sums.sums

    def add(self, metrics):
        self.last = metrics
        self._sums.add(metrics)

    def pop(self):
        # 15 significant digits: drops the float64 noise of the sum (0.8009999999999999 is 0.801,
        # an accuracy of 801 in 1000), far below what float32 training resolves
        out = {k: float("%.15g" % v) for k, v in self._sums.means().items()}
        self._sums = MetricSums()
        return out


class BPWorker:
    """``fuse_updates``: let layers that can (kInnerProduct on NumPy) apply the update of their
    weights inside the weight-gradient GEMM when the updater's rule allows it (SGD without
    clipping); the maths is the same, without a gradient buffer or a separate pass over the
    weights (singa.updaters.fused). Off, or when the rule cannot, every param takes the ordinary
    updater path.

    ``replicas``: train each batch as that many slices side by side on threads (data
    parallelism inside the process, each slice with single-threaded BLAS), the gradients summed
    weighted by the slices' shares of the batch: the same maths as one pass over the batch, up
    to float rounding and the random numbers of layers such as dropout, which each replica
    draws from its own stream. None: ``auto_replicas(train_net)``. Results are reproducible for
    a given seed and number of replicas.

    ``comm`` (singa.cluster.mpi.Comm): a synchronous worker group over processes; this process
    trains ``slices`` [(lo, hi)] (rows of what its data layers read) of every group batch of
    ``batch`` rows (one replica each), and the gradients are summed over the group's processes.
    ``ps`` (singa.cluster.stub.WorkerStub): the group's gradients go to parameter servers, which
    send back fresh values (Downpour, Hogwild, Sandblaster), instead of the local update. How
    the replicas' gradients are exchanged and applied is one strategy (singa.exchange)."""

    def __init__(self, train_net, updater, test_net=None, val_net=None, fuse_updates=True, replicas=None,
                 comm=None, slices=None, slice_ids=None, batch=None, ps=None):
        self.train_net = train_net
        self.test_net = test_net
        self.val_net = val_net
        self.updater = updater
        self.fuse_updates = bool(fuse_updates)
        self.state = {p.name: updater.init_state(p.data) for p in train_net.owner_params} if updater else {}
        self.train_metrics = MetricAverager()
        B = self.batch = int(batch) if batch is not None else train_net.batch_size
        self.update_params = None      # the params this worker trains (None: every owner param)
        self.between_passes = None     # called between a replica's forward and backward passes
        self.flat = None               # the replicas' summed gradients (FlatBuffer), made on the first step
        if slices is not None:
            self.bounds = [(int(lo), int(hi)) for lo, hi in slices]
            self.nreplicas = len(self.bounds)
        else:
            n = auto_replicas(train_net) if replicas is None else int(replicas)
            n = max(1, min(n, B))
            writers = [l.name for l in train_net.layers if getattr(l, "writes_files", False)]
            if n > 1 and writers:
                raise ConfigError("layer '%s' writes one file, which %d replicas would each write.\nhelp: set "
                                  "SINGA_REPLICAS=1 for a net with output layers" % (writers[0], n))
            self.nreplicas = n
            self.bounds = [(B * k // n, B * (k + 1) // n) for k in range(n)] if n > 1 else []
        self.replicas = []        # (net, weight); built on the first step
        # names of the replicas' random streams: the global slice (worker) ids
        self.slice_ids = list(slice_ids) if slice_ids is not None else list(range(len(self.bounds)))
        # None: one pass over the batch, no exchange (the plain step, where updates may fuse)
        self.grad_exchange = exchange.create(train_net.backend.xp, self.nreplicas, comm, ps)

    def train_one_batch(self, step):
        if self.grad_exchange is not None:
            self._train_replicated(step)
            return
        net = self.train_net
        net.forward(job_pb2.kTrain)
        self.train_metrics.add(net.metrics())
        fused = self.gemm_updates(step)
        net.backward(job_pb2.kTrain, fused)
        self.update(step, fused)

    def _train_replicated(self, step):
        """The replicas' passes, their weighted gradients into the flat buffer, then the exchange."""
        net = self.train_net
        if not self.replicas:
            self._build_replicas()
        for layer in net.data_layers:           # the whole batch, read once
            layer.forward(job_pb2.kTrain, net.srcs[layer.name])
        for rnet, _ in self.replicas:          # values may have been replaced (restore)
            for name, p in rnet.owners.items():
                rnet.rebind(p, net.owners[name].data)

        def run(k, n):
            self._replica_step(self.replicas[k][0])
        blas.parallel(run, len(self.replicas))
        metrics = {}
        for rnet, w in self.replicas:
            for key, v in self._metrics(rnet).items():
                metrics[key] = metrics.get(key, 0.0) + w * v
        plist = self.update_params or net.owner_params
        xp = net.backend.xp
        if self.flat is None:
            self.flat = self.grad_exchange.buffer(xp, [p.shape for p in plist], plist[0].dtype, sorted(metrics))
        # numpy, not BLAS: a BLAS call here wakes OpenBLAS's threads, which then spin into the
        # next step's replica threads and slow them
        self._weighted_sum(xp, plist, self.flat.views)
        self.train_metrics.add(self.grad_exchange.exchange(metrics))
        self.grad_exchange.apply(self, step)

    def _build_replicas(self):
        B = self.batch
        if not self.bounds:      # one pass over the whole batch, as a replica (parameter servers)
            self.bounds, self.slice_ids = [(0, B)], self.slice_ids or [0]
        net = self.train_net
        self.replicas = [(net.replica(lo, hi, k, writes_state=i == 0), (hi - lo) / B)
                         for i, (k, (lo, hi)) in enumerate(zip(self.slice_ids, self.bounds))]
        self.between_passes = self.grad_exchange.between_passes(len(self.replicas))

    def _weighted_sum(self, xp, plist, views):
        """views[k] = the replicas' gradients of plist[k], each weighted by its share of the batch."""
        for p, g in zip(plist, views):
            for k, (rnet, w) in enumerate(self.replicas):
                rg = rnet.owners[strip_unroll(p.name)].owner_grad()
                if k == 0:
                    xp.multiply(rg, p.dtype.type(w), out=g)
                else:
                    rg *= p.dtype.type(w)       # the replica's own gradient: rewritten next step
                    g += rg

    @staticmethod
    def _metrics(net):
        """The metrics of ``net``'s batch (a replica's) that the worker reports."""
        return net.metrics()

    def _replica_step(self, rnet):
        """One replica's pass over its slice of the batch: its gradients, into its params."""
        rnet.forward(job_pb2.kTrain)
        if self.between_passes is not None:
            self.between_passes()
        rnet.backward(job_pb2.kTrain)

    def fusable_params(self):
        """The params whose layers can take an update as their gradient's sink."""
        return self.train_net.fusable_params()

    def gemm_updates(self, step):
        """{param: GemmUpdate} for this step's params updated within their gradient products
        (None if none): only in the plain step, where this worker's own pass writes the gradients."""
        if not self.fuse_updates or self.updater is None or self.grad_exchange is not None:
            return None
        return gemm_plans(self.updater, step, self.fusable_params(), self.state)

    def apply_gradients(self, step, views):
        """The update from the summed gradients ``views`` (in the order of the params trained)."""
        plist = self.update_params or self.train_net.owner_params
        self.update(step, grads={p.name: g for p, g in zip(plist, views)}, params=self.update_params)

    def update(self, step, fused=None, grads=None, params=None):
        """Apply the updater to every owner param (or those in ``params``): its own gradient
        (``owner_grad``, the mean over its shares: SINGA's grad_scale = 1/num_shares), or
        ``grads[name]`` when given. Params whose update was applied inside a product (``fused``)
        are skipped."""
        for p in self.train_net.owner_params if params is None else params:
            plan = fused.get(p) if fused else None
            if p.frozen:            # its layer writes it (batch norm's running statistics)
                pass
            elif plan is None or not plan.applied:
                g = grads[p.name] if grads is not None else p.owner_grad()
                self.updater.apply(step, p.data, g, self.state[p.name], lr_scale=p.lr_scale, wd_scale=p.wd_scale)
            p.version = step + 1

    def display_suffix(self, metrics, fmt):
        """What the train display line adds after ``metrics`` (BPTTWorker: SINGA's sums), with
        the Driver's formatter ``fmt``."""
        return ""

    @staticmethod
    def test(net, nsteps, flag):
        """Average metrics of ``nsteps`` batches of ``net`` (forward only)."""
        avg = MetricAverager()
        for _ in range(nsteps):
            net.forward(flag)
            avg.add(net.metrics())
        return avg.pop()


class CDWorker(BPWorker):
    """alg kCD: contrastive divergence for the RBM pairs of the net (SINGA's CDWorker).

    A step: every layer's positive pass in net order (the layers below the RBM forward as
    usual; kRBMVis keeps v0, kRBMHid computes h0 and samples), then ``cd_k`` negative passes of
    each pair (kRBMVis, then its kRBMHid; the first with kTest, which records the squared
    error), then the CD gradients of the RBM layers and the update of their params only: the
    layers below are fixed features (the pre-trained RBMs' weights). Test: the positive pass
    and one reconstruction, reporting 'se'."""

    def __init__(self, train_net, updater, test_net=None, val_net=None, cd_k=1, fuse_updates=True, comm=None,
                 slices=None, slice_ids=None, batch=None):
        if int(cd_k) < 1:
            raise invalid("cd_conf.cd_k", "a number of Gibbs steps >= 1", cd_k, hint="`cd_conf { cd_k: 1 }`")
        # one pass with the update fused into the CD products, unless the batch is split among
        # workers (``slices``, ``comm``: see BPWorker), whose CD gradients are then averaged
        super().__init__(train_net, updater, test_net, val_net, fuse_updates=fuse_updates, replicas=1, comm=comm,
                         slices=slices, slice_ids=slice_ids, batch=batch)
        self.cd_k = int(cd_k)
        self.pairs = self._pairs(train_net)
        if not self.pairs:
            raise ConfigError("alg kCD needs an RBM: the training net has no kRBMVis/kRBMHid pair.\nhelp: add "
                              "RBM(...) to an Energy model, or use `train_one_batch { alg: kBP }` for this net")
        owned = {id(p): p for p in train_net.owner_params}
        self.cd_params = []
        for vis in self.pairs:
            for p in vis.params + vis.hid.params:
                o = p if p.owner is None else p.owner
                if id(o) in owned and all(o is not q for q in self.cd_params):
                    self.cd_params.append(o)
        self.update_params = self.cd_params
        self._replica_pairs = {}

    @staticmethod
    def _pairs(net):
        from singa.layers.rbm import RBMVisLayer
        return [l for l in net.layers if isinstance(l, RBMVisLayer)]

    @staticmethod
    def _positive(net, flag):
        from singa.layers.rbm import RBMHidLayer, RBMVisLayer
        for layer in net.layers:
            if isinstance(layer, (RBMVisLayer, RBMHidLayer)):
                layer.positive(net.srcs[layer.name])
            else:
                layer.forward(flag, net.srcs[layer.name])

    def _replica_step(self, rnet):
        pairs = self._replica_pairs.get(id(rnet))
        if pairs is None:
            pairs = self._replica_pairs[id(rnet)] = self._pairs(rnet)
        self._cd_passes(rnet, pairs)
        for vis in pairs:
            vis.hid.cd_gradients()
            vis.cd_gradients()

    def _cd_passes(self, net, pairs):
        self._positive(net, job_pb2.kTrain | job_pb2.kPositive)
        for k in range(self.cd_k):
            flag = job_pb2.kNegative | (job_pb2.kTest if k == 0 else 0)
            for vis in pairs:
                vis.negative(flag)
                vis.hid.negative(flag)

    def train_one_batch(self, step):
        if self.grad_exchange is not None:
            self._train_replicated(step)
            return
        net = self.train_net
        self._cd_passes(net, self.pairs)
        plans = self.gemm_updates(step)
        with installed(plans):
            for vis in self.pairs:
                vis.hid.cd_gradients()
                vis.cd_gradients()
        self.train_metrics.add(net.metrics())
        self.update(step, fused=plans, params=self.cd_params)

    def fusable_params(self):
        """Each RBM's weight (shared with its RBMHid, whose share adds 0): SGD's update applied
        inside its CD product (no gradient buffer, no averaging pass over the shares, no updater
        pass)."""
        return [vis.weight for vis in self.pairs
                if vis.weight.owner is None and vis.weight.aliased is None and blas.usable(vis.weight.data)]

    @staticmethod
    def test(net, nsteps, flag):
        """Average metrics of ``nsteps`` rounds of ``net``'s RBMs: the positive pass and one
        reconstruction (the squared error 'se')."""
        avg = MetricAverager()
        pairs = CDWorker._pairs(net)
        for _ in range(nsteps):
            CDWorker._positive(net, flag | job_pb2.kPositive)
            for vis in pairs:
                vis.negative(job_pb2.kNegative | job_pb2.kTest)
            avg.add(net.metrics())
        return avg.pop()


class BPTTWorker(BPWorker):
    """alg kBPTT: back-propagation through time over an unrolled net (SINGA's BPTTWorker,
    SINGA-V0-REST.md 1.5).

    A step zeroes the gradient buffers (the unrolled copies of a param share copy 0's), runs
    the forward pass over every copy, the backward pass in reverse order with ``Accumulate``
    sinks (each copy adds its gradient into the one buffer: the net gradient is the sum over
    the time steps of each step's loss gradient, each normalised by the batch only), then one
    update per owner param. Replicas, MPI groups and parameter servers take the same passes
    (singa.exchange). The hidden state is not carried across batches (SINGA's full_state is
    off). Updates never fuse into the products: a product writes one copy's share of the sum.

    Metrics: each is the mean over the layers reporting it (the loss copies: a per-step mean,
    what Results and History hold); the display line adds SINGA's sums over the copies."""

    def __init__(self, train_net, updater, test_net=None, val_net=None, **kw):
        kw["fuse_updates"] = False
        super().__init__(train_net, updater, test_net, val_net, **kw)
        self.metric_counts = {}

    @staticmethod
    def _zero_grads(net):
        for p in net.params:
            if getattr(p, "unrolled_from", None) is None:
                p.grad[...] = 0

    def _passes(self, net):
        """One BPTT pass of ``net`` (the train net or a replica): gradients summed over the copies."""
        self._zero_grads(net)
        net.forward(job_pb2.kTrain)
        if self.between_passes is not None:
            self.between_passes()
        net.backward(job_pb2.kTrain, accumulating(net.params))

    def train_one_batch(self, step):
        if self.grad_exchange is not None:
            self._train_replicated(step)
            return
        net = self.train_net
        self._passes(net)
        self.train_metrics.add(self._metrics(net))
        self.update(step)

    def _metrics(self, net):
        means, self.metric_counts = net.metric_means()
        return means

    def _replica_step(self, rnet):
        self._passes(rnet)

    def display_suffix(self, metrics, fmt):
        """SINGA's Display: each metric summed over the unrolled copies reporting it."""
        n = max(self.metric_counts.values(), default=1)
        if n <= 1:
            return ""
        sums = {k: v * self.metric_counts.get(k, 1) for k, v in metrics.items()}
        return "; summed over the %d unrolled copies (SINGA's log): %s" % (n, fmt(sums))

    @staticmethod
    def test(net, nsteps, flag):
        """Average (per-step mean) metrics of ``nsteps`` forward passes of ``net``. In a kTest net,
        a layer with ``rnn_dummy_conf.dynamic_srclayer`` reads its own input at step 0 and, from
        step 1 on, the output its dynamic source layer had at the previous step."""
        avg = MetricAverager()
        dynamic = dynamic_sources(net) if flag & job_pb2.kTest else {}
        own = {name: net.srcs[name] for name in dynamic}
        try:
            for step in range(nsteps):
                if step == 1:
                    for name, src in dynamic.items():
                        net.srcs[name] = [src]
                net.forward(flag)
                avg.add(net.metric_means()[0])
        finally:
            net.srcs.update(own)
        return avg.pop()
