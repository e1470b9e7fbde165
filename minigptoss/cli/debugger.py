"""The interactive debugger: a full-screen Textual app over a generation's passes (`minigptoss step` on a terminal).

    ┌ pass 3/9 · step 6/48 · blocks.0.attn · attention with sinks   (pinned)
    │ reads '2' at position 10 · writes position 11: '2' (p 1.00)   (pinned)
    │ layer 0 of 4 (sliding, window 8) · position 10 ...            (pinned)
    │ equation, the piece's own view; source (s), tensors (t)   (scrolls: arrows, PgUp/PgDn, Home/End, wheel)
    │ forward pass: layer 3/24 · 3/25 · 12 s  |  a note         (status)
    └ n next · b back · l layer · g go to · ...                 (keys)

The screen shows rich renderables from views/steps.py (the same ones the printed mode prints); where we are and
how to move within a pass is a navigation.Navigator (pure); which pass is on screen is `pass_index` (`]` `[`
keep the step and change the pass; `n` past a pass's last step enters the next). The generation runs beside
the app (cli/generation.py): a step not yet recorded shows what the pass is doing and appears by itself when
ready, and passes appear as they start. `T` shows the timeline (one row per token written).

Adding a key: a Binding in DebuggerApp.BINDINGS, an `action_<name>` method, a line in KEYS. Comparing two
passes: `x` runs the pass again under an intervention (cli/compare.py) in a worker thread and appends that
Session to `app.sessions`; every step is then drawn side by side, one column per session (`body_for`), with
each run's final candidates below; `X` drops it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from rich.console import Group
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ..views.steps import step_body, step_title, where_text
from .common import model_banner
from .compare import InterventionKeys, preset_options, side_by_side
from .navigation import Navigator

KEYS = [("Enter, space, n", "next step"), ("b, p", "previous step (in forward order)"),
        ("↑ ↓ PgUp PgDn Home End, wheel", "scroll this step"), ("l N Enter", "first step of layer N"),
        ("g NAME Enter", "go to a step by name (a list narrows as you type; → completes)"),
        ("c", "continue to the next --break step (the last step without one)"),
        ("/ TEXT Enter", "next step whose name contains TEXT"), ("s", "show/hide the source"),
        ("t", "show/hide the tensors (inputs, outputs, weights)"), ("o", "show/hide the outline of all steps"),
        ("] [", "the same step in the next / previous pass"),
        ("T", "the timeline: a row per token written (↑↓ a row, Enter: go to its pass)"),
        ("x NAME Enter", "the answer again under an intervention, side by side (sinks off, ...)"),
        ("X", "drop the comparison"),
        ("?", "this help"), ("Esc", "close a prompt or this help"), ("q, Ctrl-C", "quit")]
KEY_LINE_WIDE = ("⏎/␣/n next · b back · ] [ next/previous pass · T timeline · ↑↓ PgUp/PgDn scroll · l layer · "
                 "g go to · c continue · / search · s source · t tensors · o outline · x intervene · ? keys · q quit")
PROMPT_KEYS = {"l": "layer", "g": "go", "slash": "search", "x": "intervene"}  # keys that open the prompt
KEY_LINE = "⏎ next b back ] [ pass T timeline l layer g go / find x patch ? keys q quit"


class Prerendered:
    """A renderable drawn once at a fixed width and replayed: Textual measures and paints the body several
    times per key, and a step's views are costly to lay out, so each is laid out once."""

    def __init__(self, console, renderable, width: int):
        self.width = width
        self.lines = console.render_lines(renderable, console.options.update(width=width), pad=False)

    def __rich_console__(self, console, options):
        for line in self.lines:
            yield from line
            yield Segment.line()

    def __rich_measure__(self, console, options):
        return Measurement(self.width, self.width)


class HelpScreen(ModalScreen):
    """The keys, over the step (scrolling when the terminal is short); any of Esc, ?, q closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "close")]
    DEFAULT_CSS = "HelpScreen { align: center middle; } #help { width: 100%; height: auto; " \
                  "max-height: 100%; border: round $accent; background: $surface; padding: 0 1; }"

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), title="minigptoss step: keys", title_justify="left")
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        table.add_row("model", self.app.model_line)
        for keys, what in KEYS:
            table.add_row(keys, what)
        with VerticalScroll(id="help"):
            yield Static(table)


class TimelineScreen(ModalScreen):
    """The timeline (views/passes.py), over the step, with a row cursor: up/down move it, Enter goes to that
    row's pass (at the same step); any of Esc, T, q closes it. Dismissed with the pass number, or None."""

    BINDINGS = [Binding("escape,T,q", "close", "close"), Binding("up,k", "move(-1)", show=False),
                Binding("down,j", "move(1)", show=False), Binding("home", "move(-10000)", show=False),
                Binding("end", "move(10000)", show=False), Binding("enter", "go", "go to that pass")]
    DEFAULT_CSS = "TimelineScreen { align: center middle; } #timeline { width: 100%; height: auto; " \
                  "max-height: 100%; border: round $accent; background: $surface; padding: 0 1; }"

    def __init__(self, session, current_pass: int):
        """session: the generation's step.Session; current_pass: the pass on screen (1-based), where the cursor
        starts (or the last row, if that pass drew no token yet)."""
        super().__init__()
        self.session, self.numbers = session, session.timeline_pass_numbers()
        self.row = self.numbers.index(current_pass) if current_pass in self.numbers else len(self.numbers) - 1

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="timeline"):
            yield Static(self.session.timeline(self.row if self.numbers else None), id="timeline-table")
            yield Static(Text("↑↓ a row · Enter: go to its pass · Esc: close", style="dim"))

    def action_move(self, rows: int) -> None:
        if not self.numbers:
            return
        self.row = max(0, min(len(self.numbers) - 1, self.row + rows))
        self.query_one("#timeline-table", Static).update(self.session.timeline(self.row))
        scroll = self.query_one(VerticalScroll)
        scroll.scroll_to(y=max(0, self.row + 2 - scroll.size.height // 2), animate=False)  # 2: title, header

    def action_go(self) -> None:
        self.dismiss(self.numbers[self.row] if self.numbers else None)

    def action_close(self) -> None:
        self.dismiss(None)


class Body(VerticalScroll):
    """The step's scrolling content (jumps, not animations, so a key's effect is immediate). Its scrollbar's
    column is always kept (`scrollbar-gutter: stable`), so every step is laid out at the same width, and a long
    step's scrollbar never covers the panels' right borders."""

    DEFAULT_CSS = "Body { scrollbar-gutter: stable; scrollbar-size-vertical: 1; }"

    BINDINGS = [Binding("home", "top", show=False), Binding("end", "bottom", show=False),
                Binding("pageup", "page_up", show=False), Binding("pagedown", "page_down", show=False)]

    def on_resize(self) -> None:  # the outline opened or closed, or the terminal changed: redraw at the new width
        self.app.call_after_refresh(self.app.refresh_view)

    def action_top(self) -> None:
        self.scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.scroll_end(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)


class DebuggerApp(InterventionKeys, App):
    """Walk the steps of one recorded (or recording) forward pass; see the module docstring."""

    CSS = """
    Screen { overflow: hidden; }
    #title { height: 1; background: $primary-background; text-wrap: nowrap; text-overflow: ellipsis; }
    #where { height: auto; max-height: 2; text-wrap: nowrap; text-overflow: ellipsis; }
    #main { height: 1fr; }
    #outline { width: 36; display: none; }
    #prompt { display: none; height: 3; }
    #choices { display: none; max-height: 8; }
    #status { height: 1; color: $warning; text-wrap: nowrap; text-overflow: ellipsis; }
    #keys { height: auto; max-height: 2; color: $text-muted; }
    """
    BINDINGS = [Binding("enter,space,n", "next", show=False), Binding("b,p", "prev", show=False),
                Binding("l", "ask('layer')", show=False), Binding("g", "ask('go')", show=False),
                Binding("slash", "ask('search')", show=False), Binding("c", "cont", show=False),
                Binding("s", "toggle('source')", show=False), Binding("t", "toggle('tensors')", show=False),
                Binding("o", "outline", show=False), Binding("question_mark", "help", show=False),
                Binding("x", "ask('intervene')", show=False), Binding("X", "drop_comparison", show=False),
                Binding("right_square_bracket", "other_pass(1)", show=False),
                Binding("left_square_bracket", "other_pass(-1)", show=False),
                Binding("T", "timeline", show=False),
                Binding("escape", "cancel", show=False), Binding("q", "quit", show=False),
                Binding("ctrl+c", "interrupt", show=False, priority=True)]

    def __init__(self, session, steps, breaks=(), start: int | None = None, top: int = 10, poll: float = 0.2,
                 first_pass: int = 1, about=()):
        super().__init__()
        self.sessions, self.top, self.poll, self.about = [session], top, poll, list(about)  # pass-1 Sessions
        self.pass_index = first_pass - 1  # which pass is on screen (0: the prompt's)
        self.nav = Navigator(steps, breaks[0] if start is None and breaks else start or 0, breaks)
        self.show = {"source": False, "tensors": False}
        self.asking: str | None = None
        self.drawn: tuple | None = None  # what the body shows now: (index, ready, width, toggles, sessions)
        self.drawings: dict[tuple, Prerendered] = {}  # the bodies drawn lately, by that key (going back is instant)
        self.ready_count = -1
        self.shown_text: dict[str, str] = {}  # widget id -> the text it shows (update only what changed)
        self.patching: str | None = None  # the intervention whose pass is running now, if any
        self.outlined: tuple | None = None  # what the outline lists now: (ready flags, current step)
        self.model_line = model_banner(session.model, session.source)  # the model and its task, on the title line
        self.interrupted = False  # Ctrl-C (the key, or SIGINT from outside): run_debugger ends with status 130

    @property
    def session(self):
        """The pass on screen (the last started one while pass_index is still to come)."""
        passes = self.sessions[0].passes()
        return passes[min(self.pass_index, len(passes) - 1)] if passes else self.sessions[0]

    def columns(self) -> list:
        """The pass on screen in each generation compared (those that made that many passes)."""
        return [self.session, *(other.passes()[self.pass_index] for other in self.sessions[1:]
                                if len(other.passes()) > self.pass_index)]

    def pass_started(self) -> bool:
        return len(self.sessions[0].passes()) > self.pass_index

    def pass_label(self) -> str:
        return f"pass {self.pass_index + 1}/{self.sessions[0].pass_count()}"

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="where")
        with Horizontal(id="main"):
            yield OptionList(id="outline")
            with Body(id="body"):
                yield Static(id="content")
        yield OptionList(id="choices")
        yield Input(id="prompt", suggester=SuggestFromList([s.name for s in self.nav.steps], case_sensitive=False))
        yield Static(id="status")
        yield Static(id="keys")

    def on_mount(self) -> None:
        self.title, self.sub_title = "minigptoss step", self.model_line  # the terminal's window title too
        self.query_one("#body").focus()
        if self.about:
            self.notify("\n".join(self.about), timeout=12, markup=False)
        self.refresh_view()
        self.set_interval(self.poll, self.tick)

    def on_resize(self) -> None:
        self.call_after_refresh(self.refresh_view)

    # -- drawing -------------------------------------------------------------------------------------------------

    def body_width(self) -> int:
        width = self.query_one("#body").scrollable_content_region.width
        return max(20, width or self.size.width - 2)

    def body_for(self, index: int, width: int):
        """The current step's content: one session's, or one column per session side by side."""
        step, columns = self.nav.steps[index], self.columns()
        if len(columns) == 1:
            return self._one_body(self.session, step, width)
        return Group(self.sessions[0].answers(self.sessions[1:]),
                     side_by_side(columns, step, width, lambda *column: self._one_body(*column, least=20), self.top))

    def _one_body(self, session, step, width: int, least: int = 40):
        try:
            return step_body(session, step, width=max(width, least), top=self.top, **self.show)
        except Exception as error:  # a view that cannot draw at this size must not end the session
            return Text(f"this view could not be drawn at width {width}: {type(error).__name__}: {error}",
                        style="red")

    def drawing(self, key: tuple, index: int, width: int) -> Prerendered:
        """The body for `key`, laid out once: the last 16 are kept (a recorded step never changes)."""
        if key not in self.drawings:
            if len(self.drawings) >= 16:
                del self.drawings[next(iter(self.drawings))]
            self.drawings[key] = Prerendered(self.console, self.body_for(index, width), width)
        return self.drawings[key]

    def waiting_text(self, step) -> Text:
        run = self.session.run
        if run is not None and run.error is not None:
            return Text(f"the forward pass failed: {run.error}", style="bold red")
        progress = run.progress.describe() if run is not None else ""
        if not self.pass_started():
            return Text.assemble(("waiting for pass ", "dim"), (str(self.pass_index + 1), "bold"),
                                 (" to start (the passes before it are running)", "dim"), ("\n" + progress, "yellow"))
        return Text.assemble(("waiting for the forward pass to record ", "dim"), (step.name, "bold"),
                             ("\n" + progress, "yellow"), ("\n(you can move to any other step meanwhile)", "dim"))

    def put(self, widget_id: str, content) -> None:
        """Show `content` (a str or Text) in a one-line widget, if it differs from what it shows."""
        plain = content.plain if isinstance(content, Text) else str(content)
        if self.shown_text.get(widget_id) != plain:
            self.shown_text[widget_id] = plain
            self.query_one(f"#{widget_id}", Static).update(content)

    def refresh_view(self) -> None:
        """Redraw what changed: the pinned lines, the body (if the step, its readiness, width or toggles did)."""
        nav, step = self.nav, self.nav.current
        self.put("title", Text.from_markup(step_title(step, nav.index, len(nav.steps), self.pass_label())).append(
            f"  ·  {self.model_line}", style="dim"))
        ready = self.pass_started() and self.session.ready(step)
        width = self.body_width()
        drawn = self.session.this_pass is not None and self.session.this_pass.drawn is not None
        key = (self.pass_index, nav.index, ready, drawn, width, tuple(self.show.values()),
               tuple(map(id, self.sessions)))
        if key != self.drawn:
            content = self.query_one("#content", Static)
            if ready:
                self.put("where", where_text(self.session, step))
                content.update(self.drawing(key, nav.index, width))
            else:
                self.put("where", Text(f"piece {step.piece}", style="dim"))
                content.update(self.waiting_text(step))
            if key[:2] != (self.drawn or (None, None))[:2]:
                self.query_one("#body", Body).scroll_home(animate=False)
            self.drawn = key
        self.put("keys", KEY_LINE_WIDE if self.size.width >= len(KEY_LINE_WIDE) else KEY_LINE)
        self.update_status()
        if self.query_one("#outline").display:
            self.fill_outline()

    def update_status(self) -> None:
        run, note = self.session.run, self.nav.note
        if run is not None and not run.done.is_set():
            text = f"forward pass {len(run.passes)}: {run.progress.describe()}"
        elif run is not None and run.error is not None:
            text = f"forward pass failed: {run.error}"
        else:
            text = ""
        compare = f"running the pass with {self.patching}..." if self.patching else \
            f"comparing with {', '.join(s.label for s in self.sessions[1:])} (X drops it)" if self.sessions[1:] else ""
        if self.session.run is not None and self.nav.breaks:
            text = text or f"{len(self.nav.breaks)} breakpoint(s)"
        self.put("status", Text(" | ".join(part for part in (text, note, compare) if part)))

    def action_interrupt(self) -> None:
        self.interrupted = True
        self.exit()

    def drawn_at_another_width(self) -> bool:
        """True when the body was last drawn at a width it no longer has (a resize's layout landed later)."""
        return self.drawn is not None and self.drawn[4] != self.body_width()  # drawn: see refresh_view's key

    def tick(self) -> None:
        """Every `poll` seconds while the pass runs: progress, and the step once it is recorded; the app ends
        here after a SIGINT (run_debugger's handler only sets `interrupted`)."""
        if self.interrupted:
            self.exit()
            return
        run = self.session.run
        ready = (sum(self.session.ready(step) for step in self.nav.steps), self.pass_index,
                 run is None or run.done.is_set())  # a step recorded, another pass, the generation over
        try:
            if self.drawn_at_another_width() or ready != self.ready_count or (run and not run.done.is_set()):
                self.ready_count = ready
                self.refresh_view()
        except NoMatches:  # the screen is being torn down (quitting) or not built yet
            pass

    def fill_outline(self) -> None:
        """The outline's list: every step, dim until recorded, the current one highlighted. Redone only when one
        of those changed, so a redraw never moves the highlight the user is moving."""
        outline = self.query_one("#outline", OptionList)
        cache = self.session.cache
        ready = tuple(step.ready(cache) for step in self.nav.steps)
        if self.outlined == (ready, self.nav.index):
            return
        self.outlined = (ready, self.nav.index)
        options = [Option(Text(step.name, style="" if done else "dim"), id=str(i))
                   for i, (step, done) in enumerate(zip(self.nav.steps, ready))]
        outline.clear_options()
        outline.add_options(options)
        outline.highlighted = self.nav.index

    # -- keys ----------------------------------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Keys typed at speed (`l2⏎` in one burst): Textual hands each key to the focused widget's queue and
        moves the focus later, so `2` and Enter would reach the step view before the prompt `l` opens. Here the
        keys that open the prompt, and every key typed while it is open, take effect at once, in the order typed."""
        if isinstance(event, events.Key) and not event.is_forwarded and len(self.screen_stack) == 1:
            if self.asking is None and event.key in PROMPT_KEYS and not self.focused_is("choices"):
                event.stop()
                return self.action_ask(PROMPT_KEYS[event.key])
            if self.asking is not None and not self.focused_is("choices") and await self.type_into_prompt(event):
                event.stop()
                return
        await super().on_event(event)

    def focused_is(self, widget_id: str) -> bool:
        return self.focused is not None and self.focused.id == widget_id

    async def type_into_prompt(self, event: events.Key) -> bool:
        """One key for the open prompt, handled now; False for a key it leaves to the usual route (↓, Ctrl-C)."""
        prompt = self.query_one("#prompt", Input)
        if event.key == "ctrl+c":
            return False
        if self.focused is not prompt:
            self.screen.set_focus(prompt)
        if event.key == "enter":
            self.submit_prompt(prompt.value)
        elif event.key == "escape":
            self.close_prompt()
        elif event.is_printable:
            prompt.insert_text_at_cursor(event.character)
        else:  # the prompt's own editing keys (backspace, ← →, Home, End, ...): its bindings, run now
            return await self._check_bindings(event.key)
        return True

    def moved(self) -> None:
        self.refresh_view()

    def action_next(self) -> None:
        """The next step; past a pass's last step, the first step of the next pass."""
        if self.nav.index + 1 >= len(self.nav.steps) and self.enter_pass(1):
            self.nav.first()
        else:
            self.nav.next()
        self.moved()

    def action_prev(self) -> None:
        """The previous step; before a pass's first step, the last step of the previous pass."""
        if self.nav.index == 0 and self.enter_pass(-1):
            self.nav.last()
        else:
            self.nav.prev()
        self.moved()

    def action_cont(self) -> None:
        """The next breakpoint, in this pass or the next ones (a --break stops in every pass)."""
        if self.nav.breaks and not [i for i in self.nav.breaks if i > self.nav.index] and self.enter_pass(1):
            self.nav.index, self.nav.note = self.nav.breaks[0], ""
        else:
            self.nav.cont()
        self.moved()

    def enter_pass(self, delta: int) -> bool:
        """Move to pass pass_index + delta if it exists (or is still to come); False, with a note, if not."""
        target, run = self.pass_index + delta, self.sessions[0].run
        started = len(self.sessions[0].passes())
        if target < 0:
            self.nav.note = "this is pass 1, the prompt's"
            return False
        if target >= started and (run is None or run.done.is_set()):
            self.nav.note = f"pass {started} is the last: it wrote {self.last_written()} (T: the timeline)"
            return False
        self.pass_index = target
        return True

    def last_written(self) -> str:
        run = self.sessions[0].run
        return repr(self.session.tokenizer.decode(run.written[-1:])) if run is not None and run.written else "nothing"

    def action_other_pass(self, delta: int) -> None:
        """`]` / `[`: the same step in the next / previous pass."""
        if self.enter_pass(delta):
            self.nav.note = ""
        self.moved()

    def action_timeline(self) -> None:
        self.push_screen(TimelineScreen(self.sessions[0], self.pass_index + 1), self.go_to_pass)

    def go_to_pass(self, number: int | None) -> None:
        """The timeline's Enter: pass `number` (1-based), at the same step."""
        if number is not None and number - 1 != self.pass_index:
            self.pass_index, self.nav.note = number - 1, f"pass {number}, from the timeline"
        self.moved()

    def action_toggle(self, what: str) -> None:
        self.show[what] = not self.show[what]
        self.nav.note = f"{what} {'shown below the view' if self.show[what] else 'hidden'}"
        self.refresh_view()

    def action_outline(self) -> None:
        outline = self.query_one("#outline", OptionList)
        outline.display = not outline.display
        if outline.display:
            self.outlined = None  # fill it afresh, at the current step
            self.fill_outline()
            outline.focus()
        else:
            self.query_one("#body").focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is None:
            return
        if event.option_list.id == "choices" and self.asking == "intervene":
            return self.chose_preset(str(event.option.id))
        if event.option_list.id == "choices":
            self.nav.goto(str(event.option.id))
            self.close_prompt()
        else:
            self.nav.index, self.nav.note = int(event.option.id), ""
        self.moved()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_ask(self, what: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self.asking = what
        prompt.placeholder = {"layer": "layer number, then Enter", "go": "step name (→ completes), then Enter",
                              "search": "text in a step name, then Enter",
                              "intervene": "pick one (↓), or type e.g. zero head 1 3, then Enter"}[what]
        prompt.border_title = {"layer": "l: layer", "go": "g: go to step", "search": "/: search",
                               "intervene": "x: run again with"}[what]
        prompt.value = ""
        prompt.display = True
        self.screen.set_focus(prompt)  # now, not after the keys already typed (see on_event)
        if what in ("go", "intervene"):
            self.fill_choices("")

    def fill_choices(self, text: str) -> None:
        choices = self.query_one("#choices", OptionList)
        choices.clear_options()
        if self.asking == "intervene":
            choices.add_options(preset_options(text))
        else:
            choices.add_options([Option(step.name, id=step.name) for step in self.nav.matches(text)])
        choices.display = True

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.asking in ("go", "intervene"):
            self.fill_choices(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.asking is not None:
            self.submit_prompt(event.value)

    def submit_prompt(self, value: str) -> None:
        """The prompt's line, entered: act on it and close the prompt."""
        what, text = self.asking, value.strip()
        self.close_prompt()
        if what == "layer":
            if text.isdigit():
                self.nav.layer(int(text))
            else:
                self.nav.note = f"l expects a layer number, got {text!r}"
        elif what == "go" and text:
            self.nav.goto(text)
        elif what == "search" and text:
            self.nav.search(text)
        elif what == "intervene" and text:
            return self.intervene(text)
        self.moved()

    def close_prompt(self) -> None:
        self.asking = None
        self.query_one("#prompt", Input).display = False
        self.query_one("#choices", OptionList).display = False
        outline = self.query_one("#outline", OptionList)
        self.screen.set_focus(outline if outline.display else self.query_one("#body"))

    def action_cancel(self) -> None:
        if self.asking is not None:
            self.close_prompt()
        elif self.query_one("#outline").display:
            self.action_outline()


def run_debugger(session, steps, breaks=(), top: int = 10, about=(), first_pass: int = 1) -> None:
    """Run the app on the terminal until the user quits; `about`: lines shown first as a notification (a warning
    that the answer to this prompt will be noise). Ctrl-C (the key, or a SIGINT signal) raises
    KeyboardInterrupt once the app has restored the terminal, so the command ends with status 130."""
    app = DebuggerApp(session, steps, breaks, top=top, about=about, first_pass=first_pass)
    with sigint_sets(app):
        app.run()
    if app.interrupted:
        raise KeyboardInterrupt


@contextmanager
def sigint_sets(app: DebuggerApp):
    """While the app runs, SIGINT sets app.interrupted (its tick, every 0.2 s, then ends the app) instead of
    asyncio's handler, which cancels the app's task: Textual takes that as a normal exit (status 0), after
    waiting for what it awaits. Only from the main thread and over Python's default handler; restored after."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def interrupted(signum, frame) -> None:
        app.interrupted = True

    signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
