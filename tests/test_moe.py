"""Grouped experts equal running every expert on every token and keeping the chosen ones."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minigptoss.moe import DenseExperts, MXFP4Experts, combine, expert_load, grouped_linear
from minigptoss.mxfp4 import decode_mxfp4, encode_mxfp4
from minigptoss.router import route
from minigptoss.swiglu import swiglu


class CountingExperts(MXFP4Experts):
    """Counts how often each expert's weights are decoded."""

    def __init__(self, *args):
        super().__init__(*args)
        self.decoded = []

    def matrix(self, e):
        self.decoded.append(e)
        return super().matrix(e)


def random_experts(rng, E, out, inp):
    blocks, scales = encode_mxfp4(rng.standard_normal((E, out, inp)).astype(np.float32) * 0.3)
    return CountingExperts(blocks, scales, rng.standard_normal((E, out)).astype(np.float32))


@given(T=st.integers(1, 9), E=st.integers(1, 6), data=st.data(), seed=st.integers(0, 2**16))
def test_grouped_equals_dense_then_masked(T, E, data, seed):
    k = data.draw(st.integers(1, E))
    rng = np.random.default_rng(seed)
    H, I = 32, 32
    x = rng.standard_normal((T, H)).astype(np.float32)
    mlp1, mlp2 = random_experts(rng, E, 2 * I, H), random_experts(rng, E, H, I)
    expert_ids, expert_weights = route(rng.standard_normal((T, E)).astype(np.float32), k)

    h = grouped_linear(np.broadcast_to(x[:, None], (T, k, H)), expert_ids, mlp1)
    out = combine(grouped_linear(swiglu(h, 7.0), expert_ids, mlp2), expert_weights)

    # Dense: every expert on every token, then a (T, E) gate that is zero for experts not chosen.
    W1 = decode_mxfp4(mlp1.blocks, mlp1.scales)  # (E, 2I, H)
    W2 = decode_mxfp4(mlp2.blocks, mlp2.scales)  # (E, H, I)
    all_h = np.einsum("eoh,th->teo", W1, x) + mlp1.bias  # (T, E, 2I)
    all_y = np.einsum("ehi,tei->teh", W2, swiglu(all_h, 7.0)) + mlp2.bias  # (T, E, H)
    gate = np.zeros((T, E), dtype=np.float32)
    np.put_along_axis(gate, expert_ids, expert_weights, axis=1)
    np.testing.assert_allclose(out, np.einsum("te,teh->th", gate, all_y), rtol=1e-4, atol=1e-4)

    # each chosen expert decoded exactly once per call, no other expert touched
    chosen = sorted(set(expert_ids.ravel().tolist()))
    assert sorted(mlp1.decoded) == chosen and sorted(mlp2.decoded) == chosen


def test_expert_load_counts_token_slots():
    assert expert_load(np.array([[0, 2], [2, 1], [2, 0]]), 4).tolist() == [2, 1, 3, 0]


def test_dense_and_mxfp4_experts_agree():
    rng = np.random.default_rng(0)
    experts = random_experts(rng, 3, 64, 32)
    dense = DenseExperts(decode_mxfp4(experts.blocks, experts.scales), experts.bias)
    x = rng.standard_normal((5, 32)).astype(np.float32)
    for e in range(3):
        np.testing.assert_array_equal(dense.apply(e, x), experts.apply(e, x))
