# covers: singa/backends/blas.py
"""singa.backends.blas: direct GEMM calls against numpy in float32/float64 (transposed, sliced,
odd and empty shapes), the plain-numpy fallbacks, and the thread-splitting helper."""
import threading

import numpy as np
import pytest

from singa.backends import blas
from singa.errors import ConfigError

TOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(params=[True, False], ids=["blas", "fallback"])
def mode(request):
    """Every gemm test runs on the direct BLAS path and on the numpy fallback."""
    old = blas._state["enabled"]
    blas.set_enabled(request.param)
    yield request.param
    blas.set_enabled(old)


def reference(a, b, c, alpha, beta):
    ref = alpha * (a.astype(np.float64) @ b.astype(np.float64))
    if beta:
        ref += beta * c.astype(np.float64)
    return ref


def check(a, b, c, alpha=1.0, beta=0.0):
    ref = reference(a, b, c, alpha, beta)
    out = blas.gemm(a, b, c, alpha, beta)
    assert out is c
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(c, ref, rtol=0, atol=TOL[c.dtype.type] * scale * max(1, a.shape[1]) ** 0.5)


def test_the_bundled_library_is_found():
    lib = blas.library()
    assert lib.error is None
    assert set(lib.gemm) == {np.dtype(np.float32), np.dtype(np.float64)}, lib.path
    assert blas.available()
    assert blas.blas_threads() >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.3, 1.0), (0.7, 0.9), (0.0, 0.5)])
def test_gemm_matches_numpy(mode, dtype, ta, tb, alpha, beta):
    rng = np.random.default_rng(0)
    m, k, n = 7, 13, 5
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    a, b = (a.T if ta else a), (b.T if tb else b)
    c = rng.standard_normal((m, n)).astype(dtype)
    check(a, b, c, alpha, beta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_blocks_and_fortran_output(mode, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 11)).astype(dtype)
    w = rng.standard_normal((9, 11)).astype(dtype)
    y = rng.standard_normal((6, 9)).astype(dtype)
    y0 = y.copy()
    # a block of output columns from a block of weight rows, as InnerProductLayer splits them
    check(a, w[2:7].T, y[:, 2:7], 0.5, 1.0)
    np.testing.assert_array_equal(y[:, :2], y0[:, :2])      # outside the block: untouched
    np.testing.assert_array_equal(y[:, 7:], y0[:, 7:])
    f = np.asfortranarray(rng.standard_normal((6, 9)).astype(dtype))
    check(a, w.T, f, 1.0, 0.5)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 3), (4, 1, 6), (5, 3, 1), (0, 3, 2), (3, 0, 2), (3, 4, 0)])
def test_odd_and_empty_shapes(mode, shape):
    m, k, n = shape
    rng = np.random.default_rng(2)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    check(a, b, c, 2.0, 0.5)
    c[...] = np.nan                      # beta 0: old values are ignored, even NaN
    check(a, b, c, 1.0, 0.0)
    assert not np.isnan(c).any()


def test_layouts_blas_cannot_take_fall_back_to_numpy():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((8, 12)).astype(np.float32)
    b = rng.standard_normal((6, 5)).astype(np.float32)
    check(a[:, ::2], b, np.zeros((8, 5), np.float32), 1.5, 0.0)          # strided columns
    check(a[::-1, :6], b, np.ones((8, 5), np.float32), 1.0, 1.0)          # negative strides
    c = np.zeros((8, 5), np.float64)
    check(a[:, :6].astype(np.float64), b, c)                             # mixed dtypes
    check(a[:, ::2], b, np.asfortranarray(np.ones((8, 5), np.float32)), 1.0, 1.0)   # F-order c, strided a
    ai = np.arange(12).reshape(3, 4)
    bi = np.arange(8).reshape(4, 2)
    ci = np.zeros((3, 2), np.int64)
    blas.gemm(ai, bi, ci)                                                # integers
    np.testing.assert_array_equal(ci, ai @ bi)


def test_output_overlapping_an_input_falls_back_and_is_still_right():
    rng = np.random.default_rng(4)
    s = rng.standard_normal((5, 5)).astype(np.float64)
    expect = 0.5 * (s @ s.T) + s
    blas.gemm(s, s.T.copy(), s, 0.5, 1.0)    # c is a
    np.testing.assert_allclose(s, expect, rtol=1e-12)


def test_bad_shapes_name_the_operands():
    with pytest.raises(ConfigError, match=r"gemm operands.*\(3, 4\).*\(5, 2\)"):
        blas.gemm(np.zeros((3, 4)), np.zeros((5, 2)), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="num_threads"):
        blas.set_num_threads(0)


def test_usable_only_for_numpy_float_2d():
    f = np.zeros((2, 2), np.float32)
    assert blas.usable(f, f)
    assert not blas.usable(f, f.astype(np.float64))
    assert not blas.usable(np.zeros(3, np.float32))
    assert not blas.usable(np.zeros((2, 2), np.float16))
    blas.set_enabled(False)
    try:
        assert not blas.usable(f)
    finally:
        blas.set_enabled(True)


def test_parts_cover_the_range_without_overlap():
    for size in (0, 1, 7, 10):
        for n in (1, 2, 3):
            idx = [i for k in range(n) for i in range(size)[blas.part(size, k, n)]]
            assert idx == list(range(size))


def test_parallel_runs_every_part_single_threaded_and_restores_threads():
    before = blas.blas_threads()
    seen, lock = {}, threading.Lock()

    def fn(k, n):
        with lock:
            seen[k] = (n, blas.blas_threads(), threading.get_ident())

    blas.parallel(fn, 3)
    assert sorted(seen) == [0, 1, 2] and all(v[0] == 3 for v in seen.values())
    assert all(v[1] == 1 for v in seen.values())
    assert seen[0][2] == threading.get_ident()          # part 0 runs on the caller
    assert blas.blas_threads() == before
    seen.clear()
    blas.parallel(fn, 1)
    assert seen[0][:2] == (1, before)                    # one part: no thread change


def test_parallel_raises_a_part_error_after_all_parts_and_restores_threads():
    before = blas.blas_threads()
    done = []

    def fn(k, n):
        if k == 1:
            raise ValueError("part one failed")
        done.append(k)

    with pytest.raises(ValueError, match="part one failed"):
        blas.parallel(fn, 2)
    assert done == [0] and blas.blas_threads() == before


def test_split_product_equals_the_whole_one():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 40)).astype(np.float32)
    w = rng.standard_normal((33, 40)).astype(np.float32)
    y = np.empty((16, 33), np.float32)

    def fn(k, n):
        c = blas.part(33, k, n)
        blas.gemm(x, w[c].T, y[:, c])

    blas.parallel(fn, 2)
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)


def test_parallel_from_several_threads_restores_the_thread_count():
    before = blas.blas_threads()
    barrier = threading.Barrier(2)

    def fn(k, n):
        if k == 0:
            barrier.wait(timeout=10)      # both callers are inside parallel at once

    callers = [threading.Thread(target=blas.parallel, args=(fn, 2)) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in callers)
    assert blas.blas_threads() == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_matches_numpy(mode, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 7)).astype(dtype)
    y = rng.standard_normal((5, 7)).astype(dtype)
    want = y.astype(np.float64) - 0.25 * x
    assert blas.axpy(-0.25, x, y) is y
    np.testing.assert_allclose(y, want, rtol=1e-6 if dtype == np.float32 else 1e-14)
    block = y[:, 2:5]                      # not contiguous: numpy fallback, same maths
    want = block + x[:, :3]
    blas.axpy(1.0, x[:, :3], block)
    np.testing.assert_allclose(y[:, 2:5], want, rtol=1e-6)
    e = np.zeros((0, 3), dtype)
    blas.axpy(2.0, e, e.copy())
    with pytest.raises(ConfigError, match=r"axpy operands.*\(5, 7\).*\(7, 5\)"):
        blas.axpy(1.0, x, y.T)


@pytest.fixture
def openblas_threads(monkeypatch):
    """No thread variable set, and OpenBLAS's count restored afterwards."""
    lib = blas.library()
    if lib.set_threads is None:
        pytest.skip("no OpenBLAS handle")
    for v in blas.THREAD_VARS:
        monkeypatch.delenv(v, raising=False)
    old = blas.blas_threads()
    yield lib
    lib.set_threads(old)


def test_share_cores_gives_each_rank_its_share(openblas_threads, monkeypatch):
    monkeypatch.setattr(blas, "usable_cores", lambda: 2)
    s = blas.share_cores(4)                   # more ranks than cores: one thread each
    assert s.applied and s.threads == 1 == blas.blas_threads() == blas.num_threads()
    assert s.describe() == ("OpenBLAS threads per rank: 1 (2 cores / 4 ranks on this node; set "
                            "OPENBLAS_NUM_THREADS to override)")
    s = blas.share_cores(2)
    assert s.threads == 1 == blas.blas_threads() and "2 cores / 2 ranks" in s.describe()
    s = blas.share_cores(1)
    assert s.threads == blas.blas_threads() and s.threads in (1, 2)     # 2 unless OpenBLAS was built for 1


def test_share_cores_keeps_a_users_thread_setting(openblas_threads, monkeypatch):
    openblas_threads.set_threads(1)
    monkeypatch.setattr(blas, "usable_cores", lambda: 8)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
        s = blas.share_cores(2)
        assert not s.applied and s.user_var == var and blas.blas_threads() == 1
        assert s.describe() == "OpenBLAS threads per rank: 1 (%s=1 as set)" % var
        monkeypatch.delenv(var)


def test_usable_cores_follows_the_affinity():
    import os
    n = blas.usable_cores()
    assert 1 <= n <= (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
