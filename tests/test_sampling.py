"""Sampling: greedy, temperature, top-k, top-p, seeds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigptoss
from minigptoss.sampling import next_token_distribution, sample

logits_1d = hnp.arrays(np.float32, st.integers(2, 30), elements=st.integers(-80, 80).map(lambda n: n / 10))
RNG = np.random.default_rng(0)


@given(logits=logits_1d)
def test_temperature_zero_is_argmax_first_on_ties(logits):
    assert sample(logits, RNG, 0.0) == int(np.flatnonzero(logits == logits.max())[0])


@given(logits=logits_1d, k=st.integers(1, 5))
def test_top_k_keeps_k_tokens(logits, k):
    probs = next_token_distribution(logits, 1.0, top_k=k)
    assert np.count_nonzero(probs) == min(k, logits.size)
    kept = np.flatnonzero(probs)
    assert logits[kept].min() >= np.sort(logits)[::-1][min(k, logits.size) - 1]
    assert probs.sum() == pytest.approx(1.0)


@given(logits=logits_1d, p=st.floats(0.05, 1.0))
def test_top_p_keeps_the_smallest_set_reaching_p(logits, p):
    full = next_token_distribution(logits, 1.0)
    kept = next_token_distribution(logits, 1.0, top_p=p)
    mass = full[kept > 0].sum()
    assert mass >= p - 1e-9  # the kept set reaches p ...
    smallest_kept = full[kept > 0].min()
    assert mass - smallest_kept < p + 1e-9  # ... and without its least likely token it would not
    assert np.all(full[kept == 0] <= smallest_kept + 1e-12)  # and it is made of the most likely tokens


@given(logits=logits_1d)
def test_temperature_sharpens_and_flattens(logits):
    cold, hot = next_token_distribution(logits, 0.5), next_token_distribution(logits, 2.0)
    top = int(np.argmax(logits))
    assert cold[top] >= next_token_distribution(logits, 1.0)[top] - 1e-12 >= hot[top] - 2e-12


def test_seed_makes_sampling_reproducible():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    run = lambda seed: list(model.generate([72, 105], 8, temperature=1.0, top_p=0.9, seed=seed, stop_tokens=[]))  # noqa: E731
    assert run(7) == run(7)
    assert any(run(7) != run(s) for s in range(8, 12))


@pytest.mark.parametrize("kwargs, message", [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                                             ({"top_k": 0}, "top_k"), ({"max_new_tokens": -1}, "max_new_tokens")])
def test_bad_settings_are_one_clear_error(kwargs, message):
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    with pytest.raises(ValueError, match=message):
        list(model.generate([1], **kwargs))


@given(logits=logits_1d, temperature=st.sampled_from([5e-324, 2.225e-309, 1e-300, 1e-30]))
def test_a_vanishing_temperature_is_greedy_among_the_top_never_nan(logits, temperature):
    probs = next_token_distribution(logits, temperature)  # logits / t alone overflows to inf - inf = NaN
    assert np.all(np.isfinite(probs)) and probs.sum() == pytest.approx(1.0)
    assert set(np.flatnonzero(probs)) <= set(np.flatnonzero(logits == logits.max()))


@given(logits=logits_1d, seed=st.integers(0, 2**32 - 1), temperature=st.floats(0.1, 3.0),
       top_p=st.floats(0.05, 1.0), top_k=st.one_of(st.none(), st.integers(1, 8)))
def test_draw_is_the_token_rng_choice_gives_and_says_its_uniform_number(logits, seed, temperature, top_p, top_k):
    """draw() inverts the CDF itself so it can show u; the token is NumPy's own choice for the same generator state,
    and the token's interval of the CDF holds u."""
    from minigptoss.sampling import draw

    probs = next_token_distribution(logits, temperature, top_p, top_k)
    token, u = draw(logits, np.random.default_rng(seed), temperature, top_p, top_k)
    assert token == int(np.random.default_rng(seed).choice(probs.size, p=probs))
    assert u == np.random.default_rng(seed).random()
    cdf = np.cumsum(probs) / probs.sum()
    assert probs[token] > 0 and (cdf[token - 1] if token else 0.0) <= u < cdf[token]
    assert draw(logits, np.random.default_rng(seed), 0.0) == (int(np.argmax(logits)), None)
