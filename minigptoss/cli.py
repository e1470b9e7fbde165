"""The `minigptoss` command.

    minigptoss run [--weights DIR] [-p TEXT | --tokens 1,2,3] [--top N]

`run` does one forward pass and prints the tokens, a per-layer summary of the residual stream and attention,
the router's choices, and the top next-token candidates. With no --weights it uses tiny_weights/.
Bad input (a missing folder, a malformed checkpoint, an id outside the vocabulary) is one line on stderr
and exit status 2.
"""

import argparse
import sys
import time
from contextlib import contextmanager

import numpy as np
from rich.columns import Columns
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .moe import expert_load
from .render import sparkline

DEFAULT_PROMPT = "Hello, gpt-oss! What is 2 + 2?"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def parse_token_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"--tokens expects comma-separated integer ids, got {text!r}") from None


def load_model(weights, console: Console):
    import minigptoss

    path = weights or minigptoss.TINY_WEIGHTS
    with console.status(f"loading {path}"):
        model = minigptoss.load(path)
    if model.checkpoint is not None and model.checkpoint.file_bytes > 2**30:  # a real-sized model: say what it costs
        console.print(checkpoint_summary(model), highlight=False)
    return model, path


def checkpoint_summary(model, tokens: int = 256) -> str:
    """What load() found, and the memory a pass over `tokens` tokens will need, before it starts."""
    from .checkpoint import memory_estimate

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
    from .tokenizer import tokenizer_for

    return tokenizer_for(vocab_size)


def prompt_tokens(args, tokenizer) -> list[int]:
    if args.tokens is not None:
        return parse_token_ids(args.tokens)
    return tokenizer.encode(args.prompt if args.prompt is not None else DEFAULT_PROMPT, allowed_special="all")


def token_text(tokenizer, token_id: int) -> str:
    """A token's text for display, with whitespace and control characters made visible."""
    try:
        raw = tokenizer.decode_single_token_bytes(int(token_id))
    except (KeyError, ValueError):
        return f"<{token_id}>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # part of a multi-byte character: show the bytes
        return "".join(f"<0x{byte:02X}>" for byte in raw)
    return "".join(ch if ch.isprintable() and ch != " " else "␣" if ch == " " else
                   ch.encode("unicode_escape").decode("ascii") for ch in text)


def tokens_view(tokens, tokenizer) -> Columns:
    """Each token as `position:text [id]`, wrapped to the terminal width."""
    cells = [Text.assemble((f"{position}:", "dim"), (token_text(tokenizer, token), "bold"), (f"[{token}]", "cyan"))
             for position, token in enumerate(tokens)]
    return Columns(cells, title=f"{len(tokens)} tokens")


def layers_table(config, cache) -> Table:
    table = Table(title="residual stream and attention, per layer", title_justify="left")
    for column in ("layer", "attention", "|x| before", "|attn out|", "|moe out|", "|x| after", "sink mass"):
        table.add_column(column, justify="right")
    rms = lambda a: f"{float(np.sqrt(np.mean(np.square(a)))):.3f}"  # noqa: E731
    for n in range(config.num_hidden_layers):
        kind = f"sliding {config.sliding_window}" if config.is_sliding(n) else "full"
        table.add_row(str(n), kind, rms(cache[f"blocks.{n}.resid_pre"]), rms(cache[f"blocks.{n}.attn.out"]),
                      rms(cache[f"blocks.{n}.moe.out"]), rms(cache[f"blocks.{n}.resid_post"]),
                      f"{float(cache[f'blocks.{n}.attn.sink_mass'].mean()):.3f}")
    table.caption = "|x| is the root-mean-square over the hidden size; sink mass is averaged over heads and queries"
    return table


def router_table(config, cache, tokens, tokenizer) -> Table:
    last = len(tokens) - 1
    table = Table(title=f"router: tokens per expert, and the top-{config.experts_per_token} experts of the last token "
                        f"({token_text(tokenizer, tokens[-1])!r})", title_justify="left")
    for column in ("layer", "tokens per expert (expert 0, 1, ...)", "last token: expert (weight)"):
        table.add_column(column, justify="right" if column == "layer" else "left")
    for n in range(config.num_hidden_layers):
        expert_ids = cache[f"blocks.{n}.moe.router.expert_ids"]
        load = expert_load(expert_ids, config.num_experts)
        load_text = " ".join(str(count) for count in load) if config.num_experts <= 16 else sparkline(load)
        chosen = zip(expert_ids[last], cache[f"blocks.{n}.moe.router.weights"][last])
        table.add_row(str(n), load_text, "  ".join(f"{e} ({w:.2f})" for e, w in chosen))
    return table


def top_tokens_table(logits: np.ndarray, tokenizer, top: int) -> Table:
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-logits, kind="stable")[:top]
    table = Table(title="next token: top candidates", title_justify="left")
    for column in ("rank", "id", "text", "logit", "prob"):
        table.add_column(column, justify="right" if column != "text" else "left")
    for rank, token in enumerate(order, 1):
        table.add_row(str(rank), str(token), token_text(tokenizer, token), f"{logits[token]:.3f}",
                      f"{probs[token]:.3f}")
    return table


def cmd_run(args, console: Console) -> None:
    import minigptoss

    model, path = load_model(args.weights, console)
    tokenizer = get_tokenizer(model.config.vocab_size)
    tokens = prompt_tokens(args, tokenizer)
    console.print(f"[bold]minigptoss run[/] on {path}: {model.config.num_hidden_layers} layers, "
                  f"{model.config.num_experts} experts (top-{model.config.experts_per_token}), "
                  f"vocabulary {model.config.vocab_size}")
    with minigptoss.capture("blocks.*.resid_*", "blocks.*.attn.out", "blocks.*.attn.sink_mass",
                            "blocks.*.moe.out", "blocks.*.moe.router.*") as cache, first_touch_progress(model, console):
        start = time.perf_counter()
        logits = model.forward(tokens)
        seconds = time.perf_counter() - start
    console.print(f"forward pass: {len(tokens)} tokens in {seconds:.2f} s ({seconds / len(tokens):.3f} s/token)")
    console.print(tokens_view(tokens, tokenizer))
    console.print(layers_table(model.config, cache))
    console.print(router_table(model.config, cache, tokens, tokenizer))
    console.print(top_tokens_table(logits[-1], tokenizer, args.top))


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit status 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="minigptoss", description="Run and inspect gpt-oss in pure NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one forward pass: tokens, per-layer summary, router, next token")
    run.add_argument("--weights", metavar="DIR", help="checkpoint folder (default: the bundled tiny_weights)")
    source = run.add_mutually_exclusive_group()
    source.add_argument("-p", "--prompt", help=f"prompt text (default: {DEFAULT_PROMPT!r})")
    source.add_argument("--tokens", help="prompt as comma-separated token ids instead of text")
    run.add_argument("--top", type=int, default=10, help="how many next-token candidates to show")
    run.set_defaults(handler=cmd_run)
    # step: the step-through debugger; its arguments and handler live in step.py (imported here, not at the top,
    # because step.py uses this module's helpers).
    from .step import add_step_parser

    add_step_parser(commands)
    # generate and chat: talking to the model; arguments and handlers live in chat.py (imported here for the
    # same reason).
    from .chat import add_chat_parsers

    add_chat_parsers(commands)
    return parser


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError

    args = build_parser().parse_args(argv)
    console = Console()
    try:
        args.handler(args, console)
    except (UsageError, ConfigError, CheckpointError, ValueError) as error:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
