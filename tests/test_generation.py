"""`minigptoss step` generates: every pass recorded apart (cli/generation.py), walked pass after pass in the app,
printed with the timeline and the whole text, exported with a section per pass. On the trained sort model; its
answer is computed here (model.generate), never written down, so retraining it does not break these tests."""

import asyncio
import re

import numpy as np
import pytest
from rich.console import Console

import minigptoss
from helpers import check_html
from minigptoss.cli import build_parser, main
from minigptoss.cli import step as stepper
from minigptoss.cli.debugger import DebuggerApp

RETURN = 258  # <|return|>: the sort model's stop token


def parse(*argv):
    return build_parser().parse_args(["step", *argv])


@pytest.fixture(scope="module")
def model():
    return minigptoss.load("sort")


@pytest.fixture(scope="module")
def prompt():
    return list(b"26023397=")


@pytest.fixture(scope="module")
def answer(model, prompt):
    """What the model writes (greedy, KV-cached), stop token included."""
    return list(model.generate(prompt, max_new_tokens=64, stop_tokens=[RETURN]))


@pytest.fixture(scope="module")
def session(model):
    return stepper.open_session(parse(), Console(width=80), model=model)


def relative(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def test_every_pass_is_recorded_apart_and_equals_a_forward_pass_without_a_cache(model, prompt, answer, session):
    """Pass K reads the token pass K-1 drew, one query over the KV cache; what it recorded at that query equals a
    plain forward pass over the whole text so far, at its last position (1e-6 relative, the same argmax)."""
    passes = session.passes()
    assert len(passes) == len(answer) and session.run.written == answer  # n tokens, n passes, the same tokens
    text = prompt + answer
    for one in passes:
        p = one.this_pass
        assert p.start == (0 if p.number == 1 else len(prompt) + p.number - 2) and p.drawn == answer[p.number - 1]
        assert one.tokens == text[:p.end] and list(one.cache["positions"]) == list(range(p.start, p.end))
        with minigptoss.capture() as full:
            model.forward(text[:p.end])
        for name in ("logits", *(f"blocks.{n}.resid_post" for n in range(4)), "blocks.1.attn.z"):
            assert relative(one.cache[name][-1], full[name][-1]) < 1e-6, (p.number, name)
        assert int(np.argmax(one.cache["logits"][-1])) == int(np.argmax(full["logits"][-1])) == p.drawn
        for n in (1, 3):  # full layers: the one query's attention over every position, cache or no cache
            assert relative(one.cache[f"blocks.{n}.attn.probs"][:, -1], full[f"blocks.{n}.attn.probs"][:, -1]) < 1e-6
        if p.number > 1:  # one query; a sliding layer's cache holds its window, a full layer's everything
            assert one.cache["blocks.0.attn.probs"].shape == (8, 1, min(p.end, 9))
            assert one.cache["blocks.1.attn.probs"].shape == (8, 1, p.end)
        assert [layer.held for layer in p.kv] == [min(p.end, 8), p.end, min(p.end, 8), p.end]


def test_no_pause_prints_every_pass_then_the_timeline_and_the_whole_text(model, prompt, answer):
    console = Console(record=True, width=80)
    stepper.cmd_step(parse("--no-pause", "--only", "attn,output", "--layer", "0"), console)
    text = console.export_text()
    titles = re.findall(r"pass (\d+)/(≤?\d+) · step (\d+)/2 · (\S+)", text)  # ≤64: written while generating
    assert [int(k) for k, *_ in titles] == [k for k in range(1, len(answer) + 1) for _ in range(2)]
    assert titles[-1][1] == str(len(answer)) and {n for _, n, *_ in titles} <= {str(len(answer)), "≤64"}
    assert f"reads '0' at position {len(prompt)} · writes position {len(prompt) + 1}" in text.replace(
        repr(chr(answer[0])), "'0'", 1) or answer[0] != ord("0")
    after = text.split("═ timeline ═")
    assert len(after) == 2 and "pass " not in after[1].split("timeline: one row per token written")[0]
    whole = bytes(prompt + answer[:-1]).decode()
    assert f"the whole text written: {whole}<|return|>" in after[1]
    rows = re.findall(r"^\s+(\d+)\s+(\d+) '(.+?)'", after[1], re.M)
    assert [int(pos) for _, pos, _ in rows] == list(range(len(prompt), len(prompt) + len(answer)))
    assert max(len(line) for line in text.split("\n")) <= 80


def test_sampling_shows_the_cut_and_the_random_number_and_draws_what_generate_draws(model, prompt):
    drawn = list(model.generate(prompt, max_new_tokens=3, temperature=1.5, top_k=3, seed=7))
    console = Console(record=True, width=100)
    stepper.cmd_step(parse("--no-pause", "--only", "output", "-n", "3", "--temp", "1.5", "--top-k", "3",
                           "--seed", "7"), console)
    text = console.export_text()
    assert f"the whole text written: {bytes(prompt).decode()}{bytes(drawn).decode()}" in text
    assert text.count("u = 0.") == 3 and "top-k 3" in text and "logit/1.5" in text and "(seed 7)" in text
    assert "cut" in text.split("logit/1.5")[1]  # the tokens past the top 3 are shown as cut


async def walk(session, steps, keys, size=(80, 24), start=None):
    """Press keys in the app; after each, the screen's title line (and the whole screen at the end)."""
    app = DebuggerApp(session, steps, start=start)
    seen = []
    async with app.run_test(size=size) as pilot:
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            seen.append("\n".join(strip.text for strip in app.screen._compositor.render_strips()))
    return seen


def test_the_app_walks_the_passes_with_brackets_and_n_and_shows_the_timeline(session, answer):
    every, shown, breaks = stepper.plan(parse(), session)
    N = len(answer)
    screens = asyncio.run(walk(session, shown, ["right_square_bracket", "right_square_bracket", "left_square_bracket",
                                                "c", "n", "b", "T"], start=5))
    firsts = [screen.split("\n")[0] for screen in screens]
    assert firsts[0].startswith(f"pass 2/{N} · step 6/48 · blocks.0.attn · attention with sinks")
    assert firsts[1].startswith(f"pass 3/{N} · step 6/48 · blocks.0.attn")
    assert firsts[2].startswith(f"pass 2/{N} · step 6/48")
    assert firsts[3].startswith(f"pass 2/{N} · step 48/48 · logits")
    assert firsts[4].startswith(f"pass 3/{N} · step 1/48 · tokens")  # n past the last step: the next pass
    assert firsts[5].startswith(f"pass 2/{N} · step 48/48")  # and b back before the first
    second = screens[0].split("\n")[1]
    assert second.startswith(f"reads {chr(answer[0])!r} at position 9 · writes position 10")
    assert "sliding layer, window 8" in screens[0] and "strongest key" in screens[0]
    assert "timeline: one row per token written" in screens[6] and "runner-up" in screens[6]
    assert all(len(screen.split("\n")) == 24 for screen in screens)


def test_enter_on_a_timeline_row_goes_to_that_pass_at_the_same_step(session, answer):
    """T opens the timeline with its cursor on the pass on screen; up/down move it, Enter goes to that row's
    pass (same step); Esc closes it and stays."""
    every, shown, breaks = stepper.plan(parse(), session)
    N = len(answer)
    screens = asyncio.run(walk(session, shown, ["right_square_bracket", "T", "down", "down", "up", "enter",
                                                "T", "escape", "T", "end", "enter"], start=5))
    firsts = [screen.split("\n")[0] for screen in screens]
    assert firsts[0].startswith(f"pass 2/{N} · step 6/48")
    assert firsts[5].startswith(f"pass 3/{N} · step 6/48")  # down, down, up: one row on, then Enter
    assert firsts[7].startswith(f"pass 3/{N} · step 6/48")  # Esc: no move
    assert firsts[10].startswith(f"pass {N}/{N} · step 6/48")  # End: the last row, then Enter
    assert "timeline: one row per token written" in screens[1]
    # the cursor is a reverse-video style on one row; the rows are the passes that drew a token, in order
    assert session.timeline_pass_numbers() == list(range(1, N + 1))
    assert [row.style for row in session.timeline(selected=2).rows] == [None, None, "reverse"] + [None] * (N - 3)
    assert all(row.style is None for row in session.timeline().rows)


def test_break_stops_in_every_pass_and_pass_starts_at_pass_k(session):
    every, shown, breaks = stepper.plan(parse("--break", "blocks.1.attn", "--pass", "3"), session)
    app_screens = asyncio.run(walk_from(session, shown, breaks, 3, ["c", "c"]))
    firsts = [screen.split("\n")[0] for screen in app_screens]
    assert firsts[0].startswith("pass 3/") and "step 17/48 · blocks.1.attn " in firsts[0]
    assert firsts[1].startswith("pass 4/") and "step 17/48 · blocks.1.attn " in firsts[1]


async def walk_from(session, steps, breaks, first_pass, keys):
    app = DebuggerApp(session, steps, breaks, first_pass=first_pass)
    seen = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        seen.append("\n".join(strip.text for strip in app.screen._compositor.render_strips()))
        for key in keys[1:]:
            await pilot.press(key)
            await pilot.pause()
            seen.append("\n".join(strip.text for strip in app.screen._compositor.render_strips()))
    return seen


def test_the_export_of_a_three_token_generation_has_the_timeline_first_and_links_every_pass(tmp_path, capsys):
    folder = tmp_path / "report"
    assert main(["step", "-n", "3", "--only", "attn,output", "--export", str(folder)]) == 0
    page = (folder / "index.html").read_text(encoding="utf-8")
    ids = check_html(page).ids
    assert ids[0] == "timeline" and [i for i in ids if re.fullmatch(r"pass-\d+", i)] == ["pass-1", "pass-2", "pass-3"]
    for k in (1, 2, 3):
        for name in ("blocks.1.attn", "blocks.1.attn.out", "logits"):
            assert f"pass-{k}-{name}" in ids and f'href="#pass-{k}-{name}"' in page
        assert f'href="#pass-{k}"' in page
    assert page.index('id="timeline"') < page.index('id="pass-1"')
    assert page.count("<summary>source</summary>") == 9  # pass 1's steps only: the code is the same every pass


def test_the_sort_models_whole_export_stays_under_5_mb(tmp_path):
    folder = tmp_path / "whole"
    assert main(["step", "--export", str(folder)]) == 0
    assert (folder / "index.html").stat().st_size < 5e6


def test_a_per_step_capture_draws_any_pass(model, prompt, answer):
    with minigptoss.capture(per_step=True) as cache:
        list(model.generate(prompt, max_new_tokens=64, stop_tokens=[RETURN]))
    assert len(cache.steps) == len(answer)
    third = cache.at_step(2)
    assert third["tokens"].tolist() == [answer[1]] and third.earlier_tokens == prompt + answer[:1]
    picture = cache.picture("blocks.1.attn.probs", step=2)
    assert f"{len(prompt) + 1} {chr(answer[1])}" in picture.svg  # the query, labelled with its position and token
    assert f"0 {chr(prompt[0])}" in picture.svg  # the cached keys too, from the first
    with pytest.raises(IndexError, match="3 passes|passes"):
        cache.picture("logits", step=len(answer))


def test_intervene_writes_the_whole_answer_again_and_says_where_it_first_differs(model, prompt, answer):
    from minigptoss import interventions as iv

    off = iv.window_off()
    with off:
        patched = list(model.generate(prompt, 64, stop_tokens=[RETURN], cache=off.new_cache(model)))
    console = Console(record=True, width=100)
    stepper.cmd_step(parse("--no-pause", "--only", "output", "--intervene", "window off"), console)
    text = " ".join(console.export_text().split())
    differ = next((i for i, (a, b) in enumerate(zip(answer, patched)) if a != b), None)
    said = "the same answer" if differ is None else f"first differs at position {len(prompt) + differ} (pass {differ + 1})"
    assert f"under window off: {bytes(prompt).decode()}" in text and said in text
    assert "p unpatched" in text and "p window off" in text  # every pass's candidates side by side
