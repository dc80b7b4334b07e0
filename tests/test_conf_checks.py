# covers: singa/conf_checks.py, singa/layers/neuron.py (num_softmax_per_instance)
"""Fields SINGA read that change nothing here are warned about once, naming the field; the shipped
confs raise none; kSoftmax's num_softmax_per_instance is implemented."""
import glob
import os

import numpy
import pytest

from singa.conf_checks import inert_fields
from singa.errors import ConfigError
from singa.proto import job_pb2, parse_job_conf, read_job_conf
from singa.testing.gradcheck import Source, build_layer
from tests.conftest import CONF_DIR


def test_each_inert_field_is_named():
    job = parse_job_conf('''name: "j" debug: true neuralnet {
      layer { name: "a" type: kInnerProduct user_type: "kPReLU" }
      layer { name: "b" type: kSTanh unroll_conn_type: kUnrollOneToOne shift: 1 srclayers: "a" }
      layer { name: "c" type: kSTanh unroll_index: 2 srclayers: "b" } }''')
    msgs = inert_fields(job)
    assert len(msgs) == 4
    assert msgs[0].startswith("`debug: true` has no effect")
    assert "layer 'a': `type: kInnerProduct` is ignored beside `user_type: 'kPReLU'`" in msgs[1]
    assert "layer 'b': `unroll_conn_type`, `shift` have no effect: the net is not unrolled" in msgs[2]
    assert "layer 'c': `unroll_index` has no effect" in msgs[3]
    # an unrolled net reads them; a user type alone is no conflict
    job.neuralnet.unroll_len = 3
    job.debug = False
    job.neuralnet.layer[0].ClearField("type")
    assert inert_fields(job) == []


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONF_DIR, "*.conf")) +
                                        glob.glob(os.path.join(CONF_DIR, "v0.1", "*.conf"))),
                         ids=os.path.basename)
def test_shipped_confs_have_no_inert_fields(path):
    assert inert_fields(read_job_conf(path)) == []


def test_the_driver_warns_once_on_stderr(tmp_path, capsys):
    from singa.driver import Driver
    from tests.test_partition import write_cifar_like
    write_cifar_like(tmp_path / "d.bin", n=8)
    job = parse_job_conf('''name: "w" train_steps: 1 debug: true train_one_batch { alg: kBP }
    updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } }
    neuralnet {
      layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "%s" batchsize: 4 shape: 3072 } }
      layer { name: "ip" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 10 }
              param { name: "w" init { type: kGaussian std: 0.01 } } param { name: "b" init { type: kConstant } } }
      layer { name: "loss" type: kSoftmaxLoss srclayers: "ip" srclayers: "data" } }
    cluster { workspace: "%s" }''' % (tmp_path / "d.bin", tmp_path / "ws"))
    Driver(verbose=False, comm=None).train(job)
    err = capsys.readouterr().err
    assert err.count("warning: `debug: true` has no effect") == 1


def test_num_softmax_per_instance():
    x = numpy.random.default_rng(0).standard_normal((3, 2, 6))
    layer = build_layer('name: "s" type: kSoftmax srclayers: "x" softmax_conf { num_softmax_per_instance: 3 }',
                        [x.shape])
    y = numpy.array(layer.forward(job_pb2.kTest, [Source("x", x)]))
    parts = x.reshape(3, 3, 4)
    want = numpy.exp(parts) / numpy.exp(parts).sum(axis=2, keepdims=True)
    numpy.testing.assert_allclose(y, want.reshape(x.shape), rtol=1e-12)
    with pytest.raises(ConfigError, match="num_softmax_per_instance of layer 's'.*a positive divisor of the 12"):
        build_layer('name: "s" type: kSoftmax srclayers: "x" softmax_conf { num_softmax_per_instance: 5 }',
                    [x.shape])
