"""`minigptoss run`: one forward pass, summarised: the tokens, the residual stream and sink mass per layer, the
router's load and choices, the top next-token candidates.

    minigptoss run [--weights DIR] [-p TEXT | --tokens 1,2,3] [--top N] [--numerics NAME]

--numerics (cli/numerics.py) runs the pass again under another engine's roundings and compares.
"""

import time

from rich.console import Console

import minigptoss
from ..views.summary import layers_table, router_table, tokens_view, top_tokens_table
from .numerics import add_numerics_argument, run_report
from .common import (PassProgress, add_model_arguments, closed_pipe_is_fine, get_tokenizer, load_model,
                     chosen_prompt, model_banner, model_defaults, noise_warning, positive_int, prompt_tokens,
                     say_cost)


def cmd_run(args, console: Console) -> None:
    with closed_pipe_is_fine():
        run(args, console)


def run(args, console: Console) -> None:
    model, path = load_model(args.weights, console)
    tokenizer = get_tokenizer(model.config.vocab_size)
    defaults = model_defaults(model)
    tokens = prompt_tokens(args, tokenizer, defaults)
    say_cost(console, model, len(tokens))
    console.print(f"[bold]minigptoss run[/] on {model_banner(model, path)}: {model.config.num_hidden_layers} layers, "
                  f"{model.config.num_experts} experts (top-{model.config.experts_per_token}), "
                  f"vocabulary {model.config.vocab_size}")
    warning = noise_warning(defaults, chosen_prompt(args, defaults))
    if warning:
        console.print(warning, style="dim", markup=False, highlight=False, soft_wrap=True)
    progress = PassProgress(model)
    with minigptoss.capture("blocks.*.resid_*", "blocks.*.attn.out", "blocks.*.attn.sink_mass",
                            "blocks.*.moe.out", "blocks.*.moe.router.*") as cache, \
            progress.watching(), progress.shown(Console(stderr=True)):
        start = time.perf_counter()
        logits = model.forward(tokens)
        seconds = time.perf_counter() - start
    console.print(f"forward pass: {len(tokens)} tokens in {seconds:.2f} s ({seconds / len(tokens):.3f} s/token)")
    console.print(tokens_view(tokens, tokenizer))
    console.print(layers_table(model.config, cache))
    console.print(router_table(model.config, cache, tokens, tokenizer))
    console.print(top_tokens_table(logits[-1], tokenizer, args.top))
    if args.numerics is not None:
        console.print(run_report(model, tokens, logits, cache, args.numerics, tokenizer, args.top))


def add_run_parser(commands) -> None:
    run = commands.add_parser("run", help="one forward pass: tokens, per-layer summary, router, next token",
                              description="Run one forward pass over the prompt and print a summary: the tokens, "
                                          "per layer the size of the residual stream, the attention output, the "
                                          "sink mass and the MoE output, the router's load and choices, and the "
                                          "top next-token candidates after the last position. (`step` walks the "
                                          "same pass piece by piece.)")
    add_model_arguments(run)
    run.add_argument("--top", type=positive_int, default=10, help="how many next-token candidates to show")
    add_numerics_argument(run)
    run.set_defaults(handler=cmd_run)
