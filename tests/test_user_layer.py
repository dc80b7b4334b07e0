# covers: singa/layers/base.py (register, USER_LAYERS, create_layer), singa/testing, examples/user_layer.py,
#         docs/user-layers.md
"""A user's own layer: registered by user type, selected by `user_type` as SINGA's Layer::Create
did, gradient-checked with singa.testing, and trained through the Python API."""
import os
import re
import subprocess
import sys

import numpy
import pytest

from singa.backends import Backend
from singa.errors import ConfigError
from singa.layers import USER_LAYERS, Layer, create_layer, register
from singa.proto import LayerProto, job_pb2, parse_job_conf
from singa.testing import GradientMismatch, check_layer_gradients
from tests.conftest import ROOT
from tests.test_datasets import needs_fashion
from tests.test_driver import job_dir  # noqa: F401  (the fixture: small record files)


@pytest.fixture
def user_layers():
    """USER_LAYERS as it was before the test (a test's registrations do not leak)."""
    saved = dict(USER_LAYERS)
    yield USER_LAYERS
    USER_LAYERS.clear()
    USER_LAYERS.update(saved)


def double_layer():
    class Double(Layer):
        def setup(self, src_shapes):
            self.expect_srcs(src_shapes, 1)
            self.out_shape = tuple(src_shapes[0])
            return self.out_shape

        def forward(self, flag, srcs):
            self.data = srcs[0].data * 2
            return self.data

        def backward(self, flag, srcs, grad):
            return [grad * 2]
    return Double


def test_user_type_selects_the_registered_class_before_type(user_layers):
    Double = register("kDouble")(double_layer())
    assert user_layers["kDouble"] is Double
    # SINGA dispatched on the presence of user_type: a set type does not override it
    conf = LayerProto(name="d", type=job_pb2.kInnerProduct, user_type="kDouble")
    layer = create_layer(conf, Backend())
    assert type(layer) is Double
    layer.setup([(2, 3)])
    numpy.testing.assert_array_equal(layer.forward(job_pb2.kTrain, [type("S", (), {"data": numpy.ones((2, 3))})]),
                                     2 * numpy.ones((2, 3)))
    # a user type is a namespace of its own: "kEmbedding" is not the built-in kEmbedding
    register("kInnerProduct")(Double)
    assert type(create_layer(LayerProto(name="x", user_type="kInnerProduct"), Backend())) is Double
    assert type(create_layer(LayerProto(name="y", type=job_pb2.kInnerProduct), Backend())) is not Double


def test_unknown_user_type_names_the_layer_and_field(user_layers):
    register("kDouble")(double_layer())
    with pytest.raises(ConfigError) as e:
        create_layer(LayerProto(name="mine", user_type="kTriple"), Backend())
    msg = str(e.value)
    assert "`user_type` of layer 'mine'" in msg and "'kTriple'" in msg and "'kDouble'" in msg
    assert "help: import the module" in msg


def test_register_refuses_a_taken_type_and_bad_values(user_layers):
    register("kDouble")(double_layer())
    other = type("Other", (Layer,), {})
    with pytest.raises(ConfigError, match=r"'kDouble'.*already implements"):
        register("kDouble")(other)
    register("kDouble")(double_layer())         # the same class defined again (a re-run cell) replaces it
    with pytest.raises(ConfigError, match="already implements"):
        register(job_pb2.kInnerProduct)(other)   # a built-in type keeps its class
    for bad in ("", None, 1.5, True):
        with pytest.raises(ConfigError, match="layer type given to register"):
            register(bad)


def test_gradient_check_catches_a_wrong_user_backward(user_layers):
    class Wrong(double_layer()):
        def backward(self, flag, srcs, grad):
            return [grad * 3]
    register("kWrong")(Wrong)
    with pytest.raises(GradientMismatch, match=r"layer 'w' \(kWrong\)"):
        check_layer_gradients('name: "w" user_type: "kWrong"', [(3, 4)])


def test_example_prelu_gradients_and_job_conf(user_layers):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import user_layer
    finally:
        sys.path.pop(0)
    assert USER_LAYERS["kPReLU"] is user_layer.PReLULayer
    conf = 'name: "p" user_type: "kPReLU" param { name: "a" init { type: kUniform low: -1 high: 1 } }'
    check_layer_gradients(conf, [(5, 7)])
    check_layer_gradients(conf, [(2, 3, 4)], data_srcs={0})
    # the API side emits the conf a job.conf would hold
    p = user_layer.PReLU(slope=0.1, name="act1")
    assert p.layer.user_type == "kPReLU" and p.layer.param[0].init.value == pytest.approx(0.1)
    job = parse_job_conf('name: "j" neuralnet { layer { name: "act1" user_type: "kPReLU" '
                         'param { name: "act1_slope" init { type: kConstant value: 0.1 } } } }')
    assert job.neuralnet.layer[0] == p.layer


@needs_fashion
def test_user_layer_example_trains(in_tmp):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "user_layer.py"), "--dataset", "fashion_mnist",
                        "--steps", "40", "--test-steps", "3"], cwd=in_tmp, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "gradient check of kPReLU: passed" in r.stdout
    acc = float(re.search(r"Test after 40 steps \(3 batches of 100\): \{'loss': [\d.]+, 'acc': ([\d.]+)\}",
                          r.stdout).group(1))
    assert acc > 0.5


def test_user_layer_in_a_job_conf_trains_through_the_driver(job_dir, user_layers):
    # the docs' recipe: import the module that registers the layer, then run the conf
    from singa.driver import Driver
    from singa.io.checkpoint import read_checkpoint
    from tests.test_driver import NET
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import user_layer
    finally:
        sys.path.pop(0)
    register("kPReLU")(user_layer.PReLULayer)
    stanh = 'layer { name: "act1" type: kSTanh srclayers: "fc1" }'
    assert stanh in NET
    text = NET.replace(stanh, 'layer { name: "act1" user_type: "kPReLU" srclayers: "fc1" '
                              'param { name: "act1_slope" init { type: kConstant value: 0.25 } } }')
    res = Driver(verbose=False).train(parse_job_conf(text % dict(steps=60, disp=10, test_freq=20)))
    assert res[59]["loss"] < 0.5 * res[0]["loss"] and res.test[60]["acc"] > 0.8
    stored = {name: a for name, a, _ in read_checkpoint(job_dir / "ws" / "checkpoint" / "step60-worker0")}
    slope = stored["act1_slope"]
    assert slope.shape == (16,) and not numpy.allclose(slope, 0.25)      # the slopes were learnt
