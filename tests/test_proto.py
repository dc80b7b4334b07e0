# covers: singa/proto/__init__.py
"""JobProto and friends: generated modules in sync, SINGA v0.3 wire facts, job.conf IO and errors."""
import glob
import os
import shutil
import subprocess
import sys

import pytest
from google.protobuf import text_format

from singa.proto import (BlobProto, JobConfError, JobProto, common_pb2, job_pb2, job_to_text, parse_job_conf,
                         read_job_conf, singa_pb2)
from tests.conftest import CONF_DIR

PROTO_DIR = os.path.join(os.path.dirname(job_pb2.__file__))
CONFS = sorted(glob.glob(os.path.join(CONF_DIR, "*.conf")))


def test_generated_modules_match_proto_files(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the dev extra) regenerates the modules")
    for name in ("job", "common", "singa"):
        shutil.copy(os.path.join(PROTO_DIR, name + ".proto"), tmp_path)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "job.proto",
                    "common.proto", "singa.proto"], cwd=tmp_path, check=True, capture_output=True)
    for name in ("job", "common", "singa"):
        with open(os.path.join(PROTO_DIR, name + "_pb2.py")) as a, open(tmp_path / (name + "_pb2.py")) as b:
            assert a.read() == b.read(), "%s_pb2.py is stale: regenerate it (see singa/proto/__init__.py)" % name


def test_schema_sizes_match_singa_v03():
    msgs = job_pb2.DESCRIPTOR.message_types_by_name
    assert len(msgs) == 48
    assert sum(len(m.fields) for m in msgs.values()) == 235
    assert len(job_pb2.DESCRIPTOR.enum_types_by_name) == 9
    assert sum(len(m.fields) for m in common_pb2.DESCRIPTOR.message_types_by_name.values()) == 29
    assert len(singa_pb2.SingaProto.DESCRIPTOR.fields) == 2
    assert job_pb2.DESCRIPTOR.package == "singa"


@pytest.mark.parametrize("msg,field,number", [
    (JobProto, "train_steps", 16), (JobProto, "checkpoint_path", 60), (JobProto, "gpu", 18),
    (job_pb2.LayerProto, "store_conf", 100), (job_pb2.LayerProto, "innerproduct_conf", 205),
    (job_pb2.LayerProto, "softmaxloss_conf", 301), (job_pb2.LayerProto, "concate_conf", 502),
    (job_pb2.UpdaterProto, "weight_decay", 32), (job_pb2.ClusterProto, "workspace", 10),
    (common_pb2.BlobProtos, "blob", 5), (common_pb2.RecordProto, "data", 4)])
def test_field_numbers(msg, field, number):
    assert msg.DESCRIPTOR.fields_by_name[field].number == number


def test_defaults_and_enums():
    j = JobProto()
    assert j.id == -1 and j.reset_param_version and j.num_openblas_threads == 1
    assert j.updater.type == job_pb2.kUserUpdater and abs(j.updater.delta - 1e-8) < 1e-15
    assert j.cluster.start_port == 6723 and j.cluster.share_memory and j.cluster.poll_time == 100
    lp = job_pb2.LayerProto()
    assert lp.partition_dim == -1 and lp.type == job_pb2.kUserLayer
    assert lp.pooling_conf.stride == 2 and lp.pooling_conf.pool == job_pb2.PoolingProto.MAX
    assert lp.lrn_conf.local_size == 5 and lp.dropout_conf.dropout_ratio == 0.5
    assert job_pb2.ParamGenProto().value == 1 and job_pb2.ParamGenProto().std == 1
    assert job_pb2.kSoftmaxLoss == 301 and job_pb2.kRecordInput == 103 and job_pb2.kTest == 4
    assert job_pb2.kFixedStep == 6 and job_pb2.kUniformSqrtFanInOut == 6 and job_pb2.STANH == 4


def test_packed_and_unpacked_encodings():
    # BlobProto: shape (1) unpacked varints, data (2) packed floats -- SINGA-V0.md 5.4.
    b = BlobProto(shape=[2, 1], data=[1.0, 2.0])
    assert b.SerializeToString() == b"\x08\x02\x08\x01\x12\x08" + b"\x00\x00\x80\x3f" + b"\x00\x00\x00\x40"
    # StoreProto.batchsize is repeated and not packed in v0.3.
    s = job_pb2.StoreProto(batchsize=[64])
    assert s.SerializeToString() == b"\x40\x40"


@pytest.mark.parametrize("path", CONFS, ids=[os.path.basename(p) for p in CONFS])
def test_reference_confs_parse_and_round_trip(path):
    job = read_job_conf(path)
    assert job.neuralnet.layer and job.cluster.workspace
    again = JobProto.FromString(job.SerializeToString())
    assert again == job and again.SerializeToString() == job.SerializeToString()
    assert parse_job_conf(job_to_text(job)) == job


def test_reference_conf_contents():
    job = read_job_conf(os.path.join(CONF_DIR, "mnist-job.conf"))
    assert job.train_steps == 1000 and job.updater.learning_rate.step_conf.change_freq == 60
    fc = [l for l in job.neuralnet.layer if l.type == job_pb2.kInnerProduct]
    assert [l.innerproduct_conf.num_output for l in fc] == [2500, 2000, 1500, 1000, 500, 10]
    assert list(job.neuralnet.layer[0].store_conf.batchsize) == [64]
    ae = read_job_conf(os.path.join(CONF_DIR, "autoencoder.conf"))
    assert len(ae.checkpoint_path) == 4 and ae.updater.type == job_pb2.kAdaGrad


def test_malformed_conf_reports_line_and_column(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_text('name: "x"\ntrain_steps: 10\nneuralnet {\n  layer { name: "a" typ: kInnerProduct }\n}\n')
    with pytest.raises(JobConfError) as e:
        read_job_conf(str(p))
    assert e.value.line == 4 and e.value.column > 1
    assert str(p) in str(e.value) and "typ" in str(e.value) and "help:" in str(e.value)


def test_bad_enum_and_missing_required(tmp_path):
    with pytest.raises(JobConfError, match=r"<string>:1:.*kFoo"):
        parse_job_conf("train_one_batch { alg: kFoo }")
    with pytest.raises(JobConfError, match="required field.*change_freq"):
        parse_job_conf("updater { learning_rate { type: kStep step_conf { gamma: 0.9 } } }")
    with pytest.raises(JobConfError, match="no such file"):
        read_job_conf(str(tmp_path / "missing.conf"))
