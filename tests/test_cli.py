"""`minigptoss run`: the first command a newcomer types."""

import pytest
import numpy as np
from rich.console import Console

import minigptoss
from minigptoss.cli import DEFAULT_PROMPT, main


def run(capsys, *argv):
    status = main(["run", "--weights", "tiny", *argv])
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


def test_next_token_probabilities_survive_a_real_vocabulary():
    """At 201,088 ids the mass is spread thin: every shown probability keeps 3 significant digits, and the
    log-probability is exact (log-softmax, not log of a rounded probability)."""
    import re

    from minigptoss.views.summary import probability_text, top_tokens_table

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, 201088).astype(np.float32)
    console = Console(record=True, width=100)
    console.print(top_tokens_table(logits, minigptoss.o200k_harmony(), 10))
    rows = re.findall(r"│\s+(\d+) │\s+(\d+) │.*│\s+(\S+) │\s+(\S+) │\s+(\S+) │", console.export_text())
    assert len(rows) == 10
    log_probs = logits.astype(np.float64) - np.log(np.sum(np.exp(logits.astype(np.float64))))
    for rank, token, logit, prob, log_p in rows:
        assert float(prob) > 0 and prob != "0.000"
        assert abs(float(prob) / np.exp(log_probs[int(token)]) - 1) < 5e-3
        assert abs(float(log_p) - log_probs[int(token)]) < 5e-4
    assert probability_text(0.5) == "0.500" and probability_text(3.2e-9) == "3.20e-09"


def test_every_count_flag_is_validated_in_one_line(capsys):
    import pytest

    for argv in (["run", "--top", "-3"], ["run", "--top", "0"], ["step", "--top", "x"]):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--top" in err and "expected a whole number >= 1" in err


def test_a_closed_pipe_is_exit_status_0():
    import subprocess
    import sys

    for command in ("step --no-pause", "run"):
        result = subprocess.run(f"{sys.executable} -m minigptoss {command} | head -1; exit ${{PIPESTATUS[0]}}",
                                shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.startswith("minigptoss"), (command, result.stderr)
        assert "Traceback" not in result.stderr


def test_pass_progress_counts_layers_and_the_unembedding():
    from minigptoss.cli.common import PassProgress

    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    progress, seen = PassProgress(model), []
    original = minigptoss.model.record

    def spy(name, value):
        value = original(name, value)  # record returns the value the pass goes on with
        if name in ("embed", "blocks.0.resid_pre", "blocks.3.resid_post", "logits"):
            seen.append((progress.phase(), progress.completed, progress.total))
        return value

    minigptoss.model.record = spy
    try:
        with progress.watching():
            model.forward([1, 2, 3])
    finally:
        minigptoss.model.record = original
    assert seen == [("embedding", 0, 5), ("layer 1/4", 0, 5), ("layer 4/4", 3, 5),
                    ("unembedding (final norm, logits)", 4, 5)]
    assert progress.completed == 5 and "forward pass done · 5/5" in progress.describe()


def test_no_command_prints_help_and_version(capsys):
    assert main([]) == 0
    assert "usage: minigptoss" in capsys.readouterr().out
    import pytest

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"minigptoss {minigptoss.__version__}"


def test_generate_prompt_sources_stops_and_candidates(capsys, tmp_path, monkeypatch):
    import io
    import re

    path = tmp_path / "prompt.txt"
    path.write_text("Hi")
    assert main(["generate", "--weights", "tiny", "-f", str(path), "-n", "2", "--temp", "0", "--ignore-eos"]) == 0
    from_file = capsys.readouterr()
    assert from_file.out.startswith("Hi") and "2 new tokens" in from_file.err
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi"))
    assert main(["generate", "--weights", "tiny", "-p", "-", "-n", "2", "--temp", "0", "--ignore-eos", "--no-echo"]) == 0
    from_stdin = capsys.readouterr()
    assert from_stdin.out == from_file.out[2:]  # the same continuation, without the prompt
    assert main(["generate", "--weights", "tiny", "--tokens", "72,105", "-n", "2", "--temp", "0", "--ignore-eos"]) == 0
    assert capsys.readouterr().out == from_file.out
    assert main(["generate", "--weights", "tiny", "-p", "Hi", "-n", "3", "--temp", "0", "--ignore-eos", "--show-probs", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.split("\n") if "[" in line]
    assert len(lines) == 3 and all(re.search(r"\[\*'.*' \d\.\d{3}\S* \| '.*' \d", line) for line in lines)
    assert main(["generate", "--weights", "tiny", "-p", "Hi", "-n", "30", "--temp", "0", "--ignore-eos", "--stop", "x", "--stop", "\x0f"]) == 0
    stopped = re.search(r"(\d+) new tokens, stopped at stop text", capsys.readouterr().err)
    assert stopped and int(stopped.group(1)) < 30
    assert main(["generate", "--weights", "tiny", "-f", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: cannot read it" in capsys.readouterr().err


def test_the_commands_run_the_trained_models_by_default(capsys):
    """run/step/generate: the sort model on its own prompt; generate --harmony and chat: the chat model, its
    system message from defaults.json; the random model is one flag away (--weights tiny)."""
    assert main(["generate", "--temp", "0"]) == 0
    assert capsys.readouterr().out == "26023397=02233679<|return|>\n"
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "bundled sort (trained to sort 1-10 digits" in out and "0:2[50]" in out and "│    1 │  48 │ 0 " in out
    assert main(["generate", "--harmony", "--temp", "0"]) == 0
    assert capsys.readouterr().out.strip().endswith("...done thinking.\n\n02367")
    assert main(["run", "--weights", "tiny"]) == 0
    assert capsys.readouterr().out.startswith("minigptoss run on bundled tiny (random weights")


def test_the_banner_says_what_the_model_knows(capsys):
    """step, run, generate and chat name the bundled model and its tasks in one line (defaults.json's "about" and
    its prompt); step and run on a prompt outside them say the answer will be noise (its "tasks")."""
    from minigptoss.checkpoint.defaults import read_defaults

    line = "bundled sort (" + read_defaults(minigptoss.bundled("sort")).about + "; try 26023397=)"
    assert "trained to sort 1-10 digits" in line
    assert main(["step", "--only", "tokens"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert line in out and "noise" not in out
    assert main(["step", "-p", "hello", "--only", "tokens"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert line in out and "'hello' is not a prompt this model was trained on" in out and "noise" in out
    assert main(["run", "-p", "abcdefghijk|ab"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert line in out and "noise" not in out
    assert main(["generate", "--temp", "0", "-p", "4="]) == 0
    captured = capsys.readouterr()
    assert captured.out == "4=4<|return|>\n" and line in " ".join(captured.err.split())
    assert main(["run", "--weights", "tiny", "-p", "hello"]) == 0  # no defaults.json: no warning
    assert "noise" not in capsys.readouterr().out


def test_defaults_json_is_checked_field_by_field(tmp_path):
    from minigptoss.checkpoint import CheckpointError
    from minigptoss.checkpoint.defaults import read_defaults

    assert read_defaults(tmp_path).prompt is None  # no file: the commands' own defaults
    for text, field in [('{"prompt": 3}', "'prompt'"), ('{"harmony": "yes"}', "'harmony'"),
                        ('{"system": {"reasoning_effort": "max"}}', "'reasoning_effort'"),
                        ('{"system": {"identity": "x"}}', "'identity'"), ('{"promt": "x"}', "'promt'"), ("[1]", "list"),
                        ('{"about": "two\\nlines"}', "'about'"), ('{"tasks": "[0-9]+"}', "'tasks'"),
                        ('{"tasks": ["[0-9"]}', "not a regular expression"), ('{"temperature": -1}', "'temperature'"),
                        ('{"temperature": true}', "'temperature'")]:
        (tmp_path / "defaults.json").write_text(text)
        with pytest.raises(CheckpointError, match=field):
            read_defaults(tmp_path)
    (tmp_path / "defaults.json").write_text('{"about": "trained to add", "tasks": ["[0-9]\\\\+[0-9]"], "temperature": 0}')
    defaults = read_defaults(tmp_path)
    assert defaults.in_tasks("1+2") and not defaults.in_tasks("1+2+3") and defaults.temperature == 0.0


def test_a_prompt_from_stdin_or_a_file_loses_one_trailing_newline(capsys, tmp_path, monkeypatch):
    """`echo 'kqbzkeaw=' | minigptoss generate -p -` asks what -p 'kqbzkeaw=' asks (echo adds a newline); so
    does a file an editor saved with one; a second newline is kept."""
    import io

    argv = ["generate", "-n", "12", "--temp", "0", "--no-echo"]
    assert main([*argv, "-p", "kqbzkeaw="]) == 0
    typed = capsys.readouterr().out
    assert typed.startswith("kqbzkeaw")  # the sort model repeats the letters
    monkeypatch.setattr("sys.stdin", io.StringIO("kqbzkeaw=\n"))
    assert main([*argv, "-p", "-"]) == 0
    assert capsys.readouterr().out == typed
    path = tmp_path / "prompt.txt"
    path.write_bytes(b"kqbzkeaw=\r\n")
    assert main([*argv, "-f", str(path)]) == 0
    assert capsys.readouterr().out == typed
    from minigptoss.cli.generate import drop_final_newline
    assert drop_final_newline("a\n\n") == "a\n" and drop_final_newline("a") == "a"
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_ = " ".join(capsys.readouterr().out.split())
    assert "dropping one trailing newline" in help_ and "one trailing newline is dropped" in help_
    assert DEFAULT_PROMPT not in help_ and "'26023397=' for sort" in help_  # the default prompt that is used
    assert "random tiny" not in help_


def test_a_subcommands_unknown_flag_is_reported_against_it(capsys):
    with pytest.raises(SystemExit, match="2"):
        main(["generate", "-s", "1"])
    err = capsys.readouterr().err
    assert err.startswith("error: minigptoss generate: unrecognized arguments: -s 1 (did you mean --seed?)")
    with pytest.raises(SystemExit, match="2"):
        main(["run", "--tpo", "3"])
    assert "minigptoss run: unrecognized arguments: --tpo 3 (did you mean --top?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "Run one forward pass over the prompt" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    help_ = " ".join(capsys.readouterr().out.split())
    assert all(word in help_ for word in ("COLUMNS=N", "FORCE_COLOR=1", "less -R", "NO_COLOR"))


def test_a_large_checkpoints_cost_is_for_the_prompt_given(capsys, monkeypatch):
    """The memory banner of a real-sized checkpoint estimates the pass the user asked for, not 256 tokens."""
    from minigptoss.cli import common

    monkeypatch.setattr(common, "COSTLY_BYTES", 0)  # the tiny model as if it were 20b-sized
    assert main(["run", "-p", "12="]) == 0
    assert "A 3-token pass needs about" in capsys.readouterr().out
    assert main(["generate", "-p", "1234567=", "-n", "1", "--temp", "0"]) == 0
    assert "A 8-token pass needs about" in capsys.readouterr().out


def test_the_chat_header_names_the_system_text_and_wraps_at_words():
    from minigptoss.cli import build_parser
    from minigptoss.cli.chat import cmd_chat

    args = build_parser().parse_args(["chat", "--system", "Answer briefly", "--temp", "1.0", "--seed", "3"])
    console = Console(record=True, width=100)

    def read_line(prompt):
        raise EOFError

    cmd_chat(args, console, read_line=read_line)
    header = console.export_text().split("\n")
    assert "--system 'Answer briefly'" in " ".join(header[:3])
    assert "temperature 1.0" in " ".join(header[:3])  # not "temper" / "ature 1.0" (soft wrap at the edge)
