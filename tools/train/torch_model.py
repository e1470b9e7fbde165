"""The gpt-oss forward pass in PyTorch, for training only: the same math as minigptoss/model.py (and the official
gpt_oss/torch/model.py), batched and differentiable. Dev-only: minigptoss never imports this file.

    x = E[tokens]; per block n: x += Attn(RMSNorm(x)); x += MoE(RMSNorm(x)); logits = RMSNorm(x) U^T
    RMSNorm      x / sqrt(mean(x^2) + 1e-5) * g
    RoPE + YaRN  half-split rotation; inv_freq by "NTK by parts"; cos and sin times c = 1 + 0.1 ln(s)
    attention    fused qkv (+bias), GQA (query head h reads kv head h // (nq/nkv)), scores / sqrt(d),
                 causal, a window of W keys on even layers, a per-head sink logit in the softmax denominator only
    MoE          router logits; top-k; softmax over the k chosen logits only; expert: h = W1 t + b1,
                 glu = min(h[0::2], L), lin = clip(h[1::2], -L, L), u = glu sigmoid(1.702 glu) (lin + 1),
                 y = W2 u + b2; sum of router weight * y

Parameters carry the original checkpoint names (`block.0.attn.qkv.weight`, ...); expert weights are dense
float tensors `block.n.mlp.mlp1_weight` (E, 2I, H) and `block.n.mlp.mlp2_weight` (E, H, I) that export.py
encodes as MXFP4. `quantize=True` runs the forward on the weights as they will be stored (bf16, MXFP4 experts)
with a straight-through estimator: the rounding is seen by the forward, the gradient passes as if it were not.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RMS_EPS, ALPHA = 1e-5, 1.702
FP4_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


# ---------------------------------------------------------------- storage rounding (bf16, MXFP4), straight-through

def round_bf16(x: torch.Tensor) -> torch.Tensor:
    """Nearest bfloat16 (ties to even), as float32: what minigptoss.save stores."""
    return x.to(torch.bfloat16).to(torch.float32)


def round_mxfp4(w: torch.Tensor) -> torch.Tensor:
    """Decode(encode(w)) exactly as minigptoss.mxfp4.encode_mxfp4 does: per 32-block along the last axis, the
    smallest power-of-two scale 2^e with max|block| / 2^e <= 6, then the nearest FP4 magnitude (a tie goes to
    the smaller one), saturating at 6."""
    shape = w.shape
    blocks = w.reshape(*shape[:-1], shape[-1] // 32, 32)
    amax = blocks.abs().amax(dim=-1, keepdim=True).double()
    exponent = torch.ceil(torch.log2(amax / 6.0))
    exponent = torch.where(torch.isinf(exponent), torch.full_like(exponent, -127.0), exponent).clamp(-127, 127)
    scale = torch.pow(2.0, exponent).float()
    scaled = blocks / scale
    magnitude = scaled.abs()
    mids = [(a + b) / 2 for a, b in zip(FP4_MAGNITUDES[:-1], FP4_MAGNITUDES[1:])]
    code = sum((magnitude > m).to(torch.int64) for m in mids)
    values = torch.tensor(FP4_MAGNITUDES, dtype=torch.float32)[code]
    values = torch.where(torch.signbit(scaled), -values, values)
    return (values * scale).reshape(shape)


def straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    return x + (rounded - x).detach()


# ---------------------------------------------------------------- the pieces

def rms_norm(x, gain):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * gain


def yarn_inverse_frequencies(cfg) -> torch.Tensor:
    d, s = cfg.head_dim, cfg.rope_scaling_factor
    f = torch.pow(torch.tensor(cfg.rope_theta, dtype=torch.float32),
                  torch.arange(0, d, 2, dtype=torch.float32) / d)  # theta^(2i/d)
    if s <= 1.0:
        return 1.0 / f
    half, ln_theta = d / 2, math.log(cfg.rope_theta)
    low = half * math.log(cfg.initial_context_length / (cfg.rope_ntk_beta * 2 * math.pi)) / ln_theta
    high = half * math.log(cfg.initial_context_length / (cfg.rope_ntk_alpha * 2 * math.pi)) / ln_theta
    ramp = ((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    return (1 - ramp) / f + ramp / (s * f)


def rope_tables(cfg, T: int):
    c = 1.0 + 0.1 * math.log(cfg.rope_scaling_factor) if cfg.rope_scaling_factor > 1.0 else 1.0
    angles = torch.arange(T, dtype=torch.float32)[:, None] * yarn_inverse_frequencies(cfg)[None, :]
    return torch.cos(angles) * c, torch.sin(angles) * c  # (T, d/2) each


def apply_rope(x, cos, sin):  # x (B, T, heads, d)
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def swiglu(h, limit):
    glu, lin = h[..., 0::2], h[..., 1::2]
    glu = glu.clamp(max=limit)
    lin = lin.clamp(-limit, limit)
    return glu * torch.sigmoid(ALPHA * glu) * (lin + 1)


# ---------------------------------------------------------------- the model

def parameter_shapes(cfg) -> dict[str, tuple[int, ...]]:
    H, I, E, d = cfg.hidden_size, cfg.intermediate_size, cfg.num_experts, cfg.head_dim
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    shapes = {"embedding.weight": (cfg.vocab_size, H)}
    for n in range(cfg.num_hidden_layers):
        b = f"block.{n}"
        shapes |= {f"{b}.attn.norm.scale": (H,), f"{b}.attn.qkv.weight": ((nq + 2 * nkv) * d, H),
                   f"{b}.attn.qkv.bias": ((nq + 2 * nkv) * d,), f"{b}.attn.sinks": (nq,),
                   f"{b}.attn.out.weight": (H, nq * d), f"{b}.attn.out.bias": (H,),
                   f"{b}.mlp.norm.scale": (H,), f"{b}.mlp.gate.weight": (E, H), f"{b}.mlp.gate.bias": (E,),
                   f"{b}.mlp.mlp1_weight": (E, 2 * I, H), f"{b}.mlp.mlp1_bias": (E, 2 * I),
                   f"{b}.mlp.mlp2_weight": (E, H, I), f"{b}.mlp.mlp2_bias": (E, H)}
    shapes |= {"norm.scale": (H,), "unembedding.weight": (cfg.vocab_size, H)}
    return shapes


def init_parameters(cfg, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Small random init: norms 1, sinks 0, biases 0, weights N(0, 1/fan_in), residual outputs scaled down."""
    params = {}
    depth_scale = (2 * cfg.num_hidden_layers) ** -0.5
    for name, shape in parameter_shapes(cfg).items():
        if name.endswith(".scale"):
            value = torch.ones(shape)
        elif name.endswith(("bias", "sinks")):
            value = torch.zeros(shape)
        else:
            fan_in = shape[-1]
            std = 1.0 if name == "embedding.weight" else fan_in ** -0.5
            if name.endswith(("attn.out.weight", "mlp2_weight")):
                std *= depth_scale
            value = torch.randn(shape, generator=generator) * std
        params[name] = value.float().requires_grad_(True)
    return params


def stored_view(params: dict[str, torch.Tensor], quantize: bool) -> dict[str, torch.Tensor]:
    """The weights the forward uses: as trained, or rounded as stored (straight-through)."""
    if not quantize:
        return params
    out = {}
    for name, p in params.items():
        rounded = round_mxfp4(p.detach()) if name.endswith(("mlp1_weight", "mlp2_weight")) else round_bf16(p.detach())
        out[name] = straight_through(p, rounded)
    return out


def forward(cfg, params, tokens: torch.Tensor, quantize: bool = False, aux: list | None = None) -> torch.Tensor:
    """tokens (B, T) int64 -> logits (B, T, V). aux, if a list, receives each layer's load-balancing loss."""
    w = stored_view(params, quantize)
    B, T = tokens.shape
    H, d = cfg.hidden_size, cfg.head_dim
    nq, nkv, E = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_experts
    k = cfg.experts_per_token
    cos, sin = rope_tables(cfg, T)
    pos = torch.arange(T)
    distance = pos[:, None] - pos[None, :]
    x = w["embedding.weight"][tokens]  # (B, T, H)
    for n in range(cfg.num_hidden_layers):
        b = f"block.{n}"
        # -- attention
        t = rms_norm(x, w[f"{b}.attn.norm.scale"])
        qkv = t @ w[f"{b}.attn.qkv.weight"].T + w[f"{b}.attn.qkv.bias"]
        q = qkv[..., : nq * d].reshape(B, T, nq, d)
        kk = qkv[..., nq * d: (nq + nkv) * d].reshape(B, T, nkv, d)
        v = qkv[..., (nq + nkv) * d:].reshape(B, T, nkv, d)
        q, kk = apply_rope(q, cos, sin), apply_rope(kk, cos, sin)
        group = nq // nkv
        kk = kk.repeat_interleave(group, dim=2)  # (B, T, nq, d): head h reads kv head h // group
        v = v.repeat_interleave(group, dim=2)
        scores = torch.einsum("bihd,bjhd->bhij", q, kk) / math.sqrt(d)  # (B, nq, T, T)
        allowed = distance >= 0
        if cfg.window(n):
            allowed = allowed & (distance < cfg.window(n))
        scores = scores.masked_fill(~allowed, float("-inf"))
        sink = w[f"{b}.attn.sinks"].reshape(1, nq, 1, 1).expand(B, nq, T, 1)
        probs = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
        z = torch.einsum("bhij,bjhd->bihd", probs, v).reshape(B, T, nq * d)
        x = x + z @ w[f"{b}.attn.out.weight"].T + w[f"{b}.attn.out.bias"]
        # -- mixture of experts: top-k, softmax over the chosen k, each expert on its tokens only
        t = rms_norm(x, w[f"{b}.mlp.norm.scale"])
        gate = t @ w[f"{b}.mlp.gate.weight"].T + w[f"{b}.mlp.gate.bias"]  # (B, T, E)
        chosen_logits, chosen = torch.topk(gate, k, dim=-1)  # (B, T, k)
        chosen_weights = torch.softmax(chosen_logits, dim=-1)  # over the k chosen only
        flat_t, flat_ids, flat_w = t.reshape(B * T, H), chosen.reshape(B * T, k), chosen_weights.reshape(B * T, k)
        moe = torch.zeros(B * T, H)
        for e in range(E):  # each expert runs on the (token, slot) pairs that chose it
            rows, slots = (flat_ids == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            h = flat_t[rows] @ w[f"{b}.mlp.mlp1_weight"][e].T + w[f"{b}.mlp.mlp1_bias"][e]  # (N, 2I)
            y = swiglu(h, cfg.swiglu_limit) @ w[f"{b}.mlp.mlp2_weight"][e].T + w[f"{b}.mlp.mlp2_bias"][e]  # (N, H)
            moe = moe.index_add(0, rows, y * flat_w[rows, slots, None])
        x = x + moe.reshape(B, T, H)
        if aux is not None:  # Switch-style balance: E * sum_e (share of tokens routed to e) * (mean router prob of e)
            share = torch.zeros(B, T, E).scatter(-1, chosen, 1.0).mean((0, 1)) / k
            aux.append(E * (share * torch.softmax(gate, dim=-1).mean((0, 1))).sum())
    x = rms_norm(x, w["norm.scale"])
    return x @ w["unembedding.weight"].T
