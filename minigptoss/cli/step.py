"""The step-through debugger: run one forward pass, then walk it piece by piece.

    minigptoss step [--weights DIR] [-p TEXT | --tokens 1,2,3] [--layer N] [--break NAME ...] [--only PIECES]
                    [--no-pause] [--top N] [--export DIR]

The model runs ONCE, in a thread beside the interface, under `capture()`; a step can be shown as soon as the
pass has recorded its tensors (so on a real checkpoint the embedding and layer 0 are readable within seconds),
and every screen reads only that cache (views/steps.py), so what you see is exactly what the pass computed.

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
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

import minigptoss
from ..model import check_tokens
from ..views.report import report_html
from ..views.steps import render_step, step_body, step_title, where_text
from .common import (DEFAULT_WEIGHTS, BackgroundPass, UsageError, add_model_arguments, closed_pipe_is_fine,
                     chosen_prompt, get_tokenizer, model_banner, model_defaults, noise_warning, positive_int,
                     prompt_tokens)
from .navigation import (PIECES, Navigator, Step, all_steps, break_indices, build_steps,  # noqa: F401 (re-exported)
                         find_break, parse_layers, parse_pieces, select_steps, start_index)


@dataclass
class Session:
    """One forward pass (running or done), with everything the views need to render any of its steps.

    `cache` fills while `run` (a BackgroundPass) goes on; a step is ready once `step.ready(cache)`. A pass run
    under an intervention (cli/compare.py) has run None and its `label`."""

    model: object
    tokenizer: object
    tokens: list[int]
    cache: object
    source: str
    run: BackgroundPass | None = None
    label: str = ""  # what was changed in this pass (an intervention), "" for the model as it is

    @property
    def config(self):
        return self.model.config

    @property
    def weights(self):
        return self.model.weights

    def wait_for(self, step: Step, poll: float = 0.02) -> bool:
        """Block until `step` is recorded (True) or the pass ended without it (False; see run.error)."""
        while not step.ready(self.cache):
            if self.run is None or self.run.done.is_set():
                return step.ready(self.cache)
            time.sleep(poll)
        return True

    def stop(self) -> None:
        if self.run is not None and not self.run.done.is_set():
            self.run.stop()


def open_session(args, console: Console, model=None, wait: bool = True) -> Session:
    """Load the checkpoint, tokenize the prompt, and start the forward pass under `capture()` in a thread.
    With `wait`, return once the pass is over (its error, if any, raised here)."""
    path = args.weights or minigptoss.bundled(DEFAULT_WEIGHTS)
    if model is None:
        with console.status(f"loading {path}"):
            model = minigptoss.load(path)
    tokenizer = get_tokenizer(model.config.vocab_size)
    tokens = [int(t) for t in check_tokens(prompt_tokens(args, tokenizer, model_defaults(model)), model.config.vocab_size)]
    run = BackgroundPass(model, tokens).start()
    session = Session(model, tokenizer, tokens, run.cache, str(path), run)
    if wait:
        run.done.wait()
        if run.error is not None:
            raise run.error
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
                others=()) -> None:
    """Print the steps from `start`, each as soon as the forward pass has recorded it (progress on stderr).
    `others`: passes of the same tokens under interventions (cli/compare.py), printed beside it, step by step."""
    errors = Console(stderr=True)
    for index in range(start, len(steps)):
        with session.run.progress.shown(errors) if session.run else nullcontext():
            ready = session.wait_for(steps[index])
        if not ready:
            raise session.run.error or RuntimeError(f"the forward pass ended without recording {steps[index].name}")
        if not others:
            console.print(render_step(session, steps[index], index, len(steps), width=console.width, top=top))
            continue
        from .compare import side_by_side

        console.print(Rule(step_title(steps[index], index, len(steps)), characters="━"),
                      where_text(session, steps[index]),
                      side_by_side([session, *others], steps[index], console.width,
                                   lambda s, step, width: step_body(s, step, width=width, top=top), top))
    if session.run is not None:  # every step was recorded, yet the pass may have failed at its end (NaN logits)
        session.run.done.wait()
        if session.run.error is not None:
            raise session.run.error


def intervened(args, session: Session) -> list[Session]:
    """The passes `--intervene` asks for, run once the session's own pass is over (patches are process-wide)."""
    if not args.intervene:
        return []
    from .compare import parse_intervention, patched_session

    interventions = [parse_intervention(text, session.config) for text in args.intervene]
    session.run.done.wait()
    if session.run.error is not None:
        raise session.run.error
    return [patched_session(session, intervention) for intervention in interventions]


def export_report(args, console: Console) -> Path:
    """`--export DIR`: run the pass (progress on stderr), write DIR/index.html (views/report.py), return its path."""
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
        page = report_html(session, shown, top=args.top)
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
            run_debugger(session, shown, breaks, top=args.top, about=about_lines(args, session))
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
            start = breaks[0] if breaks else 0
            console.print(f"[bold]minigptoss step[/] on {model_banner(session.model, session.source)}: "
                          f"{len(session.tokens)} tokens, "
                          f"{len(shown)} step{'s' if len(shown) != 1 else ''}", highlight=False)
            for line in about_lines(args, session):
                console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)
            if start:
                console.print(f"ran {start} steps to the breakpoint {shown[start].name}", style="dim", highlight=False)
            print_steps(session, shown, console, start, args.top, others)
            console.print("end of the forward pass", style="dim")
        finally:
            session.stop()


KEYS_HELP = ("Enter/space/n next · b/p back · l N layer · g NAME go to · c next breakpoint · / search · "
             "s source · t tensors · o outline · x NAME run again with an intervention, side by side · X drop it · "
             "? keys · q quit")


def add_step_parser(commands) -> None:
    """Register `minigptoss step` on the CLI's subparsers (called from cli.build_parser)."""
    step = commands.add_parser("step", help="walk one forward pass piece by piece (a debugger for gpt-oss)",
                               description=__doc__.split("\n\n")[0],
                               epilog=f"keys on a terminal: {KEYS_HELP}")
    add_model_arguments(step)
    step.add_argument("--layer", metavar="N", help="show only layer N (or several: 0,2)")
    step.add_argument("--break", dest="break_at", metavar="NAME", action="append",
                      help="start at step NAME (e.g. blocks.3.attn, '*.router'); repeat it, then `c` goes from one "
                           "breakpoint to the next")
    step.add_argument("--only", metavar="PIECES", help=f"show only these pieces, comma-separated: {', '.join(PIECES)} (or sinks: the "
                      "attention step alone; experts: mlp1, swiglu, mlp2, moe)")
    step.add_argument("--no-pause", action="store_true",
                      help="print every step without waiting (the default when not on a terminal)")
    step.add_argument("--intervene", metavar="NAME", action="append",
                      help="printed mode: run the pass again under this intervention and print every step beside "
                           "the unpatched run (e.g. 'sinks off', 'window off', 'zero head 1 3', 'force expert 5'; "
                           "repeatable)")
    step.add_argument("--top", type=positive_int, default=10,
                      help="how many next-token candidates the output step shows (>= 1)")
    step.add_argument("--export", metavar="DIR",
                      help="write the whole pass as one HTML page, DIR/index.html (pictures: attention per head, "
                           "router, MXFP4 by hand, top candidates; hover for values), and exit")
    step.set_defaults(handler=cmd_step)
