"""RMSNorm: rescale each vector to unit root-mean-square, then by a learned gain. No centring, no bias.

    y = x / sqrt(mean(x^2) + eps) * g          x: (..., H)   g: (H,)   y: (..., H)

Unlike GPT-2's LayerNorm it does not subtract the mean and has no bias; gpt-oss's gain is used as stored
(no "1 + g"). eps = 1e-5. What it does not do: hold the gain (the model's weights do).
"""

import numpy as np

from .config import RMS_NORM_EPS


def rms(x: np.ndarray) -> np.ndarray:
    """Root-mean-square over the last axis: (..., H) -> (..., 1)."""
    return np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + np.float32(RMS_NORM_EPS))


def rms_norm(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """y = x / sqrt(mean(x^2) + eps) * g:  (..., H), (H,) -> (..., H) float32."""
    return (x / rms(x) * gain).astype(np.float32)
