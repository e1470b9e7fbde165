"""Numerics: what other engines' number formats do to the same model, as interventions.

minigptoss computes in float32 and matches the official reference's float32 run to float32 rounding. The engines
people run gpt-oss with round elsewhere. Each function here returns an `Intervention` (inspector.py) whose
patches round the recorded intermediates where that engine does, so it composes with `capture`, `patch`, the other
interventions and `model.generate` (a rounded k_rot / v is what the KV cache keeps):

    with numerics.llama_cpp():
        logits = model.forward(tokens)

    bf16_activations()      the official torch reference run in bfloat16 (its default; `.float()` is the oracle):
                            every tensor it holds in bf16 is rounded to bf16 (BF16_REFERENCE names each one and
                            the line of gpt_oss/torch/model.py that makes it).
    q8_0_expert_inputs()    llama.cpp: each MXFP4 matmul's input is quantized to Q8_0 first (blocks of 32 values
                            share d = fp16(max|x| / 127), each value becomes round-half-even(x 127 / max|x|) as an
                            int8); ggml-cpu.c type_traits_cpu[GGML_TYPE_MXFP4].vec_dot_type = GGML_TYPE_Q8_0.
                            Patches moe.expert_in (the router still reads float32 moe.normed) and moe.swiglu.
    bf16_matmul_inputs()    llama.cpp: the bf16-weight matmuls (attention qkv and out, the unembedding) round their
                            input rows to bf16 (type_traits_cpu[GGML_TYPE_BF16].vec_dot_type = GGML_TYPE_BF16).
                            Patches attn.normed, attn.z, norm.
    rounded_yarn_ramp()     llama.cpp: ggml_rope_yarn_corr_dims floors YaRN's low bound and ceils the high one
                            (8.0928 -> 8, 17.398 -> 18 for d = 64). A different model, not a rounding: the ramp
                            moves. Patches rope.yarn_bounds.
    fp16_kv_cache()         llama.cpp's default KV cache type (f16): keys and values stored as fp16; with flash
                            attention off the two attention matmuls also convert their other operand (queries,
                            probabilities) to fp16. Patches attn.q_rot, k_rot, v, probs.
    llama_cpp(kv="f16")     the four above together (kv="f32": without the fp16 cache).
    mxfp4_encoder(rule)     not a patch: how float weights are re-quantized to MXFP4 ("ocp": the OCP Microscaling
                            conversion, shared exponent floor(log2 amax) - 2, elements saturated and rounded to
                            nearest even; "minigptoss": mxfp4.encode_mxfp4, the smallest scale that holds amax).

Sources (read, not copied): openai/gpt-oss gpt_oss/torch/model.py; llama.cpp ggml/src/ggml-cpu/ggml-cpu.c
(type_traits_cpu), ggml/src/ggml-cpu/arch/x86/quants.c (quantize_row_q8_0: _mm256_round_ps(_MM_ROUND_NEAREST),
i.e. half to even, with id = 127 / max; the scalar quantize_row_q8_0_ref in ggml-quants.c uses roundf, half away
from zero, with id = 1 / d: `q8_0(x, reference=True)`), ggml/src/ggml.c (ggml_rope_yarn_corr_dims).
"""

import math

import numpy as np

from .inspector import Intervention, Patch
from .mxfp4 import BLOCK_SIZE, FP4_VALUES, NAN_SCALE, SCALE_BIAS, encode_mxfp4, pack_nibbles, scale_values

Q8_0_BLOCK = 32  # QK8_0: values sharing one scale


# -- the number formats ----------------------------------------------------------------------------------------

def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even; NaN stays NaN, overflow gives inf), as float32: 8 bits of
    mantissa, float32's exponent range."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    kept = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)  # round, drop 16 bits
    return np.where(np.isnan(x), x, kept.view(np.float32))


def round_fp16(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest IEEE half (ties to even; above 65504 inf), as float32: 11 bits, exponent -14..15."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def q8_0_blocks(x: np.ndarray, reference: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ggml's Q8_0 along the last axis:  (..., K) float32, K a multiple of 32 -> q (..., K/32, 32) int8 and
    d (..., K/32) float16, with d = fp16(amax / 127) and q = round(x * 127 / amax) (0 where amax = 0).

    round is half to even, as the x86 CPU backend's quantize_row_q8_0 (_mm256_round_ps, _MM_ROUND_NEAREST).
    reference=True: ggml's scalar quantize_row_q8_0_ref instead, q = roundf(x * (1 / d)), half away from zero.
    Not defined for 0 < amax < 127 / float32 max (~4e-37), where 127 / amax overflows (in ggml too)."""
    x = np.asarray(x, dtype=np.float32)
    blocks = x.reshape(*x.shape[:-1], -1, Q8_0_BLOCK)  # (..., G, 32)
    amax = np.abs(blocks).max(axis=-1)  # (..., G)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(amax > 0, (np.float32(1) / d) if reference else (np.float32(127) / amax), 0)
    scaled = blocks * inverse[..., None].astype(np.float32)  # (..., G, 32), within [-127, 127]
    q = np.trunc(scaled + np.copysign(np.float32(0.5), scaled)) if reference else np.rint(scaled)
    with np.errstate(over="ignore"):  # amax beyond 127 x 65504: d is inf in fp16, as in ggml
        return q.astype(np.int8), d.astype(np.float16)


def q8_0(x: np.ndarray, reference: bool = False) -> np.ndarray:
    """The values a Q8_0 block holds, q * d, as float32 in x's shape (see q8_0_blocks): what a dot product with
    Q8_0 activations sees (ggml_vec_dot_mxfp4_q8_0 sums q times the weight per block, then scales by d)."""
    q, d = q8_0_blocks(x, reference)
    return (q.astype(np.float32) * d.astype(np.float32)[..., None]).reshape(np.shape(x))


def floor_ceil_bounds(low: float, high: float) -> tuple[float, float]:
    """ggml_rope_yarn_corr_dims: (max(0, floor(low)), min(d - 1, ceil(high))); gpt-oss's config check keeps
    high < d/2 - 1, so the upper clamp never acts."""
    return float(max(0, math.floor(low))), float(math.ceil(high))


# -- the interventions -----------------------------------------------------------------------------------------

def _rounding(label: str, patterns: list[str], rounding) -> Intervention:
    """An intervention replacing every intermediate matching `patterns` with rounding(value)."""
    return Intervention(label, [Patch(patterns, lambda value, name: rounding(value).astype(value.dtype))])


# name -> the line of openai/gpt-oss gpt_oss/torch/model.py that leaves it in bf16 when the model runs in bf16
BF16_REFERENCE = {
    "blocks.*.attn.normed": "RMSNorm.forward: (t * self.scale).to(dtype)",
    "blocks.*.attn.qkv": "AttentionBlock.forward: qkv = self.qkv(t), a bf16 Linear",
    "rope.cos": "_apply_rotary_emb: cos = cos.unsqueeze(-2).to(x.dtype)",
    "rope.sin": "_apply_rotary_emb: sin = sin.unsqueeze(-2).to(x.dtype)",
    "blocks.*.attn.q_rot": "_apply_rotary_emb: o1 = x1 * cos - x2 * sin, ... in bf16",
    "blocks.*.attn.k_rot": "_apply_rotary_emb, on the keys",
    "blocks.*.attn.scores": "sdpa: QK = torch.einsum(...); QK *= sm_scale",
    "blocks.*.attn.probs": "sdpa: W = torch.softmax(QK, dim=-1)",
    "blocks.*.attn.z": "sdpa: attn = torch.einsum('hmqk,khmd->qhmd', W, V)",
    "blocks.*.attn.out": "AttentionBlock.forward: t = self.out(t)",
    "blocks.*.resid_mid": "AttentionBlock.forward: t = x + t",
    "blocks.*.moe.normed": "MLPBlock.forward: t = self.norm(x)",
    "blocks.*.moe.router.logits": "MLPBlock.forward: g = self.gate(t)",
    "blocks.*.moe.router.weights": "MLPBlock.forward: softmax(experts.values, dim=1)",
    "blocks.*.moe.mlp1": "MLPBlock.forward: t = torch.einsum('beck,bk->bec', ...) + mlp1_bias",
    "blocks.*.moe.swiglu": "swiglu(t, limit=...) on bf16 t",
    "blocks.*.moe.expert_out": "MLPBlock.forward: t = torch.einsum('beck,bek->bec', ...); t += mlp2_bias",
    "blocks.*.moe.out": "MLPBlock.forward: t = torch.einsum('bec,be->bc', t, expert_weights)",
    "blocks.*.resid_post": "MLPBlock.forward: return x + t",
    "norm": "Transformer.forward: x = self.norm(x)",
    "logits": "Transformer.forward: x = self.unembedding(x)",
}


def bf16_activations() -> Intervention:
    """The official reference run in bfloat16: every intermediate it holds in bf16 (BF16_REFERENCE) rounded to
    the nearest bf16. The weights are bf16 on disk already. Not emulated: the roundings inside one line (x1 cos
    and x2 sin before their difference, an einsum before its bias is added), which move logits far less."""
    return _rounding("bf16 activations (the torch reference's bf16 run)", list(BF16_REFERENCE), round_bf16)


def q8_0_expert_inputs() -> Intervention:
    """llama.cpp's MXFP4 x Q8_0 dot products: both expert matmuls' inputs become Q8_0 (see q8_0); the MXFP4
    weights themselves are exact. The router keeps float32 moe.normed."""
    return _rounding("Q8_0 expert inputs", ["blocks.*.moe.expert_in", "blocks.*.moe.swiglu"], q8_0)


def bf16_matmul_inputs() -> Intervention:
    """llama.cpp's bf16-weight matmuls (attention qkv and out, the unembedding) round their input rows to bf16."""
    return _rounding("bf16 matmul inputs", ["blocks.*.attn.normed", "blocks.*.attn.z", "norm"], round_bf16)


def rounded_yarn_ramp() -> Intervention:
    """llama.cpp's YaRN ramp: low floored, high ceiled (ggml_rope_yarn_corr_dims), so the ramp is wider and the
    dims inside it get other frequencies at every position. A model change, not a rounding."""
    return _rounding("rounded YaRN ramp", ["rope.yarn_bounds"],
                     lambda bounds: np.array(floor_ceil_bounds(*bounds)))


def fp16_kv_cache() -> Intervention:
    """llama.cpp's f16 KV cache: keys (after RoPE) and values stored as fp16; with flash attention off, q.k and
    probs.v are fp16 x fp16 matmuls, so queries and probabilities are converted to fp16 as well. (With flash
    attention on, ggml also accumulates probs.v in fp16; that is not emulated.)"""
    return _rounding("fp16 KV cache", ["blocks.*.attn.q_rot", "blocks.*.attn.k_rot", "blocks.*.attn.v",
                                       "blocks.*.attn.probs"], round_fp16)


def llama_cpp(kv: str = "f16") -> Intervention:
    """llama.cpp's CPU backend on a GGUF of the same weights: Q8_0 expert inputs, bf16 matmul inputs, the rounded
    YaRN ramp, and (kv="f16", its default) the fp16 KV cache."""
    if kv not in ("f16", "f32"):
        raise ValueError(f"llama_cpp: kv must be 'f16' or 'f32', got {kv!r}")
    parts = q8_0_expert_inputs() + bf16_matmul_inputs() + rounded_yarn_ramp()
    if kv == "f16":
        parts = parts + fp16_kv_cache()
    return Intervention(f"llama.cpp (kv {kv})", parts.patches)


# -- re-quantizing float weights -------------------------------------------------------------------------------

def ocp_scales(weights: np.ndarray) -> np.ndarray:
    """(..., G * 32) -> (..., G) uint8: the OCP MX rule, shared exponent floor(log2 amax) - emax with emax = 2
    (E2M1's largest exponent), so amax / scale lies in [4, 8) and values above 6 saturate."""
    blocks = weights.reshape(*weights.shape[:-1], -1, BLOCK_SIZE)  # (..., G, 32)
    amax = np.abs(blocks).max(axis=-1).astype(np.float64)  # (..., G)
    with np.errstate(divide="ignore"):
        exponents = np.floor(np.log2(amax)) - 2  # -inf for an all-zero block
    exponents = np.nan_to_num(exponents, neginf=-SCALE_BIAS)
    return np.clip(exponents + SCALE_BIAS, 0, NAN_SCALE - 1).astype(np.uint8)


def nearest_even_codes(values: np.ndarray) -> np.ndarray:
    """Values already divided by their scale -> uint8 FP4 codes: nearest, ties to the even code (mantissa bit
    0), magnitudes beyond 6 saturated to 6; the sign in bit 3."""
    magnitude = np.minimum(np.abs(values), np.float32(6))[..., None]  # (..., 1)
    distance = np.abs(magnitude - FP4_VALUES[:8])  # (..., 8) to 0, 0.5, 1, 1.5, 2, 3, 4, 6
    nearest = distance == distance.min(axis=-1, keepdims=True)
    codes = np.where(nearest[..., 0::2].any(axis=-1),  # an even code among the nearest wins the tie
                     2 * np.argmax(nearest[..., 0::2], axis=-1), 2 * np.argmax(nearest[..., 1::2], axis=-1) + 1)
    return codes.astype(np.uint8) | (np.signbit(values).astype(np.uint8) << 3)


def encode_mxfp4_ocp(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., K) float32 -> blocks (..., K/32, 16), scales (..., K/32) by the OCP conversion rule."""
    weights = np.asarray(weights, dtype=np.float32)
    scales = ocp_scales(weights)
    blocks = weights.reshape(*weights.shape[:-1], -1, BLOCK_SIZE)  # (..., G, 32)
    return pack_nibbles(nearest_even_codes(blocks / scale_values(scales)[..., None])), scales


MXFP4_ENCODERS = {"minigptoss": encode_mxfp4, "ocp": encode_mxfp4_ocp}


def mxfp4_encoder(rule: str = "ocp"):
    """The function (..., K) float32 -> (blocks, scales) that re-quantizes float weights by `rule`: "ocp" (the
    OCP Microscaling conversion, as llama.cpp's quantize_row_mxfp4_ref and most converters) or "minigptoss"
    (mxfp4.encode_mxfp4: the smallest scale holding amax, so nothing saturates, ties to the smaller magnitude)."""
    if rule not in MXFP4_ENCODERS:
        raise ValueError(f"mxfp4_encoder: rule must be one of {', '.join(MXFP4_ENCODERS)}, got {rule!r}")
    return MXFP4_ENCODERS[rule]


# -- what the CLI and the walkthrough offer ----------------------------------------------------------------------

NUMERICS = {"f32": None, "bf16": bf16_activations, "llama.cpp": llama_cpp,
            "llama.cpp-f32kv": lambda: llama_cpp(kv="f32")}

WHERE = {  # where each choice rounds, in a few words (the CLI and walkthrough 13 print it)
    "f32": "nowhere: the reference's float32 run",
    "bf16": "every matmul, norm, residual add, RoPE, softmax, SwiGLU output to bf16",
    "llama.cpp": "Q8_0 expert inputs, bf16 qkv/out/unembedding inputs, rounded YaRN ramp, fp16 KV cache",
    "llama.cpp-f32kv": "Q8_0 expert inputs, bf16 qkv/out/unembedding inputs, rounded YaRN ramp",
    "q8_0_expert_inputs": "expert matmul inputs to Q8_0 (int8, an fp16 scale per 32)",
    "bf16_matmul_inputs": "attention qkv/out and unembedding inputs to bf16",
    "rounded_yarn_ramp": "no value: YaRN's ramp bounds floored/ceiled",
    "fp16_kv_cache": "queries, keys, values, attention probabilities to fp16",
}


def named(name: str) -> Intervention | None:
    """`--numerics NAME`: None for f32 (the reference's float32), else the intervention."""
    if name not in NUMERICS:
        raise ValueError(f"no numerics {name!r}; choose one of {', '.join(NUMERICS)}")
    make = NUMERICS[name]
    return None if make is None else make()


def logit_distance(reference: np.ndarray, other: np.ndarray) -> dict:
    """How far `other` logits (T, V) are from `reference`: max and mean |difference| over every logit, and at
    how many of the T positions the argmax is the same."""
    difference = np.abs(other.astype(np.float64) - reference.astype(np.float64))
    same = int(np.count_nonzero(reference.argmax(axis=-1) == other.argmax(axis=-1)))
    return {"max": float(difference.max()), "mean": float(difference.mean()), "same_argmax": same,
            "positions": int(reference.shape[0])}
