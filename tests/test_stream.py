# covers: singa/io/stream.py, singa/layers/input.py (the streamed path)
"""Record files above the memory budget (SINGA_STORE_MB) stream from disk: the header scan
(fixed and varying layouts, cut and corrupt files), the same batches as the in-memory path for the
same position, rows and stride (wrapping, random_skip, read_part, a resumed position, the mean),
errors raised in the step, and a training run that streams and equals one that does not."""
import os

import numpy
import pytest

from singa import switches
from singa.errors import DataError
from singa.io.kvfile import KVFileWriter
from singa.io.record import encode_record
from singa.io.stream import StreamingStore, memory_budget, scan_offsets


def write(path, n, varying=False, seed=0, shape=(3, 8, 8)):
    rng = numpy.random.default_rng(seed)
    count = int(numpy.prod(shape))
    with KVFileWriter(str(path)) as w:
        for i in range(n):
            px = rng.integers(0, 256, count, dtype=numpy.uint8)
            key = ("%d" % i) if varying else ("%08d" % i)       # keys of several lengths: no fixed layout
            w.insert(key, encode_record(label=int(rng.integers(0, 10)), pixel=px.tobytes(), shape=list(shape)))
    return path


@pytest.mark.parametrize("varying", [False, True])
def test_offsets_of_fixed_and_varying_layouts(tmp_path, varying):
    path = write(tmp_path / "d.bin", 13, varying)
    off = scan_offsets(str(path))
    assert len(off) == 14 and off[0] == 0 and off[-1] == os.path.getsize(path)
    from singa.io.kvfile import KVFileReader
    with KVFileReader(str(path)) as r:
        sizes = [16 + len(k) + len(v) for k, v in r]
    assert list(numpy.diff(off)) == sizes


def test_cut_and_corrupt_files_are_named(tmp_path):
    path = write(tmp_path / "d.bin", 5, varying=True)
    data = path.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-7])
    with pytest.raises(DataError, match=r"cut.bin is truncated or corrupt: value length \d+ exceeds"):
        scan_offsets(str(tmp_path / "cut.bin"))
    (tmp_path / "tiny.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match="holds no complete record"):
        scan_offsets(str(tmp_path / "tiny.bin"))


def layer(path, batch=4, skip=0, mean=None, seed=0):
    import numpy.random as npr
    extra = "random_skip: %d" % skip if skip else ""
    if mean:
        extra += ' mean_file: "%s"' % mean
    conf = ('name: "data" type: kRecordInput store_conf { backend: "kvfile" path: "%s" batchsize: %d '
            'shape: 3 shape: 8 shape: 8 %s }' % (path, batch, extra))
    from singa.layers.input import clear_store_cache
    clear_store_cache()
    from singa.layers.base import create_layer
    from singa.backends import Backend
    from singa.testing.gradcheck import as_layer_conf
    lay = create_layer(as_layer_conf(conf), Backend(None), numpy.float32)
    lay.rng = npr.default_rng(seed)
    lay.setup([])
    return lay


def batches(lay, n):
    out = []
    for _ in range(n):
        x, y = lay.next_batch()
        out.append((numpy.array(x), numpy.array(y)))
    return out


@pytest.mark.parametrize("varying", [False, True])
def test_streamed_batches_equal_the_in_memory_ones(tmp_path, varying):
    path = write(tmp_path / "d.bin", 11, varying)
    mean = tmp_path / "mean.bin"
    with KVFileWriter(str(mean)) as w:
        w.insert("mean", encode_record(data=numpy.full(192, 100.0, numpy.float32)))
    for kw in (dict(), dict(skip=7, seed=3), dict(mean=str(mean))):
        memory = layer(path, **kw)
        assert not memory._stream
        want = batches(memory, 9)               # 36 records of 11: three wraps
        streamed = _streamed(path, **kw)
        assert streamed._stream and streamed.skipped == memory.skipped
        got = batches(streamed, 9)
        for (a, la), (b, lb) in zip(want, got):
            numpy.testing.assert_array_equal(a, b)
            numpy.testing.assert_array_equal(la, lb)
        # a worker's part (rows 1..3 of every other batch), and a position set from outside (resume)
        for lay in (memory, streamed):
            lay.read_part(1, 3, 8)
            lay.pos = 5
        for (a, la), (b, lb) in zip(batches(memory, 6), batches(streamed, 6)):
            numpy.testing.assert_array_equal(a, b)
            numpy.testing.assert_array_equal(la, lb)
        assert memory.pos == streamed.pos
        streamed.store.close()


def _streamed(path, **kw):
    import singa.io.stream as st
    saved = st.memory_budget
    st.memory_budget = lambda: 0            # every file is over the budget
    try:
        return layer(path, **kw)
    finally:
        st.memory_budget = saved


def test_the_budget_switch(monkeypatch):
    monkeypatch.setenv("SINGA_STORE_MB", "64")
    assert memory_budget() == 64 << 20
    monkeypatch.delenv("SINGA_STORE_MB")
    assert 0 < memory_budget() <= 4 << 30
    monkeypatch.setenv("SINGA_STORE_MB", "lots")
    from singa.errors import ConfigError
    with pytest.raises(ConfigError, match="SINGA_STORE_MB"):
        memory_budget()


def test_a_reading_error_reaches_the_step(tmp_path):
    path = write(tmp_path / "d.bin", 6)
    store = StreamingStore(str(path), 192)
    os.truncate(path, os.path.getsize(path) - 100)        # the file changes under the reader
    store.start(0, 0, 4, 4)
    with pytest.raises(DataError, match="changed while it was read"):
        for _ in range(5):
            store.next()
    store.close()


def test_training_streamed_equals_in_memory(tmp_path, monkeypatch):
    """The seed-like CNN conf trains to the same params whether its store streams or not."""
    from singa.driver import Driver
    from singa.io.checkpoint import read_checkpoint
    from singa.proto import parse_job_conf
    path = write(tmp_path / "d.bin", 50, shape=(3, 32, 32))
    size_mb = os.path.getsize(path) / (1 << 20)
    assert size_mb > 0.1
    text = open(os.path.join(os.path.dirname(__file__), "..", "examples", "singa-v0", "cifar10-job.conf")).read()
    text = text.replace('path: "examples/cifar10/train_data.bin"', 'path: "%s"' % path)
    text = text.replace('path: "examples/cifar10/test_data.bin"', 'path: "%s"' % path)
    text = text.replace('mean_file: "examples/cifar10/image_mean.bin"', "").replace("batchsize: 100", "batchsize: 8")
    results = {}
    for mode in ("memory", "stream"):
        if mode == "stream":          # the file is far below any budget: make it 0
            import singa.io.stream as st
            monkeypatch.setattr(st, "memory_budget", lambda: 0)
        job = parse_job_conf(text)
        job.train_steps, job.test_steps, job.disp_freq = 6, 0, 1
        job.cluster.workspace = str(tmp_path / mode)
        from singa.layers.input import clear_store_cache
        clear_store_cache()
        with switches.using(SINGA_REPLICAS="1"):
            Driver(verbose=False, comm=None).train(job)
        results[mode] = {n: v for n, v, _ in read_checkpoint(str(tmp_path / mode / "checkpoint/step6-worker0"))}
    for name, v in results["memory"].items():
        numpy.testing.assert_array_equal(v, results["stream"][name], err_msg=name)


def test_bench_stream_runs(tmp_path):
    """benchmarks/bench_stream.py on small files (the 1 GiB / 4 GiB run: README)."""
    import subprocess
    import sys
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    r = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "bench_stream.py"), "--sizes", "0.003",
                        "0.006", "--repeats", "1", "--steps", "1", "2", "--stream-mb", "1", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| 0.003 GiB | in memory |" in r.stdout and "| 0.006 GiB | streamed |" in r.stdout
