"""The public `minigptoss.capture`: the inspector's capture, whose recordings can show themselves.

    with minigptoss.capture("blocks.0.attn.*") as cache:
        model.forward(tokens)
    cache.show("blocks.0.attn.probs")     # rich summary: shape, stats, values, heatmap

The recording itself is `inspector.py`'s (NumPy only); this adds the views, so the model never imports them.
"""

from contextlib import contextmanager

from rich.console import Console

from .. import inspector
from .tensor import tensor_panel


class Capture(inspector.Capture):
    """inspector.Capture (names to arrays; repr, stack, head, logit_lens, steps), plus `show(name)`."""

    def show(self, name: str, console: Console | None = None) -> None:
        """Print a rich summary of one recorded tensor (to `console`, else a new stdout console)."""
        console = console or Console()
        console.print(tensor_panel(name, self[name], width=console.width))


@contextmanager
def capture(*patterns: str, per_step: bool = False):
    """Record every intermediate whose name matches one of `patterns` (all of them if none are given); with
    per_step=True keep every forward pass's values (`cache.steps`, e.g. one per token under `generate`)."""
    with inspector.capture(*patterns, kind=Capture, per_step=per_step) as cache:
        yield cache
