"""The mixture-of-experts router: pick each token's top-k experts, then softmax over those k only.

    g              = t W_gate^T + b_gate                         (T, E) router logits
    expert_ids     = the k largest entries of each row of g      (T, k), largest first; ties: lower id first
    expert_weights = softmax(g[expert_ids]) over the k only      (T, k), each row sums to 1

A softmax over all E logits before the top-k would give weights that do not sum to 1 (and different
values); adding a constant to a row of g changes nothing. What it does not do: run the experts (`moe.py`).
"""

import numpy as np


def router_logits(t: np.ndarray, gate_weight: np.ndarray, gate_bias: np.ndarray) -> np.ndarray:
    """g = t W_gate^T + b_gate:  (T, H), (E, H), (E,) -> (T, E)."""
    return t @ gate_weight.T + gate_bias


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest logits of each row, largest first:  (T, E) -> ids (T, k) int64, values (T, k)."""
    expert_ids = np.argsort(-logits, axis=-1, kind="stable")[:, :k]  # (T, k)
    return expert_ids, np.take_along_axis(logits, expert_ids, axis=-1)


def softmax(x: np.ndarray) -> np.ndarray:
    """softmax over the last axis, shifted by the row max for stability."""
    exp = np.exp(x - x.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def route(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k, then softmax over the chosen k:  (T, E) -> expert_ids (T, k), expert_weights (T, k)."""
    expert_ids, chosen_logits = top_k(logits, k)
    return expert_ids, softmax(chosen_logits)
