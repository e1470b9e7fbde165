"""The model configuration: exactly the sixteen keys of gpt-oss's original `config.json`.

What it does: holds the hyper-parameters, offers the presets (gpt-oss-20b, gpt-oss-120b and the tiny model
shipped in `tiny_weights/`), reads and writes `config.json`, and refuses a missing, unknown or mistyped key
with one sentence naming it. What it does not do: read Hugging Face's `config.json` (different key names),
which belongs to the checkpoint loader.

Constants that are not in the file live here too: RMSNorm's eps, SwiGLU's alpha.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from .errors import MinigptossError

RMS_NORM_EPS = 1e-5
SWIGLU_ALPHA = 1.702


class ConfigError(MinigptossError):
    """A config.json (or Config) that is not a valid gpt-oss configuration."""


@dataclasses.dataclass(frozen=True)
class Config:
    num_hidden_layers: int
    num_experts: int
    experts_per_token: int
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    swiglu_limit: float
    head_dim: int
    num_attention_heads: int
    num_key_value_heads: int
    sliding_window: int
    initial_context_length: int
    rope_theta: float
    rope_scaling_factor: float
    rope_ntk_alpha: float
    rope_ntk_beta: float

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"config field {field.name!r} must be an integer, got {value!r}")
            if field.type == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"config field {field.name!r} must be a number, got {value!r}")
        self._check_consistency()

    def _check_consistency(self):
        c = self
        positive = ["num_hidden_layers", "num_experts", "experts_per_token", "vocab_size", "hidden_size",
                    "intermediate_size", "head_dim", "num_attention_heads", "num_key_value_heads",
                    "initial_context_length"]
        for name in positive:
            if getattr(c, name) <= 0:
                raise ConfigError(f"config field {name!r} must be positive, got {getattr(c, name)}")
        if c.sliding_window < 0:
            raise ConfigError(f"config field 'sliding_window' must be >= 0, got {c.sliding_window}")
        if c.experts_per_token > c.num_experts:
            raise ConfigError(f"config field 'experts_per_token' ({c.experts_per_token}) must not exceed "
                              f"'num_experts' ({c.num_experts})")
        if c.num_attention_heads % c.num_key_value_heads:
            raise ConfigError(f"config field 'num_attention_heads' ({c.num_attention_heads}) must be a multiple "
                              f"of 'num_key_value_heads' ({c.num_key_value_heads})")
        for name in ("hidden_size", "intermediate_size"):
            if getattr(c, name) % 32:
                raise ConfigError(f"config field {name!r} must be a multiple of 32 (the MXFP4 block size), "
                                  f"got {getattr(c, name)}")
        if c.head_dim % 2:
            raise ConfigError(f"config field 'head_dim' must be even for RoPE, got {c.head_dim}")
        if c.rope_scaling_factor > 1.0:
            low, high = yarn_ramp_bounds(c)
            if not 0 < low < high < c.head_dim / 2 - 1:
                raise ConfigError(
                    f"config fields 'head_dim' ({c.head_dim}) and 'rope_*' give YaRN ramp bounds "
                    f"low={low:.3f}, high={high:.3f}; gpt-oss requires 0 < low < high < head_dim/2 - 1 "
                    f"(use head_dim >= 16 or rope_scaling_factor 1)")

    # -- derived quantities ---------------------------------------------------------------------------------

    @property
    def queries_per_kv_head(self) -> int:
        """GQA ratio: how many query heads read each key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    def is_sliding(self, layer: int) -> bool:
        """Even-numbered layers (0, 2, 4, ...) use the sliding window; odd ones are full causal."""
        return layer % 2 == 0 and self.sliding_window > 0

    def window(self, layer: int) -> int:
        """The attention window of `layer` in keys (0 means unlimited, i.e. full causal)."""
        return self.sliding_window if self.is_sliding(layer) else 0

    # -- config.json ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "Config":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object of config fields, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in data if key not in names]
        if unknown:
            raise ConfigError(f"{source}: unknown field {unknown[0]!r} (an original gpt-oss config.json has "
                              f"exactly: {', '.join(names)})")
        missing = [name for name in names if name not in data]
        if missing:
            raise ConfigError(f"{source}: missing field {missing[0]!r}")
        try:
            return cls(**data)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_json(cls, path) -> "Config":
        return cls.from_dict(read_json(path), source=str(path))

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def read_json(path, error: type[Exception] = ConfigError):
    """A JSON file's contents, or one `error` naming the file (unreadable, or not JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{path}: cannot read the file ({problem.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{path}: not valid JSON ({problem.msg} at line {problem.lineno})") from None


def yarn_ramp_bounds(config: Config) -> tuple[float, float]:
    """YaRN's "NTK by parts" ramp: dims below `low` keep their frequency, dims above `high` are divided by s.

    low  = (d/2) ln(L0 / (beta 2 pi)) / ln(theta)
    high = (d/2) ln(L0 / (alpha 2 pi)) / ln(theta)
    """
    half = config.head_dim / 2
    ln_theta = math.log(config.rope_theta)
    low = half * math.log(config.initial_context_length / (config.rope_ntk_beta * 2 * math.pi)) / ln_theta
    high = half * math.log(config.initial_context_length / (config.rope_ntk_alpha * 2 * math.pi)) / ln_theta
    return low, high


GPT_OSS_20B = Config(
    num_hidden_layers=24, num_experts=32, experts_per_token=4, vocab_size=201088,
    hidden_size=2880, intermediate_size=2880, swiglu_limit=7.0, head_dim=64,
    num_attention_heads=64, num_key_value_heads=8, sliding_window=128, initial_context_length=4096,
    rope_theta=150000.0, rope_scaling_factor=32.0, rope_ntk_alpha=1.0, rope_ntk_beta=32.0,
)

GPT_OSS_120B = dataclasses.replace(GPT_OSS_20B, num_hidden_layers=36, num_experts=128)

# The tiny model of tiny_weights/: every piece runs (4 layers alternate sliding/full, 8 experts with top-2,
# GQA ratio 4, a window of 8 keys, YaRN with the real constants), small enough to read by eye.
# Its vocabulary (320) is the byte-level tiny tokenizer: 256 bytes, harmony's special tokens, spare ids.
TINY = dataclasses.replace(
    GPT_OSS_20B, num_hidden_layers=4, num_experts=8, experts_per_token=2, vocab_size=320,
    hidden_size=64, intermediate_size=64, head_dim=16, num_attention_heads=8, num_key_value_heads=2,
    sliding_window=8,
)

PRESETS = {"20b": GPT_OSS_20B, "120b": GPT_OSS_120B, "tiny": TINY}
