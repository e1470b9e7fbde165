"""minigptoss: OpenAI's gpt-oss as a pure-NumPy interpreter you can step through.

    import minigptoss
    model = minigptoss.load("tiny_weights")          # or a gpt-oss-20b/120b `original/` folder
    with minigptoss.capture("blocks.0.attn.*") as cache:
        logits = model.forward([72, 101, 108, 108, 111])
    cache.show("blocks.0.attn.probs")

The package root is the model: one module per piece (mxfp4, rmsnorm, rope, attention, router, swiglu, moe),
composed in model.py, with config, kvcache, sampling and the inspector; NumPy only. Around it, folders by role:
fast/ (kernels held to the root's definitions), checkpoint/ (files), text/ (tokenizers, harmony), views/
(renderables), cli/ (the commands). This file is the public API that joins them.
"""

from pathlib import Path

from .checkpoint import CheckpointError, open_checkpoint, random_weights, write_checkpoint
from .errors import MinigptossError, TokenError
from .config import GPT_OSS_20B, GPT_OSS_120B, TINY, Config, ConfigError
from . import interventions
from .inspector import PatchError, patch
from .model import Model, logit_lens
from .text.tokenizer import o200k_harmony as _o200k_harmony
from .views.capture import capture

__version__ = "0.1.0"

TINY_WEIGHTS = Path(__file__).resolve().parent.parent / "tiny_weights"


def load(path, cache_bytes: int | None = None) -> Model:
    """A model from a checkpoint folder, in seconds and almost no memory: tensors stay memory-mapped.

    Accepts a folder in the original layout (config.json + *.safetensors, e.g. `original/`), a downloaded
    openai/gpt-oss-20b or -120b (its original/ is read), or the Hugging Face layout (sharded, MXFP4 or already
    dequantized experts). `model.checkpoint` says which it found (.layout, .how, .files). Names, dtypes and
    shapes are checked against the config first. bf16 tensors are widened to float32 when used, and kept
    within `cache_bytes` (default min(6 GiB, RAM/4)); see `checkpoint/files.py` for the policy.
    """
    config, weights, info = open_checkpoint(path, cache_bytes)
    return Model(config, weights, checkpoint=info)


def save(model: Model, path) -> None:
    """Write `model` to folder `path` in the original layout: config.json + model.safetensors (bf16, MXFP4)."""
    write_checkpoint(path, model.config, model.weights)


def o200k_harmony():
    """gpt-oss's tokenizer as a `tiktoken.Encoding`, built offline from the packaged vocabulary."""
    return _o200k_harmony()


def random_model(config: Config, seed: int = 0) -> Model:
    """A randomly initialised model, deterministic in `seed`, exactly representable in the on-disk format."""
    return Model(config, random_weights(config, seed))


__all__ = ["Config", "ConfigError", "CheckpointError", "Model", "capture", "patch", "PatchError", "interventions",
           "logit_lens", "load", "save", "random_model", "o200k_harmony",
           "GPT_OSS_20B", "GPT_OSS_120B", "TINY", "TINY_WEIGHTS"]
