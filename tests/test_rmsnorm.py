"""RMSNorm: y = x / sqrt(mean(x^2) + 1e-5) * g. Expected values come from that formula in float64."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigptoss.rmsnorm import rms_norm

vectors = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(2, 48)),
                     elements=st.floats(-100, 100, width=32))


@given(x=vectors, data=st.data())
def test_matches_the_formula(x, data):
    g = data.draw(hnp.arrays(np.float32, x.shape[-1:], elements=st.floats(-3, 3, width=32)))
    x64 = x.astype(np.float64)
    expected = x64 / np.sqrt(np.mean(x64 ** 2, axis=-1, keepdims=True) + 1e-5) * g
    np.testing.assert_allclose(rms_norm(x, g), expected, rtol=1e-5, atol=1e-5)


@given(x=vectors, a=st.floats(0.5, 100))
def test_invariant_to_positive_scaling(x, a):
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1))
    assume(np.all(rms * min(a, 1.0) > 1.0))  # mean(x^2) >> eps = 1e-5, so eps shifts the result by < 1e-5
    g = np.ones(x.shape[-1], dtype=np.float32)
    np.testing.assert_allclose(rms_norm(np.float32(a) * x, g), rms_norm(x, g), rtol=1e-4, atol=1e-4)


@given(x=vectors)
def test_unit_gain_gives_unit_rms(x):
    assume(np.all(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1)) > 0.1))
    y = rms_norm(x, np.ones(x.shape[-1], dtype=np.float32))
    np.testing.assert_allclose(np.sqrt(np.mean(y.astype(np.float64) ** 2, axis=-1)), 1.0, rtol=1e-3)


def test_does_not_centre():
    # A constant vector: LayerNorm would return zeros; RMSNorm returns ones (c / |c|).
    y = rms_norm(np.full((1, 8), 3.0, dtype=np.float32), np.ones(8, dtype=np.float32))
    np.testing.assert_allclose(y, 1.0, rtol=1e-5)


def test_gain_used_as_stored_not_one_plus_gain():
    y = rms_norm(np.ones((1, 4), dtype=np.float32), np.full(4, 2.0, dtype=np.float32))
    np.testing.assert_allclose(y, 2.0 / np.sqrt(1 + 1e-5), rtol=1e-6)
