# covers: singa/proto/__init__.py, singa/neuralnet.py, singa/layers/base.py, singa/param.py (hostile job.conf
#         and API values)
"""Issue 14 items 5 and 6 in configuration: hostile values in a job.conf or the Python API give a
ConfigError naming the field (never a numpy error, a MemoryError, a RecursionError or an uphill
run), deep nets build, huge strides cost what the input costs, and SINGA's shipped confs build."""
import glob
import os
import time

import numpy as np
import pytest

from singa.testing.gradcheck import Source, build_layer
from singa.__main__ import main
from singa.backends import Backend
from singa.driver import Driver
from singa.errors import ConfigError
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.layers.base import LAYERS
from singa.model import SGD, AdaDelta, Adam, AdamMax, Nesterov, RMSProp
from singa.neuralnet import NeuralNet, layers_in_phase, topological_order
from singa.parameter import Parameter
from singa.proto import job_pb2, parse_job_conf, read_job_conf
from singa.random import RandomStreams
from singa.updaters import create_updater

CPU = Backend(None)
NAN, INF = float("nan"), float("inf")

DATA = ('layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "d.bin" batchsize: 4 '
        'shape: 2 shape: 6 shape: 6 } }')
PARAMS = ('param { name: "w%s" init { type: kGaussian std: 0.1 } } '
          'param { name: "b%s" init { type: kConstant value: 0 } }')
JOB = """name: "hostile" train_steps: 3 disp_freq: 0
train_one_batch { alg: kBP }
updater { type: kSGD %(updater)s learning_rate { %(lr)s } }
cluster { workspace: "ws" }
neuralnet { %(data)s
  layer { name: "fc" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 }
          param { name: "w" init { %(init)s } } param { name: "b" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" } }
"""


def job_text(updater="", lr="type: kFixed base_lr: 0.1", init="type: kGaussian std: 0.1", data=DATA):
    return JOB % dict(updater=updater, lr=lr, init=init, data=data)


@pytest.fixture
def data_dir(in_tmp):
    rng = np.random.default_rng(0)
    with KVFileWriter(str(in_tmp / "d.bin")) as w:
        for i in range(8):
            w.insert("%08d" % i, encode_record(label=i % 3, data=rng.uniform(0, 1, 72).astype(np.float32).tolist(),
                                               shape=[2, 6, 6]))
    return in_tmp


def build_net(text, phase=job_pb2.kTrain):
    streams = RandomStreams(0)
    net = NeuralNet(parse_job_conf(text).neuralnet, phase, CPU, streams)
    for p in net.owner_params:
        p.init_values(streams.stream(p.name))
    return net


def raises(fn, *needles):
    with pytest.raises(ConfigError) as e:
        fn()
    msg = str(e.value)
    for n in needles:
        assert n in msg, (n, msg)
    return msg


# -- 1. learning rates and updater fields ------------------------------------------------

def test_negative_base_lr_in_a_job_conf_fails_before_training(data_dir, capsys):
    # was: trained uphill for all the steps and exited 0
    path = data_dir / "job.conf"
    path.write_text(job_text(lr="type: kFixed base_lr: -5"))
    assert main(["-conf", str(path)]) != 0
    err = capsys.readouterr().err
    assert "Invalid value for `updater.learning_rate.base_lr`. Expected a finite number >= 0. Received: -5.0" in err
    assert "help:" in err
    assert not glob.glob(str(data_dir / "ws" / "checkpoint" / "step*"))


LR_CASES = [
    ("type: kFixed base_lr: nan", "base_lr`", "nan"),
    ("type: kFixed base_lr: inf", "base_lr`", "inf"),
    ("type: kStep base_lr: 0.1 step_conf { change_freq: 10 gamma: -0.5 }", "step_conf.gamma`", "-0.5"),
    ("type: kStep base_lr: 0.1 step_conf { change_freq: 10 gamma: nan }", "step_conf.gamma`", "nan"),
    ("type: kInverse base_lr: 0.1 inverse_conf { gamma: 0.1 pow: -1 }", "inverse_conf.pow`", "-1.0"),
    ("type: kInverse base_lr: 0.1 inverse_conf { gamma: inf pow: 1 }", "inverse_conf.gamma`", "inf"),
    ("type: kLinear base_lr: 0.1 linear_conf { change_freq: 10 final_lr: nan }", "linear_conf.final_lr`", "nan"),
    ("type: kLinear base_lr: 0.1 linear_conf { change_freq: 10 final_lr: -1 }", "linear_conf.final_lr`", "-1.0"),
    ("type: kInverseT base_lr: 0.1 inverset_conf { final_lr: inf }", "inverset_conf.final_lr`", "inf"),
    ("type: kFixedStep fixedstep_conf { step: 0 step_lr: 0.1 step: 9 step_lr: -0.01 }", "fixedstep_conf.step_lr[1]`", "-0.01"),
    ("type: kFixedStep fixedstep_conf { step: 0 step_lr: nan }", "fixedstep_conf.step_lr[0]`", "nan"),
]
UPDATER_CASES = [
    ("type: kSGD momentum: -0.9", "`updater.momentum`", "-0.9"),
    ("type: kSGD momentum: nan", "`updater.momentum`", "nan"),
    ("type: kNesterov momentum: inf", "`updater.momentum`", "inf"),
    ("type: kSGD weight_decay: nan", "`updater.weight_decay`", "nan"),
    ("type: kAdam delta: nan", "`updater.delta`", "nan"),
    ("type: kAdamMax delta: inf", "`updater.delta`", "inf"),
    ("type: kSGD clip_low: nan clip_high: 5", "`updater.clip_low`", "nan"),
    ("type: kRMSProp rmsprop_conf { rho: nan }", "`updater.rmsprop_conf.rho`", "nan"),
    ("type: kAdaDelta adadelta_conf { rho: nan }", "`updater.adadelta_conf.rho`", "nan"),
    ("type: kAdam adam_conf { beta1: inf beta2: 0.9 }", "`updater.adam_conf.beta1`", "inf"),
]


@pytest.mark.parametrize("lr,field,value", LR_CASES)
def test_learning_rate_fields_of_a_job_conf(lr, field, value):
    job = parse_job_conf(job_text(lr=lr))
    raises(lambda: create_updater(job.updater), "Invalid value for `updater.learning_rate." + field, "Received: " + value, "help:")


@pytest.mark.parametrize("upd,field,value", UPDATER_CASES)
def test_updater_fields_of_a_job_conf(upd, field, value):
    text = "updater { %s learning_rate { type: kFixed base_lr: 0.1 } }" % upd
    raises(lambda: create_updater(parse_job_conf(text).updater), "Invalid value for " + field,
           "Received: " + value, "help:")


@pytest.mark.parametrize("make,needles", [
    (lambda: SGD(lr=NAN), ["`lr` of SGD", "positive finite", "nan"]),
    (lambda: SGD(lr=INF), ["`lr` of SGD", "inf"]),
    (lambda: SGD(lr=-5), ["`lr` of SGD", "-5"]),
    (lambda: SGD(momentum=NAN), ["`momentum` of SGD"]),
    (lambda: SGD(decay=INF), ["`decay` of SGD"]),
    # the same engine checks as a job.conf, with the same field path
    (lambda: SGD(lr_type="step", gamma=NAN), ["`updater.learning_rate.step_conf.gamma`", "nan"]),
    (lambda: SGD(lr_type="inverse", pow=-1), ["`updater.learning_rate.inverse_conf.pow`"]),
    (lambda: SGD(lr_type="linear", final_lr=NAN), ["`updater.learning_rate.linear_conf.final_lr`"]),
    (lambda: SGD(lr_type="inverset", final_lr=INF), ["`updater.learning_rate.inverset_conf.final_lr`"]),
    (lambda: SGD(lr_type="manual", step=(0, 10), step_lr=(0.1, -0.01)), ["fixedstep_conf.step_lr[1]`"]),
    (lambda: Nesterov(delta=NAN), ["`updater.delta`"]),
    (lambda: RMSProp(rho=NAN), ["`rho` of RMSProp"]),
    (lambda: AdaDelta(rho=2), ["`updater.adadelta_conf.rho`", "[0, 1]"]),
    (lambda: Adam(beta1=INF), ["`beta1` of Adam"]),
    (lambda: AdamMax(beta2=1.5), ["`updater.adammax_conf.beta2`"]),
], ids=["lr-nan", "lr-inf", "lr-negative", "momentum-nan", "decay-inf", "step-gamma", "inverse-pow",
        "linear-final", "inverset-final", "manual-step-lr", "delta", "rmsprop-rho", "adadelta-rho", "adam-beta1",
        "adammax-beta2"])
def test_python_api_refuses_the_same_values(make, needles):
    raises(make, "Invalid value for", *needles)


def test_a_schedule_that_turns_negative_stops_at_that_step():
    # every field is valid, but kLinear is not clamped: base 0.1 -> final 0.01 over 10 steps
    # crosses 0 after step 11; a rate that grows without bound (kStep gamma 10) overflows
    w = np.zeros(4, np.float32)
    for lr, step in (("type: kLinear base_lr: 0.1 linear_conf { change_freq: 10 final_lr: 0.01 }", 12),
                     ("type: kStep base_lr: 0.1 step_conf { change_freq: 1 gamma: 10 }", 400)):
        u = create_updater(parse_job_conf("updater { type: kSGD learning_rate { %s } }" % lr).updater)
        u.apply(0, w, np.ones_like(w), u.init_state(w))
        raises(lambda: u.apply(step, w, np.ones_like(w), u.init_state(w)), "`updater.learning_rate`",
               "at step %d" % step, "help:")


# -- 2. init and param scales --------------------------------------------------------------

@pytest.mark.parametrize("init,needles", [
    ("type: kGaussian std: -0.1", ["`std` of param 'w' (layer 'fc')", ">= 0", "-0.1"]),
    ("type: kUniform low: 0.5 high: -0.5", ["`low`/`high` of param 'w' (layer 'fc')", "low <= high"]),
    ("type: kGaussian mean: nan", ["`mean` of param 'w'", "finite"]),
    ("type: kUniform low: -inf high: 1", ["`low` of param 'w'", "finite"]),
    ("type: kConstant value: inf", ["`value` of param 'w'"]),
])
def test_bad_init_in_a_job_conf_names_the_param(data_dir, init, needles):
    # was: numpy's "ValueError: scale < 0" / "high - low < 0" (or NaN weights) from the job.conf path
    job = parse_job_conf(job_text(init=init))
    raises(lambda: Driver(verbose=False).train(job), *needles)


def test_python_api_init_checks_are_the_same_ones():
    raises(lambda: Parameter(init="gaussian", std=-0.1), "`std` of param", ">= 0")
    raises(lambda: Parameter(init="uniform", low=1, high=-1), "low <= high")
    raises(lambda: Parameter(init="gaussian", mean=NAN), "`mean` of param", "finite")
    raises(lambda: Parameter(init="gaussian", lr=-1), "`lr`", ">= 0")
    raises(lambda: Parameter(init="gaussian").update(std=-1), "`std` of param")


@pytest.mark.parametrize("field,value", [("lr_scale", "-1"), ("lr_scale", "nan"), ("wd_scale", "inf")])
def test_param_scales_in_a_job_conf(data_dir, field, value):
    text = job_text().replace('param { name: "w"', 'param { name: "w" %s: %s' % (field, value))
    raises(lambda: build_net(text), "`%s of param 'w' (layer 'fc')`" % field, "help:")


# -- 3. deep nets ----------------------------------------------------------------------------

def consumer_first_chain(n, loss=True):
    """loss <- fc <- t0 <- t1 ... <- t(n-1) <- data, listed consumer first."""
    layers = []
    if loss:
        layers.append('layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" }')
        layers.append('layer { name: "fc" type: kInnerProduct srclayers: "t0" innerproduct_conf { num_output: 3 } '
                      '%s }' % (PARAMS % ("", "")))
    for i in range(n):
        src = "t%d" % (i + 1) if i + 1 < n else "data"
        layers.append('layer { name: "t%d" type: kSTanh srclayers: "%s" }' % (i, src))
    layers.append(DATA)
    return "neuralnet { %s }" % " ".join(layers)


@pytest.mark.parametrize("n", [1200, 5000])
def test_a_long_chain_listed_consumer_first_builds(data_dir, n):
    # was: RecursionError in the topological sort
    t = time.perf_counter()
    net = build_net(consumer_first_chain(n, loss=False))
    assert [l.name for l in net.layers] == ["data"] + ["t%d" % i for i in range(n - 1, -1, -1)]
    assert time.perf_counter() - t < 30


def test_a_1200_layer_chain_trains_from_a_job_conf(data_dir):
    job = parse_job_conf('name: "deep" train_steps: 2 disp_freq: 0 train_one_batch { alg: kBP } '
                         'updater { type: kSGD learning_rate { type: kFixed base_lr: 0.1 } } '
                         'cluster { workspace: "ws" } ' + consumer_first_chain(1200))
    res = Driver(verbose=False).train(job)
    assert res.checkpoint and os.path.exists(res.checkpoint)


def test_a_long_cycle_is_reported_shortly():
    n = 3000
    text = " ".join('layer { name: "t%d" type: kSTanh srclayers: "t%d" }' % (i, (i + 1) % n) for i in range(n))
    proto = parse_job_conf("neuralnet { %s }" % text).neuralnet
    msg = raises(lambda: topological_order(layers_in_phase(proto, job_pb2.kTrain)), "the net has a cycle", "more)")
    assert len(msg) < 1000


# -- 4. resource bounds ----------------------------------------------------------------------

BIG = 2147483647
MID = 'layer { name: "mid" type: %s srclayers: "data" %s }'


def net_with(mid, data=DATA):
    return ("neuralnet { %s %s layer { name: \"fc\" type: kInnerProduct srclayers: \"mid\" innerproduct_conf { "
            "num_output: 3 } %s } layer { name: \"loss\" type: kSoftmaxLoss srclayers: \"fc\" srclayers: \"data\" } }"
            % (data, mid, PARAMS % ("f", "f")))


@pytest.mark.parametrize("text,layer,field", [
    (net_with(MID % ("kSTanh", ""), DATA.replace("batchsize: 4", "batchsize: %d" % BIG)), "data",
     "store_conf.batchsize"),
    (net_with(MID % ("kSTanh", ""), DATA.replace("shape: 2 ", "shape: 65536 shape: 65536 shape: 65536 ")), "data",
     "store_conf.shape"),
    (net_with(MID % ("kInnerProduct", "innerproduct_conf { num_output: %d } %s" % (BIG, PARAMS % ("m", "m")))),
     "mid", "innerproduct_conf.num_output"),
    (net_with(MID % ("kCConvolution", "convolution_conf { num_filters: %d kernel: 3 } %s" % (BIG, PARAMS % ("m", "m")))),
     "mid", "convolution_conf.num_filters"),
    (net_with(MID % ("kCConvolution", "convolution_conf { num_filters: 4 kernel: 3 pad: 100000000 } %s"
                     % (PARAMS % ("m", "m")))), "mid", "convolution_conf.pad"),
    (net_with(MID % ("kCPooling", "pooling_conf { kernel: %d pad: %d }" % (BIG, BIG - 1))), "mid",
     "pooling_conf.pad"),
    (net_with('layer { name: "mid" type: kRBMVis srclayers: "data" srclayers: "hid" rbm_conf { hdim: %d } %s } '
              'layer { name: "hid" type: kRBMHid srclayers: "mid" rbm_conf { hdim: %d } '
              'param { name: "wm_" share_from: "wm" } param { name: "bh" init { type: kConstant value: 0 } } }'
              % (BIG, PARAMS % ("m", "m"), BIG)), "mid", "rbm_conf.hdim"),
], ids=["batchsize", "shape", "num_output", "num_filters", "conv-pad", "pool-pad", "rbm-hdim"])
def test_sizes_beyond_memory_are_refused_before_allocating(data_dir, text, layer, field):
    # was: numpy's MemoryError (or "array is too big") without the layer's name
    raises(lambda: build_net(text), "of layer '%s'" % layer, "`%s`" % field, "asks for", "iB", "help:")


# -- 5. pooling strides past the input ---------------------------------------------------------

@pytest.mark.parametrize("method", ["MAX", "AVG"])
@pytest.mark.parametrize("stride", ["stride: 1048576", "stride_y: 1048576 stride_x: 2"])
def test_a_huge_pooling_stride_costs_what_the_input_costs(method, stride):
    # one window per axis whatever the stride (floor rule); was: 30-50 s for three steps
    shape = (16, 8, 32, 32)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    conf = 'name: "pool" type: kCPooling srclayers: "src" pooling_conf { pool: %s kernel: 3 %s }'
    t = time.perf_counter()
    layer = build_layer(conf % (method, stride), [shape], dtype=np.float32)
    for _ in range(3):
        y = layer.forward(job_pb2.kTrain, [Source("src", x)]).copy()
        dx = layer.backward(job_pb2.kTrain, [Source("src", x)], np.ones_like(y))[0].copy()
    assert time.perf_counter() - t < 5
    # the same as the smallest stride leaving one window (30 = 32 - 3 + 1)
    ref = build_layer(conf % (method, stride.replace("1048576", "30")), [shape], dtype=np.float32)
    assert ref.out_shape == layer.out_shape and layer.out_shape[2] == 1
    np.testing.assert_array_equal(y, ref.forward(job_pb2.kTrain, [Source("src", x)]))
    np.testing.assert_array_equal(dx, ref.backward(job_pb2.kTrain, [Source("src", x)], np.ones_like(y))[0])


# -- 6. other hostile values -------------------------------------------------------------------

@pytest.mark.parametrize("text,needles", [
    (net_with(MID % ("kDropout", "dropout_conf { dropout_ratio: nan }")), ["dropout_ratio", "nan"]),
    (net_with(MID % ("kLRN", "lrn_conf { local_size: -3 }")), ["lrn_conf.local_size", "-3"]),
    (net_with(MID % ("kLRN", "lrn_conf { local_size: 1 knorm: 0 }")), ["lrn_conf.knorm", "positive"]),
    (net_with(MID % ("kLRN", "lrn_conf { local_size: 1 knorm: -1 }")), ["lrn_conf.knorm"]),
    (net_with(MID % ("kLRN", "lrn_conf { local_size: 1 alpha: nan }")), ["lrn_conf.alpha", "nan"]),
    (net_with(MID % ("kLRN", "lrn_conf { local_size: 1 beta: inf }")), ["lrn_conf.beta", "inf"]),
    (net_with(MID % ("kSTanh", ""), DATA.replace("batchsize: 4", "batchsize: 4 mean_value: nan")),
     ["store_conf.mean_value", "nan"]),
    (net_with(MID % ("kSTanh", ""), DATA.replace("batchsize: 4", "batchsize: 4 std_value: inf")),
     ["store_conf.std_value", "inf"]),
    (net_with(MID % ("kSTanh", ""), DATA.replace("shape: 2 ", "shape: 0 ")), ["store_conf.shape"]),
    (net_with(MID % ("kCPooling", "pooling_conf { kernel: 0 }")), ["pooling_conf.kernel", "0"]),
    (net_with(MID % ("kCConvolution", "convolution_conf { num_filters: -2 kernel: 3 } %s" % (PARAMS % ("m", "m")))),
     ["convolution_conf.num_filters", "-2"]),
], ids=["dropout-nan", "lrn-negative-size", "lrn-knorm-zero", "lrn-knorm-negative", "lrn-alpha-nan",
        "lrn-beta-inf", "mean-nan", "std-inf", "shape-zero", "pool-kernel-zero", "conv-negative-filters"])
def test_hostile_layer_values(data_dir, text, needles):
    raises(lambda: build_net(text), "Invalid value for", *needles)


# -- every job.conf SINGA v0.3 shipped still builds ------------------------------------------

SHIPPED = sorted(glob.glob("/work/shared/compat/singa-v0/**/*.conf", recursive=True))


def _with_tiny_stores(job, tmp):
    """The conf with each data layer reading a 2-record store of its shape (batch 2, no mean file)."""
    k = 0
    for lp in job.neuralnet.layer:
        if lp.type in (job_pb2.kRecordInput,) and lp.HasField("store_conf"):
            sc = lp.store_conf
            count = int(np.prod(list(sc.shape)))
            path = str(tmp / ("store%d.bin" % k))
            k += 1
            with KVFileWriter(path) as w:
                for i in range(2):
                    w.insert("%08d" % i, encode_record(label=i, data=[0.5] * count, shape=list(sc.shape)))
            sc.path = path
            sc.ClearField("mean_file")
            del sc.batchsize[:]
            sc.batchsize.append(2)
        elif lp.type == job_pb2.kShardData:        # v0.1: a shard of the images its parser expects
            from singa.io.record import encode_shard_record
            rgb = any(q.type == job_pb2.kRGBImage for q in job.neuralnet.layer)
            shape = [3, 32, 32] if rgb else [28, 28]
            folder = tmp / ("shard%d" % k)
            k += 1
            folder.mkdir(exist_ok=True)
            with KVFileWriter(str(folder / "shard.dat")) as w:
                for i in range(2):
                    w.insert("%05d" % i, encode_shard_record(encode_record(label=i, pixel=bytes(int(np.prod(shape))),
                                                                           shape=shape)))
            lp.sharddata_conf.path = str(folder)
            lp.sharddata_conf.batchsize = 2
        elif lp.type == job_pb2.kRGBImage:
            lp.rgbimage_conf.ClearField("meanfile")
    return job


@pytest.mark.skipif(not SHIPPED, reason="the SINGA v0.3 confs are not on this machine")
def test_every_shipped_conf_still_builds(in_tmp):
    built = 0
    for path in SHIPPED:
        try:
            job = read_job_conf(path)
        except Exception:       # rnnlm's user extensions: not parsed before these changes either
            continue
        if job.HasField("updater"):      # char-rnn-sample.conf only samples: no updater
            create_updater(job.updater)
        if any(lp.type not in LAYERS for lp in job.neuralnet.layer):
            continue            # v0.1 and char-rnn layer types this engine does not implement
        job = _with_tiny_stores(job, in_tmp)
        for phase in (job_pb2.kTrain, job_pb2.kTest):
            NeuralNet(job.neuralnet, phase, CPU, RandomStreams(0))
        built += 1
    assert built >= 24, built     # all but the recurrent ones (their own files; rnnlm: extensions)
