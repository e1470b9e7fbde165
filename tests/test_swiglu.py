"""Clamped SwiGLU: interleaved halves, gate clamped above, linear clamped both ways, then (lin + 1)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigptoss.swiglu import clamped_counts, swiglu

pre_activations = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 8).map(lambda n: 2 * n)),
                             elements=st.floats(-30, 30, width=32))


def swiglu_by_hand(h, limit=7.0, alpha=1.702):
    out = np.zeros(h.shape[:-1] + (h.shape[-1] // 2,))
    for index in np.ndindex(out.shape):
        *lead, i = index
        glu, lin = float(h[(*lead, 2 * i)]), float(h[(*lead, 2 * i + 1)])
        glu, lin = min(glu, limit), min(max(lin, -limit), limit)
        out[index] = glu / (1 + np.exp(-alpha * glu)) * (lin + 1)
    return out


@given(h=pre_activations)
def test_matches_the_formula(h):
    np.testing.assert_allclose(swiglu(h, 7.0), swiglu_by_hand(h), rtol=1e-5, atol=1e-5)


@given(h=pre_activations, extra=st.floats(0, 100, width=32))
def test_values_beyond_the_limit_act_as_the_limit(h, extra):
    beyond = h.copy()
    beyond[..., 0::2] = np.where(h[..., 0::2] >= 7, h[..., 0::2] + extra, h[..., 0::2])  # gate: above only
    beyond[..., 1::2] = np.where(np.abs(h[..., 1::2]) >= 7, h[..., 1::2] + np.sign(h[..., 1::2]) * extra,
                                 h[..., 1::2])
    np.testing.assert_array_equal(swiglu(beyond, 7.0), swiglu(h, 7.0))


def test_gate_is_not_clamped_from_below():
    h = np.array([-9.0, 0.0], dtype=np.float32)  # glu = -9: -9 sigmoid(-15.3) (1 + 0), not clamped to -7
    assert swiglu(h, 7.0)[0] == pytest.approx(-9.0 / (1 + np.exp(1.702 * 9.0)), rel=1e-5)


def test_interleaved_not_split_and_the_plus_one():
    h = np.array([1.0, 0.0, 2.0, 3.0], dtype=np.float32)  # (glu, lin) pairs: (1, 0) and (2, 3)
    sig = lambda x: 1 / (1 + np.exp(-1.702 * x))  # noqa: E731
    np.testing.assert_allclose(swiglu(h, 7.0), [1 * sig(1) * 1, 2 * sig(2) * 4], rtol=1e-6)


def test_clamped_counts():
    h = np.array([8.0, 0.0, 1.0, -7.5, -9.0, 7.5], dtype=np.float32)
    assert clamped_counts(h, 7.0) == (1, 2)
