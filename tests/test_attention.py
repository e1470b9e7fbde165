"""Attention with sinks, GQA and the sliding window. Expected values come from explicit per-head loops."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigptoss
from minigptoss import attention
from minigptoss.attention import (attend, attention_mask, attention_scores, chunked_attention, kv_head_of,
                                  query_chunks, sink_softmax, split_qkv)
from minigptoss.config import GPT_OSS_20B, TINY
from minigptoss.model import AttentionMemoryError

floats = st.floats(-4, 4, width=32)


@st.composite
def attention_inputs(draw, window=None):
    T = draw(st.integers(1, 12))
    nkv = draw(st.sampled_from([1, 2, 3]))
    ratio = draw(st.sampled_from([1, 2, 3]))
    d = draw(st.sampled_from([2, 4, 8]))
    q = draw(hnp.arrays(np.float32, (T, nkv * ratio, d), elements=floats))
    k = draw(hnp.arrays(np.float32, (T, nkv, d), elements=floats))
    v = draw(hnp.arrays(np.float32, (T, nkv, d), elements=floats))
    sinks = draw(hnp.arrays(np.float32, (nkv * ratio,), elements=floats))
    W = draw(st.integers(0, 14)) if window is None else window
    return q, k, v, sinks, W


def attention_by_loops(q, k, v, sinks, W):
    """The facts sheet's equations, one head and one query at a time, in float64."""
    T, nq, d = q.shape
    ratio = nq // k.shape[1]
    z = np.zeros((T, nq, d))
    probs = np.zeros((nq, T, T))
    for h in range(nq):
        g = h // ratio
        for i in range(T):
            keys = [j for j in range(T) if j <= i and (W == 0 or i - j < W)]
            logits = [float(q[i, h].astype(np.float64) @ k[j, g]) / math.sqrt(d) for j in keys]
            denominator = sum(math.exp(s) for s in logits) + math.exp(float(sinks[h]))
            for j, s in zip(keys, logits):
                probs[h, i, j] = math.exp(s) / denominator
                z[i, h] += probs[h, i, j] * v[j, g]
    return probs, z.reshape(T, -1)


def run(q, k, v, sinks, W):
    positions = np.arange(q.shape[0])
    scores = attention_scores(q, k, attention_mask(positions, positions, W))
    probs, sink_mass = sink_softmax(scores, sinks)
    return probs, sink_mass, attend(probs, v)


@given(attention_inputs())
def test_matches_the_equations(inputs):
    probs, sink_mass, z = run(*inputs)
    expected_probs, expected_z = attention_by_loops(*inputs)
    np.testing.assert_allclose(probs, expected_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, expected_z, rtol=1e-4, atol=1e-5)


@given(attention_inputs())
def test_rows_plus_sink_mass_sum_to_one_and_masked_keys_get_zero(inputs):
    probs, sink_mass, _ = run(*inputs)
    np.testing.assert_allclose(probs.sum(-1) + sink_mass, 1.0, rtol=1e-5)
    T, W = probs.shape[1], inputs[4]
    mask = attention_mask(np.arange(T), np.arange(T), W)
    assert np.all(probs[:, ~mask] == 0.0)  # exactly zero, not merely small
    assert np.all(sink_mass >= 0) and np.all(sink_mass <= 1)


@given(attention_inputs())
def test_a_sink_of_minus_infinity_is_plain_softmax(inputs):
    q, k, v, sinks, W = inputs
    probs, sink_mass, _ = run(q, k, v, np.full_like(sinks, -np.inf), W)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert np.all(sink_mass == 0)


@given(attention_inputs(window=0), st.integers(0, 5))
def test_a_window_at_least_T_equals_full_causal(inputs, extra):
    q, k, v, sinks, _ = inputs
    full = run(q, k, v, sinks, 0)
    windowed = run(q, k, v, sinks, q.shape[0] + extra)
    for a, b in zip(full, windowed):
        np.testing.assert_array_equal(a, b)


@given(attention_inputs())
def test_one_kv_head_per_query_head_is_multi_head_attention(inputs):
    q, k, v, sinks, W = inputs
    ratio = q.shape[1] // k.shape[1]
    # Give every query head its own copy of its key/value head: now nkv = nq, plain multi-head attention.
    k_mha, v_mha = np.repeat(k, ratio, axis=1), np.repeat(v, ratio, axis=1)
    for a, b in zip(run(q, k, v, sinks, W), run(q, k_mha, v_mha, sinks, W)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_window_counts_W_keys_including_the_query():
    mask = attention_mask(np.arange(10), np.arange(10), 4)
    assert mask.sum(axis=1).tolist() == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    assert mask[9].tolist() == [False] * 6 + [True] * 4  # keys 6, 7, 8, 9: i - j < 4


def test_mask_with_a_cache_offset():
    # 3 new queries at positions 10..12 against keys 5..12 (a window of 4).
    mask = attention_mask(np.arange(10, 13), np.arange(5, 13), 4)
    assert mask.astype(int).tolist() == [[0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 1, 1, 1, 1]]


def test_sliding_layers_are_the_even_ones():
    assert [GPT_OSS_20B.window(n) for n in range(4)] == [128, 0, 128, 0]
    assert [TINY.is_sliding(n) for n in range(4)] == [True, False, True, False]


def test_sink_is_not_scaled_by_sqrt_d():
    # One key with score 0 and a sink of log(3): p = 1 / (1 + 3) exactly if the sink is used as is.
    q = np.zeros((1, 1, 4), dtype=np.float32)
    k = v = np.zeros((1, 1, 4), dtype=np.float32)
    probs, sink_mass, _ = run(q, k, v, np.array([math.log(3.0)], dtype=np.float32), 0)
    assert probs[0, 0, 0] == pytest.approx(0.25, rel=1e-6) and sink_mass[0, 0] == pytest.approx(0.75, rel=1e-6)


def test_qkv_split_and_head_sharing():
    nq, nkv, d = 4, 2, 3
    qkv = np.arange((nq + 2 * nkv) * d, dtype=np.float32)[None]  # (1, 24): 0..11 q, 12..17 k, 18..23 v
    q, k, v = split_qkv(qkv, nq, nkv, d)
    assert q[0, 1].tolist() == [3, 4, 5] and k[0, 1].tolist() == [15, 16, 17] and v[0, 0].tolist() == [18, 19, 20]
    assert kv_head_of(8, 2).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # not [0, 1, 0, 1, ...]


# -- long prompts: attention a chunk of query rows at a time ------------------------------------------------------

def whole_attention(q, k, v, query_positions, key_positions, window, sinks):
    probs, sink_mass = sink_softmax(attention_scores(q, k, attention_mask(query_positions, key_positions, window)),
                                    sinks)
    return attend(probs, v), sink_mass


@pytest.mark.parametrize("window", [0, 8])
@pytest.mark.parametrize("rows_per_chunk", [1, 7, 64, 1000])
def test_chunked_attention_equals_the_whole_within_float32_rounding(window, rows_per_chunk):
    """The same rows, cut into chunks, with a KV-cache-like prefix (Tk > T): within float32 rounding of the
    whole computation (the products of a shorter chunk may round differently in the last bit)."""
    rng = np.random.default_rng(rows_per_chunk + window)
    T, cached, nq, nkv, d = 150, 40, 8, 2, 16
    q = rng.standard_normal((T, nq, d)).astype(np.float32)
    k, v = (rng.standard_normal((cached + T, nkv, d)).astype(np.float32) for _ in range(2))
    query_positions, key_positions = np.arange(cached, cached + T), np.arange(cached + T)
    sinks = rng.standard_normal(nq).astype(np.float32)
    z, sink_mass = chunked_attention(q, k, v, query_positions, key_positions, window, sinks,
                                     chunk_bytes=4 * nq * (cached + T) * rows_per_chunk)
    whole_z, whole_sink_mass = whole_attention(q, k, v, query_positions, key_positions, window, sinks)
    assert z.shape == whole_z.shape == (T, nq * d) and sink_mass.shape == (nq, T)
    np.testing.assert_allclose(z, whole_z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sink_mass, whole_sink_mass, rtol=1e-5, atol=1e-7)


def test_query_chunks_cover_every_row_once_within_the_budget():
    for T, Tk, budget in [(1, 1, 1), (100, 100, 4 * 8 * 100 * 7), (20_000, 20_000, 256 * 2**20), (5, 9, 10**9)]:
        chunks = query_chunks(8, T, Tk, budget)
        assert [row for rows in chunks for row in range(T)[rows]] == list(range(T))
        assert all(4 * 8 * (rows.stop - rows.start) * Tk <= max(budget, 4 * 8 * Tk) for rows in chunks)
    assert query_chunks(8, 100, 100, 4 * 8 * 100 * 100) == [slice(0, 100)]  # fits whole: one chunk


@pytest.fixture
def small_chunks(monkeypatch):
    """Attention scores above 4 * 8 heads * 60 * 60 bytes run in chunks (the tiny model, 60+ tokens)."""
    monkeypatch.setattr(attention, "CHUNK_BYTES", 4 * 8 * 60 * 60)


def test_a_long_prompt_runs_in_chunks_with_the_same_logits(small_chunks, monkeypatch):
    chunked_layers = []
    monkeypatch.setattr(minigptoss.model, "chunked_attention",
                        lambda *args: chunked_layers.append(1) or chunked_attention(*args))
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = np.arange(100) * 3 % 320
    with minigptoss.capture("blocks.*.attn.z", "blocks.*.attn.sink_mass", "blocks.*.attn.out") as cache:
        chunked = model.forward(tokens)
    assert "blocks.0.attn.z" in cache and "blocks.0.attn.sink_mass" in cache
    assert cache["blocks.0.attn.sink_mass"].shape == (8, 100) and len(chunked_layers) == 4  # from the chunks
    with minigptoss.capture("blocks.0.attn.probs") as cache:
        whole = model.forward(tokens)  # asked for probs: layer 0 is computed whole, and recorded
    assert cache["blocks.0.attn.probs"].shape == (8, 100, 100) and len(chunked_layers) == 4 + 3
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_recording_scores_that_would_not_fit_is_refused_with_the_estimate(small_chunks, monkeypatch):
    monkeypatch.setattr(minigptoss.model, "available_memory", lambda: 2**20)  # 1 MiB available
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    with pytest.raises(AttentionMemoryError) as caught, minigptoss.capture("blocks.*.attn.scores"):
        model.forward(np.arange(100))
    message = str(caught.value)
    assert message.startswith("recording blocks.0.attn.mask/scores/probs for 100 queries x 100 keys needs")
    assert "at most ~" in message and "\n" not in message
