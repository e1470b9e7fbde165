"""What every command shares: the one-line usage error, the argparse that prints it, the model and prompt
arguments, loading a model with a progress bar on the first touch of its weights, the tokenizer.

Only the project's own errors (`errors.MinigptossError`: UsageError here, ConfigError, CheckpointError, ...)
become one line and exit status 2 (`cli.main`); anything else is a bug and keeps its traceback.
"""

import argparse
import difflib
import os
import sys
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
from ..text.tokenizer import IdTokenizer, no_tokenizer, tokenizer_or_ids

DEFAULT_PROMPT = "Hello, gpt-oss! What is 2 + 2?"  # for a model whose folder names no prompt (defaults.json)
DEFAULT_WEIGHTS = "sort"  # the bundled tiny model trained to sort digits and repeat letters; "tiny": the random one
CHAT_WEIGHTS = "chat"  # the bundled tiny model trained to answer in harmony (chat, generate --harmony)


class UsageError(MinigptossError):
    """Bad input from the user: printed as one line, exit status 2."""


def parse_token_ids(text: str, vocab_size: int | None = None) -> list[int]:
    """--tokens 1,2,3 -> [1, 2, 3]: at least one id, each inside the model's vocabulary [0, vocab_size)."""
    try:
        ids = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"--tokens expects comma-separated integer ids, got {text!r:.80}") from None
    if not ids:
        raise UsageError(f"--tokens {text!r:.80}: the prompt is empty; give at least one token id")
    outside = [i for i in ids if vocab_size is not None and not 0 <= i < vocab_size]
    if outside:
        raise UsageError(f"--tokens: id {outside[0]} is outside the vocabulary of the model ({vocab_size} tokens, "
                         f"ids 0..{vocab_size - 1})")
    return ids


def nonempty_prompt(ids: list[int], text: str) -> list[int]:
    """The prompt's token ids, or one UsageError if the text gave none (`-p ''`)."""
    if not ids:
        raise UsageError(f"the prompt {text!r:.80} is empty: it gives no tokens to run; give some text (-p TEXT) "
                         f"or token ids (--tokens 1,2,3)")
    return ids


COSTLY_BYTES = 2**30  # a checkpoint larger than this (a real model) says what a pass will cost before it runs


def load_model(weights, console: Console, default: str = DEFAULT_WEIGHTS):
    """The model of --weights, or the bundled `default`; -> (model, path). A command says what its pass will cost
    (say_cost) once it knows the prompt's length."""
    path = weights or minigptoss.bundled(default)
    with console.status(f"loading {path}"):
        model = minigptoss.load(path)
    return model, path


def say_cost(console: Console, model, tokens: int) -> None:
    """For a real-sized checkpoint, one line: what load() found and the memory a pass over `tokens` tokens needs."""
    if model.checkpoint is not None and model.checkpoint.file_bytes > COSTLY_BYTES:
        console.print(checkpoint_summary(model, max(1, tokens)), highlight=False)


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
    """The tokenizer that matches the vocabulary (o200k_harmony for the real models, bytes for tiny ones); for a
    vocabulary without one, token ids (prompts as --tokens, tokens shown as <id>: see say_ids_only)."""
    return tokenizer_or_ids(vocab_size)


def say_ids_only(tokenizer) -> None:
    """For a model without a tokenizer, once its prompt is known: a note on stderr that it runs on token ids."""
    if isinstance(tokenizer, IdTokenizer):
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"note: {no_tokenizer(tokenizer.n_vocab)}; running on token ids (--tokens), shown as <id>",
            style="dim", markup=False)


BUNDLED_TASKS = {"tiny": "random weights: expect gibberish"}  # the trained ones say theirs in defaults.json


def model_name(path) -> str:
    """How to name a checkpoint folder to a person: a bundled model by its short name ("bundled sort"), any other
    by its path with the home folder as ~ (never three lines of site-packages)."""
    from pathlib import Path

    path = Path(path)
    try:
        inside = path.resolve().relative_to(minigptoss.TINY_WEIGHTS.resolve())
    except (ValueError, OSError):
        home = Path.home()
        return f"~/{path.relative_to(home)}" if path.is_absolute() and path.is_relative_to(home) else str(path)
    return f"bundled {inside.parts[0] if inside.parts else 'tiny'}"


def model_banner(model, path) -> str:
    """One line naming the model and its task: "bundled sort (trained to sort 1-10 digits, ...; try 26023397=)",
    from the folder's defaults.json ("about" and "prompt") where given; for a real checkpoint its path and size."""
    name = model_name(model.checkpoint.folder if model.checkpoint is not None else path)
    defaults = model_defaults(model)
    task = defaults.about_line() or BUNDLED_TASKS.get(name.removeprefix("bundled "))
    if task is None:
        c = model.config
        task = f"{c.num_hidden_layers} layers, {c.num_experts} experts, vocabulary {c.vocab_size}"
    return f"{name} ({task})"


def model_defaults(model) -> ModelDefaults:
    """What the model's folder says about talking to it (defaults.json: its prompt, harmony, system message)."""
    return read_defaults(model.checkpoint.folder) if model.checkpoint is not None else ModelDefaults()


def chosen_prompt(args, defaults: ModelDefaults) -> str | None:
    """The prompt as text (the user's message for a harmony model): -p, else the model's own; None for --tokens."""
    if getattr(args, "tokens", None) is not None:
        return None
    return args.prompt if args.prompt is not None else defaults.prompt or DEFAULT_PROMPT


def noise_warning(defaults: ModelDefaults, text: str | None) -> str | None:
    """A warning when the prompt is none of the model's tasks (defaults.json's "tasks"): its answer is noise."""
    if text is None or defaults.in_tasks(text):
        return None
    return (f"note: {text!r} is not a prompt this model was trained on (try {defaults.prompt}): "
            "whatever it answers will be noise")


def prompt_tokens(args, tokenizer, defaults: ModelDefaults = ModelDefaults()) -> list[int]:
    """--tokens, else -p TEXT, else the model's own prompt (defaults.json), else DEFAULT_PROMPT; a model trained
    on harmony gets the text as the user's message of a conversation with its system message."""
    if args.tokens is not None:
        ids = parse_token_ids(args.tokens, tokenizer.n_vocab)
        say_ids_only(tokenizer)
        return ids
    text = chosen_prompt(args, defaults)
    if defaults.harmony:
        return render_conversation([SystemMessage(**defaults.system), Message("user", text)], tokenizer)
    return nonempty_prompt(tokenizer.encode(text, allowed_special="all"), text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (`--top 0` or `--top x` is a one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


LLAMA_CPP_FLAGS = {"-s": "--seed", "-m": "--weights", "--model": "--weights", "--temperature": "--temp"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit status 2), like every other error, named
    after the command it was given to (`minigptoss generate: unrecognized arguments: -s 1 (did you mean
    --seed?)`), not the top command argparse reports them from."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self
            for action in self._actions:  # the subcommand that was given, if any
                if isinstance(action, argparse._SubParsersAction) and getattr(parsed, action.dest, None):
                    parser = action.choices[getattr(parsed, action.dest)]
            options = [o for a in parser._actions for o in a.option_strings]
            guess = next((o for word in extras if word.startswith("-") for o in
                          [LLAMA_CPP_FLAGS.get(word)] + difflib.get_close_matches(word, options, n=1, cutoff=0.75)
                          if o in options), None)
            hint = f" (did you mean {guess}?)" if guess else ""
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed


def add_model_arguments(parser: argparse.ArgumentParser, prompt: bool = True) -> None:
    """--weights DIR, and (with prompt) -p/--prompt TEXT or --tokens 1,2,3: the arguments of run, step, generate."""
    parser.add_argument("--weights", metavar="DIR", help="checkpoint folder, or a bundled model: sort (the default: "
                        f"trained to sort digits), chat (trained to answer in harmony), tiny (random weights)")
    if prompt:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("-p", "--prompt", help="prompt text (default: the model's own, from its defaults.json; "
                                                   "'26023397=' for sort)")
        source.add_argument("--tokens", help="prompt as comma-separated token ids instead of text")
