"""fast/dense.py agrees with the readable product `x @ W.T`, and the forward pass leaves BLAS as it found it.

Each output is held to 1e-6 of sum_i |x_i w_i| (a BLAS may round a chunk's product unlike the whole one), never
to the bits; bit equality is asserted only where it holds by construction (one thread vs two: the same chunks).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigptoss
from minigptoss.checkpoint.lazy import widen
from minigptoss.checkpoint.tensors import f32_to_bf16_bits
from minigptoss.fast import dense as fastdense
from minigptoss.fast import mxfp4 as fastmxfp4

REL = 1e-6


def assert_close(actual, x, weight):
    expected = x @ weight.T
    worst = (np.abs(actual - expected) / (np.abs(x) @ np.abs(weight).T)).max()
    assert worst <= REL, f"relative error {worst:.2e}"


@pytest.mark.parametrize("tokens", [1, 3, 70])
def test_large_product_in_chunks_on_two_threads_within_1e6(monkeypatch, tokens):
    monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
    rng = np.random.default_rng(tokens)
    weight = rng.standard_normal((1100, 1024)).astype(np.float32)  # above PARALLEL_MIN_WEIGHTS
    x = rng.standard_normal((tokens, 1024)).astype(np.float32)
    calls = []
    real_rows = fastdense._rows
    monkeypatch.setattr(fastdense, "_rows", lambda *a: calls.append(a[4]) or real_rows(*a))
    y = fastdense.matmul_t(x, weight, chunk_bytes=100 * 1024 * 4)  # 100-row chunks: 11 of them
    assert y.shape == (tokens, 1100) and y.dtype == np.float32
    assert len(calls) == 2 and sum(len(chunks) for chunks in calls) == 11  # both threads, every chunk once
    assert_close(y, x, weight)


@given(rows=st.integers(1, 700), cols=st.sampled_from([1, 16, 64, 96]), tokens=st.integers(1, 9),
       chunk=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_any_shape_widened_from_bf16_agrees(rows, cols, tokens, chunk, seed):
    """A bf16 matrix widened a chunk of rows at a time equals the product with the whole widened matrix."""
    rng = np.random.default_rng(seed)
    bits = f32_to_bf16_bits(rng.standard_normal((rows, cols)).astype(np.float32))
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    y = fastdense.matmul_t(x, bits, widen=lambda part, out: widen("BF16", part, out), chunk_bytes=4 * cols * chunk)
    assert_close(y, x, widen("BF16", bits))


def test_one_thread_and_two_give_the_same_bits(monkeypatch):
    """The chunk bounds depend on the shape only, so MINIGPTOSS_THREADS cannot change the numbers."""
    monkeypatch.setattr(fastdense, "CHUNK_BYTES", 64 * 1024 * 4)
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((1300, 1024)).astype(np.float32)
    x = rng.standard_normal((5, 1024)).astype(np.float32)
    monkeypatch.setattr(fastmxfp4, "WORKERS", 1)
    one = fastdense.matmul_t(x, weight, chunk_bytes=64 * 1024 * 4)
    monkeypatch.setattr(fastmxfp4, "WORKERS", 2)
    np.testing.assert_array_equal(fastdense.matmul_t(x, weight, chunk_bytes=64 * 1024 * 4), one)


def test_small_products_are_the_readable_product():
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((320, 64)).astype(np.float32)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    np.testing.assert_array_equal(fastdense.matmul_t(x, weight), x @ weight.T)


def test_widening_buffers_are_per_thread_and_reused():
    first = fastdense._buffer(364, 2880)
    assert fastdense._buffer(364, 2880) is first and first.nbytes <= fastdense.CHUNK_BYTES


# -- the whole pass on one BLAS thread, the caller's count restored ---------------------------------------------

def test_forward_runs_on_one_blas_thread_and_restores_the_callers_count(monkeypatch, two_blas_threads):
    seen = []
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    real_moe = minigptoss.model.moe_block
    monkeypatch.setattr(minigptoss.model, "moe_block", lambda *a: seen.append(two_blas_threads()) or real_moe(*a))
    model.forward([1, 2, 3])
    assert seen == [1] * model.config.num_hidden_layers
    assert two_blas_threads() == 2


def test_forward_restores_the_callers_count_when_it_raises(two_blas_threads):
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    with minigptoss.patch("blocks.0.attn.q", lambda q, name: q[:1]), pytest.raises(minigptoss.PatchError):
        model.forward([1, 2, 3])
    assert two_blas_threads() == 2


# -- logits only where they are used --------------------------------------------------------------------------

def test_only_last_gives_the_last_row_of_the_full_logits():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = [5, 9, 200, 3, 17]
    full = model.forward(tokens)
    last = model.forward(tokens, only_last=True)
    assert last.shape == (1, model.config.vocab_size)
    np.testing.assert_allclose(last[0], full[-1], rtol=0, atol=1e-6 * np.abs(full).max())


def test_only_last_still_records_every_row_for_a_capture():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = [5, 9, 200, 3, 17]
    with minigptoss.capture("logits") as cache:
        last = model.forward(tokens, only_last=True)
    assert cache["logits"].shape == (len(tokens), model.config.vocab_size)
    np.testing.assert_array_equal(last[0], cache["logits"][-1])


def test_a_pass_in_another_thread_neither_blocks_nor_clobbers_the_blas_count(two_blas_threads):
    """Two one-BLAS-thread scopes at once (a debugger's pass in a thread, its screen's own product): neither
    waits for the other, and the caller's count comes back only when the last one ends."""
    import threading
    inside, leave = threading.Event(), threading.Event()

    def background():
        with fastmxfp4.one_blas_thread():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=background)
    thread.start()
    assert inside.wait(10)
    with fastmxfp4.one_blas_thread():  # would wait for the thread if the scope held a lock
        assert two_blas_threads() == 1
    assert two_blas_threads() == 1  # the other scope is still running
    leave.set()
    thread.join()
    assert two_blas_threads() == 2


def test_only_last_must_be_a_bool():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    with pytest.raises(minigptoss.MinigptossError, match="forward: only_last must be True or False"):
        model.forward([1, 2], only_last="yes")
