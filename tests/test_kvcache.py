"""KV cache: feeding a text in pieces through a cache gives the logits of one full pass, at every position."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigptoss
from minigptoss.config import TINY

MODEL = minigptoss.load(minigptoss.TINY_WEIGHTS)  # window 8, 4 layers
ODD = minigptoss.random_model(dataclasses.replace(TINY, num_hidden_layers=3, sliding_window=3,
                                                  num_attention_heads=6, num_key_value_heads=2,
                                                  num_experts=5, experts_per_token=3), seed=5)


def every_expert(model):
    """The same weights with every expert chosen (k = E). Two passes that batch the tokens differently round
    differently (~1e-6); where two experts' router logits tie that closely (hypothesis finds such prompts:
    tokens [258, 0, 0, 2] on tiny_weights, a gap of 5e-7 in layer 2), top-k picks a different expert and the
    logits move by far more than rounding. With k = E nothing can flip, so comparing a cached pass with a full
    one tests the cache alone, within float32 rounding."""
    return minigptoss.Model(dataclasses.replace(model.config, experts_per_token=model.config.num_experts),
                            model.weights)


CACHE_MODELS = (every_expert(MODEL), every_expert(ODD))


@given(tokens=st.lists(st.integers(0, 319), min_size=2, max_size=24), data=st.data())
def test_cached_pieces_equal_the_full_pass(tokens, data):
    for model in CACHE_MODELS:
        cuts = sorted(set(data.draw(st.lists(st.integers(1, len(tokens) - 1), max_size=4))))
        cache = model.new_cache()
        pieces = [model.forward(tokens[a:b], cache) for a, b in zip([0, *cuts], [*cuts, len(tokens)])]
        np.testing.assert_allclose(np.concatenate(pieces), model.forward(tokens), rtol=1e-4, atol=1e-4)
        assert cache.length == len(tokens)


def test_token_by_token_past_the_window():
    tokens = list(b"a prompt longer than the window of eight")
    cache = MODEL.new_cache()
    stepwise = np.concatenate([MODEL.forward([t], cache) for t in tokens])
    np.testing.assert_allclose(stepwise, MODEL.forward(tokens), rtol=1e-4, atol=1e-4)
    # sliding layers (even) keep the last W = 8 entries; full layers keep all of them
    assert [len(p) for p in cache.positions] == [8, len(tokens), 8, len(tokens)]
    assert cache.positions[0].tolist() == list(range(len(tokens) - 8, len(tokens)))


def test_cached_generation_equals_uncached_greedy():
    for model in (MODEL, ODD):
        prompt = list(b"Hello, gpt-oss!")
        generated = list(model.generate(prompt, max_new_tokens=12, stop_tokens=[]))
        tokens = list(prompt)
        for _ in range(12):
            tokens.append(int(np.argmax(model.forward(tokens)[-1])))
        assert generated == tokens[len(prompt):]


def test_generation_stops_after_a_stop_token():
    prompt = list(b"Hello")
    free = list(MODEL.generate(prompt, max_new_tokens=10, stop_tokens=[]))
    stopped = list(MODEL.generate(prompt, max_new_tokens=10, stop_tokens=[free[3]]))
    assert stopped == free[: free.index(free[3]) + 1]


# ---------------------------------------------------------------- truncate: going back to an earlier length


def needed_from(length: int, window: int) -> int:
    """The first position a query at `length` attends to in a layer with this window (0 = full)."""
    return 0 if window == 0 else max(0, length - window + 1)


@given(tokens=st.lists(st.integers(0, 319), min_size=3, max_size=30), data=st.data())
def test_truncate_then_continue_equals_the_full_pass_and_refuses_exactly_when_keys_are_gone(tokens, data):
    for model in CACHE_MODELS:
        rollback = data.draw(st.sampled_from([0, 1, 4, 30]))
        first = data.draw(st.integers(1, len(tokens) - 1))
        back = data.draw(st.integers(1, first))  # go back to `back` positions, then feed tokens[back:] again
        cache = model.new_cache(rollback=rollback)
        model.forward(tokens[:first] + [(t + 1) % 320 for t in tokens[first:]], cache)  # a text that parts at `first`
        held = [p.tolist() for p in cache.positions]
        expected = all(needed_from(back, w) >= (p[0] if p else 0) for w, p in zip(cache.windows, held))
        assert cache.can_truncate(back) == expected
        if not expected:
            with pytest.raises(ValueError, match="no longer holds the keys"):
                cache.truncate(back)
            assert [p.tolist() for p in cache.positions] == held and cache.length == len(tokens)  # unchanged
            continue
        cache.truncate(back)
        assert cache.length == back and all(p.max(initial=-1) < back for p in cache.positions)
        # the first `back` tokens are shared by both texts, so continuing must give the full pass's logits
        np.testing.assert_allclose(model.forward(tokens[back:], cache), model.forward(tokens)[back:],
                                   rtol=1e-4, atol=1e-4)


def test_truncate_boundary_on_a_sliding_layer():
    # window 8, no rollback room: after 20 tokens a sliding layer holds positions 12..19. Going back to 19 needs
    # 12..18 (the query at 19 sees 12..19): fine; going back to 18 needs 11, which is gone.
    cache = MODEL.new_cache()
    MODEL.forward(list(range(65, 85)), cache)
    assert cache.positions[0].tolist() == list(range(12, 20))
    assert cache.can_truncate(19) and not cache.can_truncate(18) and not cache.can_truncate(21)
    assert MODEL.new_cache(rollback=2).can_truncate(0)
    wide = MODEL.new_cache(rollback=2)
    MODEL.forward(list(range(65, 85)), wide)
    assert wide.positions[0].tolist() == list(range(10, 20)) and wide.can_truncate(17) and not wide.can_truncate(16)
    with pytest.raises(ValueError, match="out of range"):
        cache.truncate(25)
    with pytest.raises(ValueError, match="rollback must be a whole number >= 0"):
        MODEL.new_cache(rollback=-1)
