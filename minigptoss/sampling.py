"""Choosing the next token from logits, and the generation loop that feeds it back through a KV cache.

    temperature 0           argmax (the first index on ties): greedy, deterministic
    temperature t > 0       p = softmax(logits / t), then optionally
      top_k = K             keep the K most likely tokens
      top_p = P < 1         keep the smallest set of most likely tokens whose probability reaches P
                            renormalise what is kept and draw one token with a seeded generator

`generate` prefills the prompt in one forward pass, then feeds one token at a time with a KV cache; it stops
after one of the caller's stop tokens (yielded, then the loop ends) or after max_new_tokens: n tokens take n
forward passes (the last token drawn is never fed back, so the cache then holds the prompt and all but it).
What it does not do: text (the caller knows its tokenizer and chat format, so it names the stop tokens: see
text/harmony.py's `stop_tokens`) or the model math.
"""

from collections.abc import Iterable, Iterator

import numpy as np

from .arguments import real_number, whole_number, whole_numbers
from .errors import SamplingError


def filter_top_k(probs: np.ndarray, top_k: int | None) -> np.ndarray:
    """Zero all but the top_k largest probabilities (ties broken by lower id):  (V,) -> (V,)."""
    if not top_k or top_k >= probs.size:
        return probs
    keep = np.argsort(-probs, kind="stable")[:top_k]
    kept = np.zeros_like(probs)
    kept[keep] = probs[keep]
    return kept


def filter_top_p(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest most-likely set with total probability >= top_p (the first token always):  (V,) -> (V,)."""
    if top_p >= 1.0:
        return probs
    order = np.argsort(-probs, kind="stable")  # most likely first
    before = np.cumsum(probs[order]) - probs[order]  # probability of the tokens ranked above each one
    keep = order[before < top_p * probs.sum()]
    kept = np.zeros_like(probs)
    kept[keep] = probs[keep]
    return kept


def next_token_distribution(logits: np.ndarray, temperature: float, top_p: float = 1.0,
                            top_k: int | None = None) -> np.ndarray:
    """The probabilities a token is drawn from (temperature > 0):  (V,) logits -> (V,) float64 summing to 1."""
    logits = logits.astype(np.float64)
    with np.errstate(over="ignore"):  # shift first: a tiny temperature gives -inf, never inf - inf (NaN)
        scaled = (logits - logits.max()) / temperature
    probs = np.exp(scaled)
    probs = filter_top_p(filter_top_k(probs / probs.sum(), top_k), top_p)
    return probs / probs.sum()


def draw(logits: np.ndarray, rng: np.random.Generator, temperature: float = 0.0, top_p: float = 1.0,
         top_k: int | None = None) -> tuple[int, float | None]:
    """(token id, u) from (V,) logits: argmax at temperature 0 (u None), else the first token whose cumulative
    probability under next_token_distribution exceeds u, a uniform number in [0, 1) from `rng` (inverse CDF:
    the token `rng.choice(V, p=probs)` would give, and the number it would use)."""
    if temperature == 0.0:
        return int(np.argmax(logits)), None
    cdf = np.cumsum(next_token_distribution(logits, temperature, top_p, top_k))  # (V,)
    u = float(rng.random())
    return int(np.searchsorted(cdf / cdf[-1], u, side="right")), u


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 0.0, top_p: float = 1.0,
           top_k: int | None = None) -> int:
    """One token id from (V,) logits: argmax at temperature 0, else a draw from next_token_distribution."""
    _, temperature, top_p, top_k, _, _ = check_sampling(0, temperature, top_p, top_k, at="sample")
    return draw(logits, rng, temperature, top_p, top_k)[0]


def check_sampling(max_new_tokens: int, temperature: float, top_p: float, top_k: int | None,
                   seed: int | None = None, stop_tokens=None, at: str = "generate") -> tuple:
    """Generation settings in range (NaN is out of every range) -> (max_new_tokens, temperature, top_p, top_k,
    seed, stop tokens as a set), or one SamplingError naming the setting, its value and what it must be."""
    error = SamplingError
    return (whole_number(at, "max_new_tokens", max_new_tokens, low=0, error=error),
            real_number(at, "temperature", temperature, low=0.0, error=error),
            real_number(at, "top_p", top_p, low=0.0, high=1.0, above_low=True, error=error,
                        what="a number in (0, 1]"),
            whole_number(at, "top_k", top_k, low=1, none=True, error=error, what=" for no limit"),
            whole_number(at, "seed", seed, low=0, none=True, error=error, what=" for a fresh one"),
            set(whole_numbers(at, "stop_tokens", stop_tokens, none=True, error=error) or ()))


def generate(model, tokens, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
             top_k: int | None = None, seed: int | None = None,
             stop_tokens: Iterable[int] | None = None, cache=None, on_draw=None) -> Iterator[int]:
    """Yield new token ids as they are produced, with a KV cache (see the module docstring): `cache`, empty or
    holding an earlier text that `tokens` continue, else a new `model.new_cache()`. on_draw(token, u), if
    given, hears each draw before it is yielded (u: the uniform number used, None when greedy; see `draw`)."""
    max_new_tokens, temperature, top_p, top_k, seed, stop = check_sampling(max_new_tokens, temperature, top_p,
                                                                           top_k, seed, stop_tokens)
    rng = np.random.default_rng(seed)
    cache = model.new_cache() if cache is None else cache
    logits = model.forward(tokens, cache, only_last=True)[-1]  # prefill: the whole prompt in one pass
    for count in range(1, max_new_tokens + 1):
        token, u = draw(logits, rng, temperature, top_p, top_k)
        if on_draw is not None:
            on_draw(token, u)
        yield token
        if token in stop or count == max_new_tokens:  # no pass whose logits nobody would read
            return
        logits = model.forward([token], cache, only_last=True)[-1]  # one new position
