"""KV cache: feeding a text in pieces through a cache gives the logits of one full pass, at every position."""

import dataclasses

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minigptoss
from minigptoss.config import TINY

MODEL = minigptoss.load(minigptoss.TINY_WEIGHTS)  # window 8, 4 layers
ODD = minigptoss.random_model(dataclasses.replace(TINY, num_hidden_layers=3, sliding_window=3,
                                                  num_attention_heads=6, num_key_value_heads=2,
                                                  num_experts=5, experts_per_token=3), seed=5)


@given(tokens=st.lists(st.integers(0, 319), min_size=2, max_size=24), data=st.data())
def test_cached_pieces_equal_the_full_pass(tokens, data):
    for model in (MODEL, ODD):
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
