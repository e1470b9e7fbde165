"""minigptoss: OpenAI's gpt-oss as a pure-NumPy interpreter you can step through.

    import minigptoss
    model = minigptoss.load("tiny_weights")          # or a gpt-oss-20b/120b `original/` folder
    with minigptoss.capture("blocks.0.attn.*") as cache:
        logits = model.forward([72, 101, 108, 108, 111])
    cache.show("blocks.0.attn.probs")

Pieces, one module each: mxfp4, rmsnorm, rope, attention, router, swiglu, moe; composed in model.py.
"""

from pathlib import Path

from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from .config import GPT_OSS_20B, GPT_OSS_120B, TINY, Config, ConfigError
from .inspector import capture
from .model import Model
from .weights import random_weights

__version__ = "0.1.0"

TINY_WEIGHTS = Path(__file__).resolve().parent.parent / "tiny_weights"


def load(path) -> Model:
    """A model from a folder holding config.json and *.safetensors in the original gpt-oss layout."""
    config, weights = read_checkpoint(path)
    return Model(config, weights)


def save(model: Model, path) -> None:
    """Write `model` to folder `path` in the original layout: config.json + model.safetensors (bf16, MXFP4)."""
    write_checkpoint(path, model.config, model.weights)


def random_model(config: Config, seed: int = 0) -> Model:
    """A randomly initialised model, deterministic in `seed`, exactly representable in the on-disk format."""
    return Model(config, random_weights(config, seed))


__all__ = ["Config", "ConfigError", "CheckpointError", "Model", "capture", "load", "save", "random_model",
           "GPT_OSS_20B", "GPT_OSS_120B", "TINY", "TINY_WEIGHTS"]
