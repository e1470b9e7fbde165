"""packing.py: several sequences in one pass give each one's own logits; teacher forcing scores answers."""

import numpy as np
import pytest

import minigptoss
from minigptoss.interventions import sinks_off, window_off, zero_head
from minigptoss.packing import batches, k_of_n, packed_forward, teacher_forced


@pytest.fixture(scope="module")
def model():
    return minigptoss.load(minigptoss.TINY_WEIGHTS)


SEQUENCES = [[72, 101, 108, 108, 111], list(range(40, 60)), [7], list(range(100, 113)), [5, 5, 5, 5, 5, 5, 5, 5, 5, 9]]


@pytest.mark.parametrize("max_tokens", [1, 16, 256])
def test_packed_passes_agree_with_one_pass_per_sequence(model, max_tokens):
    """Lengths 1 to 20 (longer than the window of 8, so the sliding layers' masks are exercised), any grouping."""
    packed, records = packed_forward(model, SEQUENCES, "blocks.0.attn.probs", "blocks.1.resid_post",
                                     max_tokens=max_tokens)
    for tokens, logits, record in zip(SEQUENCES, packed, records):
        with minigptoss.capture("blocks.0.attn.probs", "blocks.1.resid_post") as alone:
            expected = model.forward(tokens)
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
        for name in ["blocks.0.attn.probs", "blocks.1.resid_post"]:
            assert record[name].shape == alone[name].shape
            np.testing.assert_allclose(record[name], alone[name], atol=1e-4, rtol=1e-5)


def test_window_off_which_rebuilds_the_mask_from_consecutive_positions_is_refused(model):
    with pytest.raises(minigptoss.PatchError, match="sliding_window = 0"):
        packed_forward(model, SEQUENCES, intervention=window_off())


@pytest.mark.parametrize("make", [lambda: sinks_off([1]), lambda: zero_head(2, 3), lambda: zero_head(0, 1, [3])])
def test_an_intervention_acts_on_each_sequence_as_on_it_alone(model, make):
    """An intervention's positions are each sequence's own (zero_head at position 3 of every sequence)."""
    packed, _ = packed_forward(model, SEQUENCES, intervention=make())
    for tokens, logits in zip(SEQUENCES, packed):
        with make():
            expected = model.forward(tokens)
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_teacher_forcing_is_right_exactly_when_greedy_decoding_writes_the_answer(model):
    prompts = [s[:3] for s in SEQUENCES if len(s) > 4]
    greedy = [list(model.generate(p, max_new_tokens=4)) for p in prompts]
    wrong = [g[:2] + [(g[2] + 1) % model.config.vocab_size] + g[3:] for g in greedy]
    result = teacher_forced(model, list(zip(prompts, greedy)) + list(zip(prompts, wrong)))
    assert result.right.tolist() == [True] * len(prompts) + [False] * len(prompts)
    assert [p.tolist() for p in result.predicted[:len(prompts)]] == greedy
    assert result.score() == f"{len(prompts)} of {2 * len(prompts)} (0.50)"
    assert result.answer_logits(0).shape == (4, model.config.vocab_size)


def test_batches_and_k_of_n():
    assert batches([5, 5, 5, 20, 1], 10) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert batches([], 10) == []
    assert k_of_n([True, True, False]) == "2 of 3 (0.67)"
    assert k_of_n(np.ones(200, bool)) == "200 of 200 (1.00)"
