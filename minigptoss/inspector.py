"""Inspectors: the forward pass names every intermediate tensor; `capture` keeps the ones you ask for, `patch`
replaces them.

    with capture("blocks.0.*", "logits") as cache:
        logits = model.forward(tokens)
    cache["blocks.0.attn.probs"]          # (nq, T, T) float32

    with patch("blocks.1.attn.z", lambda z, name: np.zeros_like(z)):   # the pass goes on with the zeros
        logits = model.forward(tokens)

Names are dotted and stable (TransformerLens style): `embed`, `rope.cos`, `blocks.3.attn.probs`,
`blocks.3.moe.router.expert_ids`, `blocks.3.resid_post`, `norm`, `logits` (names.py declares them all, with
TransformerLens's name for each where it has one). Patterns use shell wildcards (`fnmatch`): `*` matches dots
too, so "blocks.*.attn.probs" takes every layer.

The forward pass hands each intermediate to `x = record(name, x)` and goes on with what it returns: the value
itself, or what the open patches made of it (in the order they were opened), which is then what the captures
see. A few names are computed for display only (names.py marks them `observed`): they are offered with
`observe(name, x)`, which captures but never patches, and patching one by its exact name is refused.
An `Intervention` is a labelled set of patches opened together (interventions.py and numerics.py make them).

With no capture or patch open, `record` returns its argument at once: nothing is stored or copied, and the
numbers never change. Recorded arrays are read-only views of the values the forward pass goes on using; a patch
function receives such a view and returns a new array of the same shape and dtype (checked). A name recorded
twice under one capture (a second forward pass) keeps the newest value, and with `per_step=True` every value,
one per pass (`cache.steps[i]`). What it does not do: render (views/capture.py gives the public
`minigptoss.capture` a `show`) or recompute anything.
"""

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from fnmatch import fnmatchcase

import numpy as np

from .arguments import instance, shown, text_patterns
from .errors import MinigptossError
from .kvcache import KVCache
from .names import OBSERVED, canonical, declared, from_transformer_lens, is_declared, recorded_names

_open_captures: list["Capture"] = []
_open_patches: list["Patch"] = []

_ANY_DEPTH = recorded_names(64)  # what a wildcard pattern is checked against (gpt-oss-120b has 36 layers)
PatchFunction = Callable[[np.ndarray, str], np.ndarray]


def closest(pattern: str, count: int = 3) -> list[str]:
    """What a pattern that matched no name probably meant: the nearest recorded names, or for a pattern with a
    wildcard the nearest name prefixes with it ("blocks.0.atn.*" -> "blocks.0.attn.*")."""
    stem, star, _ = pattern.partition("*")
    names = [n for n in _ANY_DEPTH if not n.startswith("blocks.") or n.split(".")[1] in ("0", stem.split(".")[1:2] and
                                                                                       stem.split(".")[1])]
    candidates = dict.fromkeys(name[:i + 1] for name in names for i, c in enumerate(name) if c == ".") if star \
        else dict.fromkeys(names)
    return [m + star for m in difflib.get_close_matches(stem, list(candidates), n=count, cutoff=0.5)]


class CaptureError(MinigptossError):
    """A capture pattern that matches no name a forward pass records."""


class PatchError(MinigptossError):
    """A patch that cannot be applied: an unknown or display-only name, or a replacement of the wrong shape/dtype."""


def _layer_order(name: str) -> tuple:
    """Sort key putting blocks.2 before blocks.10."""
    return tuple(int(part) if part.isdigit() else part for part in name.split("."))


class Capture(Mapping):
    """The recorded tensors whose names match the patterns, in the order the forward pass produced them.

    Besides the mapping: `stack(pattern)` (matching names stacked, layer order), `head(name, h)` (one head's
    slice), `logit_lens(model, name)` (a residual read through the final norm and unembedding), and, when
    made with per_step=True, `steps` (one dict per forward pass, e.g. per generated token)."""

    def __init__(self, patterns: tuple[str, ...] = ("*",), per_step: bool = False):
        self.patterns = tuple(canonical(p) for p in patterns) or ("*",)
        for pattern in self.patterns:  # a typo would record nothing, silently
            if not any(fnmatchcase(name, pattern) for name in _ANY_DEPTH):
                raise CaptureError(f"capture({pattern!r}) matches no recorded intermediate; closest: "
                                   f"{', '.join(closest(pattern)) or 'none'} (see minigptoss/names.py)")
        self.per_step = per_step
        self._tensors: dict[str, np.ndarray] = {}
        self._history: dict[str, list[np.ndarray]] = {}
        self.earlier_tokens: list[int] = []  # at_step: the tokens the earlier passes read (positions before ours)

    def wants(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def keep(self, name: str, value) -> None:
        view = np.asarray(value).view()
        view.flags.writeable = False
        self._tensors[name] = view
        if self.per_step:
            self._history.setdefault(name, []).append(view)

    def __getitem__(self, name) -> np.ndarray:
        name = canonical(name)  # TransformerLens spellings too: cache["pattern", 0], cache["blocks.0.attn.pattern"]
        if name not in self._tensors:
            near = difflib.get_close_matches(name, list(self._tensors), n=3, cutoff=0.6)
            raise KeyError(f"{name!r} was not recorded (patterns {list(self.patterns)}; "
                           f"recorded: {len(self._tensors)} names, "
                           + (f"closest: {', '.join(near)})" if near else f"e.g. {list(self._tensors)[:3]})"))
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        rows = [f"  {name:<34} {str(value.shape):<16} {value.dtype}" for name, value in self._tensors.items()]
        steps = f", {len(self.steps)} steps" if self.per_step else ""
        return "\n".join([f"{type(self).__name__}({len(self)} names{steps})", *rows])

    # -- TransformerLens-style access ----------------------------------------------------------------------

    def names(self, pattern: str) -> list[str]:
        """The recorded names matching `pattern`, in layer order (blocks.2 before blocks.10)."""
        pattern = from_transformer_lens(pattern)
        found = sorted((name for name in self._tensors if fnmatchcase(name, pattern)), key=_layer_order)
        if not found:
            raise KeyError(f"no recorded name matches {pattern!r} (patterns {list(self.patterns)})")
        return found

    def stack(self, pattern: str) -> np.ndarray:
        """The matching tensors stacked on a new first axis:  "blocks.*.resid_post" -> (L, T, H)."""
        return np.stack([self._tensors[name] for name in self.names(pattern)])

    def head(self, name: str, h: int) -> np.ndarray:
        """Head h's slice of a per-head tensor: probs/scores (nq, T, Tk) -> (T, Tk); q, q_rot (T, nq, d) -> (T, d);
        z (T, nq d) -> (T, d); sink_mass (nq, T) -> (T,); k, k_rot, v (T, nkv, d): h is a key/value head."""
        name = from_transformer_lens(name)
        value, dims = self[name], declared(name).dims
        if "nq d" in dims:  # z (T, nq d): split the heads apart with nq from a per-head tensor of the layer
            value, dims = value.reshape(value.shape[0], self._num_heads(name), -1), ["T", "nq", "d"]
        axes = [i for i, dim in enumerate(dims) if dim in ("nq", "nkv")]
        if not axes:
            raise KeyError(f"{name!r} has no head axis (its shape is {declared(name).shape})")
        if not 0 <= h < value.shape[axes[0]]:
            raise IndexError(f"{name!r} has {value.shape[axes[0]]} heads; head {h} does not exist")
        return np.take(value, h, axis=axes[0])

    def _num_heads(self, name: str) -> int:
        prefix = name.rpartition(".")[0]
        for sibling in ("probs", "scores", "sink_mass", "q", "q_rot"):
            if f"{prefix}.{sibling}" in self._tensors:
                value = self._tensors[f"{prefix}.{sibling}"]
                return value.shape[1] if sibling.startswith("q") else value.shape[0]
        raise KeyError(f"{name!r}: to split it into heads, capture {prefix}.probs (or .q) with it")

    def logit_lens(self, model, pattern: str) -> np.ndarray:
        """The final norm and unembedding applied to recorded residuals (`model.logit_lens`): one name
        (T, H) -> (T, V), or a pattern such as "blocks.*.resid_post" -> (L, T, V)."""
        pattern = from_transformer_lens(pattern)
        return model.logit_lens(self[pattern] if pattern in self._tensors else self.stack(pattern))

    @property
    def steps(self) -> list[dict[str, np.ndarray]]:
        """One {name: value} per forward pass recorded under this capture (needs per_step=True): under
        `model.generate`, steps[0] is the prompt's prefill and steps[i] the pass that fed the i-th new token."""
        if not self.per_step:
            raise ValueError("this capture keeps only the newest value of each name; open it with per_step=True")
        count = max((len(values) for values in self._history.values()), default=0)
        return [{name: values[i] for name, values in self._history.items() if i < len(values)} for i in range(count)]

    def step_count(self, name: str = "tokens") -> int:
        """How many passes have recorded `name` so far (per_step=True; `tokens`, the first name a forward pass
        records: how many passes have started)."""
        return len(self._history.get(name, ()))

    def at_step(self, i: int) -> "Capture":
        """Pass i alone (needs per_step=True) as a capture of the same kind, live: it holds what pass i has
        recorded so far and fills while it runs. `earlier_tokens` is what the passes before it read, so token
        labels can name every position its queries and cached keys sit at."""
        if not self.per_step:
            raise ValueError("this capture keeps only the newest value of each name; open it with per_step=True")
        one = type(self).__new__(type(self))
        Capture.__init__(one, self.patterns)
        one._tensors = _StepTensors(self._history, i)
        one.earlier_tokens = [int(t) for values in self._history.get("tokens", [])[:i] for t in values]
        return one


class _StepTensors(Mapping):
    """{name: the i-th value recorded under that name}, read live from a per-step capture's history."""

    def __init__(self, history: dict[str, list[np.ndarray]], i: int):
        self.history, self.i = history, i

    def __getitem__(self, name: str) -> np.ndarray:
        values = self.history.get(name, ())
        if len(values) <= self.i:
            raise KeyError(name)
        return values[self.i]

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, values in list(self.history.items()) if len(values) > self.i])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def capture(*patterns: str, kind: type[Capture] = Capture, per_step: bool = False):
    """Record every intermediate whose name matches one of `patterns` (all of them if none are given) into a
    new `kind` (a Capture, or a subclass that adds views). per_step: keep every pass's values, not the newest.
    A context manager; its arguments are checked when it is called, not when the block opens."""
    instance("capture", "per_step", per_step, bool, "True or False")
    return _capturing(kind(text_patterns("capture", "patterns", patterns), per_step=per_step))


@contextmanager
def _capturing(cache: Capture):
    _open_captures.append(cache)
    try:
        yield cache
    finally:
        _open_captures.remove(cache)


class Patch:
    """Replace every intermediate matching `patterns` with fn(value, name) (see `patch`)."""

    def __init__(self, patterns: str | Iterable[str], fn: PatchFunction, display: bool = False):
        if isinstance(patterns, str):
            patterns = (patterns,)
        elif not isinstance(patterns, (list, tuple, set, frozenset)):
            raise PatchError(f"patch: patterns must be a name pattern or a list of them (e.g. "
                             f"'blocks.0.attn.z'), got {shown(patterns)}")
        patterns = text_patterns("patch", "patterns", patterns, error=PatchError)
        if not callable(fn):
            raise PatchError(f"patch: fn must be a function fn(value, name) -> array, got {shown(fn)}")
        try:
            self.patterns = tuple(from_transformer_lens(p) for p in patterns)
        except KeyError as error:
            raise PatchError(f"cannot patch {error.args[0]}") from None
        self.fn, self.display = fn, display
        for pattern in self.patterns:
            wildcard = re.search(r"[*?\[]", pattern)
            if not (any(fnmatchcase(name, pattern) for name in _ANY_DEPTH) if wildcard else is_declared(pattern)):
                raise PatchError(f"cannot patch {pattern!r}: it matches no recorded intermediate "
                                 f"(see minigptoss/names.py)")
            if not display and not wildcard and declared(pattern).name in OBSERVED:
                raise PatchError(f"cannot patch {pattern!r}: it is computed for display only and the forward pass "
                                 f"does not use it ({declared(pattern).meaning}); see names.py's observed names")

    def wants(self, name: str, observed: bool) -> bool:
        return (self.display or not observed) and any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def apply(self, name: str, value: np.ndarray) -> np.ndarray:
        view = np.asarray(value).view()
        view.flags.writeable = False
        new = self.fn(view, name)
        if not isinstance(new, np.ndarray) or new.shape != view.shape or new.dtype != view.dtype:
            got = (f"shape {new.shape} dtype {new.dtype}" if isinstance(new, np.ndarray)
                   else f"a {type(new).__name__}")
            raise PatchError(f"the patch of {name!r} returned {got}; the forward pass needs an array of shape "
                             f"{view.shape} dtype {view.dtype}")
        return new


def patch(patterns: str | Iterable[str], fn: PatchFunction):
    """Within the block, every intermediate whose name matches `patterns` (one or several, wildcards as in
    `capture`) is replaced by fn(value, name) where the forward pass records it, and the pass goes on with the
    replacement (captures see it too). fn gets a read-only view and returns an array of the same shape and
    dtype. Display-only names (names.py's OBSERVED) are refused by exact name and skipped by wildcards.
    A context manager; its arguments are checked when it is called, not when the block opens."""
    return patching(Patch(patterns, fn))


@contextmanager
def patching(*patches: Patch):
    """Open already-made Patch objects (in order) for the block (interventions.py builds them)."""
    _open_patches.extend(patches)
    try:
        yield
    finally:
        for one in patches:
            _open_patches.remove(one)


def recording() -> bool:
    """True when some capture or patch is open (so a caller may skip work whose only purpose is to be recorded)."""
    return bool(_open_captures or _open_patches)


@contextmanager
def alone(cache: Capture):
    """Within the block, `cache` is the only open capture (the caller's see nothing); open patches still apply."""
    hidden = _open_captures[:]
    _open_captures[:] = [cache]
    try:
        yield cache
    finally:
        _open_captures[:] = hidden


def wanted(name: str) -> bool:
    """True when an open capture or patch would take `name` (so a caller may avoid building a huge value that
    nobody asked for, e.g. a long prompt's attention scores)."""
    return any(cache.wants(name) for cache in _open_captures) or any(p.wants(name, False) for p in _open_patches)


def record(name: str, value, observed: bool = False):
    """Offer an intermediate to the open patches, then to the open captures; return what the forward pass goes
    on with: `value` itself (the same object) unless a patch replaced it. Free when nothing is open."""
    if not (_open_captures or _open_patches):
        return value
    for one in _open_patches:
        if one.wants(name, observed):
            value = one.apply(name, value)
    for cache in _open_captures:
        if cache.wants(name):
            cache.keep(name, value)
    return value


def observe(name: str, value) -> None:
    """Offer a display-only intermediate (its value is not used further): captured, patched only by helpers that
    keep the display consistent (Patch(display=True))."""
    record(name, value, observed=True)


class Intervention:
    """A labelled set of patches opened together: `with intervention: model.forward(tokens)`."""

    def __init__(self, label: str, patches: Sequence[Patch], keep_all_keys: Iterable[int] | None = ()):
        self.label, self.patches = label, tuple(patches)
        self.keep_all_keys = keep_all_keys  # layers whose KV cache must keep every key (None: all layers)
        self._stack: list[ExitStack] = []

    def __enter__(self) -> "Intervention":
        stack = ExitStack()
        stack.enter_context(patching(*self.patches))
        self._stack.append(stack)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.pop().close()

    def __add__(self, other: "Intervention") -> "Intervention":
        if not isinstance(other, Intervention):
            return NotImplemented
        keep = None if self.keep_all_keys is None or other.keep_all_keys is None else \
            (*self.keep_all_keys, *other.keep_all_keys)
        return Intervention(f"{self.label} + {other.label}", self.patches + other.patches, keep)

    def __repr__(self) -> str:
        return f"Intervention({self.label!r})"

    def new_cache(self, model) -> KVCache:
        """A KV cache for `model.generate(..., cache=...)` that keeps what this intervention needs (window_off
        needs every key of the layers it opens up)."""
        cache = model.new_cache()
        for n in range(len(cache.windows)) if self.keep_all_keys is None else self.keep_all_keys:
            cache.windows[n] = 0
        return cache
