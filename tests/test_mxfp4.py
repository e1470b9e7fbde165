"""MXFP4: each expected value is derived from the OCP spec by hand, one element at a time, in Python floats.

Spec (facts sheet): byte j of a block holds element 2j in its LOW nibble and 2j+1 in its HIGH nibble; code c
means FP4_SPEC[c]; scale byte e means 2^(e - 127); e = 255 makes the whole block NaN.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigptoss.mxfp4 import decode_mxfp4, encode_mxfp4

# E2M1 written out from its definition: sign bit 3, exponent bits 2-1 (bias 1), mantissa bit 0.
def fp4_from_bits(code: int) -> float:
    sign = -1.0 if code & 8 else 1.0
    exponent, mantissa = (code >> 1) & 3, code & 1
    if exponent == 0:
        return sign * 0.5 * mantissa  # subnormal: 0 or 0.5
    return sign * 2.0 ** (exponent - 1) * (1 + 0.5 * mantissa)


FP4_SPEC = [fp4_from_bits(c) for c in range(16)]


def decode_by_hand(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """One row (G, 16) + (G,) -> (G * 32,), element by element."""
    out = []
    for block, e in zip(blocks, scales):
        scale = math.nan if e == 255 else 2.0 ** (int(e) - 127)
        for byte in block:
            out += [FP4_SPEC[byte & 0x0F] * scale, FP4_SPEC[byte >> 4] * scale]
    return np.array(out, dtype=np.float64)


def test_table_is_the_e2m1_definition():
    assert FP4_SPEC == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def test_every_code_at_unit_scale():
    # byte j = code (2j mod 16) | code (2j+1 mod 16) << 4, so the 32 elements are codes 0..15 twice, in order.
    block = np.array([[(2 * j) % 16 | ((2 * j + 1) % 16) << 4 for j in range(16)]], dtype=np.uint8)
    decoded = decode_mxfp4(block, np.array([127], dtype=np.uint8))
    np.testing.assert_array_equal(decoded, np.array(FP4_SPEC * 2, dtype=np.float32))
    assert np.signbit(decoded[8]) and not np.signbit(decoded[0])  # -0.0 keeps its sign


def test_nibble_order_low_first():
    # 0x71: low nibble 1 (0.5), high nibble 7 (6.0). Swapped order would give [6.0, 0.5].
    block = np.zeros((1, 16), dtype=np.uint8)
    block[0, 0] = 0x71
    decoded = decode_mxfp4(block, np.array([127], dtype=np.uint8))
    assert decoded[0] == 0.5 and decoded[1] == 6.0


@pytest.mark.parametrize("e, scale", [(127, 1.0), (128, 2.0), (126, 0.5), (0, 2.0 ** -127), (254, 2.0 ** 127)])
def test_scale_bias(e, scale):
    block = np.full((1, 16), 0x22, dtype=np.uint8)  # every element code 2 = 1.0
    decoded = decode_mxfp4(block, np.array([e], dtype=np.uint8))
    assert np.all(decoded.astype(np.float64) == scale)


def test_scale_255_is_nan_for_the_whole_block():
    blocks = np.zeros((2, 16), dtype=np.uint8)  # zeros too: NaN, not 0 * inf
    decoded = decode_mxfp4(blocks, np.array([255, 127], dtype=np.uint8))
    assert np.all(np.isnan(decoded[:32])) and np.all(decoded[32:] == 0)


@given(blocks=hnp.arrays(np.uint8, st.tuples(st.integers(1, 4), st.just(16))),
       data=st.data())
def test_decode_matches_the_spec_element_by_element(blocks, data):
    scales = data.draw(hnp.arrays(np.uint8, (blocks.shape[0],)))
    with np.errstate(over="ignore"):  # 4 * 2^127 and up exceed float32 (and bf16): inf, as in the reference
        expected = decode_by_hand(blocks, scales).astype(np.float32)
    decoded = decode_mxfp4(blocks, scales)
    assert decoded.dtype == np.float32 and decoded.shape == (blocks.shape[0] * 32,)
    np.testing.assert_array_equal(decoded, expected)  # exact, NaN where e = 255


@given(blocks=hnp.arrays(np.uint8, (3, 2, 16)), scales=hnp.arrays(np.uint8, (3, 2), elements=st.integers(100, 150)))
def test_leading_axes_are_kept(blocks, scales):
    decoded = decode_mxfp4(blocks, scales)
    assert decoded.shape == (3, 64)
    for row in range(3):
        np.testing.assert_array_equal(decoded[row], decode_by_hand(blocks[row], scales[row]))


@given(blocks=hnp.arrays(np.uint8, (2, 16)), scales=hnp.arrays(np.uint8, (2,), elements=st.integers(0, 252)))
def test_encoding_representable_weights_returns_them(blocks, scales):
    weights = decode_mxfp4(blocks, scales)
    again = decode_mxfp4(*encode_mxfp4(weights))
    np.testing.assert_array_equal(again, weights)


finite_weights = hnp.arrays(np.float32, (2, 64), elements=st.floats(-1e3, 1e3, width=32))


@given(weights=finite_weights)
def test_encoder_picks_the_nearest_value_at_its_scale(weights):
    blocks, scales = encode_mxfp4(weights)
    decoded = decode_mxfp4(blocks, scales).astype(np.float64)
    scale = (2.0 ** (scales.astype(np.float64) - 127)).repeat(32, axis=-1)
    grid = np.array(FP4_SPEC)[None, None, :] * scale[..., None]  # every value the block could hold
    best = np.abs(grid - weights.astype(np.float64)[..., None]).min(axis=-1)
    np.testing.assert_allclose(np.abs(decoded - weights), best, rtol=0, atol=1e-30)
    # and the scale is the smallest that does not clip the block's largest magnitude
    amax = np.abs(weights.astype(np.float64)).reshape(2, 2, 32).max(axis=-1)
    s = 2.0 ** (scales.astype(np.float64) - 127)
    assert np.all((amax <= 6 * s) | (scales == 254))
    assert np.all((amax > 3 * s) | (scales == 0))
