"""The optional compiled kernel (fast/compiled.py, numba) agrees with the readable definition, and without numba,
or with MINIGPTOSS_NUMBA=0, nothing changes. Skipped where numba is not installed (the default install)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigptoss import environment
from minigptoss.errors import SettingError
from minigptoss.fast import compiled
from minigptoss.fast import mxfp4 as fastmxfp4
from minigptoss.mxfp4 import decode_mxfp4

needs_numba = pytest.mark.skipif(not compiled.installed(), reason='numba is not installed (pip install ".[fast]")')


def random_mxfp4(rng, rows, inputs):
    return (rng.integers(0, 256, (rows, inputs // 32, 16), dtype=np.uint8),
            rng.integers(110, 135, (rows, inputs // 32), dtype=np.uint8))


def relative_error(actual, x, blocks, scales):
    weights = decode_mxfp4(blocks, scales)
    return (np.abs(actual - x @ weights.T) / (np.abs(x) @ np.abs(weights).T)).max()


@needs_numba
@given(rows=st.integers(1, 200), groups=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_kernel_within_1e6_of_the_readable_product(rows, groups, seed):
    tokens = 1
    rng = np.random.default_rng(seed)
    blocks, scales = random_mxfp4(rng, rows, 32 * groups)
    x = rng.standard_normal((tokens, 32 * groups)).astype(np.float32)
    out = np.full((tokens, rows), np.nan, dtype=np.float32)
    compiled._compiled_now()
    compiled.one_token_rows(x, blocks, scales, out, 0, rows, None)
    assert relative_error(out, x, blocks, scales) <= 1e-6


@needs_numba
@pytest.mark.parametrize("tokens", [1, 2, 5, fastmxfp4.GEMM_MIN_TOKENS - 1, fastmxfp4.GEMM_MIN_TOKENS + 6])
def test_linear_uses_the_kernels_on_two_threads_within_1e6(monkeypatch, tokens):
    monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
    monkeypatch.delenv(environment.NUMBA, raising=False)
    calls = []
    worker = "one_token_rows" if tokens == 1 else "many_tokens_rows"
    real = getattr(compiled, worker)
    monkeypatch.setattr(compiled, worker, lambda *a: calls.append(a[4:6]) or real(*a))
    rng = np.random.default_rng(tokens)
    blocks, scales = random_mxfp4(rng, 400, 2880)  # chunks of 128 rows and a partial one, above PARALLEL_MIN
    x = rng.standard_normal((tokens, 2880)).astype(np.float32)
    y = fastmxfp4.linear(x, blocks, scales)
    assert sorted(calls) == [(0, 256), (256, 400)]  # both threads, whole chunks each
    assert relative_error(y, x, blocks, scales) <= 1e-6


@needs_numba
def test_compiled_decode_is_decode_mxfp4_bit_for_bit():
    """Every code and every scale byte (NaN for 255, overflow to inf for the largest): the same float32 bits."""
    compiled._compiled_now()
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (256, 3, 16), dtype=np.uint8)
    scales = np.arange(256 * 3, dtype=np.uint32).reshape(256, 3).astype(np.uint8)
    out = np.empty((200, 96), np.float32)
    compiled._decode(blocks, scales, compiled.PAIRS, compiled.SCALES, 50, 250, out)
    with np.errstate(over="ignore"):
        expected = decode_mxfp4(blocks[50:250], scales[50:250])
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))


@needs_numba
def test_nan_scale_poisons_only_its_row():
    rng = np.random.default_rng(2)
    blocks, scales = random_mxfp4(rng, 40, 64)
    scales[5, 1] = 255
    compiled._compiled_now()
    for tokens, worker in ((1, compiled.one_token_rows), (3, compiled.many_tokens_rows)):
        out = np.empty((tokens, 40), np.float32)
        worker(rng.standard_normal((tokens, 64)).astype(np.float32), blocks, scales, out, 0, 40,
               np.empty((16, 64), np.float32))
        assert np.isnan(out[:, 5]).all() and not np.isnan(np.delete(out, 5, axis=1)).any()


def test_numba_off_by_environment_variable_gives_the_numpy_path(monkeypatch):
    monkeypatch.setenv(environment.NUMBA, "0")
    assert compiled.kernel() is None and not compiled.enabled()
    assert "NumPy" in compiled.kernel_name()
    rng = np.random.default_rng(3)
    blocks, scales = random_mxfp4(rng, 300, 2880)
    x = rng.standard_normal((1, 2880)).astype(np.float32)
    x_blocks = np.ascontiguousarray(x.reshape(1, 90, 32).transpose(1, 2, 0))
    expected = np.empty((1, 300), np.float32)
    fastmxfp4._few_tokens_rows(x_blocks, blocks, scales, expected, 0, 300, np.empty((128, 2880), np.float32))
    np.testing.assert_array_equal(fastmxfp4.linear(x, blocks, scales), expected)  # the NumPy path, bit for bit


def test_a_bad_setting_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv(environment.NUMBA, "yes")
    with pytest.raises(SettingError, match="MINIGPTOSS_NUMBA='yes'"):
        environment.check()


def test_kernel_name_says_what_runs():
    name = compiled.kernel_name()
    assert name.startswith("compiled") == (compiled.installed() and compiled.enabled())
    assert name.startswith("compiled") or name.startswith("NumPy")


def test_the_banner_names_the_kernel():
    """What a command prints after loading a real-sized checkpoint says which expert kernel runs."""
    import minigptoss
    from minigptoss.cli.common import checkpoint_summary
    summary = checkpoint_summary(minigptoss.load(minigptoss.TINY_WEIGHTS))
    assert summary.endswith(f"Experts: {compiled.kernel_name()}.")


def random_bf16(rng, rows, cols):
    """(rows, cols) bf16 bit patterns of normal-ish values, and their float32 values."""
    bits = (rng.standard_normal((rows, cols), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32)


@needs_numba
@given(rows=st.integers(1, 50), cols=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_bf16_kernel_within_1e6_of_the_widened_product(rows, cols, seed):
    rng = np.random.default_rng(seed)
    bits, weights = random_bf16(rng, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    compiled._compiled_now()
    out = np.full(rows + 2, np.nan, dtype=np.float32)
    compiled._bf16(x, bits, out, 1, rows, np.empty(cols, np.uint32))  # rows 1..rows-1 only
    expected = weights @ x
    assert np.isnan(out[0]) and np.isnan(out[rows:]).all()  # nothing outside start..stop written
    assert (np.abs(out[1:rows] - expected[1:]) <= 1e-6 * (np.abs(weights) @ np.abs(x))[1:]).all()


@needs_numba
def test_dense_product_reads_bf16_in_place_for_one_token_only(monkeypatch):
    """One row of x: the compiled kernel on the bits, the rows split over two threads; two rows: widened chunks."""
    from minigptoss.checkpoint.tensors import bf16_bits_to_f32
    from minigptoss.fast import dense
    monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
    monkeypatch.delenv(environment.NUMBA, raising=False)
    compiled._compiled_now()
    calls, real = [], compiled._bf16
    monkeypatch.setattr(compiled, "_bf16", lambda *a: calls.append(a[3:5]) or real(*a))
    rng = np.random.default_rng(1)
    bits, weights = random_bf16(rng, 1001, 2048)  # above PARALLEL_MIN_WEIGHTS
    for tokens in (1, 2):
        calls.clear()
        x = rng.standard_normal((tokens, 2048)).astype(np.float32)
        y = dense.matmul_t(x, bits, widen=bf16_bits_to_f32, bf16_bits=True)
        assert sorted(calls) == ([(0, 500), (500, 1001)] if tokens == 1 else [])
        assert (np.abs(y - x @ weights.T) <= 1e-6 * (np.abs(x) @ np.abs(weights).T)).all()
    calls.clear()
    small_bits, small = random_bf16(rng, 30, 64)  # below PARALLEL_MIN_WEIGHTS: widened, not the kernel
    x = rng.standard_normal((1, 64)).astype(np.float32)
    y = dense.matmul_t(x, small_bits, widen=bf16_bits_to_f32, bf16_bits=True)
    assert calls == [] and (np.abs(y - x @ small.T) <= 1e-6 * (np.abs(x) @ np.abs(small).T)).all()


@needs_numba
def test_load_keeps_no_float32_copy_of_the_large_matrices_the_kernel_reads_in_place(monkeypatch):
    """With numba, product-only matrices of at least PARALLEL_MIN_WEIGHTS are read in place, not kept; the tiny
    model's are smaller, so they stay kept (their `x @ W.T` is cheaper than a trip through the thread pool)."""
    import minigptoss
    from minigptoss.fast import dense
    products = ("attn.qkv.weight", "attn.out.weight", "unembedding.weight")
    monkeypatch.delenv(environment.NUMBA, raising=False)
    assert "unembedding.weight" in minigptoss.load(minigptoss.TINY_WEIGHTS).weights.keep
    monkeypatch.setattr(dense, "PARALLEL_MIN_WEIGHTS", 1)  # every matrix counts as large
    weights = minigptoss.load(minigptoss.TINY_WEIGHTS).weights
    assert not any(name.endswith(products) for name in weights.keep) and weights.keep_rows == {}
    monkeypatch.setenv(environment.NUMBA, "0")
    assert "unembedding.weight" in minigptoss.load(minigptoss.TINY_WEIGHTS).weights.keep
