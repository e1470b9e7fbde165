"""fastmxfp4 agrees with the readable definition (mxfp4.decode_mxfp4, then a matmul).

Decoding is bit-exact. Products agree to 1e-6 relative: every output within 1e-6 of the sum of the magnitudes
of its terms (sum_i |x_i w_i| + |b|), the scale of float32 rounding when the same terms are summed in another
order (below GEMM_MIN_TOKENS the block scales multiply 32-wide partial sums; from it on, the same float32
weights go through one GEMM per chunk of rows, which a BLAS may round unlike one GEMM over all the rows).
Bit equality is asserted only where it holds by construction: decoding, and one thread vs two (the same
chunk products on one BLAS thread each).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigptoss.fast import mxfp4 as fastmxfp4
from minigptoss.moe import MXFP4Experts, combine, grouped_linear
from minigptoss.mxfp4 import decode_mxfp4, encode_mxfp4
from minigptoss.router import route
from minigptoss.swiglu import swiglu

REL = 1e-6


def random_mxfp4(rng, rows, inputs, low=110, high=135):
    """Random packed codes (every nibble) and scales around 2^0 (sane magnitudes)."""
    blocks = rng.integers(0, 256, (rows, inputs // 32, 16), dtype=np.uint8)
    scales = rng.integers(low, high, (rows, inputs // 32), dtype=np.uint8)
    return blocks, scales


def readable(x, blocks, scales, bias):
    return x @ decode_mxfp4(blocks, scales).T + bias


def assert_close(actual, x, blocks, scales, bias=None):
    """|actual - readable| <= 1e-6 (|x| |W|^T + |b|), elementwise."""
    weights = decode_mxfp4(blocks, scales)
    expected = x @ weights.T + (0 if bias is None else bias)
    magnitude = np.abs(x) @ np.abs(weights).T + (0 if bias is None else np.abs(bias))
    worst = (np.abs(actual - expected) / magnitude).max()
    assert worst <= REL, f"relative error {worst:.2e}"


def test_four_value_table_is_decode_mxfp4_of_every_byte_pair():
    """Row u = the first four weights decode_mxfp4 gives for a block starting with the bytes of uint16 u."""
    blocks = np.zeros((1 << 16, 1, 16), dtype=np.uint8)
    blocks[:, 0, :2] = np.arange(1 << 16, dtype="<u2").view(np.uint8).reshape(-1, 2)  # little-endian byte pair
    expected = decode_mxfp4(blocks, np.full((1 << 16, 1), 127, dtype=np.uint8))[:, :4]  # scale 2^0
    np.testing.assert_array_equal(fastmxfp4.FOUR_VALUES.view(np.uint32), expected.view(np.uint32))
    assert fastmxfp4.FOUR_VALUES.nbytes == 1 << 20  # the only table: 1 MiB


def test_decode_is_bit_exact_for_every_code_and_scale_byte():
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (256, 3, 16), dtype=np.uint8)
    scales = np.arange(256 * 3, dtype=np.uint32).reshape(256, 3).astype(np.uint8)  # every byte, NaN included
    with np.errstate(over="ignore"):  # scale bytes 253, 254 overflow to inf for large codes, in both
        fast, slow = fastmxfp4.decode(blocks, scales), decode_mxfp4(blocks, scales)
    assert fast.dtype == np.float32 and fast.shape == slow.shape == (256, 96)
    np.testing.assert_array_equal(fast.view(np.uint32), slow.view(np.uint32))  # bits: -0.0 and NaN too


@pytest.mark.parametrize("tokens", [1, 2, 7, fastmxfp4.GEMM_MIN_TOKENS - 1])
def test_few_tokens_scale_after_block_sums_within_1e6(tokens):
    rng = np.random.default_rng(tokens)
    blocks, scales = random_mxfp4(rng, 300, 2880)  # 300 rows: chunks of 128 and a partial one
    bias = rng.standard_normal(300).astype(np.float32)
    x = rng.standard_normal((tokens, 2880)).astype(np.float32)
    y = fastmxfp4.linear(x, blocks, scales, bias)
    assert y.shape == (tokens, 300) and y.dtype == np.float32
    assert_close(y, x, blocks, scales, bias)
    expected = readable(x, blocks, scales, bias)
    assert np.abs(y - expected).max() <= REL * np.abs(expected).max()  # also within 1e-6 of the largest |y|


@pytest.mark.parametrize("tokens", [fastmxfp4.GEMM_MIN_TOKENS, fastmxfp4.GEMM_MIN_TOKENS + 37])
def test_many_tokens_decode_then_gemm_within_1e6(tokens):
    rng = np.random.default_rng(tokens)
    blocks, scales = random_mxfp4(rng, 300, 1024)
    bias = rng.standard_normal(300).astype(np.float32)
    x = rng.standard_normal((tokens, 1024)).astype(np.float32)
    assert_close(fastmxfp4.linear(x, blocks, scales, bias), x, blocks, scales, bias)


def test_many_tokens_at_gpt_oss_shape_within_1e6():
    """The decoded weights are decode_mxfp4's exactly, but a BLAS may round a 128-row chunk's GEMM differently
    from the whole product (OpenBLAS 0.3.31 on an AMD EPYC: 698 of 16,384 values differ in the last bits)."""
    rng = np.random.default_rng(5)
    blocks, scales = random_mxfp4(rng, 256, 2880)
    x = rng.standard_normal((fastmxfp4.GEMM_MIN_TOKENS, 2880)).astype(np.float32)
    assert_close(fastmxfp4.linear(x, blocks, scales), x, blocks, scales)


@given(rows=st.integers(1, 300), groups=st.integers(1, 6), tokens=st.sampled_from([1, 2, 3, 5, 8, 13, 63, 64, 70]),
       seed=st.integers(0, 2**16))
def test_any_shape_agrees_with_the_readable_path(rows, groups, tokens, seed):
    rng = np.random.default_rng(seed)
    blocks, scales = random_mxfp4(rng, rows, 32 * groups)
    x = rng.standard_normal((tokens, 32 * groups)).astype(np.float32)
    assert_close(fastmxfp4.linear(x, blocks, scales), x, blocks, scales)


def test_two_threads_give_the_same_numbers_as_one(monkeypatch):
    rng = np.random.default_rng(1)
    blocks, scales = random_mxfp4(rng, 700, 512)
    for tokens in (1, fastmxfp4.GEMM_MIN_TOKENS):
        x = rng.standard_normal((tokens, 512)).astype(np.float32)
        monkeypatch.setattr(fastmxfp4, "WORKERS", 1)
        one = fastmxfp4.linear(x, blocks, scales)
        monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
        monkeypatch.setattr(fastmxfp4, "PARALLEL_MIN_WEIGHTS", 0)
        assert fastmxfp4._split(700, 2) == [(0, 384), (384, 700)]
        np.testing.assert_array_equal(fastmxfp4.linear(x, blocks, scales), one)


def test_nan_scale_poisons_the_same_outputs_in_both_paths():
    rng = np.random.default_rng(2)
    blocks, scales = random_mxfp4(rng, 130, 64)
    scales[5, 1] = 255  # NaN block in row 5
    for tokens in (1, fastmxfp4.GEMM_MIN_TOKENS):
        x = rng.standard_normal((tokens, 64)).astype(np.float32)
        fast, slow = fastmxfp4.linear(x, blocks, scales), x @ decode_mxfp4(blocks, scales).T
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
        assert np.isnan(fast[:, 5]).all() and not np.isnan(np.delete(fast, 5, axis=1)).any()


def test_large_experts_take_the_fast_path_and_agree(monkeypatch):
    """grouped_linear over MXFP4Experts above FAST_MIN_WEIGHTS equals the readable dense-then-masked MoE."""
    monkeypatch.setattr(fastmxfp4, "FAST_MIN_WEIGHTS", 1)
    calls = []
    real_linear = fastmxfp4.linear
    monkeypatch.setattr(fastmxfp4, "linear", lambda *a: calls.append(a[0].shape[0]) or real_linear(*a))
    rng = np.random.default_rng(3)
    T, E, k, H, I = 11, 4, 2, 64, 96
    w1, w2 = rng.standard_normal((E, 2 * I, H)) * 0.2, rng.standard_normal((E, H, I)) * 0.1
    mlp1 = MXFP4Experts(*encode_mxfp4(w1.astype(np.float32)), rng.standard_normal((E, 2 * I)).astype(np.float32))
    mlp2 = MXFP4Experts(*encode_mxfp4(w2.astype(np.float32)), rng.standard_normal((E, H)).astype(np.float32))
    x = rng.standard_normal((T, H)).astype(np.float32)
    ids, weights = route(rng.standard_normal((T, E)).astype(np.float32), k)
    h = grouped_linear(np.broadcast_to(x[:, None], (T, k, H)), ids, mlp1)
    out = combine(grouped_linear(swiglu(h, 7.0), ids, mlp2), weights)
    assert calls and sum(calls) == 2 * T * k  # every (token, slot) went through the fast path, once per layer
    W1, W2 = decode_mxfp4(mlp1.blocks, mlp1.scales), decode_mxfp4(mlp2.blocks, mlp2.scales)
    dense_h = np.einsum("eoh,th->teo", W1, x) + mlp1.bias
    dense_y = np.einsum("ehi,tei->teh", W2, swiglu(dense_h, 7.0)) + mlp2.bias
    gate = np.zeros((T, E), dtype=np.float32)
    np.put_along_axis(gate, ids, weights, axis=1)
    np.testing.assert_allclose(out, np.einsum("te,teh->th", gate, dense_y), rtol=1e-4, atol=1e-5)


def test_small_experts_keep_the_readable_path():
    """The tiny models' numbers stay exactly decode_mxfp4 then x @ W.T."""
    rng = np.random.default_rng(4)
    blocks, scales = random_mxfp4(rng, 64, 64)
    experts = MXFP4Experts(blocks[None], scales[None], np.zeros((1, 64), np.float32))
    x = rng.standard_normal((3, 64)).astype(np.float32)
    assert blocks.size * 2 < fastmxfp4.FAST_MIN_WEIGHTS
    np.testing.assert_array_equal(experts.apply(0, x), x @ decode_mxfp4(blocks, scales).T)


def test_buffers_are_per_thread_and_reused():
    first = fastmxfp4._buffer(90)
    assert fastmxfp4._buffer(90) is first and first.shape == (fastmxfp4.CHUNK_ROWS, 2880)


# -- determinism: the fast path leaves the process as it found it -------------------------------------------------

def big_parallel_case(tokens):
    """A matrix large enough for the fast path on two worker threads (above PARALLEL_MIN_WEIGHTS)."""
    rng = np.random.default_rng(tokens)
    blocks, scales = random_mxfp4(rng, 512, 2048)
    assert 512 * 2048 >= fastmxfp4.PARALLEL_MIN_WEIGHTS
    return rng.standard_normal((tokens, 2048)).astype(np.float32), blocks, scales


@pytest.mark.parametrize("tokens", [1, fastmxfp4.GEMM_MIN_TOKENS])
def test_fast_call_leaves_the_callers_blas_threads_unchanged(monkeypatch, two_blas_threads, tokens):
    monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
    seen = []
    real_run = fastmxfp4._run
    monkeypatch.setattr(fastmxfp4, "_run", lambda *a: seen.append(two_blas_threads()) or real_run(*a))
    fastmxfp4.linear(*big_parallel_case(tokens))
    assert seen == [1, 1]  # the workers ran on one BLAS thread each
    assert two_blas_threads() == 2  # and the caller's count is back


def test_forward_pass_bits_survive_a_fast_expert_call(monkeypatch, two_blas_threads):
    """forward, the fast path on two workers, forward again: identical logits (the BLAS state was restored)."""
    import minigptoss
    monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = np.arange(0, 300, 3)  # 100 tokens: products big enough for OpenBLAS to use its threads
    before = model.forward(tokens)
    fastmxfp4.linear(*big_parallel_case(fastmxfp4.GEMM_MIN_TOKENS))
    np.testing.assert_array_equal(model.forward(tokens).view(np.uint32), before.view(np.uint32))


def test_fast_products_do_not_depend_on_the_blas_thread_count(two_blas_threads):
    """The chunk products always run on one BLAS thread, so the caller's count cannot change their bits."""
    case = big_parallel_case(fastmxfp4.GEMM_MIN_TOKENS)
    on_two = fastmxfp4.linear(*case)
    with fastmxfp4.one_blas_thread():
        on_one = fastmxfp4.linear(*case)
    np.testing.assert_array_equal(on_one, on_two)
