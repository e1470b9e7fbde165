"""gpt-oss's clamped SwiGLU: a gated linear unit whose gate is Swish (x * sigmoid(alpha x)).

The expert's first projection h (2I values) holds the two halves INTERLEAVED, not split:

    glu = h[0::2]                 lin = h[1::2]                          (..., I) each
    glu = min(glu, limit)         lin = clip(lin, -limit, limit)         limit = swiglu_limit (7.0)
    u   = glu * sigmoid(alpha * glu) * (lin + 1)                         alpha = 1.702

The gate is clamped from above only; the linear half from both sides, then shifted by +1.
What it does not do: the projections around it (`moe.py`).
"""

import numpy as np

from .config import SWIGLU_ALPHA


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), float32 (exp(-x) may overflow to inf for very negative x, giving exactly 0)."""
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def swiglu(h: np.ndarray, limit: float, alpha: float = SWIGLU_ALPHA) -> np.ndarray:
    """u = min(glu, L) sigmoid(alpha min(glu, L)) (clip(lin, -L, L) + 1):  (..., 2I) -> (..., I)."""
    glu, lin = h[..., 0::2], h[..., 1::2]  # (..., I) each, interleaved
    glu = np.minimum(glu, np.float32(limit))
    lin = np.clip(lin, np.float32(-limit), np.float32(limit))
    return glu * sigmoid(np.float32(alpha) * glu) * (lin + np.float32(1.0))  # (..., I)


def clamped_counts(h: np.ndarray, limit: float) -> tuple[int, int]:
    """How many gate values exceeded the limit, and how many linear values left [-limit, limit]."""
    glu, lin = h[..., 0::2], h[..., 1::2]
    return int(np.count_nonzero(glu > limit)), int(np.count_nonzero(np.abs(lin) > limit))
