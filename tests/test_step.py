"""`minigptoss step`: the step-through debugger, driven through a recording rich Console and a pseudo-terminal."""

import re

import numpy as np
import pytest
from rich.console import Console

from minigptoss.cli import step as stepper
from minigptoss.cli import DEFAULT_PROMPT, UsageError, main
from minigptoss.mxfp4 import decode_mxfp4
from minigptoss.swiglu import clamped_counts
from minigptoss.views.steps import hand_decode, pattern_size, render_step


def step_args(*argv):
    """Parsed `minigptoss step ...` arguments."""
    from minigptoss.cli import build_parser

    return build_parser().parse_args(["step", "--weights", "tiny", "-n", "1", *argv])


@pytest.fixture(scope="module")
def session():
    """The default prompt (30 byte tokens) run once through tiny_weights under capture()."""
    return stepper.open_session(step_args(), Console(record=True, width=80))


@pytest.fixture(scope="module")
def steps(session):
    return stepper.build_steps(session.cache)


def screen(session, steps, name, width=80) -> str:
    """The text a recording console of `width` columns shows for the step called `name`."""
    console = Console(record=True, width=width)
    index = [s.name for s in steps].index(name)
    console.print(render_step(session, steps[index], index, len(steps), width=width))
    return console.export_text()


def view_lines(text: str, title: str) -> list[str]:
    """The inner lines (borders stripped) of the panel titled `title` in an exported screen."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"╭─ {title} "))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return [line[2:-2] for line in lines[start + 1:end]]


# -- the step list and navigation (no terminal) ---------------------------------------------------------------

def test_steps_follow_the_forward_pass_and_read_only_recorded_names(session, steps):
    names = [s.name for s in steps]
    assert names[:2] == ["tokens", "embed"] and names[-2:] == ["norm", "logits"]
    assert names[2:13] == ["blocks.0.attn.norm", "blocks.0.attn.qkv", "blocks.0.attn.rope", "blocks.0.attn",
                           "blocks.0.attn.out", "blocks.0.moe.norm", "blocks.0.moe.router", "blocks.0.moe.mlp1",
                           "blocks.0.moe.swiglu", "blocks.0.moe.mlp2", "blocks.0.moe"]
    assert len(steps) == 2 + 11 * session.config.num_hidden_layers + 2
    for s in steps:
        assert all(name in session.cache for name in (*s.inputs, *s.outputs)), s.name
        assert all(name in session.weights for name in s.weights), s.name
    # a capture that kept only some names gives only the steps it can show
    assert [s.name for s in stepper.build_steps(["tokens", "positions", "embed"])] == ["tokens", "embed"]


def test_only_layer_and_break_select_the_steps(steps):
    only = stepper.select_steps(steps, stepper.parse_pieces("attn,router"), None)
    assert {s.piece for s in only} == {"attn", "router"} and len(only) == 3 * 4
    assert stepper.parse_pieces("attention, RMSNorm") == {"attn", "attn_out", "norm"}
    # the aliases select what they name: the sinks live in the attention step, the experts run mlp1 .. mlp2
    assert [s.name for s in stepper.select_steps(steps, stepper.parse_pieces("sinks"), {1})] == ["blocks.1.attn"]
    assert [s.name for s in stepper.select_steps(steps, stepper.parse_pieces("experts"), {1})] == \
        ["blocks.1.moe.mlp1", "blocks.1.moe.swiglu", "blocks.1.moe.mlp2", "blocks.1.moe"]
    with pytest.raises(UsageError, match="unknown piece 'bogus'"):
        stepper.parse_pieces("attn,bogus")
    layer2 = stepper.select_steps(steps, None, stepper.parse_layers("2", 4))
    assert {s.layer for s in layer2} == {2} and len(layer2) == 11
    with pytest.raises(UsageError, match="outside the model's layers 0..3"):
        stepper.parse_layers("4", 4)
    assert steps[stepper.find_break(steps, "blocks.3.attn")].name == "blocks.3.attn"
    assert steps[stepper.find_break(steps, "blocks.3.moe")].name == "blocks.3.moe"
    assert steps[stepper.find_break(steps, "blocks.2")].name == "blocks.2.attn.norm"
    assert steps[stepper.find_break(steps, "*.router")].name == "blocks.0.moe.router"
    # a step's last name breaks in every layer, as gdb's `break NAME` does
    assert [steps[i].name for i in stepper.break_indices(steps, steps, ["attn"])] == \
        [f"blocks.{n}.attn" for n in range(4)]
    assert steps[stepper.find_break(steps, "router")].name == "blocks.0.moe.router"
    # a recorded tensor's name goes to the step that writes it (what a notebook user types)
    assert steps[stepper.find_break(steps, "blocks.2.attn.probs")].name == "blocks.2.attn"
    assert steps[stepper.find_break(steps, "blocks.1.moe.router.expert_ids")].name == "blocks.1.moe.router"
    with pytest.raises(UsageError, match="matches no step"):
        stepper.find_break(steps, "blocks.9.attn")
    # the breakpoint counts in the full list, the walk starts at the first selected step at or after it
    assert only[stepper.start_index(steps, only, "blocks.1.attn.norm")].name == "blocks.1.attn"


def test_navigator_next_prev_layer_goto_continue_search(steps):
    nav = stepper.Navigator(steps, breaks=stepper.break_indices(steps, steps, ["blocks.1.attn", "*.router"]))
    nav.prev()
    assert nav.index == 0 and "first step" in nav.note
    nav.next(), nav.next()
    assert nav.current.name == "blocks.0.attn.norm" and nav.note == ""
    nav.layer(2)
    assert nav.current.name == "blocks.2.attn.norm"
    nav.prev()
    assert nav.current.name == "blocks.1.moe"  # back is the previous step in forward order, also after a jump
    nav.layer(7)
    assert nav.current.name == "blocks.1.moe" and "no step in layer 7" in nav.note
    nav.goto("blocks.0.attn")
    assert nav.current.name == "blocks.0.attn"
    nav.cont()
    assert nav.current.name == "blocks.0.moe.router"
    nav.cont(), nav.cont()
    assert nav.current.name == "blocks.1.moe.router"
    nav.search("swiglu")
    assert nav.current.name == "blocks.1.moe.swiglu"
    nav.goto("3.moe.rou")
    assert nav.current.name == "blocks.3.moe.router"
    nav.cont()
    assert nav.current.name == "logits" and "no breakpoint ahead" in nav.note
    nav.next()
    assert nav.current.name == "logits" and "last step" in nav.note
    nav.search("swiglu")  # wraps round
    assert nav.current.name == "blocks.0.moe.swiglu"
    assert [s.name for s in nav.matches("blocks.2.moe.m")] == ["blocks.2.moe.mlp1", "blocks.2.moe.mlp2"]
    nav.goto("nothing-like-this")
    assert "no step named like" in nav.note


def test_steps_are_known_before_the_pass_and_ready_once_recorded(session, steps):
    every = stepper.all_steps(session.config.num_hidden_layers)
    assert [s.name for s in every] == [s.name for s in steps]
    assert all(step.ready(session.cache) for step in every)
    assert [s.name for s in every if s.ready(["tokens", "positions", "embed"])] == ["tokens", "embed"]


# -- the views, read from the recorded cache ----------------------------------------------------------------

def test_attention_view_shows_the_sink_column_and_the_sliding_window_band(session, steps):
    text = screen(session, steps, "blocks.0.attn")
    lines = view_lines(text, "attention with sinks")
    T, window = len(session.tokens), session.config.sliding_window
    n = pattern_size(80, T)
    first_query = T - n
    assert n < T and n > window  # the grid is wide enough to show where the band ends
    at = lines[0].index("h0 kv0")  # the heads sit right of the query labels
    assert lines[1][at:at + 2 + n] == "s│" + "".join(str(j % 10) for j in range(first_query, T))  # key positions
    grid = [line[at:at + 2 + n] for line in lines[2:2 + n]]  # head 0: sink cell, │, one cell per key
    labels = [line[:at].split() for line in lines[2:2 + n]]  # each query row starts with its token and position
    assert [int(label[-1]) for label in labels] == list(range(first_query, T))
    assert all(label[0] == session.tokenizer.decode([session.tokens[int(label[-1])]])[:1] for label in labels
               if len(label) == 2 and session.tokenizer.decode([session.tokens[int(label[-1])]]).strip())
    mask, sink_mass = session.cache["blocks.0.attn.mask"], session.cache["blocks.0.attn.sink_mass"]
    for row, line in enumerate(grid):
        i = first_query + row
        assert line[1] == "│" and line[0] != " "  # the sink column always has a mass to show
        cells = line[2:].ljust(n)
        for col, cell in enumerate(cells):
            j = first_query + col
            assert (cell != " ") == bool(mask[i, j]) == (j <= i and i - j < window), (i, j, line)
    # the band: the last query sees exactly its window of keys
    assert grid[-1][2:] == " " * (n - window) + grid[-1][2 + n - window:] and " " not in grid[-1][2 + n - window:]
    assert f"outside the window of {window}" in " ".join(" ".join(lines).split()) and "sliding, window 8" in text
    assert "grouped-query attention: kv0 <- q0..q3,  kv1 <- q4..q7" in text
    sink_rows = [line for line in lines if re.match(r"\s+h\d+\s+kv\d+\s+-?[\d.]", line)]
    assert len(sink_rows) == session.config.num_attention_heads
    assert f"{sink_mass[0].mean():.3f}" in sink_rows[0] and f"{sink_mass[0, -1]:.3f}" in sink_rows[0]
    # layer 1 is full causal: no band, every key up to the query is shown
    lines = view_lines(screen(session, steps, "blocks.1.attn"), "attention with sinks")
    last = lines[1 + n][at + 2:at + 2 + n]
    assert " " not in last and "full causal" in screen(session, steps, "blocks.1.attn")


def test_router_view_lists_the_recorded_experts_and_weights(session, steps):
    text = screen(session, steps, "blocks.0.moe.router")
    ids = session.cache["blocks.0.moe.router.expert_ids"]
    weights = session.cache["blocks.0.moe.router.weights"]
    rows = {}
    for line in view_lines(text, "router"):
        match = re.match(r"\s+(\d+)\s+\S+\s+((?:e\d+ [\d.]+\s*){2})", line)
        if match:
            rows[int(match.group(1))] = [(int(e), float(w)) for e, w in re.findall(r"e(\d+) ([\d.]+)", match.group(2))]
    assert sorted(rows) == list(range(len(session.tokens)))
    for t, chosen in rows.items():
        assert [e for e, _ in chosen] == ids[t].tolist()
        assert np.allclose([w for _, w in chosen], weights[t], atol=5e-4)
    router_view = "\n".join(view_lines(text, "router"))
    load = {int(e): int(count) for e, count in re.findall(r"^\s+e(\d+)\s+(\d+)\s+█", router_view, re.M)}
    assert load == {e: int(np.sum(ids == e)) for e in range(session.config.num_experts)}


def test_mxfp4_view_decodes_the_stored_block_by_hand(session, steps):
    text = screen(session, steps, "blocks.0.moe.mlp1")
    e = int(session.cache["blocks.0.moe.router.expert_ids"][0, 0])
    blocks = session.weights["block.0.mlp.mlp1_weight.blocks"]
    scales = session.weights["block.0.mlp.mlp1_weight.scales"]
    expected = decode_mxfp4(blocks[e, 0, 0:1], scales[e, 0, 0:1])  # (32,)
    shown = dict(re.findall(r"w(\d+): [0-9A-F] -> +[-+]?[\d.]+ -> (\S+)", text))
    assert sorted(map(int, shown)) == list(range(32))
    decoded = np.array([np.float32(shown[str(i)]) for i in range(32)], dtype=np.float32)
    assert np.array_equal(decoded, expected)
    assert " ".join(f"{b:02X}" for b in blocks[e, 0, 0]) in text
    scale_byte = int(scales[e, 0, 0])
    assert f"scale: byte {scale_byte} -> 2^({scale_byte} - 127) = 2^{scale_byte - 127}" in text
    assert f"✓ decode_mxfp4 gives the same 32 weights (W1[{e}][0, 0:32])" in " ".join(text.split())
    for j, byte in enumerate(blocks[e, 0, 0]):  # the nibbles: low = element 2j, high = element 2j+1
        assert re.search(rf"\b{j}  0x{byte:02X}  w{2 * j}: {byte & 15:X} -> .* w{2 * j + 1}: {byte >> 4:X} ->", text)


def test_hand_decode_equals_decode_mxfp4_on_every_code_and_extreme_scales():
    rng = np.random.default_rng(0)
    for scale_byte in (0, 1, 100, 127, 140, 254, 255):
        block = rng.integers(0, 256, 16, dtype=np.uint8)
        steps = hand_decode(block, scale_byte)
        expected = decode_mxfp4(block[None], np.array([scale_byte], dtype=np.uint8))
        assert np.array_equal(steps["weights"], expected, equal_nan=True)
        assert steps["codes"][0] == block[0] & 15 and steps["codes"][1] == block[0] >> 4


def test_other_views_show_what_was_recorded(session, steps):
    rope_text = screen(session, steps, "blocks.0.attn.rope")
    assert "kept" in rope_text and "/32" in rope_text and "ramp" in rope_text
    assert "c = 1 + 0.1 ln(32) = 1.3466" in rope_text and "recorded |(cos, sin)| = 1.3466" in rope_text
    swiglu_text = screen(session, steps, "blocks.0.moe.swiglu")
    gate, lin = clamped_counts(session.cache["blocks.0.moe.mlp1"], session.config.swiglu_limit)
    assert re.search(rf"gate\s+values > 7:\s+{gate} of", swiglu_text)
    assert re.search(rf"outside ±7:\s+{lin} of", swiglu_text)
    norm_text = screen(session, steps, "blocks.0.attn.norm")
    before = np.sqrt(np.mean(np.square(session.cache["blocks.0.resid_pre"][-1].astype(np.float64))))
    assert f"{before:.4f}" in norm_text
    tokens_text = screen(session, steps, "tokens")
    assert "0:H[72]" in tokens_text and repr(DEFAULT_PROMPT) in tokens_text
    output_text = screen(session, steps, "logits")
    best = int(np.argmax(session.cache["logits"][-1]))
    assert re.search(rf"│\s+1 │\s+{best} │", output_text)
    attn_text = screen(session, steps, "blocks.0.attn")
    assert "def sink_softmax" in attn_text and "attention.py:" in attn_text  # the source of the piece
    assert "blocks.0.attn.probs" in attn_text and "(8, 30, 30) float32" in attn_text  # its tensors
    assert "sum_j' exp(s_hij') + exp(S_h)" in attn_text  # its equation


def test_step_command_prints_every_step_in_80_columns_and_fills_wider_ones(capsys):
    console = Console(record=True, width=80)
    stepper.cmd_step(step_args("--no-pause", "--tokens", "72,101,108,108,111,44,32,103,112,116,45,111"), console)
    text = console.export_text()  # 12 tokens: past the window of 8, so the sliding band shows
    headers = re.findall(r"step (\d+)/(\d+) · (\S+)", text)
    assert [int(i) for i, _, _ in headers] == list(range(1, 49)) and headers[5][2] == "blocks.0.attn"
    assert max(len(line) for line in text.split("\n")) <= 80
    assert "end of the generation (pass 1/1)" in text
    wide = Console(record=True, width=132)
    stepper.cmd_step(step_args("--no-pause", "--only", "attn", "--layer", "0"), wide)
    lines = wide.export_text().split("\n")
    assert max(len(line) for line in lines) == 132
    assert len(re.findall(r"step \d+/2 ·", "\n".join(lines))) == 2


def test_break_only_and_bad_arguments(capsys):
    console = Console(record=True, width=80)
    stepper.cmd_step(step_args("--no-pause", "--break", "blocks.3.attn", "--only", "attn,router"), console)
    text = console.export_text()
    names = [name for _, _, name in re.findall(r"step (\d+)/(\d+) · (\S+)", text)]
    assert names == ["blocks.3.attn", "blocks.3.attn.out", "blocks.3.moe.router"]
    assert "ran 9 steps to the breakpoint blocks.3.attn" in text
    console = Console(record=True, width=80)
    stepper.cmd_step(step_args("--no-pause", "--break", "blocks.3.attn", "--break", "blocks.1.attn",
                               "--only", "attn"), console)
    assert re.findall(r"step \d+/\d+ · (\S+)", console.export_text())[0] == "blocks.1.attn"  # the earliest
    assert main(["step", "--weights", "tiny", "-n", "1", "--no-pause", "--only", "nope"]) == 2
    assert "unknown piece 'nope'" in capsys.readouterr().err
    assert main(["step", "--weights", "tiny", "-n", "1", "--no-pause", "--break", "blocks.9"]) == 2
    assert main(["step", "--weights", "tiny", "-n", "1", "--no-pause", "--tokens", "72,105", "--only", "output"]) == 0
    assert "after position 1 ('i')" in capsys.readouterr().out




def test_intervene_prints_each_step_beside_the_patched_runs(capsys):
    console = Console(record=True, width=100)
    stepper.cmd_step(step_args("--no-pause", "--tokens", "72,101,108,108,111", "--only", "attn,output", "--layer",
                               "0", "--intervene", "sinks off", "--intervene", "zero head 0 2"), console)
    text = console.export_text()
    assert re.findall(r"step \d+/\d+ · (\S+)", text) == ["blocks.0.attn", "blocks.0.attn.out"]
    header = next(line for line in text.split("\n") if "unpatched" in line)
    assert "sinks off" in header and "zero head 2 of layer 0" in header  # one column per run
    assert "p unpatched" in text and "p sinks off" in text  # and every run's final candidates
    assert max(len(line) for line in text.split("\n")) <= 100
    assert main(["step", "--weights", "tiny", "-n", "1", "--no-pause", "--intervene", "zero head 9 0"]) == 2
    assert "layer 9 does not exist" in capsys.readouterr().err


def test_per_token_tables_show_every_position(session, steps):
    """RMSNorm's and the MoE combine's tables list every position of the prompt (the body scrolls), from 0."""
    T = len(session.tokens)
    for name, title in (("blocks.0.attn.norm", "RMSNorm"), ("blocks.0.moe", "MoE combine + residual")):
        positions = [int(line.split()[0]) for line in view_lines(screen(session, steps, name), title)
                     if line.split() and line.split()[0].isdigit()]
        assert positions == list(range(T)), name


def test_an_interventions_column_describes_its_own_run(session, steps):
    """Side by side, the patched column's texts come from the patched pass: `window off` drops `i - j < 8`
    (the recorded mask keeps far keys), `sinks off` gives -inf sink logits; both columns lay out the heads alike."""
    from minigptoss.cli.compare import parse_intervention, patched_session, side_by_side
    from minigptoss.views.steps import step_body

    attn = next(s for s in steps if s.name == "blocks.0.attn")
    for preset, unwanted, wanted in (("window off", "i - j < 8", "switched the window of 8 off"),
                                     ("sinks off", None, "-inf (off)")):
        other = patched_session(session, parse_intervention(preset, session.config))
        console = Console(record=True, width=120)
        console.print(side_by_side([session, other], attn, 120, lambda s, step, w: step_body(s, step, width=w)))
        left, right = [], []
        for line in console.export_text().split("\n"):
            left.append(line[:60])
            right.append(line[60:])
        left, right = "\n".join(left), "\n".join(right)
        assert wanted in right and wanted not in left, preset
        if unwanted:
            assert unwanted in " ".join(left.split()) and unwanted not in " ".join(right.split()), preset
        heads_rows = lambda text: [re.findall(r"h\d+ kv\d+", line) for line in text.split("\n")
                                   if re.search(r"h\d+ kv\d+\s+h\d+ kv\d+", line)]
        assert heads_rows(left) == heads_rows(right) and heads_rows(left), preset


def test_the_printed_mode_names_a_bundled_model_in_one_short_line(capsys):
    """Not the three-line site-packages path of a wheel install: the bundled model's short name and task."""
    assert main(["step", "--weights", "sort", "--no-pause", "--only", "tokens"]) == 0
    first = capsys.readouterr().out.split("\n")[0]
    assert first.startswith("minigptoss step on bundled sort (trained to sort 1-10 digits") and "site-packages" not in first
    from minigptoss.cli.common import model_name
    import minigptoss
    assert model_name(minigptoss.bundled("chat")) == "bundled chat" and model_name("/tmp/x") == "/tmp/x"
