# covers: singa/io/workspace.py, singa/io/atomic.py, singa/io/checkpoint.py
"""Workspace lock, checkpoint/state CRC, stale temporaries, shape and header checks (issue 14)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy
import pytest

from singa.errors import ConfigError, DataError
from singa.io import checkpoint as ckpt
from singa.io.workspace import WorkspaceLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _holder(ws):
    code = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from singa.io.workspace import WorkspaceLock
        WorkspaceLock(%r).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """ % (ROOT, str(ws)))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_run_refused_then_retaken_after_sigkill(tmp_path):
    p = _holder(tmp_path)
    try:
        with pytest.raises(ConfigError) as e:
            WorkspaceLock(tmp_path).acquire()
        msg = str(e.value)
        assert "pid %d" % p.pid in msg and "help:" in msg
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    # the stale file stays, but the kernel dropped the flock: re-taken at once
    assert os.path.exists(os.path.join(tmp_path, ".singa-lock"))
    lock = WorkspaceLock(tmp_path).acquire()
    lock.release()
    WorkspaceLock(tmp_path).acquire().release()


def _params(seed):
    r = numpy.random.RandomState(seed)
    return [("w", r.rand(4, 3).astype("f4"), 2), ("b", r.rand(3).astype("f4"), 2)]


def test_state_records_crc_of_the_new_checkpoint_and_bitflip_names_previous(tmp_path):
    p1, p2 = ckpt.checkpoint_file(tmp_path, 1), ckpt.checkpoint_file(tmp_path, 2)
    ckpt.write_checkpoint_and_state(p1, _params(0), {}, {"step": 1})
    ckpt.write_checkpoint_and_state(p2, _params(1), {}, {"step": 2})
    ckpt.verify_checkpoint(p2)          # fresh run: the CRC is of the bytes published
    ckpt.read_state(p2)
    data = bytearray(open(p2, "rb").read())
    data[-1] ^= 1
    open(p2, "wb").write(bytes(data))
    with pytest.raises(DataError) as e:
        ckpt.verify_checkpoint(p2)
    assert "corrupt" in str(e.value) and p1 in str(e.value) and "-resume" in str(e.value)
    ckpt.verify_checkpoint(p1)


def test_reused_workspace_does_not_falsely_fail(tmp_path):
    p = ckpt.checkpoint_file(tmp_path, 5)
    ckpt.write_checkpoint_and_state(p, _params(0), {}, {"step": 5})
    ckpt.write_checkpoint_and_state(p, _params(7), {}, {"step": 5})   # second run, other seed
    ckpt.verify_checkpoint(p)
    arrays, meta = ckpt.read_state(p)
    assert meta["step"] == 5


def test_stale_temporaries_removed_only_by_pattern(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    stale = ["step3-worker0.ab_c1234.tmp", "step3-worker0.state.npz.x9y8z7.tmp"]
    keep = ["step3-worker0", "notes.tmp", "other.abc.tmp"]
    for n in stale + keep:
        (folder / n).write_bytes(b"x")
    assert sorted(ckpt.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(os.listdir(folder)) == sorted(keep)


def test_transposed_param_is_a_shape_conflict():
    assert ckpt.shapes_conflict((784, 100), (100, 784))
    assert not ckpt.shapes_conflict((100, 1), (100,))
    assert not ckpt.shapes_conflict((8, 27), (8, 3, 3, 3))
    assert not ckpt.shapes_conflict((2700,), (100, 27))


@pytest.mark.parametrize("meta", [b"[1, 2]", b'{"step": "x"}', b'{"data_positions": [1]}'])
def test_state_with_wrong_types_is_data_error(tmp_path, meta):
    p = ckpt.checkpoint_file(tmp_path, 1)
    ckpt.write_checkpoint_and_state(p, _params(0), {}, {"step": 1})
    numpy.savez(open(ckpt.state_file(p), "wb"), __meta__=numpy.frombuffer(meta, numpy.uint8))
    with pytest.raises(DataError) as e:
        ckpt.read_state(p)
    assert ckpt.state_file(p) in str(e.value)


def test_state_meta_of_wrong_dtype_is_data_error(tmp_path):
    p = ckpt.checkpoint_file(tmp_path, 1)
    ckpt.write_checkpoint_and_state(p, _params(0), {}, {"step": 1})
    numpy.savez(open(ckpt.state_file(p), "wb"), __meta__=numpy.zeros((2, 2), "f8"))
    with pytest.raises(DataError):
        ckpt.read_state(p)


def test_header_with_too_many_dims_or_wrapping_product(tmp_path):
    from singa.io.record import varint
    many = b"".join(b"\x08" + varint(1) for _ in range(70))
    blob = b"\x2a" + varint(len(many)) + many
    with pytest.raises(DataError):
        ckpt.decode_checkpoint(b"\x22\x01w" + blob)
    wrap = b"".join(b"\x08" + varint(65536) for _ in range(4))   # 2**64 wraps int64 to 0
    blob = b"\x2a" + varint(len(wrap)) + wrap
    with pytest.raises(DataError):
        ckpt.decode_checkpoint(b"\x22\x01w" + blob)


def test_file_size_limit_raises_oserror_and_keeps_previous(tmp_path):
    p = ckpt.checkpoint_file(tmp_path, 1)
    ckpt.write_checkpoint(p, _params(0))
    before = open(p, "rb").read()
    code = textwrap.dedent("""
        import sys, numpy
        sys.path.insert(0, %r)
        from singa.io import checkpoint as ckpt
        try:
            ckpt.write_checkpoint(%r, [("w", numpy.zeros(100000, "f4"), 1)])
        except OSError as e:
            print("OSError", e.errno)
    """ % (ROOT, p))
    import resource
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)))
    assert "OSError" in out.stdout, out.stderr
    assert open(p, "rb").read() == before


# -- end to end through the driver (the tiny net of test_driver) ------------------------------

from test_driver import make_job, write_blobs  # noqa: E402
from singa.driver import Driver  # noqa: E402


@pytest.fixture
def job_dir(in_tmp):
    write_blobs(in_tmp / "train.bin", 400, 1)
    write_blobs(in_tmp / "test.bin", 100, 2)
    return in_tmp


def test_training_refuses_a_locked_workspace_and_releases_its_own(job_dir):
    os.makedirs(job_dir / "ws", exist_ok=True)
    p = _holder(job_dir / "ws")
    try:
        with pytest.raises(ConfigError, match="in use by another training run"):
            Driver(verbose=False).train(make_job(steps=10, test_freq=0))
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    Driver(verbose=False).train(make_job(steps=10, test_freq=0))
    Driver(verbose=False).train(make_job(steps=10, test_freq=0))   # released after the first


def test_training_removes_stale_temporaries(job_dir):
    folder = job_dir / "ws" / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "step10-worker0.k2j3h4g5.tmp").write_bytes(b"half")
    Driver(verbose=False).train(make_job(steps=10, test_freq=0))
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]


def test_resume_from_bitflipped_checkpoint_names_previous_good_one(job_dir):
    Driver(verbose=False).train(make_job(steps=20, test_freq=0, extra="checkpoint_freq: 10"))
    latest = str(job_dir / "ws" / "checkpoint" / "step20-worker0")
    data = bytearray(open(latest, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(latest, "wb").write(bytes(data))
    with pytest.raises(DataError) as e:
        Driver(verbose=False).train(make_job(steps=30, test_freq=0), resume=True)
    good = os.path.join("ws", "checkpoint", "step10-worker0")
    assert "corrupt" in str(e.value) and good in str(e.value)
    Driver(verbose=False).train(make_job(steps=30, test_freq=0), resume=good)


def test_reused_workspace_resume_does_not_falsely_fail(job_dir):
    Driver(seed=1, verbose=False).train(make_job(steps=20, test_freq=0))
    Driver(seed=2, verbose=False).train(make_job(steps=20, test_freq=0))
    Driver(verbose=False).train(make_job(steps=30, test_freq=0), resume=True)


def test_transposed_checkpoint_param_is_refused(job_dir):
    Driver(verbose=False).train(make_job(steps=10, test_freq=0))
    path = str(job_dir / "ws" / "checkpoint" / "step10-worker0")
    params = [(n, v.T if n == "w1" else v, ver) for n, v, ver in ckpt.read_checkpoint(path)]
    os.remove(ckpt.state_file(path))    # a SINGA-written checkpoint: no state file, no CRC to catch it
    ckpt.write_checkpoint(path, params)
    job = make_job(steps=10, test_freq=0, extra='checkpoint_path: "%s"' % path)
    with pytest.raises(DataError, match=r"w1.*\(8, 16\).*\(16, 8\)"):
        Driver(verbose=False).test(job)


def test_workspace_that_is_a_file_or_too_long(job_dir):
    (job_dir / "wsfile").write_text("x")
    for ws in ["wsfile", "a" * 300]:
        job = make_job(steps=10, test_freq=0)
        job.cluster.workspace = ws
        with pytest.raises(DataError) as e:
            Driver(verbose=False).train(job)
        assert ws in str(e.value) and "help:" in str(e.value)


def _train_in_subprocess(cwd, steps, fsize=None, resume=False):
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r); sys.path.insert(0, %r)
        from test_driver import make_job
        from singa.driver import Driver
        Driver(verbose=False).train(make_job(steps=%d, test_freq=0, extra="checkpoint_freq: 10"), resume=%r)
    """ % (ROOT, os.path.join(ROOT, "tests"), steps, resume))
    import resource
    limit = None if fsize is None else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize)))
    return subprocess.run([sys.executable, "-c", code], cwd=str(cwd), capture_output=True, text=True,
                          timeout=120, preexec_fn=limit)


def test_file_size_limit_during_training_is_a_data_error_and_keeps_previous(job_dir):
    ok = _train_in_subprocess(job_dir, 10)
    assert ok.returncode == 0, ok.stderr
    prev = job_dir / "ws" / "checkpoint" / "step10-worker0"
    before = prev.read_bytes()
    out = _train_in_subprocess(job_dir, 20, fsize=600, resume=True)
    assert out.returncode != 0
    assert "DataError" in out.stderr and "cannot write checkpoint" in out.stderr, out.stderr[-2000:]
    assert "step20-worker0" in out.stderr and "help:" in out.stderr
    assert prev.read_bytes() == before
    assert not [n for n in os.listdir(prev.parent) if n.endswith(".tmp")]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_write_keeps_the_previous_checkpoint(tmp_path):
    # /dev/full cannot hold a temp file beside it, so a full disk is a small tmpfs when root
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        p = ckpt.checkpoint_file(mnt, 1)
        ckpt.write_checkpoint(p, _params(0))
        before = open(p, "rb").read()
        with pytest.raises(OSError) as e:
            ckpt.write_checkpoint(p, [("w", numpy.zeros(100000, "f4"), 1)])
        assert e.value.errno == 28
        assert open(p, "rb").read() == before
        assert not [n for n in os.listdir(os.path.dirname(p)) if n.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(mnt)])


def test_test_only_run_refuses_a_corrupt_checkpoint_without_taking_the_lock(job_dir):
    Driver(verbose=False).train(make_job(steps=10, test_freq=0))
    path = str(job_dir / "ws" / "checkpoint" / "step10-worker0")
    data = bytearray(open(path, "rb").read())
    data[-2] ^= 0x01
    open(path, "wb").write(bytes(data))
    p = _holder(job_dir / "ws")     # a training run holds the workspace: reading needs no lock
    try:
        with pytest.raises(DataError, match="corrupt"):
            Driver(verbose=False).test(make_job(steps=10, test_freq=0, extra='checkpoint_path: "%s"' % path))
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_fuzz_finding_empty_blob_with_huge_dims():
    # atheris, fuzz_checkpoint: dims 3, 0, 24, 12, 127, ... hold 0 values but numpy's reshape overflows
    data = bytes.fromhex("18fcd3e7cfdc883122042d2362312a1e08030a1100180c7f0000000000777d0b3f48e9d83e5159253f2a3c4b643f")
    with pytest.raises(DataError):
        ckpt.decode_checkpoint(data)
