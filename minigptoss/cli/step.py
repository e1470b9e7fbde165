"""The step-through debugger: generate from a prompt, then walk every forward pass piece by piece.

    minigptoss step [--weights DIR] [-p TEXT | --tokens 1,2,3] [-n N] [--temp T] [--top-p P] [--top-k K]
                    [--seed S] [--pass K] [--layer N] [--break NAME ...] [--only PIECES] [--no-pause] [--top N]
                    [--export DIR]

The model generates ONCE, in a thread beside the interface (cli/generation.py): pass 1 reads the prompt, each
later pass the token the one before drew, through the KV cache, until the stop token or -n tokens. Every pass
is recorded under its own capture, and a step can be shown as soon as its pass has recorded its tensors (so on
a real checkpoint the embedding and layer 0 are readable within seconds, and pass 2 as soon as pass 1 drew its
token); every screen reads only those recordings (views/steps.py, views/passes.py), so what you see is
exactly what the passes computed.

On a terminal the walk is a full-screen app (cli/debugger.py; `?` lists its keys). Otherwise (a pipe, a test,
--no-pause) every selected step is printed, title on top, one after the other, as the pass records it; the
pass's progress goes to stderr.

--only attn,router keeps those pieces (tokens, embed, norm, qkv, rope, attn, router, mxfp4, swiglu, moe, output);
--layer 2 (or 0,3) keeps those layers' steps; --break blocks.3.attn starts at that step (a prefix such as
blocks.3.moe or a wildcard such as '*.router' also works; give --break several times and `c` continues from one
to the next). The steps and the moves between them are cli/navigation.py (pure).
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

import minigptoss
from ..model import check_tokens
from ..views.report import generation_html
from ..views.passes import answers_text, pass_line, timeline, timeline_passes
from ..views.steps import render_step, step_body, step_title, where_text
from .common import (DEFAULT_WEIGHTS, UsageError, add_model_arguments, chosen_prompt, closed_pipe_is_fine,
                     get_tokenizer, model_banner, model_defaults, noise_warning, positive_int, prompt_tokens)
from .generation import Generation, Settings, default_stops
from .talk import max_tokens_arg, temperature_arg, top_k_arg, top_p_arg
from .navigation import (PIECES, Navigator, Step, all_steps, break_indices, build_steps,  # noqa: F401 (re-exported)
                         find_break, parse_layers, parse_pieces, select_steps, start_index)


@dataclass
class Session:
    """One forward pass (running or done), with everything the views need to render any of its steps.

    `cache` fills while `run` (the Generation) goes on; a step is ready once `step.ready(cache)`. `tokens` is
    the text through this pass's inputs, `start` the position of its first input (0 for the prompt's pass),
    `this_pass` the generation.Pass (None for a lone forward pass). A generation run under an intervention
    (cli/compare.py) has its `label`."""

    model: object
    tokenizer: object
    tokens: list[int]
    cache: object
    source: str
    run: Generation | None = None
    label: str = ""  # what was changed in this pass (an intervention), "" for the model as it is
    start: int = 0
    this_pass: object = None

    def passes(self) -> list["Session"]:
        """A Session per pass the generation has started (this one's run), in order."""
        if self.run is None:
            return [self]
        text = [*self.run.prompt, *self.run.written]
        return [replace(self, tokens=text[:one.end], cache=one.cache, start=one.start, this_pass=one)
                for one in self.run.passes]

    def timeline(self, selected: int | None = None):
        """The timeline of this session's generation (views/passes.py): a row per token written (row `selected`
        highlighted)."""
        return timeline([one.this_pass for one in self.passes()], self.config, self.tokenizer,
                        [*self.run.prompt, *self.run.written], selected)

    def timeline_pass_numbers(self) -> list[int]:
        """The pass number (1-based) of each timeline row."""
        return [one.number for one in timeline_passes([one.this_pass for one in self.passes()])]

    def answers(self, others=()) -> Text:
        """The whole text (the prompt, then what was written, stop token by name); with the `others`
        (generations under interventions), each one's and the position where it first differs."""
        return answers_text(self.tokenizer, self.run.prompt, [(self.label or "unpatched", self.run.written),
                                                              *((other.label, other.run.written) for other in others)])

    def pass_count(self) -> str:
        """"9" once the generation is over, "≤64" while it may still write more."""
        if self.run is None:
            return "1"
        total = self.run.total
        return str(total) if total is not None else f"≤{self.run.most()}"

    @property
    def config(self):
        return self.model.config

    @property
    def weights(self):
        return self.model.weights

    def ready(self, step: Step) -> bool:
        """Whether `step` can be drawn: recorded, and for the output step of a generation's pass, its token
        drawn (or the generation over)."""
        if not step.ready(self.cache):
            return False
        return step.kind != "output" or self.this_pass is None or self.this_pass.drawn is not None or \
            self.run is None or self.run.done.is_set()

    def wait_for(self, step: Step, poll: float = 0.02) -> bool:
        """Block until `step` is ready (True) or the generation ended without it (False; see run.error)."""
        while not self.ready(step):
            if self.run is None or self.run.done.is_set():
                return self.ready(step)
            time.sleep(poll)
        return True

    def stop(self) -> None:
        if self.run is not None and not self.run.done.is_set():
            self.run.stop()


def settings_of(args) -> Settings:
    """-n, --temp, --top-p, --top-k, --seed as generation Settings (greedy, at most 64 tokens by default)."""
    seed = args.seed
    if seed is None and args.temperature > 0:
        seed = 0  # printed with the sampling view, so a run can be repeated exactly
    return Settings(sys.maxsize if args.max_tokens == -1 else args.max_tokens, args.temperature, args.top_p,
                    args.top_k or None, seed)


def open_session(args, console: Console, model=None, wait: bool = True) -> Session:
    """Load the checkpoint, tokenize the prompt, and start generating in a thread, every pass recorded
    (cli/generation.py). Returns the Session of pass 1; with `wait`, once every pass is over (its error, if any,
    raised here)."""
    path = args.weights or minigptoss.bundled(DEFAULT_WEIGHTS)
    if model is None:
        with console.status(f"loading {path}"):
            model = minigptoss.load(path)
    tokenizer = get_tokenizer(model.config.vocab_size)
    defaults = model_defaults(model)
    tokens = [int(t) for t in check_tokens(prompt_tokens(args, tokenizer, defaults), model.config.vocab_size)]
    run = Generation(model, tokens, settings_of(args), default_stops(tokenizer, defaults.harmony)).start()
    while not run.passes and not run.done.is_set():  # pass 1 opens at once (its tokens are its first record)
        time.sleep(0.001)
    first = run.passes[0] if run.passes else None
    session = Session(model, tokenizer, tokens, first.cache if first else run.capture, str(path), run,
                      this_pass=first)
    if wait:
        run.wait()
    return session


def about_lines(args, session: Session) -> list[str]:
    """The warning that the answer will be noise, when the prompt is none of the model's tasks (defaults.json)."""
    defaults = model_defaults(session.model)
    warning = noise_warning(defaults, chosen_prompt(args, defaults))
    return [warning] if warning else []


def plan(args, session: Session) -> tuple[list[Step], list[Step], list[int]]:
    """(every step, the selected steps, the breakpoints' indices in the selection) for these arguments."""
    every = all_steps(session.config.num_hidden_layers)
    shown = select_steps(every, parse_pieces(args.only), parse_layers(args.layer, session.config.num_hidden_layers))
    if not shown:
        raise UsageError("no step matches --only / --layer")
    return every, shown, break_indices(every, shown, args.break_at)


def print_steps(session: Session, steps: list[Step], console: Console, start: int = 0, top: int = 10,
                others=(), passes: str = "", source: bool = True) -> None:
    """Print the steps of one pass from `start`, each as soon as the pass has recorded it (progress on stderr).
    `others`: the same pass under interventions (cli/compare.py), printed beside it, step by step."""
    errors = Console(stderr=True)
    for index in range(start, len(steps)):
        with session.run.progress.shown(errors) if session.run else nullcontext():
            ready = session.wait_for(steps[index])
        if not ready:
            raise session.run.error or RuntimeError(f"the pass ended without recording {steps[index].name}")
        if not others:
            console.print(render_step(session, steps[index], index, len(steps), width=console.width, top=top,
                                      passes=passes, source=source))
            continue
        from .compare import side_by_side

        console.print(Rule(step_title(steps[index], index, len(steps), passes), characters="━"),
                      where_text(session, steps[index]),
                      side_by_side([session, *others], steps[index], console.width,
                                   lambda s, step, width: step_body(s, step, width=width, top=top), top))
    if session.run is not None:  # every step was recorded, yet the pass may have failed at its end (NaN logits)
        session.run.done.wait()
        if session.run.error is not None:
            raise session.run.error


def next_pass(session: Session, number: int) -> Session | None:
    """The Session of pass `number` (1-based) once it has started, waiting for it; None if the generation ends
    with fewer passes."""
    while True:
        sessions = session.passes()
        if len(sessions) >= number:
            return sessions[number - 1]
        if session.run is None or session.run.done.is_set():
            if session.run is not None and session.run.error is not None:
                raise session.run.error
            return None
        time.sleep(0.005)


def print_generation(args, session: Session, shown: list[Step], breaks: list[int], console: Console,
                     others=()) -> None:
    """Every pass from --pass K, each from its breakpoint (the first --break) to its last step, then the
    timeline and the whole text written (beside each intervention's, and where they first differ)."""
    number, start = args.first_pass, breaks[0] if breaks else 0
    while True:
        one = next_pass(session, number)
        if one is None:
            break
        label = f"pass {number}/{one.pass_count()}"
        console.print(Rule(f"[bold]{label}[/]", characters="═", style="cyan"), pass_line(one), highlight=False)
        if start:
            console.print(f"ran {start} steps to the breakpoint {shown[start].name}", style="dim", highlight=False)
        columns = [other.passes()[number - 1] for other in others if len(other.passes()) >= number]
        print_steps(one, shown, console, start, args.top, columns, passes=label, source=number == args.first_pass)
        number += 1
    session.run.wait()
    label = f"pass {number - 1}/{session.pass_count()}"
    console.print(Rule("[bold]timeline[/]", characters="═", style="cyan"))
    console.print(session.timeline())
    for other in others:
        console.print(Text(f"\nunder {other.label}:", style="bold"), other.timeline())
    console.print(session.answers(others), highlight=False)
    console.print(f"end of the generation ({label})", style="dim", highlight=False)


def intervened(args, session: Session) -> list[Session]:
    """The generations `--intervene` asks for, run once the session's own is over (patches are process-wide):
    the whole answer written again under each."""
    if not args.intervene:
        return []
    from .compare import parse_intervention, patched_session

    interventions = [parse_intervention(text, session.config) for text in args.intervene]
    session.run.wait()
    return [patched_session(session, intervention) for intervention in interventions]


def export_report(args, console: Console) -> Path:
    """`--export DIR`: generate (progress on stderr), write DIR/index.html (views/report.py: the timeline, then
    a section per pass), return its path."""
    folder = Path(args.export)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--export {folder}: exists and is not a folder (give a folder to write index.html into)")
    session = open_session(args, console, wait=False)
    try:
        with session.run.progress.shown(Console(stderr=True)):
            session.run.done.wait()
        if session.run.error is not None:
            raise session.run.error
        every, shown, breaks = plan(args, session)
        passes = session.passes()[args.first_pass - 1:]
        if not passes:
            raise UsageError(f"--pass {args.first_pass}: the generation made {len(session.passes())} passes")
        page = generation_html(passes, shown, session.timeline(), top=args.top)
    finally:
        session.stop()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "index.html"
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"--export {folder}: cannot write index.html ({error.strerror or error})") from None
    return path


def cmd_step(args, console: Console) -> None:
    """`minigptoss step`: record one forward pass and walk it, on a terminal or printed (or, with --export,
    written as one HTML page)."""
    if args.export is not None:
        path = export_report(args, console)
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser", highlight=False)
        return
    interactive = not args.no_pause and sys.stdin.isatty() and sys.stdout.isatty() and console.is_terminal
    if interactive:
        from .debugger import run_debugger  # Textual is imported only for the interactive app

        session = open_session(args, console, wait=False)
        interrupted = False
        try:
            every, shown, breaks = plan(args, session)
            run_debugger(session, shown, breaks, top=args.top, about=about_lines(args, session),
                         first_pass=args.first_pass)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if interrupted and session.run is not None:  # end now: the pass thread (a daemon) is not waited for
                session.run.progress.cancel()
            else:
                session.stop()
        return
    with closed_pipe_is_fine():
        session = open_session(args, console, wait=False)
        try:
            every, shown, breaks = plan(args, session)
            others = intervened(args, session)
            console.print(f"[bold]minigptoss step[/] on {model_banner(session.model, session.source)}: "
                          f"{len(session.tokens)} prompt tokens, {len(shown)} step{'s' if len(shown) != 1 else ''} "
                          f"per pass, {session.run.settings.describe()}, at most {session.run.most()} new tokens",
                          highlight=False)
            for line in about_lines(args, session):
                console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)
            print_generation(args, session, shown, breaks, console, others)
        finally:
            session.stop()


KEYS_HELP = ("Enter/space/n next (into the next pass after the last step) · b/p back · ] [ the same step in the "
             "next / previous pass · T timeline · l N layer · g NAME go to · c next breakpoint · / search · "
             "s source · t tensors · o outline · x NAME the answer again under an intervention, side by side · "
             "X drop it · ? keys · q quit")


def add_step_parser(commands) -> None:
    """Register `minigptoss step` on the CLI's subparsers (called from cli.build_parser)."""
    step = commands.add_parser("step", help="walk one forward pass piece by piece (a debugger for gpt-oss)",
                               description=__doc__.split("\n\n")[0],
                               epilog=f"keys on a terminal: {KEYS_HELP}")
    add_model_arguments(step)
    step.add_argument("-n", "--max-tokens", type=max_tokens_arg, default=64, metavar="N",
                      help="write at most N new tokens, one pass each after the prompt's (default: 64, or the "
                           "model's stop token before; -1 for no limit)")
    step.add_argument("--temp", "--temperature", dest="temperature", type=temperature_arg, default=0.0,
                      metavar="T", help="sampling temperature; 0 = greedy, the default (the sampling step shows "
                                        "the cut and the random number drawn)")
    step.add_argument("--top-p", type=top_p_arg, default=1.0, metavar="P",
                      help="nucleus sampling: keep the most likely tokens up to probability P (default: 1 = off)")
    step.add_argument("--top-k", type=top_k_arg, default=0, metavar="K",
                      help="keep only the K most likely tokens; 0 = off (default: 0)")
    step.add_argument("--seed", type=int, metavar="S", help="random seed when sampling (default: 0)")
    step.add_argument("--pass", dest="first_pass", type=positive_int, default=1, metavar="K",
                      help="start at pass K (1 is the prompt's pass; pass K reads the token pass K-1 wrote)")
    step.add_argument("--layer", metavar="N", help="show only layer N (or several: 0,2)")
    step.add_argument("--break", dest="break_at", metavar="NAME", action="append",
                      help="stop at step NAME in every pass (e.g. blocks.3.attn, '*.router'); repeat it, then `c` goes "
                           "from one breakpoint to the next, pass after pass")
    step.add_argument("--only", metavar="PIECES", help=f"show only these pieces, comma-separated: {', '.join(PIECES)} (or sinks: the "
                      "attention step alone; experts: mlp1, swiglu, mlp2, moe)")
    step.add_argument("--no-pause", action="store_true",
                      help="print every step without waiting (the default when not on a terminal)")
    step.add_argument("--intervene", metavar="NAME", action="append",
                      help="printed mode: write the whole answer again under this intervention and print every "
                           "pass beside the unpatched run, and where the answers first differ (e.g. 'sinks off', 'window off', 'zero head 1 3', 'force expert 5'; "
                           "repeatable)")
    step.add_argument("--top", type=positive_int, default=10,
                      help="how many next-token candidates the output step shows (>= 1)")
    step.add_argument("--export", metavar="DIR",
                      help="write the whole pass as one HTML page, DIR/index.html (pictures: attention per head, "
                           "router, MXFP4 by hand, top candidates; hover for values), and exit")
    step.set_defaults(handler=cmd_step)
