"""Attention over a long prompt: the numbers of `attention.py`'s readable path, in time and memory that grow with
the work. `attention.py` is the definition; tests/test_attention.py holds this module to it.

The readable path builds the whole (nq, T, Tk) scores, mask and probabilities. Here the query rows are cut into
chunks, and each chunk meets only the keys it may attend to (keys sorted by position, as the KV cache and a
prompt hold them):

    keys of a chunk of rows i0..i1   j <= i1 (causal), and on sliding layers j > i0 - W: at most (i1 - i0) + W - 1
    sliding layer (window W)         chunks of max(W, MIN_ROWS) rows: about T x 2W scores in all, not T x T
    full layer                       chunks sized so their scores take at most BAND_BYTES (2 MiB: they stay in
                                     the CPU's cache through every pass), against keys up to their last row

Inside a chunk the arithmetic is that of the definition, rearranged to touch the scores fewer times: grouped-
query heads share one matrix product per key/value head (no copy of k per query head), q is divided by sqrt(d)
before the product instead of the scores after it, the mask is applied only to the columns some row may not see
(masked_edges), the scores are exponentiated in place, and z = (exp(s) v) / denominator divides the (t, d)
result instead of the (t, Tk) probabilities. Masked keys give exp(-inf) = 0 in the definition, so leaving them out changes no term; the
results agree to float32 rounding (tests: rtol 1e-5, and the same argmax of the logits).
Measured (tests hold the numbers, benchmarks/bench_long_prompt.py the time): on 2 shared cores, a full layer's
4,000 x 4,000 causal attention took 7 s in 256 MiB chunks and 0.8 s in 2 MiB ones.
Memory per chunk: one float32 scores array (at most BAND_BYTES, or one row) and the mask of its edges; per layer
copies of q, k and v laid out per key/value head.
"""

import numpy as np

from ..attention import attention_mask
from .mxfp4 import one_blas_thread

BAND_BYTES = 2 * 2**20  # a chunk's scores here: small enough to stay in the CPU's cache through every pass
MIN_ROWS = 64  # rows per chunk on a sliding layer when the window is smaller (fewer, larger NumPy calls)


def key_range(query_positions: np.ndarray, key_positions: np.ndarray, window: int) -> tuple[int, int]:
    """[lo, hi): the keys a run of queries (positions ascending) may attend to, keys sorted by position:
    positions in (first - W, last] on a sliding layer, [.., last] on a full one."""
    hi = int(np.searchsorted(key_positions, query_positions[-1], side="right"))
    lo = int(np.searchsorted(key_positions, query_positions[0] - window + 1, side="left")) if window > 0 else 0
    return lo, hi


def masked_edges(query_positions: np.ndarray, band_positions: np.ndarray, window: int) -> list[slice]:
    """The columns of a chunk's band that some of its rows may not see: keys after its first query (causal)
    and, on a sliding layer, keys at or before its last query - W. Every other column is seen by every row,
    so only these (at most 2 x rows wide) are masked."""
    after_first = int(np.searchsorted(band_positions, query_positions[0], side="right"))
    before = int(np.searchsorted(band_positions, query_positions[-1] - window + 1, side="left")) if window > 0 else 0
    if before >= after_first:
        return [slice(0, len(band_positions))]
    return [edge for edge in (slice(0, before), slice(after_first, len(band_positions))) if edge.stop > edge.start]


def chunk_rows(num_heads: int, T: int, Tk: int, window: int, chunk_bytes: int = BAND_BYTES) -> int:
    """Query rows per chunk: on a sliding layer max(W, MIN_ROWS) (its keys: at most rows + W - 1), on a full
    layer as many as keep (nq, rows, Tk) float32 scores within chunk_bytes; at least 1, at most T."""
    if window > 0:
        rows = max(window, MIN_ROWS)
        while rows > 1 and 4 * num_heads * rows * (rows + window - 1) > chunk_bytes:
            rows //= 2
    else:
        rows = chunk_bytes // (4 * num_heads * max(Tk, 1))
    return int(min(max(rows, 1), T))


def banded_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, query_positions: np.ndarray,
                     key_positions: np.ndarray, window: int, sinks: np.ndarray,
                     chunk_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """attention.attend(sink_softmax(attention_scores(q, k, attention_mask(...)), sinks), v), chunk by chunk over
    only the keys each chunk may see:
        q (T, nq, d), k / v (Tk, nkv, d), positions (T,), (Tk,) ascending -> z (T, nq d), sink_mass (nq, T)"""
    T, num_heads, head_dim = q.shape
    num_kv, group = k.shape[1], num_heads // k.shape[1]  # query head h reads key/value head h // group
    q_scaled = q.transpose(1, 0, 2) / np.float32(np.sqrt(head_dim))  # (nq, T, d): q / sqrt(d), contiguous
    q_grouped = q_scaled.reshape(num_kv, group, T, head_dim)  # (nkv, g, T, d)
    k_per_kv = np.ascontiguousarray(k.transpose(1, 2, 0))  # (nkv, d, Tk)
    v_per_kv = np.ascontiguousarray(v.transpose(1, 0, 2))  # (nkv, Tk, d)
    sink_logits = sinks.astype(np.float32).reshape(num_kv, group, 1)  # (nkv, g, 1)
    z = np.empty((T, num_heads * head_dim), dtype=np.float32)  # (T, nq d)
    sink_mass = np.empty((num_heads, T), dtype=np.float32)  # (nq, T)
    rows = chunk_rows(num_heads, T, len(key_positions), window, chunk_bytes or BAND_BYTES)
    with one_blas_thread():  # small products (d-wide): BLAS threads only wait for each other (see fast/mxfp4.py)
        for start in range(0, T, rows):
            _chunk(slice(start, min(start + rows, T)), query_positions, key_positions, window, q_grouped, k_per_kv,
                   v_per_kv, sink_logits, z, sink_mass)
    return z, sink_mass


def _chunk(chunk: slice, query_positions, key_positions, window, q_grouped, k_per_kv, v_per_kv, sink_logits,
           z, sink_mass) -> None:
    """One chunk of query rows of banded_attention, written into z and sink_mass."""
    num_kv, group, _, head_dim = q_grouped.shape
    num_heads = num_kv * group
    t, positions = chunk.stop - chunk.start, query_positions[chunk]
    lo, hi = key_range(positions, key_positions, window)
    q_chunk = q_grouped[:, :, chunk].reshape(num_kv, group * t, head_dim)  # (nkv, g t, d)
    scores = (q_chunk @ k_per_kv[:, :, lo:hi]).reshape(num_kv, group, t, hi - lo)  # (nkv, g, t, band)
    for edge in masked_edges(positions, key_positions[lo:hi], window):  # columns some rows may not see
        hidden = ~attention_mask(positions, key_positions[lo:hi][edge], window)  # (t, width): the definition's mask
        scores[:, :, :, edge][:, :, hidden] = -np.inf
    row_max = np.maximum(scores.max(axis=-1), sink_logits)  # (nkv, g, t)
    scores -= row_max[..., None]
    np.exp(scores, out=scores)  # exp(s - max), 0 where masked
    exp_sink = np.exp(sink_logits - row_max)  # (nkv, g, t)
    denominator = scores.sum(axis=-1) + exp_sink  # (nkv, g, t)
    weighted = scores.reshape(num_kv, group * t, hi - lo) @ v_per_kv[:, lo:hi]  # (nkv, g t, d)
    weighted = weighted.reshape(num_kv, group, t, head_dim) / denominator[..., None]  # (nkv, g, t, d)
    z[chunk] = weighted.reshape(num_heads, t, head_dim).transpose(1, 0, 2).reshape(t, -1)
    sink_mass[:, chunk] = (exp_sink / denominator).reshape(num_heads, t)
