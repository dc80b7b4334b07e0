#!/usr/bin/env python
"""A layer of your own, end to end (docs/user-layers.md): PReLU, y = x for x > 0 and a*x
otherwise, with one learnt slope a per feature (He et al., 2015), which SINGA v0.3 did not have.

    python examples/user_layer.py                 # gradient check, then 300 steps on Fashion-MNIST
    python examples/user_layer.py --steps 2000

1. the engine side: a class of singa.layers.Layer registered as user type "kPReLU";
2. its float64 finite-difference gradient check, on NumPy and the device stand-in;
3. the API side: a singa.model.Layer whose LayerProto has `user_type: "kPReLU"`, in a
   Sequential MLP between built-in Dense layers, trained with compile/fit/evaluate.
"""
import argparse
import os
import sys

sys.path.append(os.path.join(os.path.dirname(__file__), '..'))
from singa.model import *  # noqa: E402,F403
from singa import layers  # noqa: E402
from singa.testing import check_layer_gradients  # noqa: E402
from singa.utils.helptext import plain  # noqa: E402
from examples.datasets.choose import CHOICES, mnist_like  # noqa: E402
from singa.proto import import_pb2  # noqa: E402

# The layer's own job.conf settings, `[prelu_conf] { channel_shared: true }`: examples/prelu.proto
# (which imports SINGA's job.proto), compiled by protoc into prelu_pb2.py; import_pb2 loads it
# against singa's job_pb2, so the extension joins LayerProto and a job.conf using it parses.
prelu_pb2 = import_pb2(os.path.join(os.path.dirname(os.path.abspath(__file__)), "prelu_pb2.py"))


# -- 1. the engine side -------------------------------------------------------------------------
@layers.register("kPReLU")
class PReLULayer(layers.Layer):
    """y = max(x, 0) + a * min(x, 0), a (the param) one slope per feature."""

    def setup(self, src_shapes):
        self.expect_srcs(src_shapes, 1)
        self.out_shape = tuple(src_shapes[0])
        # a job.conf's `[prelu_conf] { channel_shared: true }`: one slope for all features
        self.shared = self.conf.Extensions[prelu_pb2.prelu_conf].channel_shared
        self.slope = self.make_param(0, (1,) if self.shared else self.out_shape[1:], "slope")
        return self.out_shape

    def forward(self, flag, srcs):
        xp, x = self.xp, srcs[0].data        # xp: NumPy or CuPy, so this runs on either
        self.data = xp.maximum(x, 0) + self.slope.data * xp.minimum(x, 0)
        return self.data

    def backward(self, flag, srcs, grad):
        xp, x = self.xp, srcs[0].data
        da = (grad * xp.minimum(x, 0)).sum(axis=0)                         # dL/da
        self.slope.grad[...] = da.sum().reshape(1) if self.shared else da
        if srcs[0].is_data:                                                # a data layer needs no gradient
            return [None]
        return [grad * xp.where(x > 0, self.dtype.type(1), self.slope.data)]


# -- 3. the API side: what Sequential.add takes ----------------------------------------------------
class PReLU(Layer):  # noqa: F405  (singa.model's Layer: a LayerProto builder)
    """PReLU(slope=0.25): a kPReLU layer whose slopes start at ``slope``."""

    def __init__(self, slope=0.25, **kwargs):
        super().__init__(user_type="kPReLU", **kwargs)
        p = self.layer.param.add(name=self.name + "_slope")
        p.init.type = kConstant  # noqa: F405
        p.init.value = slope


def main():
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', choices=CHOICES, default='auto')
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--hidden', type=int, default=256)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--test-steps', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workspace', default=None)
    args, singa_argv = parser.parse_known_args()

    # -- 2. the gradient check: finite differences in float64, then the device stand-in vs NumPy
    conf = 'name: "p" user_type: "kPReLU" param { name: "a" init { type: kUniform low: -1 high: 1 } }'
    check_layer_gradients(conf, [(4, 6)])
    check_layer_gradients(conf, [(3, 2, 5)])
    print("gradient check of kPReLU: passed (NumPy float64 and the device stand-in)")

    dataset = mnist_like(args.dataset)
    X_train, X_test, workspace = dataset.load_data(workspace=args.workspace)
    m = Sequential('prelu_mlp', [sys.argv[0]] + singa_argv)  # noqa: F405
    m.add(Dense(args.hidden, init='uniform'))  # noqa: F405
    m.add(PReLU(slope=0.25))
    m.add(Dense(10, init='uniform', activation='softmax'))  # noqa: F405
    m.compile(loss='categorical_crossentropy', optimizer=SGD(lr=args.lr, momentum=0.9),  # noqa: F405
              cluster=Cluster(workspace))  # noqa: F405
    m.fit(X_train, nb_epoch=args.steps, with_test=False, seed=args.seed)
    result = m.evaluate(X_test, batch_size=100, test_steps=args.test_steps)
    last = result[max(result)] if result else {}
    print("Test after %d steps (%d batches of 100): %s" % (args.steps, args.test_steps, last))


if __name__ == "__main__":
    main()
