"""`minigptoss run`: the first command a newcomer types."""

import numpy as np
from rich.console import Console

import minigptoss
from minigptoss.cli import DEFAULT_PROMPT, main


def run(capsys, *argv):
    status = main(["run", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_run_on_tiny_weights_shows_tokens_layers_router_and_next_token(capsys):
    status, out, _ = run(capsys, "--top", "3")
    assert status == 0
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = list(DEFAULT_PROMPT.encode())
    logits = model.forward(tokens)
    assert f"{len(tokens)} tokens" in out and "0:H[72]" in out
    assert "sliding 8" in out and "full" in out
    best = int(np.argmax(logits[-1]))
    assert f"│    1 │ {best:>3} │" in out  # the top candidate is the model's argmax
    assert "router" in out


def test_run_with_token_ids(capsys):
    status, out, _ = run(capsys, "--tokens", "1,2,3")
    assert status == 0 and "3 tokens" in out


def test_bad_input_is_one_line_and_status_2(capsys, tmp_path):
    status, _, err = run(capsys, "--weights", str(tmp_path))
    assert status == 2 and "config.json" in err and "Traceback" not in err
    status, _, err = run(capsys, "--tokens", "1,x")
    assert status == 2 and "--tokens" in err
    status, _, err = run(capsys, "--tokens", "400")
    assert status == 2 and "outside the vocabulary" in err


def test_show_prints_a_panel_with_stats():
    with minigptoss.capture("blocks.0.attn.probs") as cache:
        minigptoss.load(minigptoss.TINY_WEIGHTS).forward([72, 105, 33])
    console = Console(record=True, width=80)
    cache.show("blocks.0.attn.probs", console=console)
    text = console.export_text()
    assert "blocks.0.attn.probs" in text and "(8, 3, 3)" in text and "float32" in text and "max" in text
