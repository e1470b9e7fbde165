"""What every command shares: the one-line usage error, the argparse that prints it, the model and prompt
arguments, loading a model with a progress bar on the first touch of its weights, the tokenizer.

Only the project's own errors (UsageError here, ConfigError, CheckpointError) become one line and exit
status 2 (`cli.main`); anything else is a bug and keeps its traceback.
"""

import argparse
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

import minigptoss
from ..checkpoint import memory_estimate
from ..text.tokenizer import tokenizer_for

DEFAULT_PROMPT = "Hello, gpt-oss! What is 2 + 2?"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def parse_token_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"--tokens expects comma-separated integer ids, got {text!r}") from None


def load_model(weights, console: Console):
    path = weights or minigptoss.bundled("tiny")
    with console.status(f"loading {path}"):
        model = minigptoss.load(path)
    if model.checkpoint is not None and model.checkpoint.file_bytes > 2**30:  # a real-sized model: say what it costs
        console.print(checkpoint_summary(model), highlight=False)
    return model, path


def checkpoint_summary(model, tokens: int = 256) -> str:
    """What load() found, and the memory a pass over `tokens` tokens will need, before it starts."""
    info, gib = model.checkpoint, 2**30
    need = memory_estimate(model.config, model.weights, tokens)
    return (f"found {info.how} ({info.layout} layout, {len(info.files)} file(s), {info.file_bytes / 1e9:.1f} GB). "
            f"A {tokens}-token pass needs about {need.resident / gib:.1f} GiB: {need.experts_mapped / gib:.1f} GiB of "
            f"experts mapped from disk (reclaimable), {need.kept / gib:.1f} GiB of float32 weights kept, "
            f"{(need.other_mapped + need.working) / gib:.1f} GiB working memory.")


@contextmanager
def first_touch_progress(model, console: Console):
    """A progress bar while the weights are first touched (paged in from disk, widened to float32)."""
    weights = model.weights
    if not hasattr(weights, "on_first_use") or model.checkpoint is None or model.checkpoint.file_bytes < 2**30:
        yield
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("reading weights", total=sum(stored.nbytes for stored in weights.stored.values()))

    def touched(name: str, nbytes: int) -> None:
        where = f"layer {name.split('.')[1]}" if name.startswith("block.") else name.split(".")[0]
        progress.update(task, advance=nbytes, description=f"reading weights ({where})")

    weights.on_first_use = touched
    try:
        with progress:
            yield
    finally:
        weights.on_first_use = None


def get_tokenizer(vocab_size: int):
    """The tokenizer that matches the vocabulary (o200k_harmony for the real models, bytes for tiny ones)."""
    return tokenizer_for(vocab_size)


def prompt_tokens(args, tokenizer) -> list[int]:
    if args.tokens is not None:
        return parse_token_ids(args.tokens)
    return tokenizer.encode(args.prompt if args.prompt is not None else DEFAULT_PROMPT, allowed_special="all")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit status 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")




def add_model_arguments(parser: argparse.ArgumentParser, prompt: bool = True) -> None:
    """--weights DIR, and (with prompt) -p/--prompt TEXT or --tokens 1,2,3: the arguments of run, step, generate."""
    parser.add_argument("--weights", metavar="DIR", help="checkpoint folder (default: the bundled tiny_weights)")
    if prompt:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("-p", "--prompt", help=f"prompt text (default: {DEFAULT_PROMPT!r})")
        source.add_argument("--tokens", help="prompt as comma-separated token ids instead of text")
