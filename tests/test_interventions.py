"""minigptoss.patch and the interventions built on it: off changes no bit, a patched value flows on and reaches
the capture, it works under generate with the KV cache, and each helper changes what it should and only that."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigptoss
from minigptoss import interventions as iv
from minigptoss.attention import attend
from minigptoss.config import TINY
from minigptoss.names import INTERMEDIATES, OBSERVED, TRANSFORMER_LENS, recorded_names

MODEL = minigptoss.random_model(TINY, seed=1)
PROMPT = list(b"Sinks, windows and experts.")  # 27 tokens: longer than the window of 8
T, L, NQ, E = len(PROMPT), TINY.num_hidden_layers, TINY.num_attention_heads, TINY.num_experts
layers = st.lists(st.integers(0, L - 1), min_size=1, max_size=L, unique=True)


@pytest.fixture(scope="module", autouse=True)
def unpatched():
    """The unpatched run, computed when this module's tests start (not at import: other tests may change how
    many threads BLAS uses, and with it the last bits)."""
    global BASE, BASE_CACHE
    with minigptoss.capture() as BASE_CACHE:
        BASE = MODEL.forward(PROMPT)


def with_weights(**changes):
    """MODEL's weights with some tensors replaced (a second model, for "same bits as" comparisons)."""
    weights = dict(MODEL.weights)
    weights.update(changes)
    return minigptoss.Model(MODEL.config, weights)


def greedy_without_cache(model, tokens, n):
    """Greedy decoding by re-running the whole sequence each step (no KV cache)."""
    tokens = list(tokens)
    for _ in range(n):
        tokens.append(int(np.argmax(model.forward(tokens)[-1])))
    return tokens[-n:]


# -- the patch API -------------------------------------------------------------------------------------------

def test_off_changes_no_bit_and_an_identity_patch_neither():
    assert np.array_equal(MODEL.forward(PROMPT), BASE)
    seen = []
    with minigptoss.patch("*", lambda value, name: seen.append(name) or value):
        same = MODEL.forward(PROMPT)
    assert same.tobytes() == BASE.tobytes()
    assert seen == [n for n in recorded_names(L) if not n.endswith(("sink_mass", "inv_freq"))]


def test_record_with_nothing_open_returns_the_same_object():
    from minigptoss.inspector import record
    value = np.ones(3)
    assert record("blocks.0.attn.probs", value) is value


def perturbed(value: np.ndarray, name: str) -> np.ndarray:
    """A different value of the same shape and dtype."""
    if value.dtype == bool:
        return ~value
    if name.endswith("expert_ids"):
        return (value + 1) % E
    if name == "tokens":
        return (value + 1) % TINY.vocab_size
    if name == "positions":
        return value * 2
    return (value * 1.5 + 0.25).astype(value.dtype)


@pytest.mark.parametrize("name", [e.name.replace("N", "2") for e in INTERMEDIATES if e.name not in OBSERVED])
def test_every_patchable_name_flows_on_to_the_logits(name):
    with minigptoss.patch(name, perturbed), minigptoss.capture(name) as cache:
        logits = MODEL.forward(PROMPT)
    assert not np.array_equal(logits, BASE), f"patching {name} changed nothing: its record's value is not used"
    assert np.array_equal(cache[name], perturbed(BASE_CACHE[name], name))  # the capture sees the patched value


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_display_only_names_are_refused_by_name(name):
    with pytest.raises(minigptoss.PatchError, match="display only"):
        minigptoss.patch(name.replace("N", "0"), perturbed).__enter__()


def test_unknown_names_and_wrong_replacements_are_one_clear_error():
    for wrong in ("blocks.0.attn.pattern", "blocks.*.attn.pattern", "block.0.*"):
        with pytest.raises(minigptoss.PatchError, match="matches no recorded intermediate"):
            minigptoss.patch(wrong, perturbed).__enter__()
    with minigptoss.patch("blocks.1.attn.probs", lambda p, name: p[:, :, :-1]):
        with pytest.raises(minigptoss.PatchError, match=r"'blocks.1.attn.probs' returned shape \(8, 27, 26\) "
                                                        r"dtype float32.*shape \(8, 27, 27\) dtype float32"):
            MODEL.forward(PROMPT)
    with minigptoss.patch("blocks.1.attn.probs", lambda p, name: p.astype(np.float64)):
        with pytest.raises(minigptoss.PatchError, match="dtype float64"):
            MODEL.forward(PROMPT)


def test_patch_functions_get_read_only_views():
    def in_place(value, name):
        value[...] = 0
        return value
    with minigptoss.patch("blocks.0.attn.z", in_place), pytest.raises(ValueError, match="read-only"):
        MODEL.forward(PROMPT)


def test_patched_probs_change_z_and_a_patched_mask_changes_the_scores():
    uniform = lambda p, name: np.where(p > 0, np.float32(1 / 64), np.float32(0))  # noqa: E731
    with minigptoss.patch("blocks.1.attn.probs", uniform), minigptoss.capture("blocks.1.attn.*") as cache:
        MODEL.forward(PROMPT)
    z, probs, v = cache["blocks.1.attn.z"], cache["blocks.1.attn.probs"], cache["blocks.1.attn.v"]
    np.testing.assert_array_equal(z, attend(probs, v))
    only_self = lambda m, name: np.eye(*m.shape, dtype=bool)  # noqa: E731
    with minigptoss.patch("blocks.0.attn.mask", only_self), minigptoss.capture("blocks.0.attn.scores") as cache:
        MODEL.forward(PROMPT)
    scores = cache["blocks.0.attn.scores"]
    assert np.isfinite(scores[:, np.arange(T), np.arange(T)]).all() and np.isfinite(scores).sum() == NQ * T


def test_patches_compose_in_the_order_they_were_opened():
    with minigptoss.patch("blocks.0.attn.out", lambda x, n: x * 2), \
            minigptoss.patch("blocks.0.attn.out", lambda x, n: x + 1), minigptoss.capture("blocks.0.attn.out") as cache:
        MODEL.forward(PROMPT)
    np.testing.assert_array_equal(cache["blocks.0.attn.out"], BASE_CACHE["blocks.0.attn.out"] * 2 + 1)


def test_a_patch_works_under_generate_with_the_kv_cache():
    intervention = iv.zero_head(1, 3) + iv.force_experts([5], layers=[2])
    with intervention:
        cached = list(MODEL.generate(PROMPT[:10], max_new_tokens=6))
        assert cached == greedy_without_cache(MODEL, PROMPT[:10], 6)
    assert cached != list(MODEL.generate(PROMPT[:10], max_new_tokens=6))


# -- the helpers -----------------------------------------------------------------------------------------------

@settings(max_examples=10)
@given(layers=layers, heads=st.lists(st.integers(0, NQ - 1), min_size=1, max_size=NQ, unique=True))
def test_sinks_off_is_a_sink_weight_of_minus_infinity_and_only_there(layers, heads):
    sinks = {}
    for n in layers:
        s = np.array(MODEL.weights[f"block.{n}.attn.sinks"], dtype=np.float32)
        s[heads] = -np.inf
        sinks[f"block.{n}.attn.sinks"] = s
    expected = with_weights(**sinks).forward(PROMPT)
    cache, logits = iv.run_with(MODEL, PROMPT, iv.sinks_off(layers, heads), "blocks.*.attn.*")
    assert logits.tobytes() == expected.tobytes()
    first = min(layers)
    others = [h for h in range(NQ) if h not in heads]
    probs, mass = cache[f"blocks.{first}.attn.probs"], cache[f"blocks.{first}.attn.sink_mass"]
    np.testing.assert_array_equal(probs[others], BASE_CACHE[f"blocks.{first}.attn.probs"][others])
    assert (mass[heads] == 0).all()
    np.testing.assert_allclose(probs[heads].sum(-1), 1, rtol=1e-5)
    for n in range(first):
        np.testing.assert_array_equal(cache[f"blocks.{n}.attn.probs"], BASE_CACHE[f"blocks.{n}.attn.probs"])


def test_window_off_is_sliding_window_zero_and_works_under_generate():
    full = minigptoss.Model(dataclasses.replace(TINY, sliding_window=0), MODEL.weights)
    off = iv.window_off()
    cache, logits = iv.run_with(MODEL, PROMPT, off, "blocks.*.attn.mask")
    assert logits.tobytes() == full.forward(PROMPT).tobytes()
    np.testing.assert_array_equal(cache["blocks.0.attn.mask"], np.tri(T, dtype=bool))
    with off:
        assert list(MODEL.generate(PROMPT[:10], 4, cache=off.new_cache(MODEL))) == \
            list(full.generate(PROMPT[:10], 4))
        with pytest.raises(minigptoss.PatchError, match="KV cache holds only keys"):
            list(MODEL.generate(PROMPT[:10], 4))  # the default cache dropped the keys beyond the window


def test_window_off_on_one_layer_changes_only_that_layer():
    cache, _ = iv.run_with(MODEL, PROMPT, iv.window_off([2]), "blocks.*.attn.mask")
    for n in range(L):
        expected = np.tri(T, dtype=bool) if n == 2 else BASE_CACHE[f"blocks.{n}.attn.mask"]
        np.testing.assert_array_equal(cache[f"blocks.{n}.attn.mask"], expected)


@settings(max_examples=10)
@given(layers=layers, expert=st.integers(0, E - 1),
       positions=st.lists(st.integers(0, T - 1), min_size=1, max_size=5, unique=True))
def test_force_and_forbid_experts_change_the_routing_there_only(layers, expert, positions):
    for intervention, wanted in ((iv.force_experts([expert], layers, positions), True),
                                 (iv.forbid_experts([expert], layers, positions), False)):
        cache, _ = iv.run_with(MODEL, PROMPT, intervention, "blocks.*.moe.router.*")
        first = min(layers)
        ids, weights = cache[f"blocks.{first}.moe.router.expert_ids"], cache[f"blocks.{first}.moe.router.weights"]
        assert ((ids[positions] == expert).any(axis=1) == wanted).all()
        rest = [t for t in range(T) if t not in positions]
        np.testing.assert_array_equal(ids[rest], BASE_CACHE[f"blocks.{first}.moe.router.expert_ids"][rest])
        np.testing.assert_array_equal(weights[rest], BASE_CACHE[f"blocks.{first}.moe.router.weights"][rest])
        np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-6)
        np.testing.assert_array_equal(cache[f"blocks.{first}.moe.router.logits"],
                                      BASE_CACHE[f"blocks.{first}.moe.router.logits"])  # what the router said


def test_impossible_routing_is_refused():
    with pytest.raises(minigptoss.PatchError, match="both forced and forbidden"):
        iv.reroute(force=[1], forbid=[1])
    with pytest.raises(minigptoss.PatchError, match="cannot force 3"):
        iv.run_with(MODEL, PROMPT, iv.force_experts([0, 1, 2]))


def test_top1_routing_is_one_expert_per_token():
    one = minigptoss.Model(dataclasses.replace(TINY, experts_per_token=1), MODEL.weights)
    _, logits = iv.run_with(MODEL, PROMPT, iv.top1_routing(), "logits")
    # equal up to float32 rounding: each expert's matrix product runs on another batch of tokens (BLAS may sum
    # in another order); a wrong routing would differ by O(1)
    np.testing.assert_allclose(logits, one.forward(PROMPT), rtol=1e-5, atol=1e-5)


@settings(max_examples=10)
@given(layer=st.integers(0, L - 1), head=st.integers(0, NQ - 1))
def test_zero_head_zeroes_that_head_of_z_only(layer, head):
    cache, _ = iv.run_with(MODEL, PROMPT, iv.zero_head(layer, head), f"blocks.{layer}.attn.*")
    z, base_z = cache.head(f"blocks.{layer}.attn.z", head), BASE_CACHE.head(f"blocks.{layer}.attn.z", head)
    assert (z == 0).all() and (base_z != 0).any()
    for other in set(range(NQ)) - {head}:
        np.testing.assert_array_equal(cache.head(f"blocks.{layer}.attn.z", other),
                                      BASE_CACHE.head(f"blocks.{layer}.attn.z", other))
    w = MODEL.weights
    np.testing.assert_allclose(cache[f"blocks.{layer}.attn.out"], cache[f"blocks.{layer}.attn.z"]
                               @ w[f"block.{layer}.attn.out.weight"].T + w[f"block.{layer}.attn.out.bias"], rtol=1e-5)


def test_patch_from_swaps_activations_between_prompts():
    other = list(b"Another prompt, same size")[:T] + [0] * (T - 25)
    with minigptoss.capture() as source:
        other_logits = MODEL.forward(other)
    _, logits = iv.run_with(MODEL, PROMPT, iv.patch_from(source, f"blocks.{L - 1}.resid_post"))
    assert logits.tobytes() == other_logits.tobytes()  # the whole last residual swapped: the other prompt's logits
    cache, logits = iv.run_with(MODEL, PROMPT, iv.patch_from(source, "blocks.1.resid_post", positions=[5]))
    np.testing.assert_array_equal(cache["blocks.1.resid_post"][5], source["blocks.1.resid_post"][5])
    # causal: earlier positions cannot see the patch (equal to float32 rounding: a changed routing at position 5
    # changes the experts' batches, and BLAS may sum in another order; a leak would be O(1))
    np.testing.assert_allclose(logits[:5], BASE[:5], rtol=1e-5, atol=1e-5)
    assert np.abs(logits[5:] - BASE[5:]).max() > 1e-2
    with pytest.raises(minigptoss.PatchError, match="no name matching"):
        iv.patch_from(source, "blocks.9.*")


def test_presets_make_interventions_and_refuse_bad_parameters():
    for preset in iv.PRESETS.values():
        intervention = iv.preset(preset.name, **{param: 1 for param in preset.params})
        _, logits = iv.run_with(MODEL, PROMPT[:12], intervention, "logits")
        assert logits.shape == (12, TINY.vocab_size)
    with pytest.raises(minigptoss.PatchError, match="takes layer, head"):
        iv.preset("zero head", layer=1)
    with pytest.raises(minigptoss.PatchError, match="no intervention preset"):
        iv.preset("sinks on")


# -- the capture, TransformerLens style --------------------------------------------------------------------------

def test_capture_repr_stack_head_and_transformer_lens_names():
    text = repr(BASE_CACHE)
    assert text.startswith(f"Capture({len(recorded_names(L))} names)")
    assert "blocks.2.attn.probs" in text and f"({NQ}, {T}, {T})" in text
    stacked = BASE_CACHE.stack("blocks.*.resid_post")
    assert stacked.shape == (L, T, TINY.hidden_size)
    np.testing.assert_array_equal(stacked[3], BASE_CACHE["blocks.3.resid_post"])
    assert BASE_CACHE.head("blocks.1.attn.probs", 2).shape == (T, T)
    np.testing.assert_array_equal(BASE_CACHE.head("blocks.1.attn.q", 2), BASE_CACHE["blocks.1.attn.q"][:, 2])
    assert BASE_CACHE["blocks.1.attn.hook_pattern"] is BASE_CACHE["blocks.1.attn.probs"]
    assert BASE_CACHE.stack("blocks.*.hook_resid_pre").shape == (L, T, TINY.hidden_size)
    for tl, ours in TRANSFORMER_LENS.items():
        assert BASE_CACHE[tl.replace("N", "0")] is BASE_CACHE[ours.replace("N", "0")]
    with minigptoss.capture("blocks.0.attn.hook_z") as cache:
        MODEL.forward(PROMPT)
    assert list(cache) == ["blocks.0.attn.z"]


def test_logit_lens():
    np.testing.assert_array_equal(BASE_CACHE.logit_lens(MODEL, f"blocks.{L - 1}.resid_post"), BASE)
    lens = BASE_CACHE.logit_lens(MODEL, "blocks.*.resid_post")
    assert lens.shape == (L, T, TINY.vocab_size)
    np.testing.assert_array_equal(lens[1], minigptoss.logit_lens(MODEL, BASE_CACHE["blocks.1.resid_post"]))
    assert BASE_CACHE.logit_lens(MODEL, "blocks.1.hook_resid_post").shape == (T, TINY.vocab_size)


def test_per_step_capture_under_generate():
    with minigptoss.capture("blocks.0.attn.probs", "logits", per_step=True) as cache:
        tokens = list(MODEL.generate(PROMPT[:10], max_new_tokens=3))
    steps = cache.steps
    assert len(steps) == 3  # the prefill, then one pass per new token fed back (the last is never fed)
    assert steps[0]["blocks.0.attn.probs"].shape == (NQ, 10, 10)
    assert steps[1]["blocks.0.attn.probs"].shape == (NQ, 1, 8 + 1)  # the sliding layer's cache keeps 8 keys
    assert [int(np.argmax(step["logits"][-1])) for step in steps] == tokens
    np.testing.assert_array_equal(cache["logits"], steps[-1]["logits"])
    with pytest.raises(ValueError, match="per_step=True"):
        BASE_CACHE.steps
