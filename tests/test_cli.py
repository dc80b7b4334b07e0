# covers: singa/__main__.py, singa/utils/helptext.py
"""singa-run / python -m singa: SINGA's launcher on original job.conf files and user scripts."""
import os
import re
import subprocess
import sys

import pytest

from singa.io import checkpoint as ckpt
from tests.conftest import CONF_DIR, FASHION_DIR, ROOT
from tests.test_datasets import needs_fashion

BIN = os.path.dirname(sys.executable)


def run(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def singa_run(*args, cwd):
    exe = os.path.join(BIN, "singa-run")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "singa"]
    return run(cmd + list(args), cwd)


def short_mnist_conf(tmp, steps=40):
    text = open(os.path.join(CONF_DIR, "mnist-job.conf")).read()
    text = text.replace("train_steps: 1000", "train_steps: %d" % steps).replace("test_freq:60", "test_freq:20")
    text = text.replace("test_steps:10", "test_steps:3")
    p = tmp / "job.conf"
    p.write_text(text)
    return p


@needs_fashion
def test_original_mnist_job_conf_runs_on_converted_records(in_tmp):
    os.makedirs("examples/mnist")
    for split, out in (("train", "train_data.bin"), ("t10k", "test_data.bin")):
        r = run([os.path.join(BIN, "singa-create-data"), "mnist",
                 os.path.join(FASHION_DIR, "%s-images-idx3-ubyte.gz" % split),
                 os.path.join(FASHION_DIR, "%s-labels-idx1-ubyte.gz" % split), "examples/mnist/" + out], in_tmp)
        assert r.returncode == 0, r.stderr
    conf = short_mnist_conf(in_tmp)
    r = singa_run("-conf", str(conf), "-singa_conf", "/etc/singa.conf", "-singa_job", "3", "-host", "x", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    losses = [float(x) for x in re.findall(r"Train @ step \d+: loss = ([\d.]+)", r.stdout)]
    tests = [float(x) for x in re.findall(r"Test @ step \d+: loss = [\d.]+, accuracy = ([\d.]+)", r.stdout)]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    assert len(tests) == 3 and tests[-1] > tests[0]
    path = in_tmp / "examples/mnist/checkpoint/step40-worker0"
    names = [n for n, _, _ in ckpt.read_checkpoint(str(path), strip=False)]
    assert names == ["0#w1", "0#b1", "0#w2", "0#b2", "0#w3", "0#b3", "0#w4", "0#b4", "0#w5", "0#b5",
                     "0#w6", "0#b6"]
    # test only, from that checkpoint, and resume
    r = singa_run("-conf", str(conf), "-test", cwd=in_tmp)
    assert r.returncode != 0 and "checkpoint" in r.stderr
    with open(conf, "a") as f:
        f.write('checkpoint_path: "examples/mnist/checkpoint/step40-worker0"\n')
    r = singa_run("-conf", str(conf), "-test", cwd=in_tmp)
    assert r.returncode == 0 and "Test @ step 40" in r.stdout, r.stderr
    text = conf.read_text().replace("train_steps: 40", "train_steps: 45")
    conf.write_text(text)
    r = singa_run("-conf", str(conf), "-resume", cwd=in_tmp)
    assert r.returncode == 0 and "Resuming" in r.stdout and "step 44" in r.stdout, r.stderr


def test_errors_are_one_clear_line_not_a_traceback(in_tmp):
    bad = in_tmp / "bad.conf"
    bad.write_text("name: 'x'\nneuralnet { layer { name: 'a' type: kNoSuchLayer } }\n")
    r = singa_run("-conf", str(bad), cwd=in_tmp)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "bad.conf:2:" in r.stderr and "kNoSuchLayer" in r.stderr
    r = singa_run("-conf", str(in_tmp / "missing.conf"), cwd=in_tmp)
    assert r.returncode == 2 and "no such file" in r.stderr
    r = singa_run("-bogus", cwd=in_tmp)
    assert r.returncode == 2 and "unknown argument" in r.stderr
    r = singa_run(cwd=in_tmp)
    assert r.returncode == 2 and "-conf" in r.stderr


def test_exec_runs_a_user_script_with_singa_argv(in_tmp):
    script = in_tmp / "user_main.py"
    script.write_text("import sys\nfrom singa.model import *\nprint('ARGV', sys.argv[1:])\n"
                      "m = Sequential('x', sys.argv)\nprint('OK', kInnerProduct)\n")
    r = singa_run("-exec", str(script), "-singa_conf", "c", "-singa_job", "7", cwd=in_tmp)
    assert r.returncode == 0, r.stderr
    assert "ARGV ['-singa_conf', 'c', '-singa_job', '7']" in r.stdout and "OK 205" in r.stdout


def test_python_dash_m_singa_help(in_tmp):
    r = run([sys.executable, "-m", "singa", "-help"], in_tmp)
    assert r.returncode == 0 and "-conf job.conf" in r.stdout


def test_plain_drops_rest_double_backticks():
    from singa.utils.helptext import plain
    assert plain("``singa-run`` / ``python -m singa``: x ``a`` b") == "singa-run / python -m singa: x a b"
    assert plain("no markup, `one backtick` and ``` fences") == "no markup, `one backtick` and ``` fences"
    assert plain(None) is None


HELP_COMMANDS = [["-m", "singa", "-help"], ["-m", "singa.io.create_data", "--help"],
                 ["-m", "singa.io.create_data", "mnist", "--help"], ["-m", "singa.io.create_data", "cifar10", "--help"]] + [
    [os.path.join(ROOT, "examples", f), "--help"] for f in (
        "mnist_mlp.py", "mnist_cnn.py", "cifar10_cnn.py", "train_mnist.py", "train_cifar10.py", "ae_codes.py",
        "mnist_rbm1.py", "mnist_ae.py")]


@pytest.mark.parametrize("args", HELP_COMMANDS, ids=lambda a: " ".join(os.path.basename(x) for x in a))
def test_help_is_plain_text(args, in_tmp):
    """Every command's help prints its docstring as terminal text: no reST ``literal`` markup."""
    r = run([sys.executable] + args, in_tmp, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) > 3 and "``" not in r.stdout + r.stderr, r.stdout


def test_cpu_flag_runs_a_gpu_conf_on_the_cpu_without_editing_it(in_tmp):
    from tests.test_driver import NET, write_blobs
    write_blobs(in_tmp / "train.bin", 64, 1)
    write_blobs(in_tmp / "test.bin", 50, 2)
    conf = in_tmp / "gpu-job.conf"
    conf.write_text("gpu: 0\n" + NET % dict(steps=6, disp=3, test_freq=6))     # as char-rnn-job.conf names it
    before = conf.read_bytes()
    r = singa_run("-conf", str(conf), "-cpu", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "-cpu: running on the CPU; %s's `gpu: 0` is ignored" % conf in r.stderr
    assert "Train @ step 3" in r.stdout and os.path.isfile(in_tmp / "ws" / "checkpoint" / "step6-worker0")
    assert conf.read_bytes() == before
    r = singa_run("-conf", str(conf), "-cpu", "-test", "-exec", "x.py", cwd=in_tmp)
    assert r.returncode == 2 and "-cpu applies to a job.conf run" in r.stderr
    try:
        import cupy  # noqa: F401  (with CuPy and a GPU, `gpu: 0` simply runs there)
    except ImportError:
        env_standin = os.environ.get("SINGA_GPU_STANDIN", "")
        if env_standin in ("", "0"):
            r = singa_run("-conf", str(conf), cwd=in_tmp)
            assert r.returncode == 2 and "CuPy is not installed" in r.stderr
            assert "singa-run -conf %s -cpu" % conf in r.stderr                # the error says how


def test_set_overrides_job_fields_for_one_run_without_editing_the_file(in_tmp):
    from tests.test_driver import NET, write_blobs
    write_blobs(in_tmp / "train.bin", 200, 1)
    write_blobs(in_tmp / "test.bin", 100, 2)
    conf = in_tmp / "job.conf"
    conf.write_text(NET % dict(steps=1000, disp=100, test_freq=0))
    before = conf.read_text()
    r = singa_run("-conf", str(conf), "-set", "train_steps=12", "-set", "checkpoint_freq=6",
                  "-set", "cluster.workspace=ws2", "-set", "disp_freq=4", cwd=in_tmp)
    assert r.returncode == 0, r.stderr + r.stdout
    assert conf.read_text() == before
    assert len(re.findall(r"Train @ step \d+", r.stdout)) == 4                 # steps 0, 4, 8 and the last, 11
    assert {"step12-worker0", "step6-worker0"} <= set(os.listdir(in_tmp / "ws2" / "checkpoint"))
    for bad, words in (("nosuch=1", ["`-set nosuch=1`", "field path of JobProto", "no field 'nosuch'"]),
                       ("updater.nosuch=1", ["`UpdaterProto` has no field 'nosuch'"]),
                       ("train_steps=many", ["`-set train_steps=many`"]),
                       ("train_steps", ["`-set`", "FIELD=VALUE"])):
        r = singa_run("-conf", str(conf), "-set", bad, cwd=in_tmp)
        assert r.returncode == 2 and all(w in r.stderr for w in words), r.stderr
    r = singa_run("-set", "train_steps=1", "-exec", "x.py", cwd=in_tmp)
    assert r.returncode == 2 and "-set applies to a job.conf run" in r.stderr


def test_set_replaces_a_repeated_field_then_adds_to_it():
    from singa.__main__ import _set_field
    from singa.proto import parse_job_conf
    job = parse_job_conf('name: "j" checkpoint_path: "a/step6000-worker0" checkpoint_path: "b/step6000-worker0" '
                         'gpu: 0 neuralnet { }')
    replaced = set()
    _set_field(job, "checkpoint_path=a/step8-worker0", replaced)
    assert list(job.checkpoint_path) == ["a/step8-worker0"]
    _set_field(job, "checkpoint_path=b/step8-worker0", replaced)
    assert list(job.checkpoint_path) == ["a/step8-worker0", "b/step8-worker0"]
    assert list(job.gpu) == [0]         # untouched fields stay
    _set_field(job, "gpu=1", replaced)
    assert list(job.gpu) == [1]
