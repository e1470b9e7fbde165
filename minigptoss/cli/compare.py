"""The debugger's comparison: the same prompt run again under an intervention, shown beside the unpatched run.

    x  in the app (or `minigptoss step --intervene "sinks off"` printed): pick a preset from
       `interventions.PRESETS`, typed with its integers in order, e.g.
           sinks off            window off           top-1 routing
           sinks off in layer 1 zero head 1 3        force expert 5        forbid expert 2
    X  drops the comparison.

`parse_intervention` reads such a line (checking the numbers against the model's config, so a layer that does
not exist is an error, not a pass that silently changes nothing); `patched_session` writes the whole answer
again under it (cli/generation.py) and returns a second Session; `side_by_side` draws one column per session
(the same pass of each) with its label, and the final candidates of every run under the current step.
"""

from __future__ import annotations

from dataclasses import replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from ..interventions import PRESETS, preset
from ..views.capture import Capture
from ..views.summary import compare_candidates
from .common import UsageError

EXAMPLES = "sinks off · window off · zero head 1 3 · force expert 5 · sinks off in layer 1 · top-1 routing"


def preset_line(name: str) -> str:
    """`zero head LAYER HEAD`: a preset's name and what to type after it."""
    return " ".join([name, *(p.upper() for p in PRESETS[name].params)])


def parse_intervention(text: str, config):
    """`zero head 1 3` -> interventions.preset("zero head", layer=1, head=3), the numbers checked against the
    model's config; a UsageError (one sentence) for anything else."""
    words = text.lower().split()
    for name in sorted(PRESETS, key=len, reverse=True):  # longest first: "sinks off in layer" before "sinks off"
        if words[: len(name.split())] == name.split():
            break
    else:
        raise UsageError(f"no intervention named like {text.strip()!r}; try {EXAMPLES}")
    wanted, given = PRESETS[name].params, words[len(name.split()):]
    if len(given) != len(wanted) or not all(word.isdigit() for word in given):
        raise UsageError(f"{name!r} takes {len(wanted) or 'no'} number{'s' * (len(wanted) != 1)}: "
                         f"type {preset_line(name)!r}")
    limits = {"layer": config.num_hidden_layers, "head": config.num_attention_heads, "expert": config.num_experts}
    params = dict(zip(wanted, map(int, given)))
    for key, value in params.items():
        if value >= limits[key]:
            raise UsageError(f"{name}: {key} {value} does not exist (the model has {limits[key]} {key}s, "
                             f"0..{limits[key] - 1})")
    return preset(name, **params)


def patched_session(session, intervention):
    """The same model, prompt and sampling, the whole answer generated again under `intervention`, every pass
    captured: the Session of its pass 1, labelled with the intervention. Call it only when no other pass is
    running (patches and captures are process-wide)."""
    from .generation import Generation

    base = session.run
    run = Generation(session.model, base.prompt, base.settings, base.stops, intervention, Capture,
                     intervention.label).start().wait()
    first = run.passes[0]
    return replace(session, tokens=list(base.prompt), cache=first.cache, run=run, label=intervention.label,
                   start=0, this_pass=first)  # a step.Session


def side_by_side(sessions, step, width: int, draw, top: int = 10):
    """One column per session (its label above it) for `step`, drawn by `draw(session, step, column_width)`;
    below, every run's final next-token candidates in one table (probabilities and ranks side by side)."""
    last = len(sessions[0].tokens) - 1
    final = None
    if all("logits" in session.cache for session in sessions):
        final = compare_candidates([session.cache["logits"][-1] for session in sessions],
                                   [session.label or "unpatched" for session in sessions], sessions[0].tokenizer, top)
    if step.kind == "output" and final is not None:  # the candidates are this step's view: one table, full width
        return Group(Text(f"after position {last}, the runs' candidates side by side:", style="bold"), final)
    column = max(20, width // len(sessions) - 1)
    grid = Table.grid(expand=True, padding=(0, 1))
    for _ in sessions:
        grid.add_column(ratio=1)
    grid.add_row(*(Text(session.label or "unpatched", style="bold reverse") for session in sessions))
    grid.add_row(*(draw(session, step, column) for session in sessions))
    if final is None:
        return grid
    return Group(grid, Text(f"\nthe final candidates of each run, after position {last}:", style="bold"), final)


def preset_options(typed: str) -> list[Option]:
    """The chooser's list: the presets the typed text could mean (all when empty), with what each does."""
    typed = " ".join(typed.lower().split())
    return [Option(Text.assemble((preset_line(name), "bold"), " ", (p.description, "dim")), id=name)
            for name, p in PRESETS.items() if name.startswith(typed) or typed.startswith(name)]


class InterventionKeys:
    """The debugger app's `x` (choose an intervention, run the pass again with it) and `X` (drop it), mixed into
    DebuggerApp: uses its sessions, nav, prompt (#prompt) and list (#choices), close_prompt and refresh_view."""

    def on_key(self, event) -> None:
        """Down from the prompt moves into the list of choices (then Enter picks one)."""
        choices = self.query_one("#choices", OptionList)
        if event.key == "down" and self.asking and choices.display and self.focused is self.query_one("#prompt"):
            choices.focus()
            choices.highlighted = 0
            event.stop()

    def chose_preset(self, name: str) -> None:
        """A preset picked from the list: run it, or, if it takes numbers, let them be typed after its name."""
        if not PRESETS[name].params:
            self.close_prompt()
            return self.intervene(name)
        prompt = self.query_one("#prompt", Input)
        prompt.value = name + " "
        prompt.cursor_position = len(prompt.value)
        prompt.placeholder = preset_line(name)
        self.screen.set_focus(prompt)
        self.nav.note = f"type {preset_line(name)!r}, then Enter"
        self.refresh_view()

    def intervene(self, text: str) -> None:
        """Run the pass again under the intervention `text` names, in a worker thread; it is added as a column."""
        run = self.session.run
        if self.patching or (run is not None and not run.done.is_set()):
            self.nav.note = "wait for the running forward pass to finish, then x again"
            return self.refresh_view()
        try:
            intervention = parse_intervention(text, self.session.config)
        except UsageError as error:
            self.nav.note = str(error)
            return self.refresh_view()
        self.patching = intervention.label
        self.refresh_view()
        self.run_worker(lambda: self._run_patched(intervention), thread=True, group="intervene")

    def _run_patched(self, intervention) -> None:
        try:
            session = patched_session(self.session, intervention)
        except Exception as error:  # a patch that does not fit this model: say so, keep the app
            self.call_from_thread(self._patched_done, None, f"the pass with {intervention.label} failed: {error}")
        else:
            self.call_from_thread(self._patched_done, session, "")

    def _patched_done(self, session, note: str) -> None:
        self.patching = None
        if session is not None:
            self.sessions[1:] = [session]
        self.nav.note = note
        self.refresh_view()

    def action_drop_comparison(self) -> None:
        if len(self.sessions) > 1:
            del self.sessions[1:]
            self.nav.note = "comparison dropped"
        else:
            self.nav.note = f"no comparison to drop (x runs one: {EXAMPLES})"
        self.refresh_view()
