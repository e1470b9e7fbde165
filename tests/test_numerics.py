"""numerics.py: each number format against its definition, each intervention against what it claims to patch.

The bf16 emulation against the real torch bf16 run lives in tests/test_numerics_live.py (needs torch).
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigptoss
from minigptoss import numerics
from minigptoss.config import GPT_OSS_20B, TINY, yarn_ramp_bounds
from minigptoss.mxfp4 import decode_mxfp4, encode_mxfp4
from minigptoss.rope import inverse_frequencies

finite32 = st.floats(-2.0**100, 2.0**100, allow_nan=False, width=32)
rows = hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.sampled_from([32, 64, 96])), elements=finite32)


# -- bf16 and fp16 -----------------------------------------------------------------------------------------

@given(hnp.arrays(np.float32, 64, elements=st.floats(-2.0**127, 2.0**127, allow_nan=False, width=32)))
def test_round_bf16_is_the_nearest_bf16_ties_to_even(x):
    rounded = numerics.round_bf16(x)
    bits = rounded.view(np.uint32)
    assert not (bits & 0xFFFF).any()  # a bf16: the low 16 bits are 0
    finite = np.isfinite(rounded)
    down = (x.view(np.uint32) & 0xFFFF0000).view(np.float32)  # truncation towards 0: one neighbour
    up = ((x.view(np.uint32) & 0xFFFF0000) + 0x10000).view(np.float32)  # the other (same sign, one ulp away)
    error = np.abs(rounded.astype(np.float64) - x)
    nearest = np.minimum(np.abs(x - down.astype(np.float64)), np.abs(up.astype(np.float64) - x))
    assert (error[finite] <= nearest[finite]).all()
    tie = np.abs(x - down.astype(np.float64)) == np.abs(up.astype(np.float64) - x)
    assert not (bits[tie & finite] & 0x10000).any()  # a tie goes to the even mantissa


def test_round_bf16_edges():
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, np.nan, np.inf, -0.0, 3.4e38], dtype=np.float32)
    out = numerics.round_bf16(x)
    assert out[0] == 1.0 and out[1] == 1 + 2**-6  # ties: to 1.0 (even), to 1 + 4 * 2^-8 (even)
    assert np.isnan(out[2]) and out[3] == np.inf and np.signbit(out[4]) and out[5] == np.inf


def test_round_fp16_is_ieee_half():
    x = np.array([1 + 2**-11, 1 + 3 * 2**-11, 65504, 65520, 1e-8], dtype=np.float32)
    assert numerics.round_fp16(x).tolist() == [1.0, 1 + 2**-9, 65504.0, np.inf, 0.0]


# -- Q8_0 --------------------------------------------------------------------------------------------------

@given(rows)
def test_q8_0_block_scale_and_codes_follow_the_definition(x):
    blocks = x.reshape(x.shape[0], -1, 32).astype(np.float64)
    amax = np.abs(blocks).max(axis=-1)
    assume(((amax == 0) | (amax > 1e-30)).all())  # 127 / amax finite in float32 (see q8_0_blocks)
    q, d = numerics.q8_0_blocks(x)
    assert d.dtype == np.float16 and q.dtype == np.int8
    np.testing.assert_array_equal(d, numerics.round_fp16((amax / 127).astype(np.float32)))  # d = fp16(amax / 127)
    assert (np.abs(q.astype(np.int32)) <= 127).all()
    scaled = blocks * (np.float32(127) / np.where(amax > 0, amax, 1).astype(np.float32) * (amax > 0))[..., None]
    assert (np.abs(q - scaled) <= 0.5 + 1e-4).all()  # the nearest integer (float32 rounding of x * 127/amax)
    largest = np.abs(blocks).argmax(axis=-1)
    at_max = np.take_along_axis(np.abs(q.astype(np.int32)), largest[..., None], -1)[..., 0]
    assert (at_max[amax > 0] == 127).all()  # the largest magnitude uses the whole int8 range


def test_q8_0_rounds_half_to_even_as_the_x86_backend_and_half_away_as_the_scalar_reference():
    x = np.zeros(32, dtype=np.float32)
    x[0], x[1], x[2] = 127.0, 2.5, -3.5  # amax 127: x * 127 / amax = x exactly; d = 1
    even, _ = numerics.q8_0_blocks(x)
    away, _ = numerics.q8_0_blocks(x, reference=True)
    assert even[0, :3].tolist() == [127, 2, -4] and away[0, :3].tolist() == [127, 3, -4]


def test_q8_0_is_discontinuous_where_a_block_maximum_changes():
    """A tiny change of the block's largest value moves every other value of the block (a new d)."""
    x = np.linspace(-1, 1, 32).astype(np.float32)
    y = x.copy()
    y[-1] += np.float32(0.004)  # amax 1 -> 1.004
    assert np.count_nonzero(numerics.q8_0(x)[:-1] != numerics.q8_0(y)[:-1]) > 5


def test_q8_0_error_is_at_most_half_a_step():
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    step = np.abs(x.reshape(4, 2, 32)).max(-1, keepdims=True) / 127
    assert (np.abs(numerics.q8_0(x).reshape(4, 2, 32) - x.reshape(4, 2, 32)) <= 0.5 * step * 1.01).all()


# -- YaRN ramp bounds --------------------------------------------------------------------------------------

def test_rounded_yarn_bounds_at_the_20b_config_are_8_and_18():
    low, high = yarn_ramp_bounds(GPT_OSS_20B)
    assert numerics.floor_ceil_bounds(low, high) == (8.0, 18.0)


@given(st.floats(-5, 40), st.floats(0, 40))
def test_floor_ceil_bounds_contain_the_unrounded_ramp(low, width):
    high = low + width
    a, b = numerics.floor_ceil_bounds(low, high)
    assert a == max(0, math.floor(low)) and b == math.ceil(high) and a <= max(low, 0) and b >= high
    assert a == int(a) and b == int(b)


def test_rounded_yarn_ramp_changes_only_the_dims_inside_the_ramp():
    """Under the patch, inv_freq is the rope formula with the floored/ceiled bounds: dims at or below
    floor(low) and at or above ceil(high) keep their frequency, the ramp dims move."""
    model = minigptoss.random_model(TINY, seed=0)
    with minigptoss.capture("rope.*") as plain:
        model.forward([1, 2, 3])
    with numerics.rounded_yarn_ramp(), minigptoss.capture("rope.*") as rounded:
        model.forward([1, 2, 3])
    low, high = numerics.floor_ceil_bounds(*yarn_ramp_bounds(TINY))
    assert rounded["rope.yarn_bounds"].tolist() == [low, high]
    np.testing.assert_array_equal(rounded["rope.inv_freq"], inverse_frequencies(TINY, (low, high)))
    changed = np.flatnonzero(rounded["rope.inv_freq"] != plain["rope.inv_freq"])
    assert changed.size and changed.min() > low - 1 and changed.max() < high


# -- the interventions ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sort_model():
    return minigptoss.load("sort")


TOKENS = list(b"26023397=")


def test_the_float32_path_is_unchanged_and_the_interventions_close_cleanly(sort_model):
    before = sort_model.forward(TOKENS)
    with numerics.llama_cpp():
        changed = sort_model.forward(TOKENS)
    assert not np.array_equal(before, changed)
    np.testing.assert_array_equal(sort_model.forward(TOKENS), before)


@pytest.mark.parametrize("make, names, rounding", [
    (numerics.q8_0_expert_inputs, ["moe.expert_in", "moe.swiglu"], numerics.q8_0),
    (numerics.bf16_matmul_inputs, ["attn.normed", "attn.z"], numerics.round_bf16),
    (numerics.fp16_kv_cache, ["attn.q_rot", "attn.k_rot", "attn.v", "attn.probs"], numerics.round_fp16),
])
def test_each_deviation_rounds_exactly_its_tensors(sort_model, make, names, rounding):
    """What the pass goes on with (the capture sees the patched value) is the rounding of what that layer
    computed from its (already rounded) inputs; the router still reads float32 moe.normed."""
    with make(), minigptoss.capture() as cache:
        sort_model.forward(TOKENS)
    for name in names:
        value = cache[f"blocks.1.{name}"]
        np.testing.assert_array_equal(value, rounding(value))  # rounding is idempotent: the value is rounded
    assert not np.array_equal(cache["blocks.1.moe.normed"], numerics.q8_0(cache["blocks.1.moe.normed"]))


def test_q8_0_expert_inputs_leave_the_router_in_float32(sort_model):
    with numerics.q8_0_expert_inputs(), minigptoss.capture("blocks.0.moe.*") as cache:
        sort_model.forward(TOKENS)
    np.testing.assert_array_equal(cache["blocks.0.moe.expert_in"], numerics.q8_0(cache["blocks.0.moe.normed"]))
    w = sort_model.weights
    np.testing.assert_allclose(cache["blocks.0.moe.router.logits"], cache["blocks.0.moe.normed"]
                               @ w["block.0.mlp.gate.weight"].T + w["block.0.mlp.gate.bias"], rtol=1e-5, atol=1e-6)


def test_bf16_activations_round_every_reference_bf16_tensor(sort_model):
    with numerics.bf16_activations(), minigptoss.capture() as cache:
        logits = sort_model.forward(TOKENS)
    patterns = [p.replace("*", "2") for p in numerics.BF16_REFERENCE]
    for name in patterns:
        finite = cache[name][np.isfinite(cache[name])]
        np.testing.assert_array_equal(finite, numerics.round_bf16(finite), err_msg=name)
    assert np.array_equal(logits, numerics.round_bf16(logits))


def test_llama_cpp_is_its_four_deviations_together(sort_model):
    parts = (numerics.q8_0_expert_inputs() + numerics.bf16_matmul_inputs() + numerics.rounded_yarn_ramp()
             + numerics.fp16_kv_cache())
    with parts:
        together = sort_model.forward(TOKENS)
    with numerics.llama_cpp():
        named = sort_model.forward(TOKENS)
    np.testing.assert_array_equal(named, together)
    with numerics.llama_cpp(kv="f32"):
        without_cache = sort_model.forward(TOKENS)
    assert not np.array_equal(without_cache, named)
    with pytest.raises(ValueError, match="kv must be"):
        numerics.llama_cpp(kv="q8_0")


def test_numerics_work_under_generate_with_the_kv_cache(sort_model):
    """Rounded keys/values are what the cache keeps: the cached run equals the uncached one to float32 rounding
    (argmax identical), and with fp16 the cache itself holds fp16 values."""
    cache = sort_model.new_cache()
    with numerics.llama_cpp():
        answer = list(sort_model.generate(TOKENS, max_new_tokens=8, cache=cache))
    assert all(np.array_equal(k, numerics.round_fp16(k)) for k in cache.keys)
    tokens = TOKENS + answer[:-1]
    with numerics.llama_cpp():
        whole = sort_model.forward(tokens)
    assert whole[len(TOKENS) - 1:].argmax(-1).tolist() == answer


# -- MXFP4 re-quantization ---------------------------------------------------------------------------------

@given(hnp.arrays(np.float32, (2, 64), elements=st.floats(-2.0**14, 2.0**14, allow_nan=False, width=32)))
def test_ocp_encoder_scale_is_floor_log2_amax_minus_2_and_values_saturate(w):
    blocks, scales = numerics.mxfp4_encoder("ocp")(w)
    amax = np.abs(w.reshape(2, 2, 32)).max(-1).astype(np.float64)
    nonzero = amax > 0
    expected = np.floor(np.log2(amax[nonzero])) - 2 + 127
    assert (scales[nonzero] == np.clip(expected, 0, 254)).all()
    decoded = decode_mxfp4(blocks, scales).reshape(2, 2, 32)
    scale = 2.0 ** (scales.astype(np.float64) - 127)
    assert (np.abs(decoded) <= 6 * scale[..., None]).all()  # saturated at 6 x scale
    between = np.abs(w.reshape(2, 2, 32)) / scale[..., None]
    error = np.abs(decoded - w.reshape(2, 2, 32)) / scale[..., None]
    assert (error[between <= 6] <= 1.0 + 1e-6).all()  # nearest: at most half of the widest gap (2)


def test_ocp_ties_go_to_the_even_code_and_ours_to_the_smaller_magnitude():
    w = np.zeros(32, dtype=np.float32)
    w[:4] = [4.0, 0.75, 1.75, 3.5]  # amax 4: OCP scale 2^0; ours 2^0 too (4 <= 6)
    ocp = decode_mxfp4(*numerics.mxfp4_encoder("ocp")(w))
    ours = decode_mxfp4(*numerics.mxfp4_encoder("minigptoss")(w))
    assert ocp[:4].tolist() == [4.0, 1.0, 2.0, 4.0] and ours[:4].tolist() == [4.0, 0.5, 1.5, 3.0]


def test_both_encoders_are_lossless_on_weights_already_in_mxfp4():
    model = minigptoss.load("sort")
    prefix = "block.0.mlp.mlp1_weight"
    w = decode_mxfp4(model.weights[f"{prefix}.blocks"][0], model.weights[f"{prefix}.scales"][0])
    for rule in ("ocp", "minigptoss"):
        np.testing.assert_array_equal(decode_mxfp4(*numerics.mxfp4_encoder(rule)(w)), w)
    assert numerics.mxfp4_encoder("minigptoss") is encode_mxfp4
    with pytest.raises(ValueError, match="rule must be"):
        numerics.mxfp4_encoder("nvfp4")


# -- the commands ----------------------------------------------------------------------------------------------

def test_run_numerics_prints_the_distance_per_layer_and_both_candidates(capsys, sort_model):
    from minigptoss.cli import main
    assert main(["run", "--numerics", "llama.cpp", "--top", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # whatever the console's width wrapped
    with numerics.llama_cpp():
        other = sort_model.forward(TOKENS)
    distance = numerics.logit_distance(sort_model.forward(TOKENS), other)
    assert "--numerics llama.cpp: llama.cpp (kv f16)" in out and "residual stream after each layer: 0:" in out
    assert f"max |delta| {distance['max']:.4g}" in out and f"same at {distance['same_argmax']}/9" in out
    assert "next token: top candidates of each run" in out
    assert main(["run", "--numerics", "f32"]) == 0
    assert "nothing else to compare" in " ".join(capsys.readouterr().out.split())


def test_generate_numerics_shows_where_two_answers_part(capsys, monkeypatch):
    """On the sort model both answers are the same; with a patched-in difference the report names the first
    differing token."""
    from minigptoss.cli import main
    assert main(["generate", "--numerics", "bf16", "-n", "12"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # whatever the console's width wrapped
    assert "--numerics bf16: the same 9 tokens as float32: '02233679<|return|>'" in out
    from minigptoss.cli import numerics as cli_numerics
    def nines(logits, name):  # from the third answer token on, '9' is the most likely
        changed = logits.copy()
        changed[-1, ord("9")] += 100 * (len(TOKENS) + 2 <= positions[-1] + 1)
        return changed
    positions = []
    boost = minigptoss.interventions.Intervention("nines", [
        minigptoss.inspector.Patch("positions", lambda p, name: positions.extend(p) or p),
        minigptoss.inspector.Patch("logits", nines)])
    monkeypatch.setitem(numerics.NUMERICS, "bf16", lambda: boost)
    assert main(["generate", "--numerics", "bf16", "-n", "12"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "the answers agree on the first 2 of 9 / 9 tokens ('02'), then float32: '233679<|return|>'" in out
    assert "bf16: '9999999'" in out
    assert cli_numerics.numerics is numerics


def test_the_debugger_offers_the_numerics_like_the_other_interventions():
    from minigptoss import interventions as iv
    for name in ("llama.cpp", "llama.cpp f32 kv", "bf16", "q8_0 expert inputs", "bf16 matmul inputs",
                 "rounded yarn ramp", "fp16 kv cache"):
        assert isinstance(iv.preset(name), iv.Intervention)
    assert iv.preset("llama.cpp").label == numerics.llama_cpp().label
