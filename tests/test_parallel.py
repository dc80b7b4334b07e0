# covers: singa/backends/parallel.py (the one pool, run, part, usable_cores) and its users'
# shared policy (blas.parallel, the updaters' chunk threads)
import os
import threading

import numpy as np
import pytest

from singa.backends import blas, parallel
from singa.proto import job_pb2
from singa.updaters import rules


def test_run_calls_every_part_once_with_k0_on_the_caller():
    seen = []
    lock = threading.Lock()

    def fn(k, n):
        with lock:
            seen.append((k, n, threading.current_thread() is threading.main_thread()))
    parallel.run(fn, 5)
    assert sorted((k, n) for k, n, _ in seen) == [(k, 5) for k in range(5)]
    assert [main for k, _, main in seen if k == 0] == [True]
    assert not any(main for k, _, main in seen if k > 0)


def test_one_part_runs_here_outside_any_part():
    depths = []
    parallel.run(lambda k, n: depths.append((k, n, parallel.depth())), 1)
    assert depths == [(0, 1, 0)]


def test_an_exception_is_raised_after_every_part_finished():
    done = []

    def fn(k, n):
        if k == 0:
            raise ValueError("part 0 failed")
        threading.Event().wait(0.05)
        done.append(k)
    with pytest.raises(ValueError, match="part 0 failed"):
        parallel.run(fn, 4)
    assert sorted(done) == [1, 2, 3]


def test_nested_runs_go_inline_with_the_same_split():
    # More nested parts than the pool has threads: on the pool this could wait forever.
    inner = []
    lock = threading.Lock()

    def outer(k, n):
        got = []
        parallel.run(lambda j, m: got.append((j, m, threading.get_ident(), parallel.depth())), 12)
        with lock:
            inner.append(got)
    parallel.run(outer, 3)
    assert len(inner) == 3
    for got in inner:
        assert [(j, m) for j, m, _, _ in got] == [(j, 12) for j in range(12)]
        assert len({t for _, _, t, _ in got}) == 1          # all on the outer part's thread
        assert {d for _, _, _, d in got} == {2}


def test_the_pool_grows_when_more_parts_are_asked():
    before = parallel._state["size"]
    n = max(before, parallel.MIN_POOL) + 3
    idents = set()
    barrier = threading.Barrier(n)

    def fn(k, m):
        barrier.wait(timeout=10)      # all n parts at once: needs n - 1 helpers
        idents.add(threading.get_ident())
    parallel.run(fn, n)
    assert len(idents) == n
    assert parallel._state["size"] >= n - 1


def test_a_forked_child_makes_its_own_pool():
    parallel.run(lambda k, n: None, 2)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = []
            parallel.run(lambda k, n: out.append(k), 3)
            os.write(w, b"ok" if sorted(out) == [0, 1, 2] else b"bad")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 10) == b"ok" and status == 0


@pytest.mark.parametrize("size,n", [(0, 1), (1, 3), (10, 3), (33, 7), (1000, 8)])
def test_part_splits_into_contiguous_near_equal_ranges(size, n):
    ranges = [parallel.part(size, k, n) for k in range(n)]
    assert [i for r in ranges for i in range(size)[r]] == list(range(size))
    lens = [r.stop - r.start for r in ranges]
    assert max(lens) - min(lens) <= 1
    assert blas.part is parallel.part


def test_blas_parallel_is_single_threaded_blas_inside():
    counts = []
    parallel_threads = blas.blas_threads()
    blas.parallel(lambda k, n: counts.append(blas.num_threads()), 2)
    assert counts == [1, 1]
    assert blas.blas_threads() == parallel_threads


def test_updater_threads_share_the_pool_and_stay_bit_identical():
    p = job_pb2.UpdaterProto(type=job_pb2.kAdam)
    p.learning_rate.base_lr = 0.01
    p.learning_rate.type = job_pb2.kFixed
    rng = np.random.default_rng(7)
    size = rules.CHUNK * 6 + 123
    w0 = rng.standard_normal(size).astype(np.float32)
    g = rng.standard_normal(size).astype(np.float32)
    out = []
    old = rules.get_num_threads()
    try:
        for n in (1, 3):
            rules.set_num_threads(n)
            u = rules.create_updater(p)
            w = w0.copy()
            st = u.init_state(w)
            for step in range(3):
                u.apply(step, w, g, st)
            out.append(w)
        assert parallel._state["pool"] is not None
    finally:
        rules.set_num_threads(old)
    assert out[0].tobytes() == out[1].tobytes()
