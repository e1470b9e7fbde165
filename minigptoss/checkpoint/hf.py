"""The Hugging Face layout of gpt-oss: its tensor names, its config.json, and how both map onto the original.

The published openai/gpt-oss-20b and -120b hold two copies of the model: `original/` (the layout the rest of
minigptoss reads) and, at the top, the Hugging Face layout written by transformers' conversion script
(`models/gpt_oss/convert_gpt_oss_weights_to_hf.py`): the same numbers under other names, sharded over
`model-0000i-of-0000n.safetensors` with a `model.safetensors.index.json`. Per layer n (p = model.layers.n):

    original name                      Hugging Face name                                   shape
    embedding.weight                   model.embed_tokens.weight                           (V, H)
    block.n.attn.norm.scale            p.input_layernorm.weight                            (H,)
    block.n.attn.qkv.weight / .bias    p.self_attn.{q,k,v}_proj.weight / .bias             rows [0, nq d), the next
                                                                                           nkv d, the rest; no transpose
    block.n.attn.sinks                 p.self_attn.sinks                                   (nq,)
    block.n.attn.out.weight / .bias    p.self_attn.o_proj.weight / .bias                   (H, nq d), (H,)
    block.n.mlp.norm.scale             p.post_attention_layernorm.weight                   (H,)
    block.n.mlp.gate.weight / .bias    p.mlp.router.weight / .bias                         (E, H), (E,)
    block.n.mlp.mlp1_weight.blocks     p.mlp.experts.gate_up_proj_blocks                   (E, 2I, H/32, 16) U8
    block.n.mlp.mlp1_weight.scales     p.mlp.experts.gate_up_proj_scales                   (E, 2I, H/32) U8
    block.n.mlp.mlp1_bias              p.mlp.experts.gate_up_proj_bias                     (E, 2I)
    block.n.mlp.mlp2_weight.blocks     p.mlp.experts.down_proj_blocks (and _scales, _bias) (E, H, I/32, 16) U8
    norm.scale                         model.norm.weight                                   (H,)
    unembedding.weight                 lm_head.weight                                      (V, H)

The MXFP4 parts are copied byte for byte, so gate/up stay interleaved along the 2I rows. Re-uploads that are
already dequantized (transformers' `Mxfp4Config(dequantize=True)`, the script without --mxfp4) store instead
`p.mlp.experts.gate_up_proj` (E, H, 2I) and `p.mlp.experts.down_proj` (E, I, H): each expert's matrix
TRANSPOSED (the modeling code computes x @ gate_up_proj[e]), gate/up still interleaved along the last axis
(its forward takes gate = [..., ::2], up = [..., 1::2]).

Floating tensors are BF16 in the published checkpoints; F32 is accepted too (some re-exports use it).
What it does not do: read files (see `checkpoint.py`).
"""

import math

from ..config import RMS_NORM_EPS, SWIGLU_ALPHA, Config, ConfigError
from ..mxfp4 import BLOCK_SIZE, BYTES_PER_BLOCK

FLOAT_DTYPES = ("BF16", "F32")

# transformers' defaults for gpt-oss (configuration_gpt_oss.py), used when config.json leaves a key out
DEFAULT_ROPE_SCALING = {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                        "truncate": False, "original_max_position_embeddings": 4096}
DEFAULT_ROPE_THETA = 150000.0


def is_hf_config(data) -> bool:
    """A config.json written by transformers (rather than gpt-oss's own sixteen keys)."""
    return isinstance(data, dict) and any(key in data for key in ("model_type", "num_local_experts", "rope_scaling", "rope_parameters",
                                       "architectures", "num_experts_per_tok"))


# -- config.json ----------------------------------------------------------------------------------------------

def _get(data: dict, keys: tuple[str, ...], source: str, default=None, kind=int):
    """The first of `keys` present in data (or `default`), checked to be a number of `kind`."""
    for key in keys:
        if key in data:
            value = data[key]
            break
    else:
        if default is None:
            raise ConfigError(f"{source}: missing field {keys[0]!r}")
        return default
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and (whole or kind is float)
    if not numeric or (isinstance(value, int) and value.bit_length() > 63):
        raise ConfigError(f"{source}: field {key!r} must be {'an integer' if kind is int else 'a number'}"
                          f"{' below 2**63' if numeric else ''}, got {value!r:.80}")
    return kind(value)  # a finite range is Config's to check


def _rope(data: dict, source: str) -> dict:
    """The YaRN parameters: `rope_scaling` (transformers <= 4.56) or `rope_parameters` (later), else the default."""
    rope = data.get("rope_scaling", data.get("rope_parameters"))
    if rope is None:
        return dict(DEFAULT_ROPE_SCALING)
    if not isinstance(rope, dict):
        raise ConfigError(f"{source}: field 'rope_scaling' must be an object, got {rope!r:.80}")
    kind = rope.get("rope_type", rope.get("type", "yarn"))
    if kind == "default":
        plain = {"factor": 1.0, "beta_fast": 32.0, "beta_slow": 1.0}  # no YaRN: scaling factor 1
        return plain | ({"rope_theta": rope["rope_theta"]} if "rope_theta" in rope else {})
    if kind != "yarn":
        raise ConfigError(f"{source}: field 'rope_scaling.rope_type' is {kind!r:.80}; gpt-oss uses 'yarn'")
    _check_attention_factor(rope, source)
    if rope.get("truncate", False):
        raise ConfigError(f"{source}: field 'rope_scaling.truncate' is true; gpt-oss's YaRN does not round its "
                          f"ramp bounds (truncate: false)")
    return rope


def _check_attention_factor(rope: dict, source: str) -> None:
    """YaRN's attention scaling as transformers would take it from rope_scaling (attention_factor, else
    mscale / mscale_all_dim, else 0.1 ln(factor) + 1) must be gpt-oss's 0.1 ln(factor) + 1, the one implemented."""
    factor = rope.get("factor", 1.0)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor >= 1:
        return  # Config names a bad factor
    mscale = lambda m: 0.1 * m * math.log(factor) + 1 if factor > 1 else 1.0  # noqa: E731 (transformers' get_mscale)
    ours = mscale(1.0)
    for key in ("attention_factor", "mscale", "mscale_all_dim"):
        value = rope.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise ConfigError(f"{source}: field 'rope_scaling.{key}' must be a number, got {value!r:.80}")
    theirs, key = ours, None
    if rope.get("attention_factor") is not None:
        theirs, key = rope["attention_factor"], "attention_factor"
    elif rope.get("mscale") and rope.get("mscale_all_dim"):
        theirs, key = mscale(rope["mscale"]) / mscale(rope["mscale_all_dim"]), "mscale"
    if not math.isclose(theirs, ours, rel_tol=1e-6):
        raise ConfigError(f"{source}: field 'rope_scaling.{key}' gives YaRN an attention scaling of {theirs:.6g}; "
                          f"gpt-oss uses 0.1 ln(factor) + 1 = {ours:.6g}, the only one minigptoss implements")


def config_from_hf(data: dict, source: str = "config.json") -> Config:
    """A transformers GptOssConfig dict -> Config, refusing what minigptoss does not implement."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object of config fields, got {type(data).__name__}")
    if data.get("model_type", "gpt_oss") != "gpt_oss":
        raise ConfigError(f"{source}: field 'model_type' is {data['model_type']!r:.80}, not 'gpt_oss'")
    rope = _rope(data, source)
    layers = _get(data, ("num_hidden_layers",), source)
    heads = _get(data, ("num_attention_heads",), source)
    hidden = _get(data, ("hidden_size",), source)
    window = data.get("sliding_window", 0)
    fields = dict(
        num_hidden_layers=layers,
        num_experts=_get(data, ("num_local_experts", "num_experts"), source),
        experts_per_token=_get(data, ("num_experts_per_tok", "experts_per_token"), source),
        vocab_size=_get(data, ("vocab_size",), source),
        hidden_size=hidden,
        intermediate_size=_get(data, ("intermediate_size",), source),
        swiglu_limit=_get(data, ("swiglu_limit",), source, default=7.0, kind=float),
        head_dim=_get(data, ("head_dim",), source, default=hidden // heads if heads else None),
        num_attention_heads=heads,
        num_key_value_heads=_get(data, ("num_key_value_heads",), source, default=heads),
        sliding_window=0 if window is None else _get(data, ("sliding_window",), source),
        initial_context_length=_get(rope, ("original_max_position_embeddings",), "rope_scaling",
                                    default=_get(data, ("initial_context_length",), source, default=4096)),
        rope_theta=_get(data, ("rope_theta",), source,
                        default=_get(rope, ("rope_theta",), source, default=DEFAULT_ROPE_THETA, kind=float),
                        kind=float),
        rope_scaling_factor=_get(rope, ("factor",), f"{source}: rope_scaling", kind=float),
        rope_ntk_alpha=_get(rope, ("beta_slow",), f"{source}: rope_scaling", default=1.0, kind=float),
        rope_ntk_beta=_get(rope, ("beta_fast",), f"{source}: rope_scaling", default=32.0, kind=float),
    )
    _check_constants(data, source)
    try:
        config = Config(**fields)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    _check_layer_types(data, config, source)
    return config


def _check_constants(data: dict, source: str) -> None:
    """Keys whose value minigptoss hard-codes: a config that changes them describes another model."""
    fixed = {"rms_norm_eps": RMS_NORM_EPS, "swiglu_alpha": SWIGLU_ALPHA, "tie_word_embeddings": False,
             "attention_bias": True}
    for key, expected in fixed.items():
        if key in data and isinstance(expected, bool) and not isinstance(data[key], bool):
            raise ConfigError(f"{source}: field {key!r} must be the JSON boolean {str(expected).lower()} (gpt-oss "
                              f"and minigptoss use {expected!r}), got {data[key]!r:.80}")
        if key in data and data[key] != expected and not (
                isinstance(expected, float) and isinstance(data[key], float)
                and math.isclose(data[key], expected, rel_tol=1e-9)):
            raise ConfigError(f"{source}: field {key!r} is {data[key]!r:.80}; gpt-oss (and minigptoss) use "
                              f"{expected!r}")


def _check_layer_types(data: dict, config: Config, source: str) -> None:
    """layer_types must be the gpt-oss pattern: sliding on even layers, full on odd ones."""
    types = data.get("layer_types")
    if types is None:
        return
    if not isinstance(types, list) or len(types) != config.num_hidden_layers:
        raise ConfigError(f"{source}: field 'layer_types' must list {config.num_hidden_layers} entries "
                          f"(num_hidden_layers), got {types!r:.80}")
    for n, kind in enumerate(types):
        expected = "sliding_attention" if config.is_sliding(n) else "full_attention"
        if kind != expected:
            raise ConfigError(f"{source}: field 'layer_types[{n}]' is {kind!r:.80}; minigptoss implements gpt-oss's "
                              f"pattern ({expected!r} for layer {n}: sliding on even layers, full on odd ones)")


def hf_config_dict(config: Config, mxfp4: bool = True) -> dict:
    """The config.json transformers writes for `config` (as in the published openai/gpt-oss-20b)."""
    c = config
    data = {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
        "attention_bias": True, "attention_dropout": 0.0, "eos_token_id": 200002, "pad_token_id": 199999,
        "experts_per_token": c.experts_per_token, "head_dim": c.head_dim, "hidden_act": "silu",
        "hidden_size": c.hidden_size, "initial_context_length": c.initial_context_length,
        "initializer_range": 0.02, "intermediate_size": c.intermediate_size,
        "layer_types": ["sliding_attention" if c.is_sliding(n) else "full_attention"
                        for n in range(c.num_hidden_layers)],
        "max_position_embeddings": 131072, "num_attention_heads": c.num_attention_heads,
        "num_experts_per_tok": c.experts_per_token, "num_hidden_layers": c.num_hidden_layers,
        "num_key_value_heads": c.num_key_value_heads, "num_local_experts": c.num_experts,
        "output_router_logits": False, "rms_norm_eps": RMS_NORM_EPS,
        "rope_scaling": {"beta_fast": c.rope_ntk_beta, "beta_slow": c.rope_ntk_alpha,
                         "factor": c.rope_scaling_factor,
                         "original_max_position_embeddings": c.initial_context_length,
                         "rope_type": "yarn", "truncate": False},
        "rope_theta": c.rope_theta, "router_aux_loss_coef": 0.9, "sliding_window": c.sliding_window,
        "swiglu_limit": c.swiglu_limit, "tie_word_embeddings": False, "use_cache": True,
        "vocab_size": c.vocab_size,
    }
    if mxfp4:
        data["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    return data


# -- tensors --------------------------------------------------------------------------------------------------

def hf_sources(config: Config, dequantized: bool = False) -> dict[str, tuple[tuple[str, ...], bool]]:
    """original name -> (the Hugging Face tensors it is made of, joined along axis 0; stored transposed?)."""
    sources = {"embedding.weight": (("model.embed_tokens.weight",), False)}
    for n in range(config.num_hidden_layers):
        b, p = f"block.{n}", f"model.layers.{n}"
        attn, experts = f"{p}.self_attn", f"{p}.mlp.experts"
        sources |= {
            f"{b}.attn.norm.scale": ((f"{p}.input_layernorm.weight",), False),
            f"{b}.attn.qkv.weight": (tuple(f"{attn}.{x}_proj.weight" for x in "qkv"), False),
            f"{b}.attn.qkv.bias": (tuple(f"{attn}.{x}_proj.bias" for x in "qkv"), False),
            f"{b}.attn.sinks": ((f"{attn}.sinks",), False),
            f"{b}.attn.out.weight": ((f"{attn}.o_proj.weight",), False),
            f"{b}.attn.out.bias": ((f"{attn}.o_proj.bias",), False),
            f"{b}.mlp.norm.scale": ((f"{p}.post_attention_layernorm.weight",), False),
            f"{b}.mlp.gate.weight": ((f"{p}.mlp.router.weight",), False),
            f"{b}.mlp.gate.bias": ((f"{p}.mlp.router.bias",), False),
        }
        for ours, theirs in (("mlp1", "gate_up_proj"), ("mlp2", "down_proj")):
            if dequantized:
                sources[f"{b}.mlp.{ours}_weight"] = ((f"{experts}.{theirs}",), True)
            else:
                sources[f"{b}.mlp.{ours}_weight.blocks"] = ((f"{experts}.{theirs}_blocks",), False)
                sources[f"{b}.mlp.{ours}_weight.scales"] = ((f"{experts}.{theirs}_scales",), False)
            sources[f"{b}.mlp.{ours}_bias"] = ((f"{experts}.{theirs}_bias",), False)
    sources |= {"norm.scale": (("model.norm.weight",), False), "unembedding.weight": (("lm_head.weight",), False)}
    return sources


def hf_tensor_specs(config: Config, dequantized: bool = False) -> dict[str, tuple[tuple[str, ...], tuple]]:
    """Every tensor of a Hugging Face checkpoint: name -> (accepted safetensors dtypes, shape)."""
    c = config
    H, I, E, d = c.hidden_size, c.intermediate_size, c.num_experts, c.head_dim
    rows = {"q": c.num_attention_heads * d, "k": c.num_key_value_heads * d, "v": c.num_key_value_heads * d}
    specs = {"model.embed_tokens.weight": (FLOAT_DTYPES, (c.vocab_size, H))}
    u8 = ("U8",)
    for n in range(c.num_hidden_layers):
        p = f"model.layers.{n}"
        specs[f"{p}.input_layernorm.weight"] = (FLOAT_DTYPES, (H,))
        for x in "qkv":
            specs[f"{p}.self_attn.{x}_proj.weight"] = (FLOAT_DTYPES, (rows[x], H))
            specs[f"{p}.self_attn.{x}_proj.bias"] = (FLOAT_DTYPES, (rows[x],))
        specs |= {
            f"{p}.self_attn.o_proj.weight": (FLOAT_DTYPES, (H, rows["q"])),
            f"{p}.self_attn.o_proj.bias": (FLOAT_DTYPES, (H,)),
            f"{p}.self_attn.sinks": (FLOAT_DTYPES, (c.num_attention_heads,)),
            f"{p}.post_attention_layernorm.weight": (FLOAT_DTYPES, (H,)),
            f"{p}.mlp.router.weight": (FLOAT_DTYPES, (E, H)),
            f"{p}.mlp.router.bias": (FLOAT_DTYPES, (E,)),
        }
        experts = f"{p}.mlp.experts"
        if dequantized:
            specs[f"{experts}.gate_up_proj"] = (FLOAT_DTYPES, (E, H, 2 * I))
            specs[f"{experts}.down_proj"] = (FLOAT_DTYPES, (E, I, H))
        else:
            specs |= {
                f"{experts}.gate_up_proj_blocks": (u8, (E, 2 * I, H // BLOCK_SIZE, BYTES_PER_BLOCK)),
                f"{experts}.gate_up_proj_scales": (u8, (E, 2 * I, H // BLOCK_SIZE)),
                f"{experts}.down_proj_blocks": (u8, (E, H, I // BLOCK_SIZE, BYTES_PER_BLOCK)),
                f"{experts}.down_proj_scales": (u8, (E, H, I // BLOCK_SIZE)),
            }
        specs[f"{experts}.gate_up_proj_bias"] = (FLOAT_DTYPES, (E, 2 * I))
        specs[f"{experts}.down_proj_bias"] = (FLOAT_DTYPES, (E, H))
    specs |= {"model.norm.weight": (FLOAT_DTYPES, (H,)), "lm_head.weight": (FLOAT_DTYPES, (c.vocab_size, H))}
    return specs


def is_dequantized(names) -> bool:
    """Whether a Hugging Face checkpoint holds dense experts (gate_up_proj) rather than MXFP4 blocks."""
    return any(name.endswith("mlp.experts.gate_up_proj") for name in names)


def hf_tensors_from_original(config: Config, tensors: dict, dequantized: bool = False) -> dict:
    """{original name: (dtype, array)} -> {Hugging Face name: (dtype, array)}, as the conversion script writes.

    For the dequantized variant `tensors` must hold dense float32 expert weights under
    `block.n.mlp.mlp1_weight` (E, 2I, H) and `mlp2_weight` (E, H, I); they are written transposed, as BF16.
    """
    out = {}
    for name, (parts, transposed) in hf_sources(config, dequantized).items():
        dtype, array = tensors[name]
        if transposed:
            out[parts[0]] = (dtype, array.transpose(0, 2, 1))
            continue
        start = 0
        for part in parts:
            rows = hf_part_rows(config, part) if len(parts) > 1 else array.shape[0]
            out[part] = (dtype, array[start:start + rows])
            start += rows
    return out


def hf_part_rows(config: Config, name: str) -> int:
    """Rows of a q/k/v projection tensor: nq d for q, nkv d for k and v."""
    heads = config.num_attention_heads if ".q_proj." in name else config.num_key_value_heads
    return heads * config.head_dim
