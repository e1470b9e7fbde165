"""The step-through debugger: run one forward pass, then walk it piece by piece.

    minigptoss step [--weights DIR] [-p TEXT | --tokens 1,2,3] [--layer N] [--break NAME] [--only PIECES]
                    [--no-pause]

The model runs ONCE under `capture()`; the list of steps is built from the names that were recorded, and every
screen reads only that cache (see `views.py`), so what you see is exactly what the forward pass computed.

Steps, in forward-pass order (n = layer):
    tokens  embed
    blocks.n.attn.norm  blocks.n.attn.qkv  blocks.n.attn.rope  blocks.n.attn  blocks.n.attn.out
    blocks.n.moe.norm  blocks.n.moe.router  blocks.n.moe.mlp1  blocks.n.moe.swiglu  blocks.n.moe.mlp2  blocks.n.moe
    norm  logits

Keys (when stdin and stdout are terminals): Enter or space = next, b = back (the steps already shown),
l N + Enter = jump to layer N, c = run to the end, q or Ctrl-C = quit. Otherwise (a pipe, a test, --no-pause)
every selected step is printed, one after the other.

--only attn,router keeps those pieces (tokens, embed, norm, qkv, rope, attn, router, mxfp4, swiglu, moe, output);
--layer 2 (or 0,3) keeps those layers' steps; --break blocks.3.attn runs on without showing anything until that
step (a prefix such as blocks.3.moe or a wildcard also works), then shows it and what follows.

Pure part (testable without a terminal): Step, build_steps, select_steps, find_break, parse_command,
Navigator. Terminal part: KeyReader, run_steps, cmd_step, add_step_parser.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from rich.console import Console
from rich.text import Text

import minigptoss
from ..views.steps import render_step
from .common import UsageError, add_model_arguments, get_tokenizer, prompt_tokens

# --only accepts these pieces (and the aliases below); each step belongs to exactly one.
PIECES = ("tokens", "embed", "norm", "qkv", "rope", "attn", "router", "mxfp4", "swiglu", "moe", "output")
ALIASES = {"rmsnorm": "norm", "attention": "attn", "sinks": "attn", "experts": "moe", "mlp1": "mxfp4",
           "logits": "output", "unembed": "output"}
# A step's kind chooses its view; its piece is what --only filters on.
PIECE_OF_KIND = {"tokens": "tokens", "embed": "embed", "norm": "norm", "qkv": "qkv", "rope": "rope",
                 "attn": "attn", "attn_out": "attn", "router": "router", "mxfp4": "mxfp4", "swiglu": "swiglu",
                 "mlp2": "moe", "moe": "moe", "output": "output"}

HELP_LINE = "[Enter/space] next · [b] back · [l N] layer · [c] continue · [q] quit"


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


def layer_steps(n: int) -> list[Step]:
    """The eleven steps of block n, in the order the forward pass runs them."""
    b, w = f"blocks.{n}", f"block.{n}"
    a, m = f"{b}.attn", f"{b}.moe"
    return [
        Step(f"{a}.norm", "norm", n, (f"{b}.resid_pre",), (f"{a}.normed",), (f"{w}.attn.norm.scale",)),
        Step(f"{a}.qkv", "qkv", n, (f"{a}.normed",), (f"{a}.qkv", f"{a}.q", f"{a}.k", f"{a}.v"),
             (f"{w}.attn.qkv.weight", f"{w}.attn.qkv.bias")),
        Step(f"{a}.rope", "rope", n, (f"{a}.q", f"{a}.k", "rope.inv_freq", "rope.cos", "rope.sin"),
             (f"{a}.q_rot", f"{a}.k_rot")),
        Step(a, "attn", n, (f"{a}.q_rot", f"{a}.k_rot", f"{a}.v", f"{a}.mask"),
             (f"{a}.scores", f"{a}.probs", f"{a}.sink_mass", f"{a}.z"), (f"{w}.attn.sinks",)),
        Step(f"{a}.out", "attn_out", n, (f"{a}.z", f"{b}.resid_pre"), (f"{a}.out", f"{b}.resid_mid"),
             (f"{w}.attn.out.weight", f"{w}.attn.out.bias")),
        Step(f"{m}.norm", "norm", n, (f"{b}.resid_mid",), (f"{m}.normed",), (f"{w}.mlp.norm.scale",)),
        Step(f"{m}.router", "router", n, (f"{m}.normed",),
             (f"{m}.router.logits", f"{m}.router.expert_ids", f"{m}.router.weights"),
             (f"{w}.mlp.gate.weight", f"{w}.mlp.gate.bias")),
        Step(f"{m}.mlp1", "mxfp4", n, (f"{m}.normed", f"{m}.router.expert_ids"), (f"{m}.mlp1",),
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


def parse_pieces(text: str | None) -> set[str] | None:
    """`--only attn,router` -> {"attn", "router"}; None for no filter. Unknown pieces are a UsageError."""
    if text is None:
        return None
    pieces = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        piece = ALIASES.get(part, part)
        if piece not in PIECES:
            raise UsageError(f"--only: unknown piece {part!r} (pieces: {', '.join(PIECES)})")
        pieces.add(piece)
    return pieces or None


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


def select_steps(steps: list[Step], pieces: set[str] | None = None, layers: set[int] | None = None) -> list[Step]:
    """The steps to show: of the given pieces (all if None) and, if layers are given, only those layers' steps."""
    return [step for step in steps
            if (pieces is None or step.piece in pieces) and (layers is None or step.layer in layers)]


def find_break(steps: list[Step], name: str) -> int:
    """Index of the breakpoint step: an exact step name, else the first step under it (`blocks.3.moe` ->
    `blocks.3.moe.norm`), else the first matching a wildcard pattern. UsageError if none does."""
    for match in (lambda s: s.name == name, lambda s: s.name.startswith(name + "."),
                  lambda s: fnmatchcase(s.name, name)):
        for index, step in enumerate(steps):
            if match(step):
                return index
    examples = ", ".join(step.name for step in steps[2:7])
    raise UsageError(f"--break {name!r} matches no step (steps are named like {examples}, ...)")


def start_index(all_steps: list[Step], shown: list[Step], break_name: str | None) -> int:
    """Where the walk starts in `shown`: 0, or the first shown step at or after the breakpoint."""
    if break_name is None:
        return 0
    target = find_break(all_steps, break_name)
    order = {step.name: index for index, step in enumerate(all_steps)}
    for index, step in enumerate(shown):
        if order[step.name] >= target:
            return index
    raise UsageError(f"--break {break_name!r}: no selected step at or after {all_steps[target].name} "
                     f"(check --only / --layer)")


# -- navigation: pure state, driven by commands -----------------------------------------------------------------

def parse_command(keys: str) -> tuple[str, int | None]:
    """Keys typed at the prompt -> (action, argument). Actions: next, back, layer, continue, quit, unknown."""
    if keys in ("\r", "\n", " ", "n", "j", "\x1b[C", "\x1b[B"):
        return "next", None
    if keys in ("b", "p", "k", "\x1b[D", "\x1b[A", "\x7f"):
        return "back", None
    if keys in ("c", "C"):
        return "continue", None
    if keys in ("q", "Q", "\x03", "\x04"):
        return "quit", None
    if keys[:1] in ("l", "L"):
        rest = keys[1:].strip()
        return ("layer", int(rest)) if rest.isdigit() else ("unknown", None)
    return "unknown", None


@dataclass
class Navigator:
    """Which step is on screen, the steps shown before it (for `back`), and whether the walk is over.

    `running` is set by `continue`: the remaining steps are shown without pausing.
    `note` is a one-line message for the user about the last command (empty if none).
    """

    steps: list[Step]
    index: int = 0
    history: list[int] = field(default_factory=list)
    finished: bool = False
    quit: bool = False
    running: bool = False
    note: str = ""

    @property
    def current(self) -> Step:
        return self.steps[self.index]

    def forward(self) -> None:
        """The next step; past the last one the walk is finished."""
        if self.index + 1 >= len(self.steps):
            self.finished = True
            return
        self.history.append(self.index)
        self.index += 1

    def back(self) -> None:
        """The step shown before this one."""
        if not self.history:
            self.note = "this is the first step shown; nothing to go back to"
            return
        self.index = self.history.pop()

    def jump_to_layer(self, layer: int) -> None:
        """The first step of `layer`."""
        for index, step in enumerate(self.steps):
            if step.layer == layer:
                self.history.append(self.index)
                self.index = index
                return
        layers = sorted({s.layer for s in self.steps if s.layer is not None})
        self.note = f"no step in layer {layer} (layers here: {', '.join(map(str, layers)) or 'none'})"

    def apply(self, command: tuple[str, int | None]) -> None:
        """Change the state for one parsed command (see `parse_command`)."""
        action, argument = command
        self.note = ""
        if action == "next":
            self.forward()
        elif action == "back":
            self.back()
        elif action == "layer":
            self.jump_to_layer(argument)
        elif action == "continue":
            self.running = True
            self.forward()
        elif action == "quit":
            self.finished = self.quit = True
        else:
            self.note = f"keys: {HELP_LINE}"


# -- terminal: keys, the loop, the command -------------------------------------------------------------------

class KeyReader:
    """Reads commands from a terminal in cbreak mode (keys arrive at once, no echo); restores the terminal.

    Ctrl-C still raises KeyboardInterrupt (signals stay on). `l` collects digits up to Enter, echoing them.
    """

    def __init__(self, fd: int, echo):
        self.fd, self.echo, self.buffer = fd, echo, ""

    def __enter__(self) -> "KeyReader":
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def _char(self) -> str:
        if not self.buffer:
            data = os.read(self.fd, 64)
            if not data:
                return "\x04"  # end of input: treated as quit
            self.buffer = data.decode("utf-8", errors="replace")
        char, self.buffer = self.buffer[0], self.buffer[1:]
        return char

    def read(self) -> str:
        """One command's keys: a key, an arrow key's escape sequence, or `l` + digits (up to Enter)."""
        char = self._char()
        if char == "\x1b":
            while self.buffer and len(char) < 3:  # only bytes that arrived with the escape
                char += self._char()
            return char
        if char not in "lL":
            return char
        self.echo("layer: ")
        digits = ""
        while (char := self._char()) not in "\r\n":
            if char in "\x03\x04\x1b":
                return "\x1b"  # cancelled
            if char in "\x7f\b":
                self.echo("\b \b" if digits else "")
                digits = digits[:-1]
            elif char.isdigit():
                digits += char
                self.echo(char)
        self.echo("\n")
        return "l" + digits


@dataclass
class Session:
    """One recorded forward pass, with everything the views need to render any of its steps."""

    model: object
    tokenizer: object
    tokens: list[int]
    cache: object
    source: str

    @property
    def config(self):
        return self.model.config

    @property
    def weights(self):
        return self.model.weights


class Elapsed:
    """A status line that re-reads itself each refresh: what is happening, the layer the forward pass has
    reached (from the names recorded so far), the checkpoint bytes read so far, and the seconds elapsed."""

    def __init__(self, what: str, cache=None, num_layers: int = 0):
        self.what, self.cache, self.num_layers, self.start = what, cache, num_layers, time.monotonic()
        self.last, self.read_bytes, self.reading = "", 0, ""

    def first_use(self, name: str, nbytes: int) -> None:
        """LazyWeights' on_first_use hook: a checkpoint tensor is read for the first time."""
        self.reading, self.read_bytes = name, self.read_bytes + nbytes

    def __rich__(self) -> Text:
        seconds = time.monotonic() - self.start
        if self.cache is not None:
            try:
                names = list(self.cache)  # the forward pass may be adding names meanwhile
                self.last = names[-1] if names else ""
            except RuntimeError:
                pass
        layers = recorded_layers([self.last])
        text = self.what + (f"  at blocks.{layers[0]} ({layers[0] + 1}/{self.num_layers})" if layers else "")
        if self.reading:
            text += f"  reading {self.reading} ({self.read_bytes / 1e9:.2f} GB so far)"
        return Text(f"{text}  ({seconds:.0f} s)")


def open_session(args, console: Console) -> Session:
    """Load the checkpoint, tokenize the prompt, and run the forward pass once under `capture()`."""
    path = args.weights or minigptoss.bundled("tiny")
    with console.status(Elapsed(f"loading {path}")):
        model = minigptoss.load(path)
    tokenizer = get_tokenizer(model.config.vocab_size)
    tokens = prompt_tokens(args, tokenizer)
    progress = Elapsed("forward pass", None, model.config.num_hidden_layers)
    hooked = hasattr(model.weights, "on_first_use")  # lazy weights report each tensor's first read
    if hooked:
        previous, model.weights.on_first_use = model.weights.on_first_use, progress.first_use
    try:
        with minigptoss.capture() as cache, console.status(progress):
            progress.cache = cache
            model.forward(tokens)
    finally:
        if hooked:
            model.weights.on_first_use = previous
    return Session(model, tokenizer, [int(t) for t in tokens], cache, str(path))


def show(console: Console, session: Session, nav: Navigator, interactive: bool, top: int) -> None:
    """Render the current step (a fresh screen when interactive)."""
    if interactive:
        console.clear()
    console.print(render_step(session, nav.current, nav.index, len(nav.steps), width=console.width, top=top))


def run_steps(session: Session, steps: list[Step], console: Console, start: int = 0, interactive: bool = False,
              reader: KeyReader | None = None, top: int = 10) -> Navigator:
    """Show the steps from `start`: all of them, or (interactive) one at a time as `reader`'s keys ask."""
    nav = Navigator(steps, start)
    drawn = None
    while not nav.finished:
        if nav.index != drawn:
            show(console, session, nav, interactive and not nav.running, top)
            drawn = nav.index
        if not interactive or nav.running:
            nav.forward()
            continue
        if nav.note:
            console.print(nav.note, style="yellow", highlight=False, markup=False)
        console.print(HELP_LINE, style="dim", end=" ", highlight=False, markup=False)
        console.file.flush()
        nav.apply(parse_command(reader.read()))
        console.print()
    return nav


def cmd_step(args, console: Console) -> None:
    """`minigptoss step`: record one forward pass, then walk it piece by piece."""
    session = open_session(args, console)
    all_steps = build_steps(session.cache)
    shown = select_steps(all_steps, parse_pieces(args.only),
                         parse_layers(args.layer, session.config.num_hidden_layers))
    if not shown:
        raise UsageError("no step matches --only / --layer")
    start = start_index(all_steps, shown, args.break_at)
    interactive = not args.no_pause and sys.stdin.isatty() and console.is_terminal
    console.print(f"[bold]minigptoss step[/] on {session.source}: {len(session.tokens)} tokens, "
                  f"{len(shown)} step{'s' if len(shown) != 1 else ''}", highlight=False)
    if start:
        console.print(f"ran {start} steps to the breakpoint {shown[start].name}", style="dim", highlight=False)
    try:
        if interactive:
            echo = lambda s: (console.file.write(s), console.file.flush())  # noqa: E731
            with KeyReader(sys.stdin.fileno(), echo) as reader:
                nav = run_steps(session, shown, console, start, True, reader, args.top)
        else:
            nav = run_steps(session, shown, console, start, False, top=args.top)
    except KeyboardInterrupt:
        console.print("\ninterrupted: quit", style="dim")
        return
    if nav.quit:
        console.print(f"quit at step {nav.index + 1}/{len(shown)} ({nav.current.name})", style="dim",
                      highlight=False)
    else:
        console.print("end of the forward pass", style="dim")


def add_step_parser(commands) -> None:
    """Register `minigptoss step` on the CLI's subparsers (called from cli.build_parser)."""
    step = commands.add_parser("step", help="walk one forward pass piece by piece (a debugger for gpt-oss)",
                               description=__doc__.split("\n\n")[0],
                               epilog=f"keys on a terminal: {HELP_LINE} (Ctrl-C quits too)")
    add_model_arguments(step)
    step.add_argument("--layer", metavar="N", help="show only layer N (or several: 0,2)")
    step.add_argument("--break", dest="break_at", metavar="NAME",
                      help="run without showing until step NAME (e.g. blocks.3.attn), then show from there")
    step.add_argument("--only", metavar="PIECES", help=f"show only these pieces, comma-separated: {', '.join(PIECES)}")
    step.add_argument("--no-pause", action="store_true",
                      help="print every step without waiting (the default when not on a terminal)")
    step.add_argument("--top", type=int, default=10, help="how many next-token candidates the output step shows")
    step.set_defaults(handler=cmd_step)
