"""Where non-finite values first appear: a forward pass whose logits hold NaN or inf says which intermediate
went non-finite first and which weights it was computed from.

A NaN in a bf16 tensor, or an MXFP4 scale byte of 255 (which means NaN), spreads through everything after it
and ends as all-NaN logits. Checking every intermediate on every pass would cost time on every pass, so
`Model.forward` checks only its logits (one np.isfinite over (T, V)); when they are not finite, `locate` runs
the same pass again under a capture that checks each intermediate as the pass records it and stops at the
first non-finite one. Attention scores are -inf where masked by design: only NaN and +inf count there.

    NonFiniteError: non-finite values first appear at blocks.2.moe.mlp1 (from block.2.mlp.mlp1_weight.scales:
    1 scale byte is 255, which is NaN in MXFP4)
"""

import numpy as np

from .errors import MinigptossError
from .inspector import Capture, alone


class NonFiniteError(MinigptossError):
    """A forward pass produced NaN or inf logits; the message names where they first appeared."""


# intermediate (after "blocks.N.") -> the weights of block N it is computed from, besides its inputs
WEIGHTS_OF = {
    "attn.normed": ["attn.norm.scale"], "attn.qkv": ["attn.qkv.weight", "attn.qkv.bias"],
    "attn.probs": ["attn.sinks"], "attn.sink_mass": ["attn.sinks"],
    "attn.out": ["attn.out.weight", "attn.out.bias"],
    "moe.normed": ["mlp.norm.scale"], "moe.router.logits": ["mlp.gate.weight", "mlp.gate.bias"],
    "moe.mlp1": ["mlp.mlp1_weight", "mlp.mlp1_weight.blocks", "mlp.mlp1_weight.scales", "mlp.mlp1_bias"],
    "moe.expert_out": ["mlp.mlp2_weight", "mlp.mlp2_weight.blocks", "mlp.mlp2_weight.scales", "mlp.mlp2_bias"],
}
TOP_WEIGHTS_OF = {"embed": ["embedding.weight"], "norm": ["norm.scale"], "logits": ["unembedding.weight"]}


class _Found(Exception):
    """Stops the checking pass at the first non-finite intermediate."""


class _Checker(Capture):
    """A capture that keeps nothing: it checks each intermediate as it is recorded."""

    first: str | None = None

    def wants(self, name: str) -> bool:
        return True

    def keep(self, name: str, value) -> None:
        array = np.asarray(value)
        if array.dtype.kind != "f":
            return
        bad = np.isnan(array).any() or np.isposinf(array).any() if name.endswith(".scores") \
            else not np.isfinite(array).all()
        if bad:
            self.first = name
            raise _Found


def locate(run) -> str | None:
    """Run `run()` (a forward pass) under a checking capture, alone (the caller's captures see nothing of it;
    its patches still apply): -> the first recorded name holding NaN or inf, or None."""
    checker = _Checker()
    try:
        with alone(checker):
            run()
    except _Found:
        pass
    return checker.first


def weights_behind(weights, name: str) -> list[str]:
    """The weights the intermediate `name` is computed from (only those present in this checkpoint)."""
    parts = name.split(".")
    if parts[0] == "blocks":
        block, rest = parts[1], ".".join(parts[2:])
        names = [f"block.{block}.{weight}" for weight in WEIGHTS_OF.get(rest, [])]
    else:
        names = TOP_WEIGHTS_OF.get(name, [])
    return [weight for weight in names if weight in weights]


def describe_weight(weights, name: str) -> str:
    """`name`, and what in it is non-finite when that can be seen cheaply (a NaN scale byte, NaN/inf values)."""
    if name.endswith(".scales"):
        nan_bytes = int(np.count_nonzero(np.asarray(weights[name]) == 255))
        return f"{name}: {nan_bytes} scale byte(s) are 255, which is NaN in MXFP4" if nan_bytes else name
    if name.endswith(".blocks"):
        return name
    try:
        values = np.asarray(weights[name], dtype=np.float32)
    except (TypeError, ValueError):
        return name
    count = int(values.size - np.count_nonzero(np.isfinite(values)))
    return f"{name}: {count} of its {values.size} values are NaN or inf" if count else name


def message(weights, first: str | None) -> str:
    """The one sentence NonFiniteError carries."""
    if first is None:
        return "the logits hold NaN or inf, but a second pass over the same tokens found no non-finite intermediate"
    behind = weights_behind(weights, first)
    guilty = [describe_weight(weights, name) for name in behind]
    named = [text for text in guilty if ":" in text]
    if named:
        return f"non-finite values first appear at {first} (from {'; '.join(named)})"
    if behind:
        return f"non-finite values first appear at {first} (computed from {', '.join(behind)} and its inputs)"
    return f"non-finite values first appear at {first} (computed from the intermediates before it)"
