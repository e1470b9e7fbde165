"""Grouped-query attention with a causal (optionally sliding) mask and a learned per-head sink.

For T queries at positions i and Tk keys at positions j (Tk = T without a cache), per query head h:

    qkv          = t W_qkv^T + b_qkv                      rows [0, nq d) are q, then nkv d of k, then v
    kv_head(h)   = floor(h / (nq / nkv))                   grouped-query: nq/nkv query heads share a k/v head
    s_hij        = q_hi . k_kv(h)j / sqrt(d)               where allowed(i, j), else -inf
    allowed(i,j) = j <= i  and (on sliding layers) i - j < W          (W keys, the query's own included)
    p_hij        = exp(s_hij) / (sum_j' exp(s_hij') + exp(S_h))        S_h: the head's sink logit
    sink_mass_hi = exp(S_h) / (same denominator) = 1 - sum_j p_hij
    z_hi         = sum_j p_hij v_kv(h)j ;  out = concat_h(z_h) W_out^T + b_out

The sink joins the softmax denominator only: it is not scaled by 1/sqrt(d), never masked, carries no value.
RoPE is applied to q and k by the caller (see `rope.py`) before `attention_scores`.
What it does not do: the residual add or the norm (the block does), or keep a KV cache.
"""

import functools

import numpy as np


def split_qkv(qkv: np.ndarray, num_heads: int, num_kv_heads: int, head_dim: int):
    """(T, (nq + 2 nkv) d) -> q (T, nq, d), k (T, nkv, d), v (T, nkv, d)."""
    T = qkv.shape[0]
    q_end, k_end = num_heads * head_dim, (num_heads + num_kv_heads) * head_dim
    q = qkv[:, :q_end].reshape(T, num_heads, head_dim)  # (T, nq, d)
    k = qkv[:, q_end:k_end].reshape(T, num_kv_heads, head_dim)  # (T, nkv, d)
    v = qkv[:, k_end:].reshape(T, num_kv_heads, head_dim)  # (T, nkv, d)
    return q, k, v


@functools.cache  # two calls per layer per pass, always the same few shapes
def kv_head_of(num_heads: int, num_kv_heads: int) -> np.ndarray:
    """Which key/value head each query head reads: (nq,) ints, floor(h / (nq / nkv)) (read-only)."""
    heads = np.arange(num_heads) // (num_heads // num_kv_heads)
    heads.flags.writeable = False
    return heads


def attention_mask(query_positions: np.ndarray, key_positions: np.ndarray, window: int) -> np.ndarray:
    """allowed(i, j) = j <= i and (window == 0 or i - j < window):  (T,), (Tk,) -> (T, Tk) bool."""
    distance = query_positions[:, None] - key_positions[None, :]  # (T, Tk) i - j
    allowed = distance >= 0
    if window > 0:
        allowed &= distance < window
    return allowed


def attention_scores(q: np.ndarray, k: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """s_hij = q_hi . k_kv(h)j / sqrt(d), -inf where masked:  q (T, nq, d), k (Tk, nkv, d) -> (nq, T, Tk)."""
    num_heads, head_dim = q.shape[1], q.shape[2]
    k_per_head = k[:, kv_head_of(num_heads, k.shape[1]), :]  # (Tk, nq, d)
    # scores[h, i, j] = sum_d q[i, h, d] k[j, h, d], as one batched matrix product per head
    scores = q.transpose(1, 0, 2) @ k_per_head.transpose(1, 2, 0) / np.float32(np.sqrt(head_dim))  # (nq, T, Tk)
    return np.where(mask[None, :, :], scores, np.float32(-np.inf)).astype(np.float32)


def sink_softmax(scores: np.ndarray, sinks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p_hij = exp(s_hij) / (sum_j exp(s_hij) + exp(S_h)):  (nq, T, Tk), (nq,) -> probs (nq, T, Tk), sink_mass (nq, T).

    Each row of probs sums to 1 - sink_mass. Computed stably by subtracting max(row max, S_h).
    """
    sink_logits = sinks[:, None]  # (nq, 1): the same sink for every query of a head
    row_max = np.maximum(scores.max(axis=-1), sink_logits)  # (nq, T)
    exp_scores = np.exp(scores - row_max[..., None])  # (nq, T, Tk), 0 where masked
    exp_sink = np.exp(sink_logits - row_max)  # (nq, T)
    denominator = exp_scores.sum(axis=-1) + exp_sink  # (nq, T)
    return exp_scores / denominator[..., None], exp_sink / denominator


def attend(probs: np.ndarray, v: np.ndarray) -> np.ndarray:
    """z_hi = sum_j p_hij v_kv(h)j, heads concatenated:  (nq, T, Tk), v (Tk, nkv, d) -> (T, nq d)."""
    num_heads, T = probs.shape[0], probs.shape[1]
    v_per_head = v[:, kv_head_of(num_heads, v.shape[1]), :]  # (Tk, nq, d)
    z = probs @ v_per_head.transpose(1, 0, 2)  # (nq, T, d): z[h, i] = sum_j p[h, i, j] v[j, h]
    return z.transpose(1, 0, 2).reshape(T, -1)  # (T, nq d)


# -- long prompts: fast/attention.py computes the same, a chunk of query rows against its band of keys at a time --

CHUNK_BYTES = 256 * 2**20  # scores up to this size are computed whole (this readable path); larger, by fast/attention


def whole_attention_bytes(num_heads: int, T: int, Tk: int) -> int:
    """Peak bytes of the readable path's mask, scores, exponentials and probabilities for (nq, T, Tk)."""
    return T * Tk + 3 * 4 * num_heads * T * Tk
