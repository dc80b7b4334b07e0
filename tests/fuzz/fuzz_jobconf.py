"""Fuzz singa.proto.read_job_conf, the job.conf (protobuf text) reader.

Seeds: a few of SINGA v0.3's shipped confs (shared/compat/singa-v0) when present, and one
JobProto built in-process and written with singa.proto.job_to_text.
"""
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from singa.errors import SingaError  # noqa: E402
from singa.proto import JobProto, job_pb2, job_to_text, read_job_conf  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "compat", "singa-v0")
_DIR = tempfile.mkdtemp(prefix="singa-fuzz-jobconf-")
_PATH = os.path.join(_DIR, "job.conf")


def one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    read_job_conf(_PATH)


def _built_job():
    job = JobProto(name="fuzz", train_steps=10, disp_freq=5, test_steps=2, test_freq=5)
    job.train_one_batch.alg = job_pb2.kBP
    job.updater.type = job_pb2.kSGD
    job.updater.momentum = 0.9
    job.updater.learning_rate.type = job_pb2.kFixed
    job.updater.learning_rate.base_lr = 0.1
    job.cluster.workspace = "ws"
    data = job.neuralnet.layer.add(name="data", type=job_pb2.kRecordInput)
    data.store_conf.backend, data.store_conf.path = "kvfile", "train.bin"
    data.store_conf.batchsize.append(16)
    data.store_conf.shape.append(8)
    fc = job.neuralnet.layer.add(name="fc", type=job_pb2.kInnerProduct, srclayers=["data"])
    fc.innerproduct_conf.num_output = 3
    w = fc.param.add(name="w")
    w.init.type, w.init.std = job_pb2.kGaussian, 0.1
    job.neuralnet.layer.add(name="loss", type=job_pb2.kSoftmaxLoss, srclayers=["fc", "data"])
    return job


def seeds():
    out = [job_to_text(_built_job()).encode("utf-8"),
           b"# caf\xe9: a Latin-1 comment, as in old confs\n" + job_to_text(_built_job()).encode("utf-8")]
    shipped = sorted(glob.glob(os.path.join(SHIPPED, "*.conf")), key=os.path.getsize)
    for path in shipped:
        with open(path, "rb") as f:
            data = f.read()
        try:
            read_job_conf(path)          # some use extensions (rbm_conf...) this port does not register
        except SingaError:
            continue
        out.append(data)
        if len(out) >= 6:
            break
    return out


if __name__ == "__main__":
    from _runner import main
    main(one_input, seeds)
