"""Every class of bad input issue 10 lists is one error of the project's own type, naming what was wrong; the
command line prints it as one line (exit 2); a bug keeps its traceback; Ctrl-C is 130; a closed stdout is quiet."""

import json
import math
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigptoss
from helpers import refused, rewrite_header
from minigptoss.checkpoint import CheckpointError, write_hf_checkpoint
from minigptoss.cli import UsageError, main
from minigptoss.config import TINY, Config, ConfigError
from minigptoss.errors import MinigptossError, SamplingError, SettingError, TokenError
from minigptoss.rope import concentration, inverse_frequencies
from minigptoss.views.tensor import heatmap, sparkline

ROOT = Path(__file__).resolve().parent.parent


# -- the project's own error type, and the CLI that prints only it ----------------------------------------------

def test_every_bad_input_error_is_a_minigptoss_error():
    for kind in (ConfigError, CheckpointError, UsageError, TokenError, SamplingError, SettingError):
        assert issubclass(kind, MinigptossError) and issubclass(kind, ValueError)
    assert minigptoss.MinigptossError is MinigptossError
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    with pytest.raises(TokenError, match=r"token id 320 is outside the vocabulary \[0, 320\)"):
        model.forward([1, 320])
    with pytest.raises(SamplingError, match="temperature"):
        list(model.generate([1], max_new_tokens=1, temperature=math.nan))


def test_a_numpy_value_error_is_a_bug_and_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        np.array_split(np.arange(3), 0)  # NumPy's own ValueError: "number sections must be larger than 0."

    monkeypatch.setattr(minigptoss, "load", broken)
    with pytest.raises(ValueError, match="number sections"):
        main(["run", "--weights", "tiny"])


def test_ctrl_c_is_130_while_running_and_while_the_cli_imports(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(minigptoss, "load", interrupted)
    assert main(["run", "--weights", "tiny"]) == 130
    importing = types.ModuleType("minigptoss.cli")
    importing.__getattr__ = interrupted  # `from .cli import main` is interrupted
    monkeypatch.setitem(sys.modules, "minigptoss.cli", importing)
    from minigptoss.__main__ import main as entry
    assert entry() == 130


def run_cli(*argv, stdout, env=None):
    return subprocess.run([sys.executable, "-m", "minigptoss", *argv], stdout=stdout, stderr=subprocess.PIPE,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_full_is_one_line_and_status_1_and_a_closed_pipe_is_quiet():
    with open("/dev/full", "w") as full:
        done = run_cli("run", "--tokens", "1,2", stdout=full)
    assert done.returncode == 1
    assert done.stderr.decode() == "error: cannot write to standard output (No space left on device)\n"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: `minigptoss run | head -0`
    try:
        done = run_cli("run", "--tokens", "1,2", stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == b""


# -- environment variables ---------------------------------------------------------------------------------------

def test_bad_threads_variable_does_not_break_import_and_is_named_at_load(monkeypatch):
    done = subprocess.run([sys.executable, "-c", "import minigptoss"], cwd=ROOT, capture_output=True,
                          env={**os.environ, "MINIGPTOSS_THREADS": "abc"}, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    for value in ("abc", "0", "-2", "1.5"):
        monkeypatch.setenv("MINIGPTOSS_THREADS", value)
        refused(SettingError, minigptoss.TINY_WEIGHTS, f"MINIGPTOSS_THREADS={value!r}", "whole number")


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "abc", "1e999"])
def test_bad_cache_variable_is_named(monkeypatch, capsys, value):
    monkeypatch.setenv("MINIGPTOSS_CACHE_GIB", value)
    refused(SettingError, minigptoss.TINY_WEIGHTS, f"MINIGPTOSS_CACHE_GIB={value!r}", "finite number of GiB")
    assert main(["run", "--weights", "tiny"]) == 2
    assert "MINIGPTOSS_CACHE_GIB" in capsys.readouterr().err


# -- checkpoint headers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["dtype", "shape", "data_offsets"])
@pytest.mark.parametrize("value", [["BF16"], {"a": 1}, 1.5, True, [[64]], [64.0], [True, False], None])
def test_header_fields_of_the_wrong_json_type(tiny_copy, field, value):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: header["norm.scale"].__setitem__(field, value))
    refused(CheckpointError, tiny_copy, str(path), "'norm.scale'", {"data_offsets": "offsets"}.get(field, field))


def test_header_entry_that_is_not_an_object(tiny_copy):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: header.__setitem__("norm.scale", [1, 2]))
    refused(CheckpointError, tiny_copy, str(path), "'norm.scale'", "not an object")


def test_header_nested_thousands_deep(tiny_copy):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    refused(CheckpointError, tiny_copy, str(path), "nested too deeply")


def test_header_integer_with_thousands_of_digits(tiny_copy):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: json.dumps(header).replace('"data_offsets": [0,', '"data_offsets": [' + "9" * 5000 + ",", 1).encode())
    refused(CheckpointError, tiny_copy, str(path), "too many digits")


def test_header_offsets_and_shapes_beyond_any_file(tiny_copy):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: header["norm.scale"].update(shape=[2**62] * 4, data_offsets=[0, 2**70]))
    refused(CheckpointError, tiny_copy, str(path), "'norm.scale'", "invalid shape")


def test_non_utf8_config_and_index(tiny_copy, tmp_path):
    (tiny_copy / "config.json").write_bytes(b'{"num_hidden_layers": "\xff\xfe"}')
    refused(ConfigError, tiny_copy, str(tiny_copy / "config.json"), "not UTF-8")
    hf = tmp_path / "hf"
    write_hf_checkpoint(hf, TINY, minigptoss.load(minigptoss.TINY_WEIGHTS).weights, shards=2)
    (hf / "model.safetensors.index.json").write_bytes(b"\xff{}")
    refused(CheckpointError, hf, "model.safetensors.index.json", "not UTF-8")


@pytest.mark.parametrize("text", ["42", "[1, 2]", '"config"', "null", "true"])
def test_config_json_that_is_not_an_object(tiny_copy, text):
    (tiny_copy / "config.json").write_text(text)
    refused(ConfigError, tiny_copy, str(tiny_copy / "config.json"), "expected a JSON object")


def test_hf_config_with_huge_integers_and_wrong_types(tmp_path):
    hf = tmp_path / "hf"
    write_hf_checkpoint(hf, TINY, minigptoss.load(minigptoss.TINY_WEIGHTS).weights)
    data = json.loads((hf / "config.json").read_text())
    for key, value in [("rms_norm_eps", 10**400), ("hidden_size", 10**400), ("rope_theta", 10**400),
                       ("head_dim", [16]), ("rope_scaling", {"factor": "32"})]:
        (hf / "config.json").write_text(json.dumps(data | {key: value}))
        refused(ConfigError, hf, "config.json", key if key != "rope_scaling" else "factor")


# -- config values -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("rope_theta", 1), ("rope_theta", 0.5), ("rope_theta", 0), ("rope_theta", -150000.0), ("rope_theta", "NaN"),
    ("rope_ntk_alpha", 0), ("rope_ntk_alpha", -1.0), ("rope_ntk_beta", 0.0), ("rope_ntk_beta", -32.0),
    ("rope_scaling_factor", 0.5), ("rope_scaling_factor", "Infinity"), ("rope_theta", 1e300), ("swiglu_limit", 0), ("swiglu_limit", "NaN"),
    ("hidden_size", 0), ("head_dim", 0), ("num_attention_heads", -8), ("num_key_value_heads", 0),
    ("sliding_window", -1), ("initial_context_length", 0), ("vocab_size", 2**62), ("rope_theta", 10**400)])
def test_config_values_out_of_range_are_named(tmp_path, field, value):
    path = tmp_path / "config.json"
    text = json.dumps(TINY.to_dict() | {field: "VALUE"}).replace('"VALUE"', str(value).strip('"'))
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config field '{field}' must be"):
        Config.from_json(path)


@given(st.dictionaries(st.sampled_from([f for f in TINY.to_dict()]),
                       st.one_of(st.integers(-2**70, 2**70), st.floats(), st.booleans(), st.none(), st.text(max_size=3)),
                       max_size=4))
def test_any_config_either_builds_with_finite_frequencies_or_is_refused(changes):
    try:
        config = Config.from_dict(TINY.to_dict() | changes)
    except ConfigError:
        return
    assert np.isfinite(inverse_frequencies(config)).all() and math.isfinite(concentration(config))


# -- special files -----------------------------------------------------------------------------------------------

def load_within(path, seconds: float = 10.0) -> str:
    """load(path)'s CheckpointError message, failing (not hanging) if it takes longer than `seconds`."""
    outcome = []

    def attempt():
        try:
            minigptoss.load(path)
            outcome.append("loaded")
        except CheckpointError as error:
            outcome.append(str(error))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"load({path}) still running after {seconds} s"
    return outcome[0]


@pytest.mark.parametrize("kind, expected", [
    ("directory", "is a directory, not a regular file"), ("dangling", "a symlink to a missing file"),
    ("loop", "Too many levels of symbolic links"), ("fifo", "is a FIFO, not a regular file")])
def test_special_files_named_safetensors_are_named_and_never_block(tiny_copy, kind, expected):
    path = tiny_copy / "extra.safetensors"
    if kind == "directory":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(tiny_copy / "absent")
    elif kind == "loop":
        path.symlink_to(path)
    else:
        os.mkfifo(path)
    message = load_within(tiny_copy)
    assert str(path) in message and expected in message, message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_file_is_named(tiny_copy):
    path = tiny_copy / "model.safetensors"
    path.chmod(0)
    assert load_within(tiny_copy) == f"{path}: cannot read the file (Permission denied)"


# -- huge configs ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layers, kind, expected", [
    (10**6, CheckpointError, "num_hidden_layers is 1000000, but the safetensors files hold only layers 0..3"),
    (2**62, ConfigError, "'num_hidden_layers' must be a whole number of layers from 1 to 2**31 - 1")])
def test_huge_layer_counts_are_refused_in_milliseconds(tiny_copy, tmp_path, layers, kind, expected):
    (tiny_copy / "config.json").write_text(json.dumps(TINY.to_dict() | {"num_hidden_layers": layers}))
    hf = tmp_path / "hf"
    write_hf_checkpoint(hf, TINY, minigptoss.load(minigptoss.TINY_WEIGHTS).weights)
    data = json.loads((hf / "config.json").read_text())
    del data["layer_types"]
    (hf / "config.json").write_text(json.dumps(data | {"num_hidden_layers": layers}))
    for folder in (tiny_copy, hf):
        start = time.perf_counter()
        refused(kind, folder, "config.json", expected)
        assert time.perf_counter() - start < 1.0


# -- narrow terminals ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("columns", [30])
def test_step_renders_every_step_in_a_narrow_terminal(monkeypatch, capsys, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["step", "--weights", "tiny", "-n", "2", "--no-pause", "--tokens", "72,105,33"]) == 0
    assert "end of the generation (pass 2/2)" in " ".join(capsys.readouterr().out.split())


def test_pictures_of_zero_or_negative_width_degrade_to_one_column():
    assert len(sparkline(np.arange(10.0), width=0)) == 1
    assert len(sparkline(np.arange(10.0), width=-5)) == 1
    assert heatmap(np.ones((3, 4)), max_rows=0, max_cols=-1).plain.count("\n") == 0
    assert len(sparkline(np.zeros(0), width=8)) == 1
