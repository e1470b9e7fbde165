"""What every command shares: the one-line usage error, the argparse that prints it, the model and prompt
arguments, loading a model with a progress bar on the first touch of its weights, the tokenizer.

Only the project's own errors (`errors.MinigptossError`: UsageError here, ConfigError, CheckpointError, ...)
become one line and exit status 2 (`cli.main`); anything else is a bug and keeps its traceback.
"""

import argparse
import os
import sys
import threading
import time
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

import minigptoss
from .. import inspector
from ..checkpoint import memory_estimate
from ..checkpoint.defaults import ModelDefaults, read_defaults
from ..errors import MinigptossError
from ..fast.compiled import kernel_name
from ..text.harmony import Message, SystemMessage, render_conversation
from ..text.tokenizer import tokenizer_for

DEFAULT_PROMPT = "Hello, gpt-oss! What is 2 + 2?"  # for a model whose folder names no prompt (defaults.json)
DEFAULT_WEIGHTS = "sort"  # the bundled tiny model trained to sort digits and repeat letters; "tiny": the random one
CHAT_WEIGHTS = "chat"  # the bundled tiny model trained to answer in harmony (chat, generate --harmony)


class UsageError(MinigptossError):
    """Bad input from the user: printed as one line, exit status 2."""


def parse_token_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"--tokens expects comma-separated integer ids, got {text!r}") from None


def load_model(weights, console: Console, default: str = DEFAULT_WEIGHTS):
    """The model of --weights, or the bundled `default`; -> (model, path)."""
    path = weights or minigptoss.bundled(default)
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
            f"{(need.other_mapped + need.working) / gib:.1f} GiB working memory. Experts: {kernel_name()}.")


class PassCancelled(Exception):
    """Raised inside a forward pass whose PassProgress was cancelled (the user quit while it ran)."""


class _Watcher(inspector.Capture):
    """A capture that keeps nothing: it only notes the last name the forward pass offered (how far it got)."""

    def __init__(self, patterns=("*",), per_step: bool = False):
        super().__init__(patterns, per_step)
        self.last, self.cancelled = "", False

    def wants(self, name: str) -> bool:
        if self.cancelled:
            raise PassCancelled(name)
        self.last = name
        return False


class PassProgress:
    """How far one forward pass has got, with a total: `layers` blocks plus one unit for the unembedding (the
    final norm and the logits, which on a real vocabulary take as long as several layers), the checkpoint
    bytes read so far (lazy weights' first touch) and the seconds elapsed.

        progress = PassProgress(model)
        with progress.watching(), progress.shown(stderr_console):   # a bar on stderr (when it is a terminal)
            model.forward(tokens)

    `describe()` is the same line for the debugger's status bar. `cancel()` makes the pass stop at its next
    recorded name (PassCancelled).
    """

    def __init__(self, model):
        self.model, self.layers = model, model.config.num_hidden_layers
        self.start, self.read_bytes, self.reading, self.finished = time.monotonic(), 0, "", False
        self._watcher: _Watcher | None = None

    @property
    def total(self) -> int:
        return self.layers + 1

    @property
    def completed(self) -> int:
        """Units done: the blocks finished, plus one once the logits are recorded."""
        if self.finished:
            return self.total
        last = self._watcher.last if self._watcher is not None else ""
        if last.startswith("blocks."):
            return int(last.split(".")[1])
        return self.layers if last in ("norm", "logits") else 0

    def phase(self) -> str:
        last = self._watcher.last if self._watcher is not None else ""
        if self.finished:
            return "forward pass done"
        if last.startswith("blocks."):
            n = int(last.split(".")[1])
            return f"layer {n + 1}/{self.layers}"
        if last in ("norm", "logits"):
            return "unembedding (final norm, logits)"
        return "embedding"

    def describe(self) -> str:
        text = f"{self.phase()} · {self.completed}/{self.total}"
        if self.read_bytes:
            text += f" · {self.read_bytes / 1e9:.2f} GB of weights read"
        return f"{text} · {time.monotonic() - self.start:.0f} s"

    def _first_use(self, name: str, nbytes: int) -> None:
        self.reading, self.read_bytes = name, self.read_bytes + nbytes

    def cancel(self) -> None:
        if self._watcher is not None:
            self._watcher.cancelled = True

    @contextmanager
    def watching(self):
        """Follow the forward pass run inside (a watcher capture, and lazy weights' first-use hook)."""
        weights = self.model.weights
        hooked = hasattr(weights, "on_first_use")
        if hooked:
            previous, weights.on_first_use = weights.on_first_use, self._first_use
        try:
            with inspector.capture(kind=_Watcher) as watcher:
                self._watcher = watcher
                yield self
            self.finished = True
        finally:
            if hooked:
                weights.on_first_use = previous

    def __rich__(self):
        grid = Table.grid(padding=(0, 1))
        grid.add_row(ProgressBar(total=self.total, completed=self.completed, width=30), Text(self.describe()))
        return grid

    @contextmanager
    def shown(self, console: Console):
        """A live bar on `console` (stderr) while the block runs, if it is a terminal; cleared afterwards."""
        if not console.is_terminal:
            yield
            return
        with Live(self, console=console, transient=True, refresh_per_second=4, redirect_stdout=False,
                  redirect_stderr=False):
            yield


class BackgroundPass:
    """`model.forward(tokens)` in a thread, under a capture that fills as the pass goes (so the debugger can
    show a step once its tensors are recorded). `cache` is that capture, `progress` the PassProgress, `error`
    what the pass raised (None if fine); `done` is set when it ends. `stop()` cancels it and waits."""

    def __init__(self, model, tokens, kind=None):
        from ..views.capture import Capture  # the capture that can show itself

        self.model, self.tokens, self.kind = model, tokens, kind or Capture
        self.progress, self.error, self.cache = PassProgress(model), None, None
        self.done, self._opened = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="forward-pass", daemon=True)

    def start(self) -> "BackgroundPass":
        self.thread.start()
        self._opened.wait()
        return self

    def _run(self) -> None:
        try:
            with inspector.capture(kind=self.kind) as cache, self.progress.watching():
                self.cache = cache
                self._opened.set()
                self.model.forward(self.tokens)
        except PassCancelled:
            pass
        except BaseException as error:  # noqa: BLE001  (handed to the interface, which reports it)
            self.error = error
        finally:
            self._opened.set()
            self.done.set()

    def stop(self) -> None:
        self.progress.cancel()
        self.thread.join()


@contextmanager
def closed_pipe_is_fine():
    """`minigptoss step | head -1`: when the reader goes away, stop quietly (exit 0) instead of a traceback.
    stdout is pointed at /dev/null so the interpreter's final flush does not fail again. (rich does that
    itself and raises SystemExit(1) from the BrokenPipeError: a closed pipe is not a failure, so that is 0.)"""
    try:
        yield
    except SystemExit as exit:
        if not isinstance(exit.__context__, BrokenPipeError):
            raise
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def get_tokenizer(vocab_size: int):
    """The tokenizer that matches the vocabulary (o200k_harmony for the real models, bytes for tiny ones)."""
    return tokenizer_for(vocab_size)


def model_defaults(model) -> ModelDefaults:
    """What the model's folder says about talking to it (defaults.json: its prompt, harmony, system message)."""
    return read_defaults(model.checkpoint.folder) if model.checkpoint is not None else ModelDefaults()


def prompt_tokens(args, tokenizer, defaults: ModelDefaults = ModelDefaults()) -> list[int]:
    """--tokens, else -p TEXT, else the model's own prompt (defaults.json), else DEFAULT_PROMPT; a model trained
    on harmony gets the text as the user's message of a conversation with its system message."""
    if args.tokens is not None:
        return parse_token_ids(args.tokens)
    text = args.prompt if args.prompt is not None else defaults.prompt or DEFAULT_PROMPT
    if defaults.harmony:
        return render_conversation([SystemMessage(**defaults.system), Message("user", text)], tokenizer)
    return tokenizer.encode(text, allowed_special="all")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (`--top 0` or `--top x` is a one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit status 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def add_model_arguments(parser: argparse.ArgumentParser, prompt: bool = True) -> None:
    """--weights DIR, and (with prompt) -p/--prompt TEXT or --tokens 1,2,3: the arguments of run, step, generate."""
    parser.add_argument("--weights", metavar="DIR", help="checkpoint folder, or a bundled model: sort (the default: "
                        f"trained to sort digits), chat (trained to answer in harmony), tiny (random weights)")
    if prompt:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("-p", "--prompt", help="prompt text (default: the model's own, from its defaults.json; "
                                                   "'26023397=' for sort)")
        source.add_argument("--tokens", help="prompt as comma-separated token ids instead of text")
