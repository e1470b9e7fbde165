"""RoPE with YaRN. Expected values: rotation algebra (norms, relative positions) and the facts sheet's numbers."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigptoss.config import GPT_OSS_20B, TINY, yarn_ramp_bounds
from minigptoss.rope import apply_rope, base_frequencies, concentration, inverse_frequencies, rope_tables

CONFIGS = {"20b": GPT_OSS_20B, "tiny": TINY, "no-yarn": dataclasses.replace(TINY, rope_scaling_factor=1.0)}
head_vectors = hnp.arrays(np.float32, (2, 64), elements=st.floats(-10, 10, width=32))


def test_ramp_bounds_for_head_dim_64():
    low, high = yarn_ramp_bounds(GPT_OSS_20B)
    assert round(low, 4) == 8.0928 and round(high, 4) == 17.3980


def test_concentration():
    assert concentration(GPT_OSS_20B) == pytest.approx(1 + 0.1 * math.log(32))
    assert concentration(GPT_OSS_20B) ** 2 == pytest.approx(1.813, abs=1e-3)
    assert concentration(CONFIGS["no-yarn"]) == 1.0


def test_inverse_frequencies_by_parts():
    f = 150000.0 ** (np.arange(0, 64, 2) / 64)
    inv = inverse_frequencies(GPT_OSS_20B).astype(np.float64)
    # dims 0..8 (< low = 8.09) keep 1/f; dims 18.. (> high = 17.40) are divided by s = 32; between, a blend.
    np.testing.assert_allclose(inv[:9], 1 / f[:9], rtol=1e-6)
    np.testing.assert_allclose(inv[18:], 1 / (32 * f[18:]), rtol=1e-6)
    r = (np.arange(9, 18) - 8.0928) / (17.3980 - 8.0928)
    np.testing.assert_allclose(inv[9:18], (1 - r) / f[9:18] + r / (32 * f[9:18]), rtol=1e-4)


def test_no_scaling_is_plain_rope():
    c = CONFIGS["no-yarn"]
    np.testing.assert_allclose(inverse_frequencies(c), 1 / base_frequencies(c), rtol=1e-7)


@pytest.mark.parametrize("name", CONFIGS)
@given(x=head_vectors, position=st.integers(0, 200_000))
def test_rotation_preserves_norm_times_concentration(name, x, position):
    config = CONFIGS[name]
    x = x[:, : config.head_dim][None]  # (1, heads, d)
    cos, sin = rope_tables(config, np.array([position]))
    rotated = apply_rope(x, cos, sin)
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=-1), concentration(config) * np.linalg.norm(x, axis=-1),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", CONFIGS)
@given(q=head_vectors, m=st.integers(0, 3000), n=st.integers(0, 3000), shift=st.integers(0, 3000))
def test_scores_depend_only_on_relative_position(name, q, m, n, shift):
    config = CONFIGS[name]
    q, k = q[0, : config.head_dim], q[1, : config.head_dim]
    cos, sin = rope_tables(config, np.array([m, n, m + shift, n + shift]))
    rot = lambda v, i: apply_rope(v[None, None], cos[i:i + 1], sin[i:i + 1])[0, 0].astype(np.float64)  # noqa: E731
    scale = np.linalg.norm(q) * np.linalg.norm(k) + 1e-6
    assert abs(rot(q, 0) @ rot(k, 1) - rot(q, 2) @ rot(k, 3)) / scale < 2e-3
    if m == n:  # same position: the plain dot product, times c^2
        assert abs(rot(q, 0) @ rot(k, 1) - concentration(config) ** 2 * (q @ k)) / scale < 1e-4


def test_half_split_pairs_not_interleaved():
    # A unit vector in dim 1 rotates into dim 1 + d/2 (half-split), not into dim 0 (interleaved pairs).
    config = CONFIGS["no-yarn"]
    d = config.head_dim
    x = np.zeros((1, 1, d), dtype=np.float32)
    x[0, 0, 1] = 1.0
    cos, sin = rope_tables(config, np.array([1]))
    y = apply_rope(x, cos, sin)[0, 0]
    angle = inverse_frequencies(config)[1]
    assert y[1] == pytest.approx(math.cos(angle), abs=1e-6)
    assert y[1 + d // 2] == pytest.approx(math.sin(angle), abs=1e-6)
    assert np.count_nonzero(np.abs(y) > 1e-7) == 2


def test_tables_for_an_offset_equal_the_rows_of_a_longer_table():
    full_cos, full_sin = rope_tables(TINY, np.arange(20))
    cos, sin = rope_tables(TINY, np.arange(12, 20))
    np.testing.assert_array_equal(cos, full_cos[12:])
    np.testing.assert_array_equal(sin, full_sin[12:])
