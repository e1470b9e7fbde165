"""Router: top-k of the logits, then softmax over the chosen k only."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigptoss.router import route

logit_rows = hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(2, 12)),
                        elements=st.integers(-200, 200).map(lambda n: n / 10), unique=True)  # distinct by 0.1


@given(logits=logit_rows, data=st.data())
def test_picks_the_k_largest_and_weights_them_by_softmax_over_k(logits, data):
    k = data.draw(st.integers(1, logits.shape[1]))
    ids, weights = route(logits, k)
    for row, chosen, w in zip(logits, ids, weights):
        assert sorted(chosen.tolist()) == sorted(np.argsort(row)[::-1][:k].tolist())
        assert list(row[chosen]) == sorted(row[chosen], reverse=True)  # largest first
        exp = np.exp(row[chosen].astype(np.float64) - row.max())
        np.testing.assert_allclose(w, exp / exp.sum(), rtol=1e-5)  # over the k chosen, not all E
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


@given(logits=logit_rows, shift=st.floats(-50, 50, width=32))
def test_adding_a_constant_changes_nothing(logits, shift):
    k = min(2, logits.shape[1])
    ids, weights = route(logits, k)
    shifted_ids, shifted_weights = route(logits.astype(np.float64) + shift, k)
    np.testing.assert_array_equal(ids, shifted_ids)
    np.testing.assert_allclose(weights, shifted_weights, rtol=1e-4)


def test_softmax_over_all_experts_first_would_differ():
    logits = np.array([[3.0, 2.0, 1.0, 0.0]], dtype=np.float32)
    _, weights = route(logits, 2)
    np.testing.assert_allclose(weights[0], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))], rtol=1e-6)
