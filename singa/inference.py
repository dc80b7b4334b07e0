"""A trained net on in-memory arrays: predictions (``Model.predict``) and exact test metrics
(``Model.evaluate(x, y)``), every sample counted once.

The model's input layers are replaced by one kRecordInput reading the arrays (an in-memory store,
``singa.layers.input.array_store``) in the test phase, with the normalisation (mean/std) of the
model's test data layer (else its train data layer), so arrays of raw pixels go through the same
preprocessing as the records the model was trained on. Batches of ``batch_size`` rows, then one
smaller batch for the remainder (a second net sharing the params), so nothing wraps around.
"""
import numpy

from singa.backends import Backend
from singa.errors import ConfigError, DataError
from singa.io import checkpoint as ckpt
from singa.layers.input import array_store
from singa.neuralnet import NeuralNet
from singa.proto import is_input_layer, job_pb2
from singa.random import RandomStreams


def reference_input(net_proto):
    """The input layer whose store settings arrays inherit: the test one, else the train one."""
    inputs = [lp for lp in net_proto.layer if is_input_layer(lp)]
    if not inputs:
        raise ConfigError("the model has no data layer, so its input shape is unknown.\nhelp: fit the model (or add "
                          "a Data layer) before predict/evaluate on arrays")
    for phase in (job_pb2.kTest, job_pb2.kTrain):
        for lp in inputs:
            if phase in lp.include:
                return lp
    return inputs[0]


def array_net_proto(net_proto, path, batch, x_shape):
    """``net_proto`` with its input layers replaced by one kRecordInput reading ``path``."""
    ref = reference_input(net_proto)
    sc = ref.store_conf
    shape = list(sc.shape) or list(x_shape)
    if int(numpy.prod(shape)) != int(numpy.prod(x_shape)):
        raise DataError("Invalid value for `x`. Expected samples of shape %s (%d values, as the model's data layer "
                        "'%s' reads). Received: samples of shape %s (%d values)"
                        % (tuple(shape), int(numpy.prod(shape)), ref.name, tuple(x_shape), int(numpy.prod(x_shape))))
    out = job_pb2.NetProto()
    out.CopyFrom(net_proto)
    del out.layer[:]
    placed = False
    for lp in net_proto.layer:
        if not is_input_layer(lp):
            out.layer.add().CopyFrom(lp)
            continue
        if placed:
            continue
        data = out.layer.add(name=ref.name, type=job_pb2.kRecordInput)
        data.include.append(job_pb2.kTest)
        if sc.HasField("mean_value"):
            data.store_conf.mean_value = sc.mean_value
        if sc.HasField("std_value"):
            data.store_conf.std_value = sc.std_value
        for f in ("mean_file", "std_file"):
            if getattr(sc, f):
                setattr(data.store_conf, f, getattr(sc, f))
        data.store_conf.path = path
        data.store_conf.backend = "kvfile"
        data.store_conf.batchsize.append(int(batch))
        data.store_conf.shape.extend(shape)
        placed = True
    return out


class Predictor:
    """The test-phase net of ``job`` with the params of ``checkpoint_paths``, run over ``x``."""

    def __init__(self, job, checkpoint_paths, x, y=None, batch_size=100, backend=None, seed=0):
        x = numpy.asarray(x)
        if x.ndim < 2:
            raise DataError("Invalid value for `x`. Expected an array of samples, shape (N, ...). Received: shape %s"
                            % (x.shape,))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("Invalid value for `batch_size`. Expected a positive integer. Received: %r"
                              % (batch_size,))
        self.n = n = x.shape[0]
        labels = numpy.zeros(n, numpy.int32) if y is None else y
        path, self._store = array_store(x, labels)          # kept alive while this Predictor lives
        self.batch = min(int(batch_size), n)
        self.rest = n % self.batch
        self.backend = backend or Backend(None)
        streams = RandomStreams(seed)
        self.net = NeuralNet(array_net_proto(job.neuralnet, path, self.batch, x.shape[1:]), job_pb2.kTest,
                             self.backend, streams)
        paths = list(checkpoint_paths)
        missing = ckpt.missing_params(self.net, ckpt.load_params(paths, self.net))
        if missing:
            raise DataError("the checkpoint(s) %s hold no values for param(s) %s.\nhelp: pass the checkpoint written by "
                            "training this model (m.last_checkpoint_path)" % (paths, missing))
        self.rest_net = None
        if self.rest:
            self.rest_net = NeuralNet(array_net_proto(job.neuralnet, path, self.rest, x.shape[1:]), job_pb2.kTest,
                                      self.backend, streams, shared_params=self.net.owners)
            for layer in self.rest_net.data_layers:         # the rows after the whole batches
                layer.pos = n - self.rest
        self.loss = next((l for l in self.net.layers if l.is_loss), None)

    def _batches(self):
        for _ in range(self.n // self.batch):
            self.net.forward(job_pb2.kTest)
            yield self.net
        if self.rest_net is not None:
            self.rest_net.forward(job_pb2.kTest)
            yield self.rest_net

    @staticmethod
    def _output(net):
        """A batch's predictions: the softmax probabilities of a softmax loss, the input of another
        loss layer (e.g. an autoencoder's reconstruction), else the last layer's output."""
        loss = next((l for l in net.layers if l.is_loss), None)
        if loss is None:
            out = net.layers[-1].data
        elif loss.conf.type == job_pb2.kSoftmaxLoss:
            out = loss.data
        else:
            out = net.srcs[loss.name][0].data
        out = net.backend.to_host(out)
        return numpy.array(out.reshape(out.shape[0], -1), dtype=numpy.float32)

    def predict(self):
        return numpy.concatenate([self._output(net) for net in self._batches()])

    def metrics(self):
        """The test metrics over exactly the n samples (each batch weighted by its rows)."""
        if self.loss is None:
            raise ConfigError("the model has no loss layer, so there is nothing to evaluate.\nhelp: use predict(x)")
        sums = {}
        for net in self._batches():
            rows = net.batch_size
            for k, v in net.metrics().items():
                sums[k] = sums.get(k, 0.0) + v * rows
        return {k: v / self.n for k, v in sums.items()}


__all__ = ["Predictor", "array_net_proto", "reference_input"]
