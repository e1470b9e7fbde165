"""The debugger's steps and how to move between them: pure state, testable without a terminal.

Steps, in forward-pass order (n = layer):
    tokens  embed
    blocks.n.attn.norm  blocks.n.attn.qkv  blocks.n.attn.rope  blocks.n.attn  blocks.n.attn.out
    blocks.n.moe.norm  blocks.n.moe.router  blocks.n.moe.mlp1  blocks.n.moe.swiglu  blocks.n.moe.mlp2  blocks.n.moe
    norm  logits

A step is *ready* once every tensor it reads and writes has been recorded, so the step list can be known before
the forward pass runs (`all_steps(num_layers)`) and shown while it runs.

Breakpoints (`--break`, several allowed) are patterns: a step name (`blocks.3.attn`), a shell wildcard
(`*.router`: every layer's router), a prefix (`blocks.3.moe`: the first step under it) or a step's last name
(`attn`, `router`: that step in every layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..names import recorded_names
from .common import UsageError

# --only accepts these pieces (and the aliases below); each step belongs to exactly one.
PIECES = ("tokens", "embed", "norm", "qkv", "rope", "attn", "router", "mxfp4", "swiglu", "moe", "output")
# An alias names the kinds of step it selects: "sinks" is the attention step alone (not its output projection),
# "experts" everything the experts do (mlp1, SwiGLU, mlp2, the weighted sum).
ALIASES = {"rmsnorm": ("norm",), "attention": ("attn", "attn_out"), "sinks": ("attn",),
           "experts": ("mxfp4", "swiglu", "mlp2", "moe"), "mlp1": ("mxfp4",), "mlp2": ("mlp2",),
           "logits": ("output",), "unembed": ("output",)}
# A step's kind chooses its view; its piece is what --only filters on.
PIECE_OF_KIND = {"tokens": "tokens", "embed": "embed", "norm": "norm", "qkv": "qkv", "rope": "rope",
                 "attn": "attn", "attn_out": "attn", "router": "router", "mxfp4": "mxfp4", "swiglu": "swiglu",
                 "mlp2": "moe", "moe": "moe", "output": "output"}


@dataclass(frozen=True)
class Step:
    """One stop of the walk: a piece of one layer (or of the whole model), what it reads and what it wrote.

    inputs / outputs are recorded names (keys of the capture); weights are checkpoint tensor names.
    """

    name: str
    kind: str
    layer: int | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()

    @property
    def piece(self) -> str:
        return PIECE_OF_KIND[self.kind]

    def ready(self, cache) -> bool:
        """True once the forward pass has recorded everything this step shows."""
        return all(name in cache for name in (*self.inputs, *self.outputs))


def layer_steps(n: int) -> list[Step]:
    """The eleven steps of block n, in the order the forward pass runs them."""
    b, w = f"blocks.{n}", f"block.{n}"
    a, m = f"{b}.attn", f"{b}.moe"
    return [
        Step(f"{a}.norm", "norm", n, (f"{b}.resid_pre",), (f"{a}.normed",), (f"{w}.attn.norm.scale",)),
        Step(f"{a}.qkv", "qkv", n, (f"{a}.normed",), (f"{a}.qkv", f"{a}.q", f"{a}.k", f"{a}.v"),
             (f"{w}.attn.qkv.weight", f"{w}.attn.qkv.bias")),
        Step(f"{a}.rope", "rope", n, (f"{a}.q", f"{a}.k", "rope.yarn_bounds", "rope.inv_freq", "rope.cos", "rope.sin"),
             (f"{a}.q_rot", f"{a}.k_rot")),
        Step(a, "attn", n, (f"{a}.q_rot", f"{a}.k_rot", f"{a}.v", f"{a}.mask"),
             (f"{a}.scores", f"{a}.probs", f"{a}.sink_mass", f"{a}.z"), (f"{w}.attn.sinks",)),
        Step(f"{a}.out", "attn_out", n, (f"{a}.z", f"{b}.resid_pre"), (f"{a}.out", f"{b}.resid_mid"),
             (f"{w}.attn.out.weight", f"{w}.attn.out.bias")),
        Step(f"{m}.norm", "norm", n, (f"{b}.resid_mid",), (f"{m}.normed",), (f"{w}.mlp.norm.scale",)),
        Step(f"{m}.router", "router", n, (f"{m}.normed",),
             (f"{m}.router.logits", f"{m}.router.expert_ids", f"{m}.router.weights"),
             (f"{w}.mlp.gate.weight", f"{w}.mlp.gate.bias")),
        Step(f"{m}.mlp1", "mxfp4", n, (f"{m}.expert_in", f"{m}.router.expert_ids"), (f"{m}.mlp1",),
             (f"{w}.mlp.mlp1_weight.blocks", f"{w}.mlp.mlp1_weight.scales", f"{w}.mlp.mlp1_bias")),
        Step(f"{m}.swiglu", "swiglu", n, (f"{m}.mlp1",), (f"{m}.swiglu",)),
        Step(f"{m}.mlp2", "mlp2", n, (f"{m}.swiglu", f"{m}.router.expert_ids"), (f"{m}.expert_out",),
             (f"{w}.mlp.mlp2_weight.blocks", f"{w}.mlp.mlp2_weight.scales", f"{w}.mlp.mlp2_bias")),
        Step(m, "moe", n, (f"{m}.expert_out", f"{m}.router.weights", f"{b}.resid_mid"),
             (f"{m}.out", f"{b}.resid_post")),
    ]


def recorded_layers(names) -> list[int]:
    """The layer numbers n that appear in recorded names `blocks.n.*`, ascending."""
    return sorted({int(name.split(".")[1]) for name in names
                   if name.startswith("blocks.") and name.split(".")[1].isdigit()})


def build_steps(names) -> list[Step]:
    """The ordered steps of one recorded forward pass: every step whose outputs were all recorded."""
    names = set(names)
    layers = recorded_layers(names)
    steps = [Step("tokens", "tokens", None, (), ("tokens", "positions")),
             Step("embed", "embed", None, ("tokens",), ("embed",), ("embedding.weight",))]
    for n in layers:
        steps += layer_steps(n)
    last = f"blocks.{layers[-1]}.resid_post" if layers else "embed"
    steps += [Step("norm", "norm", None, (last,), ("norm",), ("norm.scale",)),
              Step("logits", "output", None, ("norm",), ("logits",), ("unembedding.weight",))]
    return [step for step in steps if all(name in names for name in step.outputs)]


def all_steps(num_layers: int) -> list[Step]:
    """Every step of a forward pass through `num_layers` blocks, known before the pass runs."""
    return build_steps(recorded_names(num_layers))


def parse_pieces(text: str | None) -> set[str] | None:
    """`--only attn,router` -> the kinds of step those pieces (or aliases) cover, {"attn", "attn_out", "router"};
    None for no filter. Unknown pieces are a UsageError."""
    if text is None:
        return None
    kinds = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part in ALIASES:
            kinds.update(ALIASES[part])
        elif part in PIECES:
            kinds.update(kind for kind, piece in PIECE_OF_KIND.items() if piece == part)
        else:
            raise UsageError(f"--only: unknown piece {part!r} (pieces: {', '.join(PIECES)}; also "
                             f"{', '.join(ALIASES)})")
    return kinds or None


def parse_layers(text: str | None, num_layers: int) -> set[int] | None:
    """`--layer 2` or `--layer 0,3` -> {0, 3}; None for every layer. Out-of-range layers are a UsageError."""
    if text is None:
        return None
    try:
        layers = {int(part) for part in str(text).replace(" ", "").split(",") if part}
    except ValueError:
        raise UsageError(f"--layer expects a layer number (or several, comma-separated), got {text!r}") from None
    bad = sorted(n for n in layers if not 0 <= n < num_layers)
    if bad:
        raise UsageError(f"--layer {bad[0]} is outside the model's layers 0..{num_layers - 1}")
    return layers or None


def select_steps(steps: list[Step], kinds: set[str] | None = None, layers: set[int] | None = None) -> list[Step]:
    """The steps to show: of the given kinds (parse_pieces; all if None) and, if layers are given, only those
    layers' steps."""
    return [step for step in steps
            if (kinds is None or step.kind in kinds) and (layers is None or step.layer in layers)]


def matching(steps: list[Step], pattern: str) -> list[int]:
    """Indices of the steps a breakpoint pattern names: those named `pattern` or matching it as a wildcard;
    if none, the first step under it as a prefix (`blocks.3.moe` -> `blocks.3.moe.norm`); if none, every layer's
    step of that last name (`attn` -> blocks.0.attn, blocks.1.attn, ...; `moe.router`), as gdb's `break NAME`;
    if none, the step that writes a recorded tensor of that name (`blocks.2.attn.probs` -> blocks.2.attn)."""
    hits = [i for i, step in enumerate(steps) if step.name == pattern or fnmatchcase(step.name, pattern)]
    if hits:
        return hits
    hits = [i for i, step in enumerate(steps) if step.name.startswith(pattern + ".")][:1]
    hits = hits or [i for i, step in enumerate(steps) if step.name.endswith("." + pattern)]
    return hits or [i for i, step in enumerate(steps) if pattern in step.outputs][:1]


def find_break(steps: list[Step], name: str) -> int:
    """Index of the first step a breakpoint pattern names; UsageError if none does."""
    hits = matching(steps, name)
    if not hits:
        examples = ", ".join(step.name for step in steps[2:7])
        raise UsageError(f"--break {name!r} matches no step (steps are named like {examples}, ...)")
    return hits[0]


def break_indices(every: list[Step], shown: list[Step], patterns) -> list[int]:
    """Where the breakpoints fall in `shown`: for each step of `every` a pattern names, the first shown step at
    or after it. A pattern that names no step, or only steps after the last shown one, is a UsageError."""
    order = {step.name: index for index, step in enumerate(every)}
    positions = [order[step.name] for step in shown]
    found = set()
    for pattern in patterns or ():
        find_break(every, pattern)  # raises for a pattern that names nothing
        hits = [next((i for i, p in enumerate(positions) if p >= target), None) for target in matching(every, pattern)]
        hits = [i for i in hits if i is not None]
        if not hits:
            raise UsageError(f"--break {pattern!r}: no selected step at or after {every[matching(every, pattern)[0]].name} "
                             f"(check --only / --layer)")
        found.update(hits)
    return sorted(found)


def start_index(every: list[Step], shown: list[Step], break_name: str | None) -> int:
    """Where the walk starts in `shown`: 0, or the first shown step at or after the breakpoint."""
    return break_indices(every, shown, [break_name])[0] if break_name else 0


class Navigator:
    """Which step is on screen, in a list of steps in forward order, with breakpoints; moves never fail, they
    leave a one-line `note` instead when they cannot go where asked.

    next / prev: one step forward / back in forward order (prev works after any jump); layer(n): the first step
    of block n; goto(text): a step by name (exact, wildcard, prefix, then substring); cont(): the next
    breakpoint (the last step when there is none); search(text): the next step whose name contains text.
    """

    def __init__(self, steps: list[Step], index: int = 0, breaks=()):
        self.steps, self.index, self.breaks, self.note = steps, index, sorted(breaks), ""

    @property
    def current(self) -> Step:
        return self.steps[self.index]

    def _go(self, index: int) -> None:
        self.index, self.note = index, ""

    def next(self) -> None:
        if self.index + 1 >= len(self.steps):
            self.note = "this is the last step (b goes back, q quits)"
            return
        self._go(self.index + 1)

    def prev(self) -> None:
        if self.index == 0:
            self.note = "this is the first step"
            return
        self._go(self.index - 1)

    def first(self) -> None:
        self._go(0)

    def last(self) -> None:
        self._go(len(self.steps) - 1)

    def layer(self, n: int) -> None:
        for index, step in enumerate(self.steps):
            if step.layer == n:
                return self._go(index)
        layers = sorted({s.layer for s in self.steps if s.layer is not None})
        self.note = f"no step in layer {n} (layers here: {', '.join(map(str, layers)) or 'none'})"

    def matches(self, text: str) -> list[Step]:
        """The steps a typed name could mean, best first: pattern hits, then names containing the text."""
        text = text.strip()
        if not text:
            return list(self.steps)
        hits = matching(self.steps, text)
        hits += [i for i, s in enumerate(self.steps) if text.lower() in s.name.lower() and i not in hits]
        return [self.steps[i] for i in hits]

    def goto(self, text: str) -> None:
        found = self.matches(text)
        if not found:
            self.note = f"no step named like {text.strip()!r} (g lists them)"
            return
        self._go(self.steps.index(found[0]))

    def cont(self) -> None:
        """On to the next breakpoint after this step; without one, the last step."""
        ahead = [i for i in self.breaks if i > self.index]
        if ahead:
            return self._go(ahead[0])
        self._go(len(self.steps) - 1)
        self.note = "no breakpoint ahead: at the last step" if self.breaks else "at the last step (no --break set)"

    def search(self, text: str) -> None:
        """The next step (after this one, wrapping round) whose name contains `text`."""
        text, count = text.strip().lower(), len(self.steps)
        for offset in range(1, count + 1):
            index = (self.index + offset) % count
            if text and text in self.steps[index].name.lower():
                return self._go(index)
        self.note = f"no step name contains {text!r}"
