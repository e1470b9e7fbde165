"""The `minigptoss` command.

    minigptoss run [--weights DIR] [-p TEXT | --tokens 1,2,3] [--top N]

`run` does one forward pass and prints the tokens, a per-layer summary of the residual stream and attention,
the router's choices, and the top next-token candidates. With no --weights it uses tiny_weights/.
Bad input (a missing folder, a malformed checkpoint, an id outside the vocabulary) is one line on stderr
and exit status 2.
"""

import argparse
import sys

import numpy as np
from rich.columns import Columns
from rich.console import Console
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
    return model, path


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
                            "blocks.*.moe.out", "blocks.*.moe.router.*") as cache:
        logits = model.forward(tokens)
    console.print(tokens_view(tokens, tokenizer))
    console.print(layers_table(model.config, cache))
    console.print(router_table(model.config, cache, tokens, tokenizer))
    console.print(top_tokens_table(logits[-1], tokenizer, args.top))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minigptoss", description="Run and inspect gpt-oss in pure NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one forward pass: tokens, per-layer summary, router, next token")
    run.add_argument("--weights", metavar="DIR", help="checkpoint folder (default: the bundled tiny_weights)")
    source = run.add_mutually_exclusive_group()
    source.add_argument("-p", "--prompt", help=f"prompt text (default: {DEFAULT_PROMPT!r})")
    source.add_argument("--tokens", help="prompt as comma-separated token ids instead of text")
    run.add_argument("--top", type=int, default=10, help="how many next-token candidates to show")
    run.set_defaults(handler=cmd_run)
    return parser


def main(argv=None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError

    args = build_parser().parse_args(argv)
    console = Console()
    try:
        args.handler(args, console)
    except (UsageError, ConfigError, CheckpointError, ValueError) as error:
        Console(stderr=True).print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
