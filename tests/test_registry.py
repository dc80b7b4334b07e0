# covers: singa/registry.py, singa/proto/__init__.py (import_pb2, load_proto), singa-run -module
"""SINGA's Driver::Register* from Python (SINGA-V0-REST.md 9): a user updater, learning-rate
generator, param generator and worker, each selected by its proto's user field (present wins over
the enum) or by a registered enum value, trained through the Driver; refusals of taken and unknown
names; singa-run -module with a .py file, a module name, a protoc-made *_pb2.py and a .proto file;
examples/user_layer.conf (a user layer and its proto extension) trained through singa-run."""
import os
import re
import subprocess
import sys

import numpy
import pytest

from singa import registry
from singa.driver import Driver
from singa.errors import ConfigError
from singa.proto import job_pb2, parse_job_conf
from singa.updaters import Updater
from singa.updaters.lr import LRGenerator
from singa.worker import BPWorker
from tests.conftest import ROOT
from tests.test_cli import BIN, singa_run

JOB = """name: "ext" train_steps: %(steps)d disp_freq: 1
train_one_batch { %(alg)s }
updater { %(updater)s learning_rate { %(lr)s } }
neuralnet {
  layer { name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "%(path)s" batchsize: 8 shape: 6 } }
  layer { name: "fc" type: kInnerProduct srclayers: "data" innerproduct_conf { num_output: 3 }
          param { name: "w" init { %(init)s } } param { name: "b" init { type: kConstant value: 0 } } }
  layer { name: "loss" type: kSoftmaxLoss srclayers: "fc" srclayers: "data" }
}
cluster { workspace: "%(ws)s" }"""


@pytest.fixture
def records(tmp_path):
    from singa.io.kvfile import KVFileWriter
    from singa.io.record import encode_record
    rng = numpy.random.default_rng(0)
    path = tmp_path / "d.bin"
    with KVFileWriter(str(path)) as w:
        for i in range(32):
            c = int(rng.integers(0, 3))
            w.insert("%05d" % i, encode_record(label=c, data=(rng.normal(0, 1, 6) + 2 * numpy.eye(6)[c]).tolist()))
    return path


@pytest.fixture
def clean_registries():
    saved = [(r, dict(r.by_enum), dict(r.by_user)) for r in
             (registry.updaters, registry.lr_generators, registry.param_generators, registry.workers)]
    yield
    for r, e, u in saved:
        r.by_enum, r.by_user = e, u


def job(records, tmp_path, steps=5, alg="alg: kBP", updater="type: kSGD", lr="type: kFixed base_lr: 0.1",
        init="type: kGaussian std: 0.1"):
    return parse_job_conf(JOB % dict(steps=steps, alg=alg, updater=updater, lr=lr, init=init, path=records,
                                     ws=tmp_path / "ws"))


def test_user_updater_lr_generator_and_param_generator_train(records, tmp_path, clean_registries):
    calls = {"apply": 0, "lr": [], "init": []}

    @registry.register_updater("kSignSGD")
    class SignSGD(Updater):
        """w -= lr * sign(g): a rule SINGA did not have."""
        def apply(self, step, data, grad, state, lr_scale=1.0, wd_scale=1.0, grad_scale=1.0):
            calls["apply"] += 1
            data -= self._rate(step, lr_scale) * numpy.sign(grad)

    @registry.register_lr_generator("kHalving")
    class Halving(LRGenerator):
        def __call__(self, step):
            calls["lr"].append(step)
            return self.base_lr * 0.5 ** step

    @registry.register_param_generator("kEye")
    def eye(init, shape, rng):
        calls["init"].append(tuple(shape))
        return numpy.eye(*shape) * init.value

    res = Driver(verbose=False, comm=None).train(job(
        records, tmp_path, updater='type: kSGD user_type: "kSignSGD"',     # the user field wins over type
        lr='user_type: "kHalving" base_lr: 0.2', init='user_type: "kEye" value: 0.5'))
    assert calls["init"] == [(3, 6)] and calls["apply"] == 5 * 2 and sorted(set(calls["lr"])) == [0, 1, 2, 3, 4]
    from singa.io.checkpoint import read_checkpoint
    w = {n: v for n, v, _ in read_checkpoint(str(tmp_path / "ws/checkpoint/step5-worker0"))}["w"]
    start = numpy.eye(3, 6) * 0.5
    moved = numpy.abs(w - start)
    # every step moves each weight by exactly lr(step) (sign updates): 0.2 * (1 + 1/2 + ... + 1/16) in all at most
    assert moved.max() <= 0.2 * (2 - 1 / 16) + 1e-6 and moved.max() > 0.1
    assert res[4]["loss"] > 0


def test_user_worker_by_user_alg_and_by_enum(records, tmp_path, clean_registries):
    steps = []

    @registry.register_worker("kCounting", job_pb2.kUserAlg)
    class Counting(BPWorker):
        def train_one_batch(self, step):
            steps.append(step)
            super().train_one_batch(step)

    Driver(verbose=False, comm=None).train(job(records, tmp_path, alg='user_alg: "kCounting"'))
    assert steps == [0, 1, 2, 3, 4]
    Driver(verbose=False, comm=None).train(job(records, tmp_path, alg="alg: kUserAlg", steps=2))
    assert steps[5:] == [0, 1]


def test_unknown_and_taken_names(records, tmp_path, clean_registries):
    with pytest.raises(ConfigError) as e:
        Driver(verbose=False, comm=None).train(job(records, tmp_path, updater='user_type: "kNope"'))
    assert "Expected a user updater type registered from Python (registered: none so far). Received: 'kNope'" \
        in str(e.value) and "-module" in str(e.value)
    with pytest.raises(ConfigError, match="user_alg"):
        Driver(verbose=False, comm=None).train(job(records, tmp_path, alg='user_alg: "kNope"'))

    @registry.register_updater("kMine")
    class A(Updater):
        pass

    registry.register_updater("kMine")(A)           # the same class again: fine (a re-run cell)
    with pytest.raises(ConfigError, match="already has"):
        @registry.register_updater("kMine")
        class B(Updater):
            pass
    with pytest.raises(ConfigError, match="an enum value"):
        registry.register_updater(True)
    with pytest.raises(ConfigError, match="returned shape"):
        registry.register_param_generator("kBad")(lambda init, shape, rng: numpy.zeros(3))
        Driver(verbose=False, comm=None).train(job(records, tmp_path, init='user_type: "kBad"'))


EXT = '''from singa import register_updater
from singa.updaters import Updater

@register_updater("kHalfSGD")
class HalfSGD(Updater):
    def apply(self, step, data, grad, state, lr_scale=1.0, wd_scale=1.0, grad_scale=1.0):
        data -= 0.5 * self._rate(step, lr_scale) * grad
'''


@pytest.mark.parametrize("how", ["file", "name"])
def test_singa_run_module_imports_registrations_first(how, records, in_tmp):
    (in_tmp / "myext.py").write_text(EXT)
    (in_tmp / "job.conf").write_text(JOB % dict(steps=3, alg="alg: kBP", updater='user_type: "kHalfSGD"',
                                                lr="type: kFixed base_lr: 0.1", init="type: kGaussian std: 0.1",
                                                path=records, ws="ws"))
    r = singa_run("-conf", "job.conf", cwd=in_tmp)
    assert r.returncode != 0 and "kHalfSGD" in r.stderr and "-module" in r.stderr
    r = singa_run("-module", "myext.py" if how == "file" else "myext", "-conf", "job.conf", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert re.search(r"Train @ step 2: loss", r.stdout)
    r = singa_run("-module", "nosuchmodule", "-conf", "job.conf", cwd=in_tmp)
    assert r.returncode != 0 and "-module nosuchmodule: the module cannot be imported" in r.stderr


PROTO = '''syntax = "proto2";
import "job.proto";
message ScaleProto { optional float factor = 1 [default = 1]; }
extend singa.LayerProto { optional ScaleProto scale_conf = 1020; }
'''

SCALE = '''from singa import layers
from singa.proto import load_proto
import os
scale_pb2 = load_proto(os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale.proto"))

@layers.register("kScale")
class Scale(layers.Layer):
    def setup(self, src_shapes):
        self.factor = self.conf.Extensions[scale_pb2.scale_conf].factor
        self.out_shape = tuple(src_shapes[0])
        return self.out_shape
    def forward(self, flag, srcs):
        self.data = srcs[0].data * self.factor
        return self.data
    def backward(self, flag, srcs, grad):
        return [None if srcs[0].is_data else grad * self.factor]
'''


def test_a_user_proto_extension_compiles_and_parses(records, in_tmp):
    """A user .proto importing job.proto, compiled at the first import (grpc_tools, cached), its
    extension read from a job.conf; then the *_pb2.py protoc made, passed to -module directly."""
    pytest.importorskip("grpc_tools")
    (in_tmp / "scale.proto").write_text(PROTO)
    (in_tmp / "scale.py").write_text(SCALE)
    text = JOB % dict(steps=2, alg="alg: kBP", updater="type: kSGD", lr="type: kFixed base_lr: 0.1",
                      init="type: kGaussian std: 0.1", path=records, ws="ws")
    text = text.replace('layer { name: "loss" type: kSoftmaxLoss srclayers: "fc"',
                        'layer { name: "s" user_type: "kScale" srclayers: "fc" [scale_conf] { factor: 3 } }\n'
                        '  layer { name: "loss" type: kSoftmaxLoss srclayers: "s"')
    (in_tmp / "job.conf").write_text(text)
    r = singa_run("-module", "scale.py", "-conf", "job.conf", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    cached = [os.path.join(d, f) for d, _, fs in os.walk(in_tmp / "cache" / "protos") for f in fs
              if f == "scale_pb2.py"]
    assert len(cached) == 1
    # the generated module on its own: -module loads it against singa's job_pb2
    code = ("import sys; from singa.registry import import_modules; import_modules([%r]); "
            "from singa.proto import parse_job_conf, job_pb2; import scale_pb2; "
            "l = parse_job_conf('name: \"x\" neuralnet { layer { name: \"a\" [scale_conf] { factor: 2 } } }')"
            ".neuralnet.layer[0]; print(l.Extensions[scale_pb2.scale_conf].factor)" % cached[0])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(in_tmp), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "2.0", out.stderr
    (in_tmp / "bad.proto").write_text('syntax = "proto2"; import "job.proto"; message X { optional Nope y = 1; }')
    out = subprocess.run([sys.executable, "-c", "from singa.proto import load_proto; load_proto('bad.proto')"],
                         capture_output=True, text=True, cwd=str(in_tmp), timeout=120)
    assert out.returncode != 0 and "protoc could not compile bad.proto" in out.stderr


def test_user_layer_conf_example_trains_through_singa_run(in_tmp):
    """examples/user_layer.conf as its header says: records, then singa-run -module; the prelu_pb2.py
    shipped beside prelu.proto is what protoc makes of it."""
    from tests.test_create_data import mnist_files
    img, lab, _, _ = mnist_files(in_tmp, n=40)
    for name in ("train_data.bin", "test_data.bin"):
        r = subprocess.run([os.path.join(BIN, "singa-create-data"), "mnist", str(img), str(lab),
                            "examples/mnist/" + name], cwd=str(in_tmp), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    r = singa_run("-module", os.path.join(ROOT, "examples", "user_layer.py"), "-conf",
                  os.path.join(ROOT, "examples", "user_layer.conf"), "-set", "train_steps=20", "-set", "disp_freq=5",
                  "-set", "test_freq=20", "-set", "test_steps=1", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    losses = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    from singa.io.checkpoint import read_checkpoint
    got = {n: v for n, v, _ in read_checkpoint(str(in_tmp / "examples/prelu-mlp/checkpoint/step20-worker0"))}
    assert got["act1_slope"].shape == (256,) and not numpy.allclose(got["act1_slope"], 0.25)
    grpc = pytest.importorskip("grpc_tools")  # noqa: F841
    out = in_tmp / "gen"
    out.mkdir()
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "examples"), "-I",
                        os.path.join(ROOT, "singa", "proto"), "--python_out=%s" % out,
                        os.path.join(ROOT, "examples", "prelu.proto")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "prelu_pb2.py").read_text() == open(os.path.join(ROOT, "examples", "prelu_pb2.py")).read()
