"""The model configuration: exactly the sixteen keys of gpt-oss's original `config.json`.

What it does: holds the hyper-parameters, offers the presets (gpt-oss-20b, gpt-oss-120b and the tiny model
shipped in `tiny_weights/`), reads and writes `config.json`, and refuses a missing, unknown or mistyped key
with one sentence naming it. What it does not do: read Hugging Face's `config.json` (different key names),
which belongs to the checkpoint loader.

Constants that are not in the file live here too: RMSNorm's eps, SwiGLU's alpha.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import stat
from pathlib import Path

from .errors import MinigptossError

RMS_NORM_EPS = 1e-5
SWIGLU_ALPHA = 1.702


class ConfigError(MinigptossError):
    """A config.json (or Config) that is not a valid gpt-oss configuration."""


MAX_SIZE = 2**31 - 1  # no size of gpt-oss comes near; beyond it products of sizes overflow NumPy's indices
SWIGLU_LIMIT_MIN = 1e-3  # the clamp's smallest meaningful limit (see RANGES)
MAX_FLOAT = 1e18  # no constant of gpt-oss comes near; below it RoPE's float32 tables (s times theta) stay finite

# field -> (lowest, highest, what the error says it must be); every value must also be finite
RANGES = {
    "num_hidden_layers": (1, MAX_SIZE, "a whole number of layers from 1 to 2**31 - 1"),
    "num_experts": (1, MAX_SIZE, "a whole number of experts from 1 to 2**31 - 1"),
    "experts_per_token": (1, MAX_SIZE, "a whole number from 1 to 2**31 - 1"),
    "vocab_size": (1, MAX_SIZE, "a whole number of tokens from 1 to 2**31 - 1"),
    "hidden_size": (32, MAX_SIZE, "a whole number from 32 to 2**31 - 1"),
    "intermediate_size": (32, MAX_SIZE, "a whole number from 32 to 2**31 - 1"),
    "swiglu_limit": (SWIGLU_LIMIT_MIN, MAX_FLOAT, "a number >= 0.001 and <= 1e18 (gpt-oss: 7; a smaller limit clamps "
                     "every activation to nearly 0, so each expert gives its bias alone)"),
    "head_dim": (2, MAX_SIZE, "a whole number from 2 to 2**31 - 1"),
    "num_attention_heads": (1, MAX_SIZE, "a whole number of heads from 1 to 2**31 - 1"),
    "num_key_value_heads": (1, MAX_SIZE, "a whole number of heads from 1 to 2**31 - 1"),
    "sliding_window": (0, MAX_SIZE, "a whole number of keys from 0 to 2**31 - 1 (0: no window)"),
    "initial_context_length": (1, MAX_SIZE, "a whole number of positions from 1 to 2**31 - 1"),
    "rope_theta": (1.0, MAX_FLOAT, "a number > 1 and <= 1e18 (RoPE's base)"),
    "rope_scaling_factor": (1.0, MAX_FLOAT, "a number >= 1 and <= 1e18 (1: no YaRN)"),
    "rope_ntk_alpha": (0.0, MAX_FLOAT, "a number > 0 and <= 1e18"),
    "rope_ntk_beta": (0.0, MAX_FLOAT, "a number > 0 and <= 1e18"),
}
ABOVE_LOW = {"rope_theta", "rope_ntk_alpha", "rope_ntk_beta"}  # strictly greater than `lowest`


def _finite(value) -> bool:
    """A number that is neither NaN nor infinite (an int too large for a float counts as infinite)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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
                raise ConfigError(f"config field {field.name!r} must be an integer, got {value!r:.80}")
            if field.type == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"config field {field.name!r} must be a number, got {value!r:.80}")
        self._check_ranges()
        self._check_consistency()

    def _check_ranges(self):
        """Every field inside its range (RANGES), so that no arithmetic on it fails or overflows later."""
        for name, (low, high, what) in RANGES.items():
            value = getattr(self, name)
            if not (_finite(value) and low <= value <= high) or (name in ABOVE_LOW and value == low):
                raise ConfigError(f"config field {name!r} must be {what}, got {value!r:.80}")

    def _check_consistency(self):
        c = self
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


def open_regular(path, error: type[Exception] = ConfigError):
    """`path` opened for binary reading if it is a regular file, else one `error` naming it and saying why.

    A directory, FIFO or device is refused without blocking (opened with O_NONBLOCK, its type read from the open
    descriptor, so it cannot change in between); a missing file, a dangling symlink, a symlink loop or a
    permission problem is named.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as problem:
        why = "a symlink to a missing file" if problem.errno == errno.ENOENT and path.is_symlink() else problem.strerror
        raise error(f"{path}: cannot read the file ({why})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
        raise error(f"{path}: is {kind}, not a regular file")
    return os.fdopen(fd, "rb")


def read_json(path, error: type[Exception] = ConfigError):
    """A JSON file's contents, or one `error` naming the file: not a regular file, unreadable, not UTF-8, not
    JSON, nested too deep, or holding a number too long to convert."""
    path = Path(path)
    try:
        with open_regular(path, error) as f:
            data = f.read()
    except OSError as problem:
        raise error(f"{path}: cannot read the file ({problem.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (byte {problem.start} is 0x{data[problem.start]:02x})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{path}: not valid JSON ({problem.msg} at line {problem.lineno})") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply to read") from None
    except ValueError:  # an integer literal of thousands of digits (Python's int conversion limit)
        raise error(f"{path}: JSON holds an integer with too many digits to read") from None


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
