"""The interactive debugger (cli/debugger.py), driven headlessly by Textual's pilot: one test per key, each
reading the screen it leaves. Plus: the pass runs beside the app, so the first step shows before it ends."""

import asyncio
import threading
import time

import pytest
from rich.console import Console
from textual import events

import minigptoss
from minigptoss.cli import build_parser
from minigptoss.cli import step as stepper
from minigptoss.cli.debugger import KEY_LINE, DebuggerApp


PROMPT = "Hello, gpt-oss!"  # 15 tokens: enough for the sliding window (8) to show, quick to draw


def parse(*argv):
    return build_parser().parse_args(["step", *argv])


@pytest.fixture(scope="module")
def session():
    return stepper.open_session(parse("-p", PROMPT), Console(width=80))


def screen_text(app) -> str:
    """What the terminal shows now, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def drive(session, keys, size=(80, 24), argv=(), at=None):
    """Run the app on `session` at `size` (starting at step `at`, a name), press `keys` (a list; a str item is
    one key, a callable is awaited with the pilot), and return (screen text, app) at the end."""
    every, shown, breaks = stepper.plan(parse(*argv), session)
    start = [s.name for s in shown].index(at) if at else None

    async def go():
        app = DebuggerApp(session, shown, breaks, start=start)
        async with app.run_test(size=size) as pilot:
            for key in keys:
                if callable(key):
                    await key(pilot)
                else:
                    await pilot.press(key)
            await pilot.pause()
            body = app.query_one("#body")
            return screen_text(app), {"scroll_y": body.scroll_y, "max_scroll_y": body.max_scroll_y}

    return asyncio.run(go())


def lines(text):
    return text.split("\n")


def test_first_screen_pins_title_and_position_and_keys_at_80x24(session):
    text, app = drive(session, [])
    rows = lines(text)
    assert len(rows) == 24
    assert rows[0].startswith("step 1/48 · tokens")
    assert rows[1].startswith("before the blocks · positions 0..14")
    assert rows[-1].strip() == KEY_LINE and len(KEY_LINE) <= 80
    assert "0:H[72]" in text  # the piece's own view is on the first screen


@pytest.mark.parametrize("key", ["enter", "space", "n"])
def test_next_keys(session, key):
    text, _ = drive(session, [key])
    assert lines(text)[0].startswith("step 2/48 · embed")


@pytest.mark.parametrize("key", ["b", "p"])
def test_back_goes_to_the_previous_step_in_forward_order_even_after_a_jump(session, key):
    text, app = drive(session, ["l", "2", "enter", key])
    assert lines(text)[0].startswith("step 24/48 · blocks.1.moe ")
    text, _ = drive(session, [key])
    assert lines(text)[0].startswith("step 1/48 · tokens") and "this is the first step" in text


def test_l_jumps_to_a_layer_and_says_when_there_is_none(session):
    text, _ = drive(session, ["l", "2", "enter"])
    assert lines(text)[0].startswith("step 25/48 · blocks.2.attn.norm")
    assert "layer 2 of 4" in lines(text)[1]
    text, _ = drive(session, ["l", "9", "enter"])
    assert lines(text)[0].startswith("step 1/48") and "no step in layer 9" in text


def test_g_lists_matching_steps_and_jumps_by_name(session):
    async def type_name(pilot):
        await pilot.press(*"3.moe.rou")
    text, app = drive(session, ["g", type_name])
    assert "blocks.3.moe.router" in text and "blocks.0.attn" not in text  # the list narrowed as typed
    text, _ = drive(session, ["g", type_name, "enter"])
    assert lines(text)[0].startswith("step 42/48 · blocks.3.moe.router")
    text, _ = drive(session, ["g", *"1.attn", "enter"])  # no exact name: the first step containing it
    assert lines(text)[0].startswith("step 14/48 · blocks.1.attn.norm")


def test_several_breaks_and_c_continues_to_the_next(session):
    argv = ("--break", "blocks.1.attn", "--break", "*.router")
    text, _ = drive(session, [], argv=argv)  # the first breakpoint: layer 0's router
    assert lines(text)[0].startswith("step 9/48 · blocks.0.moe.router")
    text, _ = drive(session, ["c"], argv=argv)
    assert lines(text)[0].startswith("step 17/48 · blocks.1.attn ·")
    text, _ = drive(session, ["c", "c"], argv=argv)
    assert lines(text)[0].startswith("step 20/48 · blocks.1.moe.router")
    text, _ = drive(session, ["c", "c", "c", "c", "c"], argv=argv)
    assert lines(text)[0].startswith("step 48/48 · logits") and "no breakpoint ahead" in text
    text, _ = drive(session, ["b"], argv=argv)  # back works from a breakpoint too
    assert lines(text)[0].startswith("step 8/48 · blocks.0.moe.norm")


def test_slash_searches_step_names(session):
    text, _ = drive(session, ["slash", *"swiglu", "enter"])
    assert lines(text)[0].startswith("step 11/48 · blocks.0.moe.swiglu")
    text, _ = drive(session, ["slash", *"swiglu", "enter"], at="blocks.0.moe.swiglu")
    assert lines(text)[0].startswith("step 22/48 · blocks.1.moe.swiglu")


def test_question_mark_shows_the_keys_and_escape_closes_them(session):
    text, _ = drive(session, ["question_mark"])
    assert "minigptoss step: keys" in text and "continue to the next --break step" in text
    text, _ = drive(session, ["question_mark", "escape"])
    assert "minigptoss step: keys" not in text and lines(text)[0].startswith("step 1/48")


def test_o_toggles_an_outline_of_all_steps(session):
    text, _ = drive(session, ["o"])
    assert "blocks.0.attn.norm" in text and "blocks.0.attn.qkv" in text
    text, _ = drive(session, ["o", "down", "down", "enter"])  # pick from the outline
    assert lines(text)[0].startswith("step 3/48 · blocks.0.attn.norm")
    text, _ = drive(session, ["o", "o"])
    assert "blocks.0.attn.qkv" not in text


def test_s_and_t_show_the_source_and_the_tensors_below_the_view(session):
    text, app = drive(session, ["end"], size=(100, 50), at="blocks.0.attn")
    assert "grouped-query attention" in text and "def attend" not in text and "float32" not in text
    text, _ = drive(session, ["s", "end"], size=(100, 50), at="blocks.0.attn")
    assert "def attend" in text and "source shown" in text  # the last function's source ends the step
    text, _ = drive(session, ["t", "end"], size=(100, 50), at="blocks.0.attn")
    assert "blocks.0.attn.z" in text and "(15, 128) float32" in text  # the tensor list ends the step


def test_scrolling_keys_and_the_mouse_wheel(session):
    go = []
    text, app = drive(session, [*go, "pagedown"], at="blocks.0.attn")
    assert app["scroll_y"] > 10 and lines(text)[0].startswith("step 6/48")  # the title stays pinned
    assert "h0 kv0" not in text  # scrolled past the first heads
    text, app = drive(session, [*go, "end", "home"], at="blocks.0.attn")
    assert app["scroll_y"] == 0 and "equation" in text
    text, app = drive(session, [*go, "end"], at="blocks.0.attn")
    assert app["scroll_y"] == app["max_scroll_y"] > 0
    assert "grouped-query attention" in text
    text, app = drive(session, [*go, "down", "down"], at="blocks.0.attn")
    assert app["scroll_y"] == 2
    text, app = drive(session, [*go, "pagedown", "pageup"], at="blocks.0.attn")
    assert app["scroll_y"] == 0

    async def wheel(pilot):
        body = pilot.app.query_one("#body")
        body.post_message(events.MouseScrollDown(body, 5, 5, 0, 1, 0, False, False, False))
        await pilot.pause()
    text, app = drive(session, [*go, wheel, wheel], at="blocks.0.attn")
    assert app["scroll_y"] > 0


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
    for size, keys in (((40, 12), ["t", "s"]), ((20, 6), ["t"]), ((200, 60), [])):
        text, app = drive(session, keys, size=size, at="blocks.0.attn")
        assert lines(text)[0].startswith("step 6/48"[: size[0]]) and "Traceback" not in text


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
            await pilot.pause(0.2)
            first = screen_text(app)
            await pilot.press("g", *"blocks.2.attn", "enter")
            await pilot.pause()
            waiting = screen_text(app)
            release.set()
            for _ in range(100):
                await pilot.pause(0.05)
                if session.run.done.is_set() and "h0 kv0" in screen_text(app):
                    break
            return first, waiting, screen_text(app)

    try:
        first, waiting, after = asyncio.run(go())
    finally:
        release.set()
        session.stop()
    assert lines(first)[0].startswith("step 1/48 · tokens") and "0:H[72]" in first
    assert "forward pass: layer 2/4" in first  # the progress, with its total
    assert "waiting for the forward pass to record blocks.2.attn" in waiting
    assert "h0 kv0" in after and "forward pass:" not in after
