"""Every public function checks its arguments: a wrong type or an out-of-range value is one MinigptossError whose
message names the function, the argument and the value (issue 21's sixteen cases, and their siblings)."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigptoss
from minigptoss import interventions as iv
from minigptoss.errors import ArgumentError, MinigptossError, SamplingError, TokenError
from minigptoss.inspector import PatchError
from minigptoss.sampling import sample


@pytest.fixture(scope="module")
def model():
    return minigptoss.load("tiny")


def refused(kind, call, *needles) -> str:
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(needle in message for needle in needles), message
    return message


# (call on the model, the error type, words the message must hold): the table first
CASES = [
    (lambda m: m.generate([1], max_new_tokens=1.5), SamplingError, ("max_new_tokens", "1.5", "whole number")),
    (lambda m: m.generate([1], max_new_tokens="3"), SamplingError, ("max_new_tokens", "'3'")),
    (lambda m: m.generate([1], temperature="1"), SamplingError, ("temperature", "'1'", "number")),
    (lambda m: m.generate([1], temperature=1.0, top_k=1.5), SamplingError, ("top_k", "1.5")),
    (lambda m: m.generate([1], top_k="5"), SamplingError, ("top_k", "'5'")),
    (lambda m: m.generate([1], seed=-1), SamplingError, ("seed", "-1", ">= 0")),
    (lambda m: m.generate([1], seed="x"), SamplingError, ("seed", "'x'")),
    (lambda m: m.generate([1], stop_tokens=5), SamplingError, ("stop_tokens", "5", "list")),
    (lambda m: m.forward([1, 2], cache=5), ArgumentError, ("cache", "5", "KVCache")),
    (lambda m: m.forward([[1], [1, 2]]), TokenError, ("tokens", "[[1], [1, 2]]")),
    (lambda m: minigptoss.load(None), ArgumentError, ("load", "path", "None")),
    (lambda m: minigptoss.capture(123), ArgumentError, ("capture", "patterns", "123")),
    # siblings
    (lambda m: m.generate([1], top_p="x"), SamplingError, ("top_p", "'x'", "(0, 1]")),
    (lambda m: m.generate([1], max_new_tokens=True), SamplingError, ("max_new_tokens", "True")),
    (lambda m: m.generate([1], stop_tokens=[1.5]), SamplingError, ("stop_tokens", "1.5")),
    (lambda m: m.generate([1], cache="c"), ArgumentError, ("generate", "cache", "'c'")),
    (lambda m: m.forward([10**30]), TokenError, ("token id 1000000000000000000000000000000", "vocabulary [0, 320)")),
    (lambda m: m.new_cache("x"), ArgumentError, ("new_cache", "rollback", "'x'")),
    (lambda m: m.logit_lens("x"), ArgumentError, ("logit_lens", "residual", "(..., 64)")),
    (lambda m: m.logit_lens(np.zeros((2, 3))), ArgumentError, ("logit_lens", "shape (2, 3)")),
    (lambda m: minigptoss.logit_lens("m", np.zeros(64)), ArgumentError, ("logit_lens", "model", "'m'")),
    (lambda m: minigptoss.load(5), ArgumentError, ("load", "path", "5")),
    (lambda m: minigptoss.load(""), ArgumentError, ("load", "path", "''")),
    (lambda m: minigptoss.save("x", "/nowhere"), ArgumentError, ("save", "model", "'x'")),
    (lambda m: minigptoss.save(m, None), ArgumentError, ("save", "path", "None")),
    (lambda m: minigptoss.random_model("x"), ArgumentError, ("random_model", "config", "'x'")),
    (lambda m: minigptoss.random_model(minigptoss.TINY, seed=-2), ArgumentError, ("random_model", "seed", "-2")),
    (lambda m: minigptoss.bundled(5), ArgumentError, ("bundled", "name", "5")),
    (lambda m: minigptoss.capture("blocks.*", per_step="yes"), ArgumentError, ("capture", "per_step", "'yes'")),
    (lambda m: minigptoss.patch(5, lambda v, n: v), PatchError, ("patch", "patterns", "5")),
    (lambda m: minigptoss.patch("blocks.0.attn.z", 5), PatchError, ("patch", "fn", "5")),
    (lambda m: iv.sinks_off(5), PatchError, ("sinks_off", "layers", "5")),
    (lambda m: iv.sinks_off(heads=["a"]), PatchError, ("sinks_off", "heads", "'a'")),
    (lambda m: iv.window_off("0"), PatchError, ("window_off", "layers", "'0'")),
    (lambda m: iv.zero_head("a", 0), PatchError, ("zero_head", "layer", "'a'")),
    (lambda m: iv.zero_head(0, -1), PatchError, ("zero_head", "head", "-1")),
    (lambda m: iv.force_experts([1.5]), PatchError, ("reroute", "force", "1.5")),
    (lambda m: iv.top1_routing(3), PatchError, ("top1_routing", "layers", "3")),
    (lambda m: iv.patch_from(5), PatchError, ("patch_from", "source", "5")),
    (lambda m: iv.run_with(m, [1], 5), PatchError, ("run_with", "intervention", "5")),
    (lambda m: iv.preset("zero head", layer="x", head=1), PatchError, ("zero head", "layer", "'x'")),
    (lambda m: iv.preset(5), PatchError, ("preset", "5")),
    (lambda m: sample(np.zeros(4, np.float32), np.random.default_rng(0), temperature="1"), SamplingError,
     ("sample", "temperature", "'1'")),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_a_bad_argument_is_one_sentence_naming_it_at_the_call(model, case):
    call, kind, needles = CASES[case]
    refused(kind, lambda: call(model), *needles)  # at the call: generate and capture check before the first use


def test_good_arguments_of_every_numeric_kind_still_work(model):
    tokens = list(model.generate(np.array([1, 2]), max_new_tokens=np.int64(2), temperature=np.float32(0.5),
                                 top_k=np.int32(3), top_p=1, seed=np.uint8(7), stop_tokens=np.array([5])))
    assert len(tokens) <= 2
    with minigptoss.capture("logits", "blocks.0.attn.*") as cache:
        model.forward((1, 2, 3))
    assert cache["logits"].shape == (3, 320)


@given(st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3),
                 st.integers(-10**30, 10**30), st.lists(st.integers(-3, 3), max_size=2)))
def test_any_value_of_any_generation_setting_is_accepted_or_refused_by_name(model, value):
    for setting in ("max_new_tokens", "temperature", "top_p", "top_k", "seed"):
        try:
            next(model.generate([1], **{setting: value}), None)
        except MinigptossError as error:
            assert setting in str(error) and "\n" not in str(error)


def test_nan_settings_are_out_of_every_range(model):
    for setting in ("temperature", "top_p"):
        refused(SamplingError, lambda: model.generate([1], **{setting: math.nan}), setting, "nan")
