"""MXFP4: the 4.25-bit format that stores gpt-oss's expert weights (OCP Microscaling, FP4 E2M1 + E8M0 scale).

A weight row of length K is cut into K/32 blocks along the contraction axis. Each block stores

    16 bytes  `blocks[..., g, :]`: 32 four-bit codes, byte j = element 2j (LOW nibble) | element 2j+1 (HIGH nibble)
     1 byte   `scales[..., g]`:    an exponent e, the block's scale is 2^(e - 127)

and decodes to   w[..., 32 g + i] = FP4_VALUES[code_i] * 2^(e - 127)        (e = 255 is NaN for the block)

so 32 weights cost 16 * 8 + 8 = 136 bits, 4.25 bits per weight.

What it does: decode (blocks, scales) to float32, and encode float32 to the nearest MXFP4 (used to write
random test checkpoints). What it does not do: any matrix product (see `moe.py`) or file I/O.
"""

import numpy as np

BLOCK_SIZE = 32  # weights per block
BYTES_PER_BLOCK = 16  # two 4-bit codes per byte
SCALE_BIAS = 127  # E8M0: scale byte e means 2^(e - 127)
NAN_SCALE = 255  # E8M0 reserves 0xFF for NaN

# code (0..15) -> value. Bit 3 is the sign, bits 2..1 the exponent, bit 0 the mantissa (E2M1).
FP4_VALUES = np.array(
    [+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0,
     -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32)


def unpack_nibbles(blocks: np.ndarray) -> np.ndarray:
    """(..., G, 16) uint8 -> (..., G, 32) uint8 codes, element 2j from the low nibble of byte j."""
    low = blocks & 0x0F  # (..., G, 16) elements 0, 2, 4, ...
    high = blocks >> 4  # (..., G, 16) elements 1, 3, 5, ...
    return np.stack([low, high], axis=-1).reshape(*blocks.shape[:-1], BLOCK_SIZE)  # (..., G, 32)


def scale_values(scales: np.ndarray) -> np.ndarray:
    """(..., G) uint8 E8M0 exponents -> (..., G) float32 scales 2^(e - 127); e = 255 gives NaN."""
    exponents = np.minimum(scales, NAN_SCALE - 1).astype(np.int32) - SCALE_BIAS  # 255 is replaced just below
    values = np.ldexp(np.float32(1.0), exponents).astype(np.float32)  # exact: powers of two, 2^-127..2^127
    return np.where(scales == NAN_SCALE, np.float32(np.nan), values)


def decode_mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """w = FP4_VALUES[codes] * 2^(scales - 127):  (..., G, 16) uint8, (..., G) uint8 -> (..., G * 32) float32."""
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != BYTES_PER_BLOCK:
        raise ValueError(f"MXFP4 blocks of shape {blocks.shape} do not match scales of shape {scales.shape} "
                         f"(expected blocks (..., G, 16) and scales (..., G))")
    values = FP4_VALUES[unpack_nibbles(blocks)]  # (..., G, 32)
    with np.errstate(over="ignore"):  # 4 * 2^127 and up exceed float32 and become inf, as in bf16
        weights = values * scale_values(scales)[..., None]  # (..., G, 32)
    return weights.reshape(*scales.shape[:-1], scales.shape[-1] * BLOCK_SIZE)  # (..., G * 32)


# -- encoder (float32 -> MXFP4), for writing checkpoints ------------------------------------------------------

# Midpoints between the eight magnitudes FP4 holds (0, 0.5, 1, 1.5, 2, 3, 4, 6): a magnitude's code is the
# number of midpoints it exceeds.
_MIDPOINTS = (FP4_VALUES[:7] + FP4_VALUES[1:8]) / 2  # 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0


def choose_scales(weights: np.ndarray) -> np.ndarray:
    """(..., G * 32) float32 -> (..., G) uint8: the smallest exponent e with max|block| / 2^(e-127) <= 6."""
    blocks = weights.reshape(*weights.shape[:-1], -1, BLOCK_SIZE)  # (..., G, 32)
    amax = np.abs(blocks).max(axis=-1).astype(np.float64)  # (..., G)
    with np.errstate(divide="ignore"):
        exponents = np.ceil(np.log2(amax / 6.0))  # -inf for an all-zero block
    exponents = np.nan_to_num(exponents, neginf=-SCALE_BIAS)
    return np.clip(exponents + SCALE_BIAS, 0, NAN_SCALE - 1).astype(np.uint8)


def nearest_codes(values: np.ndarray) -> np.ndarray:
    """float32 values already divided by their scale -> uint8 codes of the nearest FP4 value.

    Magnitudes beyond 6 saturate to 6. The sign goes to bit 3, so -0.0 gets code 8.
    """
    magnitude = np.abs(values)
    codes = np.zeros(values.shape, dtype=np.uint8)
    for midpoint in _MIDPOINTS:  # strictly above: a tie goes to the smaller magnitude (0.25 -> 0, 5.0 -> 4.0)
        codes += magnitude > midpoint
    return codes | (np.signbit(values).astype(np.uint8) << 3)


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """(..., G, 32) uint8 codes -> (..., G, 16) uint8 bytes, element 2j in the low nibble of byte j."""
    pairs = codes.reshape(*codes.shape[:-1], BYTES_PER_BLOCK, 2)  # (..., G, 16, 2)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)


def encode_mxfp4(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., K) float32, K a multiple of 32 -> blocks (..., K/32, 16) uint8, scales (..., K/32) uint8.

    Each block gets the smallest scale that holds its largest magnitude, then every weight the nearest code.
    """
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape[-1] % BLOCK_SIZE:
        raise ValueError(f"the last axis ({weights.shape[-1]}) must be a multiple of {BLOCK_SIZE} to encode MXFP4")
    scales = choose_scales(weights)  # (..., G)
    blocks = weights.reshape(*weights.shape[:-1], -1, BLOCK_SIZE)  # (..., G, 32)
    codes = nearest_codes(blocks / scale_values(scales)[..., None])  # (..., G, 32)
    return pack_nibbles(codes), scales
