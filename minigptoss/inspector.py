"""Inspectors: the forward pass names every intermediate tensor; `capture` keeps the ones you ask for.

    with capture("blocks.0.*", "logits") as cache:
        logits = model.forward(tokens)
    cache["blocks.0.attn.probs"]          # (nq, T, T) float32

Names are dotted and stable (TransformerLens style): `embed`, `rope.cos`, `blocks.3.attn.probs`,
`blocks.3.moe.router.expert_ids`, `blocks.3.resid_post`, `norm`, `logits` (see `model.py` for the full list).
Patterns use shell wildcards (`fnmatch`): `*` matches dots too, so "blocks.*.attn.probs" takes every layer.

With no capture open, `record` returns at once: nothing is stored or copied, and the numbers never change
(recorded arrays are read-only views of the values the forward pass goes on using). A name recorded twice
under one capture (a second forward pass) keeps the newest value. What it does not do: render (views/capture.py
gives the public `minigptoss.capture` a `show`) or recompute anything.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from fnmatch import fnmatchcase

import numpy as np

_open_captures: list["Capture"] = []


class Capture(Mapping):
    """The recorded tensors whose names match the patterns, in the order the forward pass produced them."""

    def __init__(self, patterns: tuple[str, ...] = ("*",)):
        self.patterns = patterns or ("*",)
        self._tensors: dict[str, np.ndarray] = {}

    def wants(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._tensors:
            raise KeyError(f"{name!r} was not recorded (patterns {list(self.patterns)}; "
                           f"recorded: {len(self._tensors)} names, e.g. {list(self._tensors)[:3]})")
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


@contextmanager
def capture(*patterns: str, kind: type[Capture] = Capture):
    """Record every intermediate whose name matches one of `patterns` (all of them if none are given) into a
    new `kind` (a Capture, or a subclass that adds views)."""
    cache = kind(patterns)
    _open_captures.append(cache)
    try:
        yield cache
    finally:
        _open_captures.remove(cache)


def recording() -> bool:
    """True when some capture is open (so a caller may skip work whose only purpose is to be recorded)."""
    return bool(_open_captures)


def record(name: str, value) -> None:
    """Offer an intermediate to the open captures; free when none is open."""
    if not _open_captures:
        return
    for cache in _open_captures:
        if cache.wants(name):
            view = np.asarray(value).view()
            view.flags.writeable = False
            cache._tensors[name] = view
