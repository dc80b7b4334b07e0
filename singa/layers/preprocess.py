"""kImagePreprocess (SINGA-V0-REST.md 7.1): crop, mirror and scale a batch of (C, H, W) images, as
AlexNet's confs put it between the record input and the first convolution.

``rgbimage_conf``: ``cropsize`` (0: no crop), ``mirror``, ``scale`` (``meanfile`` and ``resize``
are not read, as in SINGA; the record input subtracts the mean image before this layer).

* Training: per image, offsets h0 ~ U{0..H−crop}, w0 ~ U{0..W−crop} and, with ``mirror``, a flip of
  the width with probability 1/2, all drawn from the layer's named random stream (the same draws on
  NumPy and on a device).
* Test and validation: the top-left crop, never mirrored, as v0.3 evaluated (COPY; a centre crop
  would score differently, so the conf's results stay comparable).
* y = scale · crop(x). FIX: v0.3 mirrored with probability ⌊(H−crop+1)/2⌋/(H−crop+1) (0 when crop
  equals H), and without a crop it worked in place on its source's blob (a mirror then turned each
  row into a palindrome); here the probability is 1/2 and the output is always its own array.

It passes no gradient to its source (it reads a data layer).
"""
import numpy

from singa.errors import ConfigError, invalid
from singa.layers.base import Layer, register, scratch, type_name
from singa.proto import job_pb2


@register(job_pb2.kImagePreprocess)
class ImagePreprocessLayer(Layer):
    grad_free = True

    def _where(self):
        return "layer '%s' (%s)" % (self.name, type_name(self.conf.type))

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        shape = tuple(int(s) for s in src_shapes[0])
        if len(shape) != 4:
            raise invalid("source shape of %s" % self._where(), "a batch of images (batch, channels, height, "
                          "width)", shape, hint="give the record input `shape: 3 shape: 256 shape: 256`")
        conf = self.conf.rgbimage_conf
        B, C, H, W = shape
        crop = int(conf.cropsize)
        if crop < 0 or crop > min(H, W):
            raise invalid("rgbimage_conf.cropsize of %s" % self._where(), "0 (no crop) or a size up to the "
                          "images' %dx%d" % (H, W), crop, hint="AlexNet crops 256x256 records to 227")
        self.crop = (crop, crop) if crop else (H, W)
        self.mirror = bool(conf.mirror)
        self.scale = float(conf.scale)
        self.out_shape = (B, C) + self.crop
        return self.out_shape

    def offsets(self, flag, batch):
        """(h0, w0, flipped) per image of a batch of ``batch``: drawn in training, else top-left."""
        H, W = self.src_hw
        ch, cw = self.crop
        if not flag & job_pb2.kTrain:
            zeros = numpy.zeros(batch, numpy.int64)
            return zeros, zeros, numpy.zeros(batch, bool)
        if self.rng is None:
            raise ConfigError("%s has no random stream: set `layer.rng` to a numpy Generator (NeuralNet does "
                              "this from the job's seed) before training" % self._where())
        h0 = self.rng.integers(0, H - ch + 1, size=batch)
        w0 = self.rng.integers(0, W - cw + 1, size=batch)
        flip = self.rng.random(batch) < 0.5 if self.mirror else numpy.zeros(batch, bool)
        return h0, w0, flip

    def forward(self, flag, srcs):
        x = srcs[0].data
        B = x.shape[0]
        self.src_hw = x.shape[2:]
        ch, cw = self.crop
        y = scratch(self, "y", (B, x.shape[1], ch, cw))
        h0, w0, flip = self.offsets(flag, B)
        whole = (ch, cw) == tuple(x.shape[2:])
        if whole and not flip.any():
            y[...] = x
        else:
            for k in range(B):
                h, w = int(h0[k]), int(w0[k])
                piece = x[k, :, h:h + ch, w:w + cw]
                y[k] = piece[:, :, ::-1] if flip[k] else piece
        if self.scale != 1.0:
            y *= y.dtype.type(self.scale)
        self.data = y
        return y

    def backward(self, flag, srcs, grad):
        return [None]
