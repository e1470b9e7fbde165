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
from minigptoss.checkpoint import CheckpointError, hf, write_hf_checkpoint
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


# -- folders and files that cannot be searched or listed (issue 21) ----------------------------------------------

def _denied(blocked: Path, real):
    """A stand-in for Path.stat / Path.iterdir that raises PermissionError inside `blocked`, as a folder of mode
    000 does for a user without override rights (root-independent: the suite runs as root in CI)."""
    def guarded(self, *args, **kwargs):
        if blocked in self.parents or (real.__name__ == "iterdir" and self == blocked):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)
    guarded.__name__ = real.__name__
    return guarded


@pytest.mark.parametrize("where", ["folder", "original", "given"])
def test_a_folder_that_cannot_be_searched_is_named(tiny_copy, monkeypatch, where):
    (tiny_copy / "original").mkdir()
    blocked = {"folder": tiny_copy, "original": tiny_copy / "original", "given": tiny_copy}[where]
    path = tiny_copy / "config.json" if where == "given" else tiny_copy
    monkeypatch.setattr(Path, "stat", _denied(blocked, Path.stat))
    message = refused(CheckpointError, path, str(blocked), "cannot look inside the folder", "Permission denied")
    assert "original/config.json" in message or "config.json" in message


def test_a_folder_that_cannot_be_listed_is_named_not_empty(tiny_copy, monkeypatch):
    monkeypatch.setattr(Path, "iterdir", _denied(tiny_copy, Path.iterdir))
    refused(CheckpointError, tiny_copy, str(tiny_copy), "cannot list the folder", "Permission denied")


def test_unreadable_folders_as_a_user_without_override_rights(tiny_copy, tmp_path):
    """The same with real permissions: mode 000 / 311 folders, read by a process that cannot override them (root
    drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH with setpriv; another user just runs)."""
    import shutil

    drop = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: root reads a mode-000 folder anyway")
        drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-dac_override,-dac_read_search"]
    cases = {}
    for name, mode, inner in [("search", 0o000, None), ("list", 0o311, None), ("inner", 0o755, "original")]:
        folder = tmp_path / name
        shutil.copytree(tiny_copy, folder if inner is None else folder / inner)
        os.chmod(folder / inner if inner else folder, 0o000 if inner else mode)
        cases[name] = folder
    script = ("import sys, minigptoss\n"
              "for path in sys.argv[1:]:\n"
              "    try:\n        minigptoss.load(path); print('loaded')\n"
              "    except minigptoss.MinigptossError as error:\n        print(error)\n")
    try:
        done = subprocess.run([*drop, sys.executable, "-c", script, *map(str, cases.values())], capture_output=True,
                              text=True, timeout=60, cwd=ROOT)
    finally:
        for folder in cases.values():
            os.chmod(folder, 0o755)
            if (folder / "original").exists():
                os.chmod(folder / "original", 0o755)
    if drop and done.returncode and "setpriv" in done.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {done.stderr.strip()}")
    assert done.returncode == 0 and not done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{cases['search']}: cannot look inside the folder for original/config.json (Permission denied)"
    assert lines[1] == f"{cases['list']}: cannot list the folder (Permission denied)"
    assert lines[2] == (f"{cases['inner'] / 'original'}: cannot look inside the folder for config.json "
                        f"(Permission denied)")


# -- config values the model cannot mean (issue 21) ----------------------------------------------------------------

@pytest.mark.parametrize("value", [1e-30, 1e-4, 5e-324])
def test_a_swiglu_limit_that_clamps_everything_is_refused_with_its_range(tiny_copy, value):
    data = json.loads((tiny_copy / "config.json").read_text())
    (tiny_copy / "config.json").write_text(json.dumps(data | {"swiglu_limit": value}))
    refused(ConfigError, tiny_copy, "'swiglu_limit'", ">= 0.001 and <= 1e18", repr(value))


def test_the_smallest_meaningful_swiglu_limit_and_gpt_oss_values_still_load(tiny_copy, tmp_path):
    Config(**TINY.to_dict() | {"swiglu_limit": 1e-3})
    Config(**TINY.to_dict() | {"swiglu_limit": 0.5})  # the parity golden's "clamps everywhere" variant
    from minigptoss.config import GPT_OSS_20B, GPT_OSS_120B

    for real in (GPT_OSS_20B, GPT_OSS_120B):
        assert Config.from_dict(real.to_dict()) == real
        assert hf.config_from_hf(hf.hf_config_dict(real)) == real


@pytest.mark.parametrize("key, value, needles", [
    ("tie_word_embeddings", True, ("'tie_word_embeddings'", "False")),
    ("tie_word_embeddings", 0, ("'tie_word_embeddings'", "JSON boolean false", "got 0")),
    ("attention_bias", 1, ("'attention_bias'", "JSON boolean true", "got 1")),
    ("rope_scaling", {"attention_factor": 1.0}, ("'rope_scaling.attention_factor'", "1.34657")),
    ("rope_scaling", {"mscale": 2.0, "mscale_all_dim": 1.0}, ("'rope_scaling.mscale'", "0.1 ln(factor) + 1")),
    ("rope_scaling", {"attention_factor": "x"}, ("'rope_scaling.attention_factor'", "must be a number")),
    ("swiglu_limit", 1e-30, ("'swiglu_limit'", ">= 0.001")),
])
def test_hf_config_values_gpt_oss_never_has_are_refused_by_name(tmp_path, key, value, needles):
    folder = tmp_path / "hf"
    write_hf_checkpoint(folder, TINY, minigptoss.load(minigptoss.TINY_WEIGHTS).weights)
    data = json.loads((folder / "config.json").read_text())
    data[key] = data[key] | value if isinstance(value, dict) else value
    (folder / "config.json").write_text(json.dumps(data))
    refused(ConfigError, folder, "config.json", *needles)


def test_hf_config_that_spells_out_gpt_oss_own_attention_factor_loads(tmp_path):
    folder = tmp_path / "hf"
    write_hf_checkpoint(folder, TINY, minigptoss.load(minigptoss.TINY_WEIGHTS).weights)
    data = json.loads((folder / "config.json").read_text())
    data["rope_scaling"] |= {"attention_factor": 0.1 * math.log(32) + 1}
    (folder / "config.json").write_text(json.dumps(data))
    assert minigptoss.load(folder).config == TINY


# -- a checkpoint file changed after load() (issue 21) ------------------------------------------------------------

def _pass_in_a_child(folder: Path, change: str) -> subprocess.CompletedProcess:
    """load, change the file, forward: in a child process, since without the check the pass dies of SIGBUS."""
    script = (f"import os, sys, minigptoss\n"
              f"model = minigptoss.load(sys.argv[1]); model.forward([1, 2])\n"
              f"path = os.path.join(sys.argv[1], 'model.safetensors')\n{change}\n"
              f"try:\n    model.forward([1, 2, 3]); print('ran')\n"
              f"except minigptoss.MinigptossError as error:\n    print(error)\n")
    return subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=60)


def test_a_checkpoint_truncated_after_load_is_one_error_not_sigbus(tiny_copy):
    header = 8 + int.from_bytes((tiny_copy / "model.safetensors").read_bytes()[:8], "little")
    done = _pass_in_a_child(tiny_copy, f"os.truncate(path, {header})")
    assert done.returncode == 0, f"status {done.returncode}: {done.stderr[-300:]}"
    assert done.stdout.strip().startswith(f"{tiny_copy / 'model.safetensors'}: the file changed after the model "
                                          f"was loaded (it now holds {header} bytes, not ")


def test_a_checkpoint_rewritten_in_place_is_named_and_one_replaced_by_rename_is_fine(tiny_copy):
    rewrite = ("data = open(path, 'rb').read()\nimport time; time.sleep(0.01)\n"
               "open(path, 'r+b').write(data)\nos.utime(path, ns=(1, 1))")
    done = _pass_in_a_child(tiny_copy, rewrite)
    assert "rewritten in place: its modification time changed" in done.stdout, done.stdout + done.stderr
    renamed = _pass_in_a_child(tiny_copy, "import shutil; shutil.copy(path, path + '.new'); "
                                          "os.truncate(path + '.new', 100); os.replace(path + '.new', path)")
    assert renamed.stdout.strip() == "ran", renamed.stdout + renamed.stderr  # the map keeps the old file


def test_the_file_check_runs_before_every_pass_and_costs_no_numbers(tiny_copy):
    model = minigptoss.load(tiny_copy)
    calls = []
    check = model.weights.check_files
    model.weights.check_files = lambda: calls.append(check())
    first = model.forward([1, 2, 3])
    list(model.generate([1, 2], max_new_tokens=3))
    assert len(calls) >= 1 + 3  # forward; generate's prefill and (at least) two one-token passes
    assert np.array_equal(first, minigptoss.load(tiny_copy).forward([1, 2, 3]))


# -- the command line's last edges (issue 21) ----------------------------------------------------------------------

def one_line(capsys, argv, status=2) -> str:
    """main(argv) ends with `status` and exactly one line on stderr (no traceback); -> that line."""
    try:
        ended = main(argv)
    except SystemExit as exit:  # argparse's own usage errors end this way (the command line's exit status)
        ended = exit.code
    assert ended == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, needles", [
    (["generate", "--seed", "-1"], ("--seed", "-1", ">= 0")),
    (["generate", "--weights", "tiny", "--temperature", "1", "--seed", "x"], ("--seed", "'x'")),
    (["run", "-p", ""], ("the prompt ''", "empty", "--tokens")),
    (["generate", "-p", ""], ("the prompt ''", "empty")),
    (["step", "-p", "", "--no-pause"], ("the prompt ''", "empty")),
    (["run", "--tokens", "99999999999999999999999"], ("--tokens", "99999999999999999999999", "vocabulary",
                                                      "320 tokens")),
    (["generate", "--tokens", "99999999999999999999999"], ("--tokens", "outside the vocabulary")),
    (["step", "--tokens", "-1", "--no-pause"], ("--tokens", "-1", "vocabulary")),
    (["run", "--tokens", ","], ("--tokens", "empty")),
])
def test_cli_bad_prompts_and_seeds_are_one_line_naming_them(capsys, argv, needles):
    err = one_line(capsys, argv)
    assert all(needle in err for needle in needles), err


@pytest.fixture(scope="module")
def no_tokenizer_model(tmp_path_factory):
    """A model whose vocabulary (100) has no tokenizer: neither o200k_harmony nor the byte-level one."""
    import dataclasses

    folder = tmp_path_factory.mktemp("vocab100")
    minigptoss.save(minigptoss.random_model(dataclasses.replace(TINY, vocab_size=100), seed=1), folder)
    return str(folder)


def test_a_model_without_a_tokenizer_runs_on_token_ids_and_says_so(capsys, no_tokenizer_model):
    assert main(["run", "--weights", no_tokenizer_model, "--tokens", "1,2,99"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("note: no tokenizer for vocab_size 100") and "token ids" in err and "<99>" in out
    assert main(["generate", "--weights", no_tokenizer_model, "--tokens", "1,2", "-n", "2"]) == 0
    assert "running on token ids" in capsys.readouterr().err
    err = one_line(capsys, ["run", "--weights", no_tokenizer_model])  # its default prompt is text
    assert "no tokenizer for vocab_size 100" in err and "--tokens" in err
    one_line(capsys, ["generate", "--weights", no_tokenizer_model, "-p", "hello"])
    err = one_line(capsys, ["run", "--weights", no_tokenizer_model, "--tokens", "100"])
    assert "outside the vocabulary of the model (100 tokens" in err


def test_closed_stdout_is_one_line_and_status_1():
    done = subprocess.run(f"{sys.executable} -m minigptoss run --weights tiny --tokens 1,2 >&-", shell=True,
                          stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert done.stderr.decode() == "error: cannot write to standard output (it is closed)\n"


def test_one_inf_in_a_weight_is_exactly_one_line_on_stderr(tiny_copy):
    path = tiny_copy / "model.safetensors"
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[:8], "little")
    begin = 8 + length + json.loads(data[8:8 + length])["block.0.attn.qkv.weight"]["data_offsets"][0]
    data[begin:begin + 2] = (0x7F80).to_bytes(2, "little")  # bf16 +inf
    path.write_bytes(bytes(data))
    for argv in (["run"], ["step", "--no-pause", "--only", "attn", "--layer", "0"]):  # generate: as run
        done = run_cli(*argv, "--weights", str(tiny_copy), "--tokens", "1,2,3", stdout=subprocess.DEVNULL)
        assert done.returncode == 2, done.stderr.decode()[-500:]
        assert done.stderr.decode() == ("error: non-finite values first appear at blocks.0.attn.qkv (from "
                                        "block.0.attn.qkv.weight: 1 of its 12288 values are NaN or inf)\n")


def test_sigint_handler_of_the_full_screen_app_is_temporary():
    """While the app runs SIGINT only sets app.interrupted (its tick ends the app, run_debugger raises
    KeyboardInterrupt: status 130); afterwards Python's own handler is back (nothing process-wide is left)."""
    import signal

    from minigptoss.cli.debugger import sigint_sets

    app = types.SimpleNamespace(interrupted=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with sigint_sets(app):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert app.interrupted and signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal and SIGINT")
def test_sigint_to_the_full_screen_step_app_ends_it_with_status_130():
    """`minigptoss step` on a terminal (a pty), SIGINT once its first screen is drawn: status 130 within
    seconds (asyncio's own handler used to cancel Textual's task, which Textual took as a normal exit: 0)."""
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # the child: the app on the pty
        os.chdir(ROOT)
        os.environ.update(TERM="xterm-256color", COLUMNS="100", LINES="30")
        os.execv(sys.executable, [sys.executable, "-m", "minigptoss", "step", "--weights", "tiny",
                                  "--tokens", "1,2,3"])
    screen, status, deadline = b"", None, time.monotonic() + 45
    try:
        while time.monotonic() < deadline and b"keys" not in screen and b"step 1/" not in screen:
            if select.select([fd], [], [], 0.1)[0]:
                screen += os.read(fd, 65536)
        assert b"keys" in screen or b"step 1/" in screen, screen[-300:]
        os.kill(pid, signal.SIGINT)
        sent = time.monotonic()
        while status is None and time.monotonic() - sent < 15:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
            done, code = os.waitpid(pid, os.WNOHANG)
            status = os.waitstatus_to_exitcode(code) if done else None
        assert status == 130, f"status {status} after {time.monotonic() - sent:.1f} s"
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
