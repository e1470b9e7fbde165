"""The composed model: causality, windows, inspectors, save/load, tiny_weights, errors."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigptoss
import minigptoss.cli
from minigptoss.config import TINY

ROOT = Path(__file__).resolve().parent.parent
MODEL = minigptoss.random_model(TINY, seed=1)
PROMPT = list(b"The sliding window is 8 tokens long.")


@given(prefix=st.lists(st.integers(0, 319), min_size=1, max_size=12),
       suffix=st.lists(st.integers(0, 319), min_size=1, max_size=6), data=st.data())
def test_causal(prefix, suffix, data):
    other_suffix = data.draw(st.lists(st.integers(0, 319), min_size=len(suffix), max_size=len(suffix)))
    a = MODEL.forward(prefix + suffix)
    b = MODEL.forward(prefix + other_suffix)
    # equal up to float32 rounding (BLAS may sum in another order for another T); a leak would be O(1)
    np.testing.assert_allclose(a[: len(prefix)], b[: len(prefix)], rtol=1e-5, atol=1e-5)


def one_layer_model(sliding_window):
    config = dataclasses.replace(TINY, num_hidden_layers=1, sliding_window=sliding_window)
    return minigptoss.random_model(config, seed=2)


def test_sliding_window_reach_is_exactly_W_keys():
    # One layer (layer 0: sliding, W = 8). MoE is per token, so position t sees tokens t-7 .. t only.
    model, tokens = one_layer_model(8), np.array(PROMPT[:16])
    base = model.forward(tokens)
    for changed in (3, 4):  # position 11 sees 4..11: changing 3 must not matter, changing 4 must
        other = tokens.copy()
        other[changed] = (other[changed] + 1) % 320
        moved = model.forward(other)
        assert np.array_equal(moved[11], base[11]) == (changed == 3)


def test_odd_layers_attend_to_everything_before():
    model = minigptoss.random_model(dataclasses.replace(TINY, num_hidden_layers=2), seed=3)
    with minigptoss.capture("blocks.*.attn.mask") as cache:
        model.forward(PROMPT)
    T = len(PROMPT)
    assert cache["blocks.0.attn.mask"].sum(axis=1).max() == 8  # even layer: window
    np.testing.assert_array_equal(cache["blocks.1.attn.mask"], np.tri(T, dtype=bool))  # odd layer: causal


def test_capture_changes_nothing_and_filters():
    plain = MODEL.forward(PROMPT)
    with minigptoss.capture("blocks.0.*", "logits") as cache:
        captured = MODEL.forward(PROMPT)
    np.testing.assert_array_equal(plain, captured)
    assert all(name.startswith("blocks.0.") or name == "logits" for name in cache)
    assert cache["blocks.0.attn.probs"].shape == (8, len(PROMPT), len(PROMPT))
    np.testing.assert_array_equal(cache["logits"], plain)
    with pytest.raises(ValueError):
        cache["logits"][0, 0] = 1.0  # recorded tensors are read-only


def test_recorded_names_are_consistent():
    with minigptoss.capture() as cache:
        logits = MODEL.forward(PROMPT)
    T = len(PROMPT)
    probs, sink = cache["blocks.2.attn.probs"], cache["blocks.2.attn.sink_mass"]
    np.testing.assert_allclose(probs.sum(-1) + sink, 1.0, rtol=1e-5)
    np.testing.assert_allclose(cache["blocks.1.resid_mid"], cache["blocks.1.resid_pre"] + cache["blocks.1.attn.out"])
    np.testing.assert_allclose(cache["blocks.1.resid_post"], cache["blocks.1.resid_mid"] + cache["blocks.1.moe.out"])
    assert cache["blocks.3.moe.router.expert_ids"].shape == (T, 2)
    assert cache["blocks.3.moe.mlp1"].shape == (T, 2, 128) and cache["blocks.3.moe.swiglu"].shape == (T, 2, 64)
    assert logits.dtype == np.float32 and logits.shape == (T, 320)


def test_forward_takes_lists_and_arrays():
    np.testing.assert_array_equal(MODEL.forward(PROMPT), MODEL.forward(np.array(PROMPT, dtype=np.int32)))


@pytest.mark.parametrize("tokens, message", [([], "non-empty"), ([1, 320], "outside the vocabulary"),
                                             ([-1], "outside"), ([[1, 2]], "1-D"), ([1.5], "integer")])
def test_bad_tokens_are_one_clear_error(tokens, message):
    with pytest.raises(ValueError, match=message):
        MODEL.forward(tokens)


def test_save_then_load_is_exact(tmp_path):
    minigptoss.save(MODEL, tmp_path)
    loaded = minigptoss.load(tmp_path)
    assert loaded.config == MODEL.config
    np.testing.assert_array_equal(loaded.forward(PROMPT), MODEL.forward(PROMPT))


def test_tiny_weights_regenerate_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_tiny_weights.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / name).read_bytes() == (ROOT / "tiny_weights" / name).read_bytes(), name


def test_tiny_weights_format_and_size():
    from minigptoss.checkpoint import read_safetensors_header

    header, _ = read_safetensors_header(ROOT / "tiny_weights" / "model.safetensors")
    dtypes = {name: entry["dtype"] for name, entry in header.items()}
    assert {d for n, d in dtypes.items() if n.endswith((".blocks", ".scales"))} == {"U8"}
    assert {d for n, d in dtypes.items() if not n.endswith((".blocks", ".scales"))} == {"BF16"}
    assert (ROOT / "tiny_weights" / "model.safetensors").stat().st_size < 2_000_000
    config = json.loads((ROOT / "tiny_weights" / "config.json").read_text())
    assert config["num_hidden_layers"] >= 2 and config["num_experts"] >= 4 and config["experts_per_token"] == 2
    assert config["num_attention_heads"] // config["num_key_value_heads"] >= 2
    assert config["rope_scaling_factor"] == 32 and config["head_dim"] >= 16
    assert config["sliding_window"] < len(minigptoss.cli.DEFAULT_PROMPT.encode())


def test_random_model_is_deterministic():
    again = minigptoss.random_model(TINY, seed=1)
    assert all(np.array_equal(again.weights[name], MODEL.weights[name]) for name in MODEL.weights)
