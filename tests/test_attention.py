"""Attention with sinks, GQA and the sliding window. Expected values come from explicit per-head loops."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigptoss
from minigptoss import attention
from minigptoss.attention import attend, attention_mask, attention_scores, kv_head_of, sink_softmax, split_qkv
from minigptoss.fast import attention as fast_attention
from minigptoss.fast.attention import banded_attention, chunk_rows, key_range
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


@pytest.mark.parametrize("window", [0, 1, 2, 8, 39, 40, 41, 500])
@pytest.mark.parametrize("rows_per_chunk", [1, 7, 64, 1000])
def test_banded_attention_equals_the_whole_within_float32_rounding(window, rows_per_chunk):
    """The same rows, cut into chunks that each meet only their band of keys, with a KV-cache-like prefix
    (Tk > T; windows around the prefix length 40 catch an off-by-one at the band's edges): within float32
    rounding of the whole readable computation, sink mass included."""
    rng = np.random.default_rng(rows_per_chunk + window)
    T, cached, nq, nkv, d = 150, 40, 8, 2, 16
    q = rng.standard_normal((T, nq, d)).astype(np.float32)
    k, v = (rng.standard_normal((cached + T, nkv, d)).astype(np.float32) for _ in range(2))
    query_positions, key_positions = np.arange(cached, cached + T), np.arange(cached + T)
    sinks = (3 * rng.standard_normal(nq)).astype(np.float32)
    z, sink_mass = banded_attention(q, k, v, query_positions, key_positions, window, sinks,
                                    chunk_bytes=4 * nq * (cached + T) * rows_per_chunk)
    whole_z, whole_sink_mass = whole_attention(q, k, v, query_positions, key_positions, window, sinks)
    assert z.shape == whole_z.shape == (T, nq * d) and sink_mass.shape == (nq, T)
    np.testing.assert_allclose(z, whole_z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sink_mass, whole_sink_mass, rtol=1e-5, atol=1e-7)


@given(attention_inputs(), st.integers(0, 14), st.integers(0, 6), st.integers(1, 5))
def test_banded_attention_equals_the_definition_on_any_inputs(inputs, window, cached, rows):
    """Any heads, GQA ratio, head size, window (0: full), cached prefix and chunk size: the banded path computes
    the definition (keys sorted by position, as the KV cache holds them)."""
    q, k, v, sinks, _ = inputs
    T, nq, d = q.shape
    k_all, v_all = np.concatenate([k[:1].repeat(cached, 0), k]), np.concatenate([v[:1].repeat(cached, 0), v])
    query_positions, key_positions = np.arange(cached, cached + T), np.arange(cached + T)
    if window:  # a sliding layer's cache holds only its last W keys before the new ones
        keep = key_positions >= max(0, cached - window)
        k_all, v_all, key_positions = k_all[keep], v_all[keep], key_positions[keep]
    z, sink_mass = banded_attention(q, k_all, v_all, query_positions, key_positions, window, sinks,
                                    chunk_bytes=4 * nq * len(key_positions) * rows)
    whole_z, whole_sink_mass = whole_attention(q, k_all, v_all, query_positions, key_positions, window, sinks)
    np.testing.assert_allclose(z, whole_z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sink_mass, whole_sink_mass, rtol=1e-4, atol=1e-6)


def test_a_sliding_layer_computes_only_its_band():
    """Every chunk of a sliding layer meets at most rows + W - 1 keys, and every key any of its rows may see (the
    band's edges: i - j = W - 1 is in, i - j = W is out): T x ~2W scores in all, not T x T."""
    for T, W, cached in [(20_000, 128, 0), (20_000, 8, 0), (1000, 8, 5), (300, 1, 0), (50, 200, 3)]:
        query_positions, key_positions = np.arange(cached, cached + T), np.arange(cached + T)
        rows = chunk_rows(64, T, len(key_positions), W)
        scores = 0
        for start in range(0, T, rows):
            chunk = query_positions[start:start + rows]
            lo, hi = key_range(chunk, key_positions, W)
            seen = np.flatnonzero(attention_mask(chunk, key_positions, W).any(axis=0))
            assert lo == seen[0] and hi == seen[-1] + 1 and hi - lo <= len(chunk) + W - 1
            scores += len(chunk) * (hi - lo)
        assert scores <= T * (rows + W)
    assert chunk_rows(8, 20_000, 20_000, 8) == 64  # the tiny model: 64 rows meet at most 71 keys
    rows = chunk_rows(64, 20_000, 20_000, 128)  # gpt-oss: as many rows as keep the chunk within BAND_BYTES
    assert 4 * 64 * rows * (rows + 127) <= fast_attention.BAND_BYTES < 4 * 64 * (2 * rows) * (2 * rows + 127)


def test_chunks_of_a_full_layer_stay_within_their_budget():
    for T, Tk, budget in [(1, 1, 1), (100, 100, 4 * 8 * 100 * 7), (20_000, 20_000, 2 * 2**20), (5, 9, 10**9)]:
        rows = chunk_rows(8, T, Tk, 0, budget)
        assert 1 <= rows <= T and (4 * 8 * rows * Tk <= budget or rows == 1)
    assert chunk_rows(8, 100, 100, 0, 4 * 8 * 100 * 100) == 100  # fits whole: one chunk


@pytest.fixture
def small_chunks(monkeypatch):
    """Attention scores above 4 * 8 heads * 60 * 60 bytes run in chunks (the tiny model, 60+ tokens), of at most
    16 rows of a full layer."""
    monkeypatch.setattr(attention, "CHUNK_BYTES", 4 * 8 * 60 * 60)
    monkeypatch.setattr(fast_attention, "BAND_BYTES", 4 * 8 * 100 * 16)


def test_a_long_prompt_runs_in_chunks_with_the_same_logits(small_chunks, monkeypatch):
    chunked_layers = []
    monkeypatch.setattr(minigptoss.model, "banded_attention",
                        lambda *args: chunked_layers.append(1) or banded_attention(*args))
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


def test_a_long_prompt_in_bands_gives_the_whole_pass_logits_and_argmax(small_chunks, monkeypatch):
    """300 tokens of the tiny model (window 8), banded in 16-row chunks, against the readable whole pass; then
    the same prompt as a 200-token prefill and a 100-token continuation through the KV cache."""
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = np.random.default_rng(21).integers(0, 320, 300)
    banded = model.forward(tokens)
    cache = model.new_cache()
    continued = np.concatenate([model.forward(tokens[:200], cache), model.forward(tokens[200:], cache)])
    monkeypatch.setattr(attention, "CHUNK_BYTES", 2**40)  # everything whole: the readable definition
    whole = model.forward(tokens)
    for logits in (banded, continued):
        np.testing.assert_allclose(logits, whole, rtol=1e-5, atol=1e-5 * np.abs(whole).max())
        assert (logits.argmax(axis=-1) == whole.argmax(axis=-1)).all()


def test_the_memory_estimate_of_a_long_prompt_counts_chunks_not_the_whole_scores():
    """20,000 tokens of the tiny model: the whole (nq, T, T) scores would be 12.8 GB; the banded pass needs its
    chunks and per-layer copies, and the estimate says so (benchmarks/bench_long_prompt.py measured 0.14 GiB)."""
    from minigptoss.checkpoint import working_bytes

    assert 0.14 * 2**30 < working_bytes(TINY, 20_000) < 2**30
    assert working_bytes(TINY, 100) >= 4 * 4 * 8 * 100 * 100  # short prompts: the readable path's whole scores


def test_recording_scores_that_would_not_fit_is_refused_with_the_estimate(small_chunks, monkeypatch):
    monkeypatch.setattr(minigptoss.model, "available_memory", lambda: 2**20)  # 1 MiB available
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    with pytest.raises(AttentionMemoryError) as caught, minigptoss.capture("blocks.*.attn.scores"):
        model.forward(np.arange(100))
    message = str(caught.value)
    assert message.startswith("recording blocks.0.attn.mask/scores/probs for 100 queries x 100 keys needs")
    assert "at most ~" in message and "\n" not in message
