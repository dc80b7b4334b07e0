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
    for name in ("job", "common", "singa", "rnnlm"):
        shutil.copy(os.path.join(PROTO_DIR, name + ".proto"), tmp_path)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "job.proto",
                    "common.proto", "singa.proto", "rnnlm.proto"], cwd=tmp_path, check=True, capture_output=True)
    for name in ("job", "common", "singa", "rnnlm"):
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


RNNLM_JOB_CONF = os.path.join(CONF_DIR, "rnnlm-job.conf")      # SINGA's examples/rnnlm/job.conf


def test_rnnlm_proto_is_singas_global_namespace_schema():
    from singa.proto import rnnlm_pb2
    assert rnnlm_pb2.DESCRIPTOR.package == ""            # no `package`, as in SINGA's rnnlm.proto
    assert {m: [(f.name, f.number) for f in d.fields]
            for m, d in rnnlm_pb2.DESCRIPTOR.message_types_by_name.items()} == {
        "EmbeddingProto": [("word_dim", 1), ("vocab_size", 2)],
        "LossProto": [("nclass", 1), ("vocab_size", 2)],
        "DataProto": [("path", 1), ("max_window", 2), ("backend", 3)],
        "WordRecord": [("word", 1), ("word_index", 2), ("class_index", 3), ("class_start", 4), ("class_end", 5)]}
    assert {n: e.number for n, e in rnnlm_pb2.DESCRIPTOR.extensions_by_name.items()} == {
        "embedding_conf": 1001, "loss_conf": 1002, "data_conf": 1003}
    assert rnnlm_pb2.DataProto().backend == "kvfile"
    import sys
    assert "job_pb2" not in sys.modules and "common_pb2" not in sys.modules   # the import aliases are gone


def test_rnnlm_extension_fields_parse_and_round_trip():
    from singa.proto import rnnlm_pb2
    job = parse_job_conf('''name: "rnnlm" neuralnet {
      layer { name: "data" user_type: "kData" [data_conf] { path: "t.bin" max_window: 10 } include: kTrain }
      layer { name: "loss" user_type: "kLoss" srclayers: "data" [loss_conf] { nclass: 100 vocab_size: 3720 } }
    } cluster { workspace: "w" }''')
    data, loss = job.neuralnet.layer
    assert data.Extensions[rnnlm_pb2.data_conf].path == "t.bin"
    assert data.Extensions[rnnlm_pb2.data_conf].max_window == 10
    assert data.Extensions[rnnlm_pb2.data_conf].backend == "kvfile"          # the proto's default
    assert (loss.Extensions[rnnlm_pb2.loss_conf].nclass, loss.Extensions[rnnlm_pb2.loss_conf].vocab_size) == (100, 3720)
    assert not loss.HasExtension(rnnlm_pb2.data_conf)
    assert parse_job_conf(job_to_text(job)) == job and "[data_conf]" in job_to_text(job)
    assert JobProto.FromString(job.SerializeToString()) == job


def test_rnnlm_extension_missing_required_path_and_unknown_extension():
    with pytest.raises(JobConfError, match="path"):      # DataProto.path is `required`
        parse_job_conf('name: "r" neuralnet { layer { name: "d" [data_conf] { max_window: 3 } } }')
    with pytest.raises(JobConfError, match="no_such_conf") as e:
        parse_job_conf('name: "r" neuralnet { layer { name: "d" [no_such_conf] { } } }')
    assert "help:" in str(e.value)


def test_original_rnnlm_job_conf_parses_with_its_extension_values():
    from singa.proto import rnnlm_pb2
    job = read_job_conf(RNNLM_JOB_CONF)
    by = {(lp.name, tuple(lp.include)): lp for lp in job.neuralnet.layer}
    train, val = by[("data", (job_pb2.kTrain,))], by[("data", (job_pb2.kVal,))]
    assert train.Extensions[rnnlm_pb2.data_conf] == rnnlm_pb2.DataProto(
        backend="kvfile", path="examples/rnnlm/train_data.bin", max_window=10)
    assert val.Extensions[rnnlm_pb2.data_conf].path == "examples/rnnlm/valid_data.bin"
    emb, loss = by[("embedding", ())], by[("loss", ())]
    assert (emb.Extensions[rnnlm_pb2.embedding_conf].word_dim, emb.Extensions[rnnlm_pb2.embedding_conf].vocab_size) \
        == (15, 3720)
    assert (loss.Extensions[rnnlm_pb2.loss_conf].nclass, loss.Extensions[rnnlm_pb2.loss_conf].vocab_size) == (100, 3720)
    assert [lp.user_type for lp in job.neuralnet.layer] == ["kData", "kData", "kEmbedding", "kHidden", "kLoss"]
    assert [p.name for p in loss.param] == ["w3", "w4"] and job.train_steps == 81350
    assert parse_job_conf(job_to_text(job)) == job
