"""The interactive debugger (cli/debugger.py), driven headlessly by Textual's pilot: one test per key, each
reading the screen it leaves. Plus: the pass runs beside the app, so the first step shows before it ends."""

import asyncio
import re
import threading
import time

import pytest
from rich.console import Console
from textual import events

import minigptoss
from minigptoss.cli import build_parser
from minigptoss.cli import step as stepper
from minigptoss.cli.debugger import KEY_LINE, DebuggerApp


PROMPT = "Hello, gpt!"  # 11 tokens: enough for the sliding window (8) to show, quick to draw


def parse(*argv):
    return build_parser().parse_args(["step", "--weights", "tiny", "-n", "1", *argv])


@pytest.fixture(scope="module", autouse=True)
def quick_pilot():
    """After every key the pilot waits for the app to go idle, polling in 20 ms sleeps (textual._wait); the
    screen is already synchronised by the pilot's wait for pending messages, so 5 ms polls are plenty here and
    save seconds over the file. A no-op if Textual moves that constant."""
    from textual import _wait

    saved = getattr(_wait, "SLEEP_GRANULARITY", None)
    if saved is not None:
        _wait.SLEEP_GRANULARITY = 0.005
    yield
    if saved is not None:
        _wait.SLEEP_GRANULARITY = saved


@pytest.fixture(scope="module")
def session():
    return stepper.open_session(parse("-p", PROMPT), Console(width=80))


def screen_text(app) -> str:
    """What the terminal shows now, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


SNAP = object()  # in drive's keys: take a snapshot of the screen here


def drive(session, keys, size=(80, 24), argv=(), at=None, show=None):
    """Run the app ONCE on `session` at `size` (starting at step `at`, a name) and press `keys` in turn: a str is
    one key, a callable is awaited with the pilot, SNAP records the screen; `show` sets toggles (source, tensors). Returns the snapshots (one per SNAP,
    and one at the end): dicts with the screen's text and the body's scroll_y / max_scroll_y. One app per test
    with snapshots along the way keeps the file fast (starting an app costs more than a dozen keys)."""
    every, shown, breaks = stepper.plan(parse(*argv), session)
    start = [s.name for s in shown].index(at) if at else None

    async def go():
        app = DebuggerApp(session, shown, breaks, start=start)
        app.show.update(show or {})
        snaps = []

        async def snap(pilot):
            await pilot.pause()
            for _ in range(40):  # a resize's layout can land after the pause on a busy machine; the app redraws
                if not app.drawn_at_another_width():  # the app redraws at the new width within a poll
                    break
                await pilot.pause(0.05)
            body = app.query_one("#body")
            snaps.append({"text": screen_text(app), "scroll_y": body.scroll_y, "max_scroll_y": body.max_scroll_y})

        async with app.run_test(size=size) as pilot:
            for key in [*keys, SNAP]:
                if key is SNAP:
                    await snap(pilot)
                elif callable(key):
                    await key(pilot)
                else:
                    await pilot.press(key)
        return snaps

    return asyncio.run(go())


def texts(*args, **kwargs) -> list[str]:
    """drive's snapshots, as screen texts only."""
    return [snap["text"] for snap in drive(*args, **kwargs)]


def lines(text):
    return text.split("\n")


def title(text):
    """The title line without its `pass K/N · ` (the passes have their own tests in test_generation.py)."""
    return re.sub(r"^pass \d+/\S+ · ", "", lines(text)[0])


def at_step(index):
    """A pilot action: put the app at step `index` (as a jump would)."""
    async def move(pilot):
        pilot.app.nav.index = index
        pilot.app.moved()
    return move


def typed(text):
    """A pilot action: the focused prompt now holds `text` (as if typed; the g test types key by key)."""
    async def type_(pilot):
        pilot.app.focused.value = text
        await pilot.pause()
    return type_


def test_first_screen_pins_title_and_position_and_keys_at_80x24(session):
    [text] = texts(session, [])
    rows = lines(text)
    assert len(rows) == 24
    assert rows[0].startswith("pass 1/1 · step 1/48 · tokens")
    assert rows[1].startswith("reads 'Hello,␣gpt!' at positions 0..10 · writes position 11")
    assert rows[2].startswith("before the blocks · positions 0..10")
    assert rows[-1].strip() == KEY_LINE and len(KEY_LINE) <= 80
    assert "0:H[72]" in text  # the piece's own view is on the first screen


def test_next_keys(session):
    screens = texts(session, ["enter", SNAP, "b", "space", SNAP, "b", "n"])
    assert all(title(text).startswith("step 2/48 · embed") for text in screens)  # enter, space, n


def test_back_goes_to_the_previous_step_in_forward_order_even_after_a_jump(session):
    after_b, after_p, first = texts(session, ["l", "2", "enter", "b", SNAP, "p", SNAP, at_step(0), "b"])
    assert title(after_b).startswith("step 24/48 · blocks.1.moe ")
    assert title(after_p).startswith("step 23/48 · blocks.1.moe.mlp2")
    assert title(first).startswith("step 1/48 · tokens") and "this is the first step" in first


def test_l_jumps_to_a_layer_and_says_when_there_is_none(session):
    layer, missing = texts(session, ["l", "2", "enter", SNAP, "l", "9", "enter"])
    assert title(layer).startswith("step 25/48 · blocks.2.attn.norm")
    assert "layer 2 of 4" in lines(layer)[2]
    assert title(missing).startswith("step 25/48") and "no step in layer 9" in missing


def test_g_lists_matching_steps_and_jumps_by_name(session):
    listed, jumped, contained = texts(session, ["g", *"3.moe.r", SNAP, "enter", SNAP, "g", typed("1.at"), "enter"])
    assert "blocks.3.moe.router" in listed and "blocks.0.attn" not in listed  # the list narrowed as typed
    assert title(jumped).startswith("step 42/48 · blocks.3.moe.router")
    assert title(contained).startswith("step 14/48 · blocks.1.attn.norm")  # no exact name: the first containing it


def test_several_breaks_and_c_continues_to_the_next(session):
    argv = ("--break", "blocks.1.attn", "--break", "*.router")
    screens = texts(session, [SNAP, "b", SNAP, "c", SNAP, "c", SNAP, "c", SNAP, "c", "c", "c"], argv=argv)
    first, back, again, attn, router, end = screens
    assert title(first).startswith("step 9/48 · blocks.0.moe.router")  # the first breakpoint: layer 0's router
    assert title(back).startswith("step 8/48 · blocks.0.moe.norm")  # back works from a breakpoint too
    assert title(again).startswith("step 9/48 · blocks.0.moe.router")
    assert title(attn).startswith("step 17/48 · blocks.1.attn ·")
    assert title(router).startswith("step 20/48 · blocks.1.moe.router")
    assert title(end).startswith("step 48/48 · logits") and "no breakpoint ahead" in end


def test_slash_searches_step_names(session):
    first, second = texts(session, ["slash", *"swi", "enter", SNAP, "slash", *"swi", "enter"])
    assert title(first).startswith("step 11/48 · blocks.0.moe.swiglu")
    assert title(second).startswith("step 22/48 · blocks.1.moe.swiglu")


def test_question_mark_shows_the_keys_and_escape_closes_them(session):
    shown, closed = texts(session, ["question_mark", SNAP, "escape"])
    assert "minigptoss step: keys" in shown and "continue to the next --break step" in shown
    assert "the same step in the next / previous" in shown
    assert "minigptoss step: keys" not in closed and title(closed).startswith("step 1/48")


def test_o_toggles_an_outline_of_all_steps(session):
    shown, hidden, picked = texts(session, ["o", SNAP, "o", SNAP, "o", "down", "down", "enter"])
    assert "blocks.0.attn.norm" in shown and "blocks.0.attn.qkv" in shown
    assert "blocks.0.attn.qkv" not in hidden
    assert title(picked).startswith("step 3/48 · blocks.0.attn.norm")  # picked from the outline


def test_s_and_t_show_the_source_and_the_tensors_below_the_view(session):
    plain, source, tensors = texts(session, ["end", SNAP, "s", "end", SNAP, "t", "end"], size=(100, 50),
                                   at="blocks.0.attn.out")
    assert "attention output" in plain and "return x + out" not in plain and "float32" not in plain
    assert "return x + out" in source and "source shown" in source  # the source lines end the step
    assert "blocks.0.attn.z" in tensors and "(11, 128) float32" in tensors  # the tensor list ends the step


def test_scrolling_keys_and_the_mouse_wheel(session):
    async def wheel(pilot):
        body = pilot.app.query_one("#body")
        body.post_message(events.MouseScrollDown(body, 5, 5, 0, 1, 0, False, False, False))
        await pilot.pause()

    page, end, home, down, back, wheeled = drive(
        session, ["pagedown", SNAP, "end", SNAP, "home", SNAP, "down", "down", SNAP, "home", "pagedown", "pageup",
                  SNAP, wheel, wheel], at="blocks.0.attn")
    assert page["scroll_y"] > 10 and title(page["text"]).startswith("step 6/48")  # the title stays pinned
    assert "h0 kv0" not in page["text"]  # scrolled past the first heads
    assert end["scroll_y"] == end["max_scroll_y"] > 0 and "grouped-query attention" in end["text"]
    assert home["scroll_y"] == 0 and "equation" in home["text"]
    assert down["scroll_y"] == 2
    assert back["scroll_y"] == 0
    assert wheeled["scroll_y"] > 0


def test_q_quits(session):
    every, shown, breaks = stepper.plan(parse(), session)

    async def go():
        app = DebuggerApp(session, shown, breaks)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("q")
            await pilot.pause()
            return app.is_running, app.return_code

    assert asyncio.run(go()) == (False, 0)


def test_small_and_large_terminals_draw_without_errors(session):
    def resize(width, height):
        async def go(pilot):
            await pilot.resize_terminal(width, height)
        return go

    screens = texts(session, [SNAP, resize(20, 6), SNAP, resize(200, 60)], size=(40, 12), at="blocks.0.attn",
                    show={"source": True, "tensors": True})  # as if s and t were pressed (they have their own test)
    for text, width in zip(screens, (40, 20, 200)):
        assert title(text).startswith("step 6/4") and "Traceback" not in text
        assert max(map(len, lines(text))) == width


# ---------------------------------------------------------------- x: the pass again under an intervention


def candidate_rows(text: str) -> dict[str, tuple[float, float]]:
    """The comparison table's rows: token -> (p unpatched, p patched)."""
    rows = {}
    for line in lines(text):
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 5 and cells[2].isdigit():
            rows[cells[0]] = (float(cells[1]), float(cells[3]))
    return rows


def test_x_runs_the_pass_again_with_an_intervention_side_by_side(session):
    async def finish(pilot):  # the patched pass runs in a worker thread
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    chooser, step, output, dropped, bad, zero = texts(session, [
        "x", SNAP, "down", "enter", finish, SNAP,  # the first preset in the list: sinks off
        "c", SNAP,  # the last step: the final candidates of both runs
        "X", SNAP,
        "x", typed("zero head 9 0"), "enter", SNAP,
        "x", typed("zero head 1 3"), "enter", finish], at="blocks.0.attn.out")
    assert "sinks off" in chooser and "zero head LAYER HEAD" in chooser and "x: run again with" in chooser
    # the step in two columns, each headed by its run, and the final candidates of both below
    header = next(line for line in lines(step) if "unpatched" in line)
    assert header.index("sinks off") > 30 and "comparing with sinks off" in step
    assert title(step).startswith("step 7/48 · blocks.0.attn.out")
    assert step.count("equation") == 2
    rows = candidate_rows(output)
    assert title(output).startswith("step 48/48 · logits") and "p unpatched" in output and "p sinks off" in output
    assert len(rows) >= 10 and any(a != b for a, b in rows.values())  # removing the sinks changed the numbers
    assert "comparing" not in dropped and "p sinks off" not in dropped and "comparison dropped" in dropped
    assert "layer 9 does not exist" in bad and "comparing" not in bad
    assert "zero head 3 of layer 1" in zero and "p unpatched" in zero


def test_parse_intervention_reads_a_preset_and_its_numbers(session):
    from minigptoss.cli.common import UsageError
    from minigptoss.cli.compare import parse_intervention

    config = session.config
    assert parse_intervention("Sinks off", config).label == "sinks off"
    assert parse_intervention("sinks off in layer 2", config).label == "sinks off, layers 2"
    assert parse_intervention(" zero  head 1 3 ", config).label == "zero head 3 of layer 1"
    for text, message in [("sinks", "no intervention named like"), ("zero head 1", "takes 2 numbers"),
                          ("force expert 8", "expert 8 does not exist"), ("window off 3", "takes no numbers"),
                          ("zero head 0 8", "head 8 does not exist")]:
        with pytest.raises(UsageError, match=message):
            parse_intervention(text, config)


def test_the_first_step_shows_while_a_slow_pass_is_still_running(monkeypatch):
    """A forward pass that pauses at every recorded name: the app shows `tokens` and the progress first,
    then later steps appear by themselves as they are recorded."""
    from minigptoss import inspector

    release = threading.Event()
    original = inspector.record

    def slow_record(name, value):
        value = original(name, value)  # record returns the value the pass goes on with (a patch may change it)
        if name.startswith("blocks.1."):
            release.wait(10)  # the pass stalls in layer 1 until the test lets it go
        return value

    monkeypatch.setattr("minigptoss.model.record", slow_record)
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    session = stepper.open_session(parse(), Console(width=80), model=model, wait=False)
    every, shown, breaks = stepper.plan(parse(), session)

    async def go():
        app = DebuggerApp(session, shown, breaks, poll=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.1)
            first = screen_text(app)
            await pilot.press("l", "2", "enter")
            await pilot.pause()
            waiting = screen_text(app)
            release.set()
            for _ in range(100):
                await pilot.pause(0.05)
                if session.run.done.is_set() and "forward pass 1:" not in screen_text(app) \
                        and "waiting" not in screen_text(app):
                    break
            return first, waiting, screen_text(app)

    try:
        first, waiting, after = asyncio.run(go())
    finally:
        release.set()
        session.stop()
    assert title(first).startswith("step 1/48 · tokens") and "0:H[72]" in first
    assert "forward pass 1: layer 2/4" in first  # the progress, with its total
    assert "waiting for the forward pass to record blocks.2.attn.norm" in waiting
    assert "layer 2 of 4" in after and "waiting" not in after and "forward pass 1:" not in after


def burst(*keys):
    """A pilot action: `keys` arrive in one burst, as a fast typist's (or a paste's) do: all posted to the app
    before it handles any, then one wait. (pilot.press waits for the app to go idle after each key.)"""
    async def send(pilot):
        for key in keys:
            char = {"enter": "\r", "slash": "/", "space": " ", "full_stop": "."}.get(key, key if len(key) == 1 else None)
            pilot.app.post_message(events.Key(key, char))
        await pilot.pause()
        await pilot.pause()
    return send


def test_keys_typed_in_one_burst_reach_the_prompt_in_order(session):
    """`l2⏎` typed at speed lands on layer 2 (the prompt opens before the `2` is handled), then the next keys
    move on from there; the same for g NAME ⏎ and / TEXT ⏎, with a correction (backspace) in the burst."""
    layer, then, go, search = texts(session, [
        burst("l", "2", "enter"), SNAP, burst("n", "n"), SNAP,
        burst("g", *"logits", "enter"), SNAP, burst("slash", *"routex", "backspace", "r", "enter")])
    assert title(layer).startswith("step 25/48 · blocks.2.attn.norm")
    assert title(then).startswith("step 27/48 · blocks.2.attn.rope")
    assert title(go).startswith("step 48/48 · logits")
    assert title(search).startswith("step 9/48 · blocks.0.moe.router")


def panel_rows(text):
    """The body's lines that draw a panel's side (start with │ or a corner)."""
    rows = [row[36:] if row.startswith("▊") else row for row in lines(text)[2:-2]]  # right of the outline
    return [row for row in rows if row[:1] in "│╭╰"]


@pytest.mark.parametrize("size,short,long", [((80, 24), "blocks.0.attn.qkv", "blocks.0.attn.rope"),
                                              ((120, 40), "blocks.0.attn.rope", "blocks.0.attn")])
def test_a_long_step_after_a_short_one_keeps_every_panel_border(session, size, short, long):
    """From a step that fits to one that scrolls (with the outline open too): every panel line still ends in its
    right border, left of the scrollbar, and every step is laid out at the same width."""
    names = [s.name for s in stepper.plan(parse(), session)[1]]
    snaps = drive(session, [at_step(names.index(short)), SNAP, at_step(names.index(long)), SNAP, "o", SNAP,
                            at_step(names.index(short)), SNAP, at_step(names.index(long))], size=size)
    for snap in snaps:
        rows = panel_rows(snap["text"])
        assert rows, snap["text"]
        # the last column is the scrollbar's (kept even when nothing scrolls); the border is just left of it
        assert all(row[-2] in "│╮╯" for row in rows), snap["text"]
    assert any(snap["max_scroll_y"] > 0 for snap in snaps)  # the long step does scroll
    assert not snaps[0]["max_scroll_y"]  # and the short one does not


def test_the_app_names_the_model_and_its_task(session):
    """The title line (and the keys' help) say which model this is and what it was made for."""
    screen_, help_ = texts(session, [SNAP, "question_mark"], size=(120, 24))
    assert "bundled tiny (random weights: expect gibberish)" in title(screen_)
    assert re.search(r"model\s+bundled tiny \(random weights", help_)
