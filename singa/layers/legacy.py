"""SINGA v0.1's inputs, still in v0.3 (SINGA-V0-REST.md 7.2-7.4): kShardData reads a DataShard,
and the parser layers kLabel, kMnist and kRGBImage turn its records into labels and images.

* kShardData (``sharddata_conf``: ``path``, ``batchsize``, ``random_skip``): a DataShard is the
  kvfile byte layout; ``path`` is the file or, as v0.1 wrote them, a folder holding ``shard.dat``.
  The instance shape is the first record's ``shape`` (v0.1's MNIST shards: 28 x 28 pixel bytes;
  CIFAR-10: 3 x 32 x 32). Records are read in order and wrap; ``random_skip: R`` starts at a
  record uniform in [0, R] from the layer's stream, as kRecordInput (the same code reads both).
* kLabel: the records' labels, as data (B,) and as the labels a loss or accuracy layer reads.
  FIX: v0.3's kLabel set no labels where its own losses look for them, so a v0.1 conf trained on
  nothing; here both are set.
* kMnist: (B, 1, s, s) = pixel / norm_a − norm_b (``mnist_conf``; the elastic-distortion fields
  are not read, as in v0.3). The records must be s x s images.
* kRGBImage (``rgbimage_conf``): the mean image of ``meanfile`` subtracted (a serialized
  RecordProto, v0.1's SingleLabelImageRecord, or a kvfile holding one, as v0.3's tools wrote it; a
  Caffe ``.binaryproto`` BlobProto when the name says so), then kImagePreprocess's crop and mirror, then ``scale`` (0: none, as v0.3). FIX: v0.3
  subtracted a crop-sized mean from the uncropped values, drew crop offsets from the channel count,
  overflowed in test with a crop, and mirrored with a channel-count coin; here the mean is the
  whole image's, offsets are uniform in 0..H−crop, the test crop is the top-left one, and a mirror
  has probability 1/2.

The parsers read a data layer and pass no gradient.
"""
import os

import numpy

from singa.errors import ConfigError, DataError, invalid
from singa.io import kvfile as kv
from singa.io.record import iter_fields, parse_record, record_values, shard_image
from singa.layers.base import Layer, register, scratch, type_name
from singa.layers.input import RecordInputLayer
from singa.layers.preprocess import ImagePreprocessLayer
from singa.proto import job_pb2


def _where(layer):
    return "layer '%s' (%s)" % (layer.name, type_name(layer.conf.type))


@register(job_pb2.kShardData)
class ShardDataLayer(RecordInputLayer):
    """kShardData: a v0.1 DataShard (the kvfile layout) of Records (SingleLabelImageRecords)."""
    kind = "shard"

    def _field(self, name):
        return "sharddata_conf.%s of layer '%s' (kShardData)" % (name, self.name)

    def _read_conf(self):
        if not self.conf.HasField("sharddata_conf"):
            raise ConfigError("layer '%s' (kShardData) has no `sharddata_conf`.\nhelp: add e.g. `sharddata_conf { "
                              "path: \"examples/mnist/mnist_train_shard\" batchsize: 64 }`" % self.name)
        dc = self.conf.sharddata_conf
        if not dc.path:
            raise invalid(self._field("path"), "the shard's folder (holding shard.dat) or file", dc.path)
        if dc.batchsize <= 0:
            raise invalid(self._field("batchsize"), "a positive batch size", dc.batchsize)
        if dc.random_skip < 0:
            raise invalid(self._field("random_skip"), "a number of records >= 0", dc.random_skip)
        real = kv.resolve_path(dc.path)
        with kv.KVFileReader(real) as r:
            first = r.read()
        if first is None:
            raise DataError("the shard %s of layer '%s' holds no record.\nhelp: re-create it" % (real, self.name))
        rec = parse_record(shard_image(first[1], real, 0), real, 0)
        shape = tuple(int(s) for s in rec.shape) or (int(record_values(rec).size),)
        sc = job_pb2.StoreProto(backend="kvfile", path=dc.path, batchsize=[dc.batchsize],
                                random_skip=dc.random_skip, shape=shape)
        return sc, "kvfile", int(dc.batchsize), shape


class _Parser(Layer):
    grad_free = True

    def _source(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        src = self.src_layers[0] if getattr(self, "src_layers", None) else None
        if src is not None and not getattr(src, "is_data", False):
            raise ConfigError("Invalid value for `srclayers` of %s. Expected a data layer (kShardData, "
                              "kRecordInput). Received: '%s' (%s)\nhelp: a parser layer reads the records of a data "
                              "layer" % (_where(self), src.name, type_name(src.conf.type)))
        return tuple(int(s) for s in src_shapes[0])

    def backward(self, flag, srcs, grad):
        return [None]


@register(job_pb2.kLabel)
class LabelLayer(_Parser):
    def setup(self, src_shapes):
        shape = self._source(src_shapes)
        self.out_shape = (shape[0],)
        return self.out_shape

    def forward(self, flag, srcs):
        lab = srcs[0].aux
        if lab is None:
            raise DataError("%s: source '%s' has no labels.\nhelp: its records must carry a `label`"
                            % (_where(self), srcs[0].name))
        y = scratch(self, "y", (lab.shape[0],))
        y[...] = lab
        self.data, self.aux = y, lab
        return y


@register(job_pb2.kMnist)
class MnistLayer(_Parser):
    def setup(self, src_shapes):
        shape = self._source(src_shapes)
        if len(shape) < 3 or shape[-1] != shape[-2]:
            raise invalid("source shape of %s" % _where(self), "square images (batch, ..., s, s)", shape,
                          hint="v0.1's MNIST shards hold 28 x 28 pixel records")
        conf = self.conf.mnist_conf
        if conf.norm_a == 0:
            raise invalid("mnist_conf.norm_a of %s" % _where(self), "a non-zero divisor", conf.norm_a,
                          hint="e.g. norm_a: 255 (pixels to [0, 1]) or norm_a: 127.5 norm_b: 1 ([-1, 1])")
        self.norm_a, self.norm_b = float(conf.norm_a), float(conf.norm_b)
        s = shape[-1]
        self.out_shape = (shape[0], 1, s, s)
        return self.out_shape

    def forward(self, flag, srcs):
        x = srcs[0].data
        y = scratch(self, "y", (x.shape[0], 1) + self.out_shape[2:])
        self.xp.multiply(x.reshape(y.shape), y.dtype.type(1.0 / self.norm_a), out=y)
        if self.norm_b:
            y -= y.dtype.type(self.norm_b)
        self.data = y
        return y


def read_mean_image(path, count, where):
    """The float32 values of an image mean file: a serialized RecordProto (v0.1's
    SingleLabelImageRecord), or a Caffe BlobProto when the name contains "binaryproto"."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError("rgbimage_conf.meanfile of %s: %s cannot be read (%s).\nhelp: the path is relative to the "
                        "working directory %s" % (where, path, e.strerror, os.getcwd())) from None
    if "binaryproto" in os.path.basename(path):
        values = []
        try:
            for fnum, wt, _, v in iter_fields(raw, 0, len(raw)):
                if fnum == 5 and wt == 2:          # Caffe BlobProto.data, packed floats
                    values.append(numpy.frombuffer(raw[v[0]:v[1]], "<f4"))
                elif fnum == 5 and wt == 5:
                    values.append(numpy.frombuffer(raw[v[0]:v[1]], "<f4"))
        except ValueError as e:
            raise DataError("%s is not a Caffe BlobProto (%s)" % (path, e)) from None
        mean = numpy.concatenate(values) if values else numpy.zeros(0, numpy.float32)
    else:
        mean = None
        try:        # v0.3's tools write the mean as a kvfile record: read that too
            with kv.KVFileReader(path) as r:
                first = r.read()
            if first is not None:
                mean = record_values(parse_record(first[1], path, 0)).astype(numpy.float32)
        except DataError:
            mean = None
        if mean is None:
            mean = record_values(parse_record(raw, path, 0)).astype(numpy.float32)
    if mean.size != count:
        raise DataError("rgbimage_conf.meanfile %s of %s holds %d values; the images have %d.\nhelp: use the mean "
                        "made with this data set" % (path, where, mean.size, count))
    return mean


@register(job_pb2.kRGBImage)
class RGBImageLayer(_Parser, ImagePreprocessLayer):
    def setup(self, src_shapes):
        shape = self._source(src_shapes)
        out = ImagePreprocessLayer.setup(self, [shape])
        if self.scale == 0:
            self.scale = 1.0          # v0.3 scaled only when scale != 0
        self.mean = None
        path = self.conf.rgbimage_conf.meanfile
        if path:
            mean = read_mean_image(path, int(numpy.prod(shape[1:])), _where(self)).reshape(shape[1:])
            self.mean = self.backend.asarray(mean, dtype=self.dtype)
        return out

    def forward(self, flag, srcs):
        if self.mean is None:
            return ImagePreprocessLayer.forward(self, flag, srcs)
        x = srcs[0].data
        centred = scratch(self, "centred", x.shape)
        self.xp.subtract(x, self.mean, out=centred)
        return ImagePreprocessLayer.forward(self, flag, [_Blob(centred)])

    def backward(self, flag, srcs, grad):
        return [None]


class _Blob:
    def __init__(self, data):
        self.data = data
