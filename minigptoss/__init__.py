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

import importlib
from pathlib import Path

# The public names, each imported from its module on first use (PEP 562), so that `import minigptoss` costs
# nothing: the command line (minigptoss/__main__.py) can then catch a Ctrl-C that arrives while NumPy, rich and
# the package's modules load, and end with status 130 instead of a traceback.
_EXPORTS = {
    "Config": "config", "ConfigError": "config", "GPT_OSS_20B": "config", "GPT_OSS_120B": "config", "TINY": "config",
    "CheckpointError": "checkpoint", "MinigptossError": "errors", "TokenError": "errors",
    "Model": "model", "logit_lens": "model", "patch": "inspector", "PatchError": "inspector",
    "capture": "views.capture",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    try:  # a submodule: minigptoss.model, minigptoss.interventions, ...
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__version__ = "0.1.0"


def _bundle_folder() -> Path:
    """The shipped tiny_weights/ folder: inside the installed package (a wheel, `pip install .`), or beside the
    package in a source checkout (`pip install -e .`, or run from the repository)."""
    package = Path(__file__).resolve().parent
    installed = package / "tiny_weights"
    return installed if installed.is_dir() else package.parent / "tiny_weights"


TINY_WEIGHTS = _bundle_folder()  # the bundled random tiny model (a Path that works from any directory)
_TINY_NAMES = ("tiny", "tiny_weights")


def bundled_names() -> list[str]:
    """The short names `bundled` and `load` accept: "tiny" and "tiny_weights" (the random tiny model), then each
    subfolder of the bundle that holds a checkpoint (e.g. "sort", "chat" when they are shipped)."""
    trained = sorted(folder.name for folder in TINY_WEIGHTS.iterdir() if (folder / "config.json").is_file()) \
        if TINY_WEIGHTS.is_dir() else []
    return [*_TINY_NAMES, *trained]


def bundled(name: str = "tiny") -> Path:
    """The folder of a checkpoint shipped with minigptoss, found from any directory and any kind of install.

    "tiny" or "tiny_weights": the random tiny model (`TINY_WEIGHTS`); "sort", "chat", ...: the trained models
    in its subfolders. An unknown name raises CheckpointError listing the bundled names.
    """
    from .arguments import instance

    instance("bundled", "name", name, str, "the name of a bundled model (see bundled_names())")
    if name in _TINY_NAMES:
        return TINY_WEIGHTS
    folder = TINY_WEIGHTS / name
    if name not in bundled_names():
        from .checkpoint import CheckpointError

        raise CheckpointError(f"{name}: no such folder here, and not the name of a bundled model (bundled: "
                              f"{', '.join(bundled_names())})")
    return folder


def resolve(path) -> Path:
    """What `load(path)` opens: `path` itself if it exists (a real path always wins over a short name), else the
    folder of the bundled model a bare name such as "tiny_weights", "tiny" or "sort" stands for; a bare name
    that is neither raises CheckpointError listing the bundled names."""
    given = Path(path)
    try:
        exists = given.exists()
    except OSError:  # a folder on the way that cannot be searched: the loader names it
        exists = True
    if exists or not isinstance(path, str) or given.name != path:
        return given
    return bundled(path)


def load(path, cache_bytes: int | None = None):
    """A model from a checkpoint folder, in seconds and almost no memory: tensors stay memory-mapped.

    `path` may also be a bundled model's short name, from any directory: "tiny_weights" (or "tiny"), "sort",
    "chat" (see `bundled`); an existing file or folder of that name wins. Accepts a folder in the original
    layout (config.json + *.safetensors, e.g. `original/`), a downloaded
    openai/gpt-oss-20b or -120b (its original/ is read), or the Hugging Face layout (sharded, MXFP4 or already
    dequantized experts). `model.checkpoint` says which it found (.layout, .how, .files). Names, dtypes and
    shapes are checked against the config first. bf16 tensors are widened to float32 when used, and kept
    within `cache_bytes` (default min(6 GiB, RAM/4)); see `checkpoint/files.py` for the policy.
    """
    from .arguments import path_like
    from .checkpoint import open_checkpoint
    from .fast import compiled, dense
    from .model import Model
    from .text.tokenizer import tokenizer_for

    in_place = dense.PARALLEL_MIN_WEIGHTS if compiled.enabled() else None  # numba: large bf16 read in place
    config, weights, info = open_checkpoint(resolve(path_like("load", "path", path)), cache_bytes, in_place)
    model = Model(config, weights, checkpoint=info)
    model.make_tokenizer = lambda: tokenizer_for(config.vocab_size)  # model.tokenizer, made on first use
    return model


def save(model, path) -> None:
    """Write `model` to folder `path` in the original layout: config.json + model.safetensors (bf16, MXFP4)."""
    from .arguments import instance, path_like
    from .checkpoint import write_checkpoint
    from .model import Model

    instance("save", "model", model, Model, "a minigptoss.Model (from load or random_model)")
    write_checkpoint(path_like("save", "path", path), model.config, model.weights)


def o200k_harmony():
    """gpt-oss's tokenizer as a `tiktoken.Encoding`, built offline from the packaged vocabulary."""
    from .text.tokenizer import o200k_harmony as build

    return build()


def random_model(config, seed: int = 0):
    """A randomly initialised model, deterministic in `seed`, exactly representable in the on-disk format."""
    from .arguments import instance, whole_number
    from .checkpoint import random_weights
    from .config import Config
    from .model import Model

    instance("random_model", "config", config, Config, "a minigptoss.Config (e.g. minigptoss.TINY)")
    return Model(config, random_weights(config, whole_number("random_model", "seed", seed, low=0)))


__all__ = ["Config", "ConfigError", "CheckpointError", "MinigptossError", "TokenError", "Model", "capture", "patch",
           "PatchError", "interventions",
           "logit_lens", "load", "save", "random_model", "o200k_harmony",
           "bundled", "bundled_names", "GPT_OSS_20B", "GPT_OSS_120B", "TINY", "TINY_WEIGHTS"]
