"""The model's tensors: their names, shapes and dtypes in the original gpt-oss layout, bfloat16 conversion,
and random initialisation.

Names are the original checkpoint's (`block.3.attn.qkv.weight`, ...), which are also the attribute paths of the
official `gpt_oss/torch/model.py`, so the two can be read side by side. In memory, every BF16 tensor is a
float32 array holding bf16-exact values and every MXFP4 part is its raw uint8 array; `checkpoint.py` turns
that into bytes and back. What it does not do: file I/O.

A loaded checkpoint is not turned into such a dict up front (a 20b one would need ~20 GB of float32):
`lazy.LazyWeights` offers the same mapping over the file's memory-mapped arrays.
"""


import numpy as np

from ..config import Config
from ..mxfp4 import BYTES_PER_BLOCK, BLOCK_SIZE, encode_mxfp4
from ..numerics import round_bf16


def tensor_specs(config: Config) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every tensor of a checkpoint: name -> (safetensors dtype, shape), in file order."""
    c = config
    H, I, E, d = c.hidden_size, c.intermediate_size, c.num_experts, c.head_dim
    qkv_rows = (c.num_attention_heads + 2 * c.num_key_value_heads) * d
    specs = {"embedding.weight": ("BF16", (c.vocab_size, H))}
    for n in range(c.num_hidden_layers):
        b = f"block.{n}"
        specs |= {
            f"{b}.attn.norm.scale": ("BF16", (H,)),
            f"{b}.attn.qkv.weight": ("BF16", (qkv_rows, H)),
            f"{b}.attn.qkv.bias": ("BF16", (qkv_rows,)),
            f"{b}.attn.sinks": ("BF16", (c.num_attention_heads,)),
            f"{b}.attn.out.weight": ("BF16", (H, c.num_attention_heads * d)),
            f"{b}.attn.out.bias": ("BF16", (H,)),
            f"{b}.mlp.norm.scale": ("BF16", (H,)),
            f"{b}.mlp.gate.weight": ("BF16", (E, H)),
            f"{b}.mlp.gate.bias": ("BF16", (E,)),
            f"{b}.mlp.mlp1_weight.blocks": ("U8", (E, 2 * I, H // BLOCK_SIZE, BYTES_PER_BLOCK)),
            f"{b}.mlp.mlp1_weight.scales": ("U8", (E, 2 * I, H // BLOCK_SIZE)),
            f"{b}.mlp.mlp1_bias": ("BF16", (E, 2 * I)),
            f"{b}.mlp.mlp2_weight.blocks": ("U8", (E, H, I // BLOCK_SIZE, BYTES_PER_BLOCK)),
            f"{b}.mlp.mlp2_weight.scales": ("U8", (E, H, I // BLOCK_SIZE)),
            f"{b}.mlp.mlp2_bias": ("BF16", (E, H)),
        }
    specs |= {"norm.scale": ("BF16", (H,)), "unembedding.weight": ("BF16", (c.vocab_size, H))}
    return specs


# -- bfloat16: the top 16 bits of a float32 -------------------------------------------------------------------

def bf16_bits_to_f32(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint16 bfloat16 bit patterns -> float32 (exact: append 16 zero bits), in one pass, into `out` if given."""
    bits = np.asarray(bits, dtype=np.uint16)
    if out is None:
        out = np.empty(bits.shape, dtype=np.float32)
    np.left_shift(bits, np.uint32(16), out=out.view(np.uint32), dtype=np.uint32)
    return out


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> uint16 bfloat16 bits, rounding to nearest, ties to even (NaN stays NaN)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = round_to_bf16(x).view(np.uint32) >> 16
    rounded = np.where(np.isnan(x), (bits >> 16) | np.uint32(0x0040), rounded)  # a quiet NaN, never inf
    return rounded.astype(np.uint16)


round_to_bf16 = round_bf16  # float32 -> the nearest bfloat16 value, as float32 (numerics.py)


# -- random initialisation ------------------------------------------------------------------------------------

def init_std(name: str, config: Config) -> tuple[float, float]:
    """(mean, std) of a random tensor. Chosen so activations stay O(1) and a few SwiGLU inputs hit the clamp."""
    H, I, d = config.hidden_size, config.intermediate_size, config.head_dim
    if name.endswith(".scale"):
        return 1.0, 0.1  # norm gains near 1
    if name.endswith("sinks") or name == "embedding.weight":
        return 0.0, 1.0
    if name.endswith("bias"):
        return 0.0, 0.5 if "mlp1" in name else 0.1
    fan_in = {"attn.out.weight": config.num_attention_heads * d, "mlp2_weight": I}
    for key, n in fan_in.items():
        if key in name:
            return 0.0, n ** -0.5
    return 0.0, (3.0 if "mlp1_weight" in name else 1.0) * H ** -0.5


def encode_in_chunks(values: np.ndarray, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """encode_mxfp4 of (..., K) float32, a chunk of rows at a time: the same bytes (every block is encoded on its
    own), ~3x sooner at gpt-oss's sizes because the temporaries stay small.  -> (..., K/32, 16), (..., K/32)"""
    flat = values.reshape(-1, values.shape[-1])  # (R, K)
    blocks = np.empty((len(flat), flat.shape[1] // BLOCK_SIZE, BYTES_PER_BLOCK), dtype=np.uint8)  # (R, K/32, 16)
    scales = np.empty(blocks.shape[:2], dtype=np.uint8)  # (R, K/32)
    for start in range(0, len(flat), rows):
        blocks[start:start + rows], scales[start:start + rows] = encode_mxfp4(flat[start:start + rows])
    return blocks.reshape(*values.shape[:-1], *blocks.shape[1:]), scales.reshape(*values.shape[:-1], -1)


def random_weights(config: Config, seed: int) -> dict[str, np.ndarray]:
    """Deterministic random tensors for `config`: bf16-exact float32 for BF16 tensors, uint8 for MXFP4 parts."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (dtype, shape) in tensor_specs(config).items():
        if name.endswith(".scales"):
            continue  # drawn together with its .blocks
        mean, std = init_std(name.removesuffix(".blocks"), config)
        if name.endswith(".blocks"):
            full_shape = (*shape[:-2], shape[-2] * BLOCK_SIZE)  # (E, out, in)
            values = rng.standard_normal(full_shape, dtype=np.float32) * np.float32(std)
            weights[name], weights[name.replace(".blocks", ".scales")] = encode_in_chunks(values)
        else:
            values = np.float32(mean) + rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
            weights[name] = round_to_bf16(values)
    return weights
