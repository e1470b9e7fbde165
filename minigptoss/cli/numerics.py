"""`--numerics NAME` for `run` and `generate`: the same model under another engine's roundings (numerics.py).

    minigptoss run --numerics llama.cpp        the logits' distance from float32, per layer and at the end, and
                                               both runs' top next-token candidates side by side
    minigptoss generate --numerics bf16        the float32 answer, then the other one, and where they first part

NAME: f32 (the reference's float32: what minigptoss always computes; nothing to compare), bf16 (the torch
reference's bf16 run), llama.cpp (its CPU backend, fp16 KV cache), llama.cpp-f32kv (with an f32 KV cache).
"""

from __future__ import annotations

import numpy as np
from rich.console import Group
from rich.text import Text

from .. import numerics
from ..inspector import capture
from ..views.summary import compare_candidates


def add_numerics_argument(parser) -> None:
    parser.add_argument("--numerics", choices=list(numerics.NUMERICS), default=None, metavar="NAME",
                        help="also run under another engine's roundings and compare with float32: "
                             + ", ".join(numerics.NUMERICS))


def label(name: str) -> str:
    intervention = numerics.named(name)
    return "float32 (the reference's float32; what minigptoss computes)" if intervention is None \
        else intervention.label


def run_report(model, tokens, logits: np.ndarray, resid: dict, name: str, tokenizer, top: int):
    """The pass again under `name`: per-layer and final |delta| from the float32 run (`logits`, and `resid`:
    its blocks.N.resid_post), argmax agreement, both runs' candidates at the last position."""
    intervention = numerics.named(name)
    if intervention is None:
        return Text(f"--numerics f32: {label(name)}; nothing else to compare", style="dim")
    with capture("blocks.*.resid_post") as other_resid, intervention:
        other = model.forward(tokens)
    distance = numerics.logit_distance(logits, other)
    layers = [float(np.abs(other_resid[f"blocks.{n}.resid_post"] - resid[f"blocks.{n}.resid_post"]).max())
              for n in range(model.config.num_hidden_layers)]
    lines = [Text.assemble((f"--numerics {name}: ", "bold"), f"{intervention.label}, rounds: {numerics.WHERE[name]}"),
             Text(f"max |delta| of the residual stream after each layer: "
                  + ", ".join(f"{n}: {d:.3g}" for n, d in enumerate(layers))),
             Text(f"logits vs float32: max |delta| {distance['max']:.4g}, mean {distance['mean']:.3g} over "
                  f"{distance['positions']} positions x {logits.shape[-1]}; the argmax is the same at "
                  f"{distance['same_argmax']}/{distance['positions']} positions")]
    return Group(*lines, compare_candidates([logits[-1], other[-1]], ["float32", name], tokenizer, top))


def answers_report(model, tokenizer, prompt: list[int], first: list[int], name: str, generate_again) -> Text:
    """`first`: the float32 answer already shown; generate_again(): the same generation, returning its tokens,
    run here under `name`. Where the two answers part (k of n tokens the same first)."""
    intervention = numerics.named(name)
    if intervention is None:
        return Text(f"--numerics f32: {label(name)}; nothing else to compare", style="dim")
    with intervention:
        second = generate_again()
    same = next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))
    head = f"--numerics {name}: "
    if first == second:
        return Text(head + f"the same {len(first)} tokens as float32: {tokenizer.decode(first)!r}")
    return Text(head + f"the answers agree on the first {same} of {len(first)} / {len(second)} tokens "
                f"({tokenizer.decode(first[:same])!r}), then\n  float32:  {tokenizer.decode(first[same:])!r}\n"
                f"  {name}:{' ' * max(1, 9 - len(name))}{tokenizer.decode(second[same:])!r}")
