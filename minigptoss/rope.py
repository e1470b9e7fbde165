"""Rotary position embedding (RoPE) with YaRN's "NTK by parts" frequency stretch and concentration.

Each query/key head vector of size d is split into halves (x1, x2) = (x[:d/2], x[d/2:]) ("NeoX" half-split,
not interleaved pairs), and pair i is rotated by the angle  position * inv_freq_i:

    x1' = x1 cos - x2 sin          x2' = x2 cos + x1 sin          (cos, sin already scaled by c)

Frequencies, for i = 0 .. d/2 - 1, with s = rope_scaling_factor:
    f_i        = theta^(2i/d)
    r_i        = clip((i - low) / (high - low), 0, 1)           (low, high: see config.yarn_ramp_bounds)
    inv_freq_i = (1 - r_i) / f_i + r_i / (s f_i)                fast dims (i < low) kept, slow dims (i > high) / s
    c          = 1 + 0.1 ln(s)                                   YaRN's concentration; c = 1, inv_freq = 1/f if s <= 1

c multiplies both cos and sin, so every attention logit q.k carries a factor c^2 (1.813 for s = 32).
Angles and tables are float32, as in the reference. What it does not do: decide which tensors get rotated
(queries and keys, never values; that is attention's business).
"""

import math

import numpy as np

from .config import Config, yarn_ramp_bounds


def base_frequencies(config: Config) -> np.ndarray:
    """f_i = theta^(2i/d) for i = 0 .. d/2 - 1:  -> (d/2,) float32."""
    exponents = np.arange(0, config.head_dim, 2, dtype=np.float32) / np.float32(config.head_dim)  # (d/2,)
    return np.power(np.float32(config.rope_theta), exponents)  # (d/2,)


def yarn_ramp(config: Config, bounds=None) -> np.ndarray:
    """r_i = clip((i - low) / (high - low), 0, 1): 0 where YaRN keeps a dim, 1 where it stretches it fully.
    bounds: (low, high), by default config.yarn_ramp_bounds (the forward pass passes its recorded rope.yarn_bounds)."""
    low, high = yarn_ramp_bounds(config) if bounds is None else bounds
    dims = np.arange(config.head_dim // 2, dtype=np.float32)  # (d/2,)
    return np.clip((dims - np.float32(low)) / np.float32(high - low), 0, 1)  # (d/2,)


def inverse_frequencies(config: Config, bounds=None) -> np.ndarray:
    """inv_freq_i = (1 - r_i) / f_i + r_i / (s f_i)  (plain 1/f_i when s <= 1):  -> (d/2,) float32.
    bounds: the ramp's (low, high), see yarn_ramp."""
    f = base_frequencies(config)
    s = config.rope_scaling_factor
    if s <= 1.0:
        return (1.0 / f).astype(np.float32)
    r = yarn_ramp(config, bounds)
    return ((1 - r) / f + r / (np.float32(s) * f)).astype(np.float32)


def concentration(config: Config) -> float:
    """c = 1 + 0.1 ln(s) for s > 1, else 1: YaRN's attention temperature, applied to cos and sin."""
    s = config.rope_scaling_factor
    return 0.1 * math.log(s) + 1.0 if s > 1.0 else 1.0


def rope_tables(config: Config, positions: np.ndarray, bounds=None,
                inv_freq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of position * inv_freq, both times c:  positions (T,) -> cos (T, d/2), sin (T, d/2) float32.

    Any positions work (a KV cache passes offset .. offset + T - 1). bounds: the ramp's (low, high), see yarn_ramp.
    inv_freq: inverse_frequencies(config, bounds), if the caller has it already.
    """
    if inv_freq is None:
        inv_freq = inverse_frequencies(config, bounds)  # (d/2,)
    angles = np.asarray(positions, dtype=np.float32)[:, None] * inv_freq[None, :]  # (T, d/2)
    c = np.float32(concentration(config))
    return np.cos(angles) * c, np.sin(angles) * c


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate the half-split pairs (x_i, x_{i+d/2}):  x (T, heads, d), cos/sin (T, d/2) -> (T, heads, d)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (T, heads, d/2) each
    cos, sin = cos[:, None, :], sin[:, None, :]  # (T, 1, d/2)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # (T, heads, d)
