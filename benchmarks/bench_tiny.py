"""Decode and prefill speed of the bundled tiny model (the Python cost per token, issue 25 lever 6).

    python benchmarks/bench_tiny.py [--weights tiny] [--rounds 5] [--tokens 200] [--prompt 64] [--turns 12]

Prints, the best and the median of --rounds rounds (each round after one warm-up): decode tokens/s (greedy
`generate` of --tokens tokens after a 20-token prompt, the prefill not counted), prefill tokens/s (a --prompt
token prompt in one pass into a fresh KV cache), and a chat-like session: --turns turns, each feeding a
24-token user turn into the same KV cache and generating 40 tokens, with the decode tokens/s of the first
and the last turn (a long chat should not slow down much as its cache grows). The machine is shared: best of
rounds is the figure to compare, the median shows the noise.
"""

import argparse
import statistics
import time

import numpy as np

import minigptoss


def decode_rate(model, prompt, tokens: int) -> float:
    """Tokens/s of generate's decode steps (the prefill timed apart and left out)."""
    stamps = []
    for _ in model.generate(prompt, max_new_tokens=tokens):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def prefill_rate(model, prompt) -> float:
    start = time.perf_counter()
    model.forward(prompt, model.new_cache(), only_last=True)
    return len(prompt) / (time.perf_counter() - start)


def chat_rates(model, turns: int, rng) -> tuple[float, float]:
    """Decode tokens/s of the first and the last of `turns` turns sharing one KV cache."""
    cache, rates = model.new_cache(), []
    for _ in range(turns):
        user = rng.integers(0, model.config.vocab_size, 24)
        rates.append(decode_rate(model, user, 40) if cache.length == 0 else _continue(model, user, cache))
    return rates[0], rates[-1]


def _continue(model, user, cache) -> float:
    stamps = []
    for _ in model.generate(user, max_new_tokens=40, cache=cache):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="tiny", help="a bundled model (tiny, sort, chat) or a folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--turns", type=int, default=12)
    args = parser.parse_args(argv)
    path = minigptoss.bundled(args.weights) if args.weights in ("tiny", "sort", "chat") else args.weights
    model = minigptoss.load(path)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, model.config.vocab_size, 20).tolist()
    long_prompt = rng.integers(0, model.config.vocab_size, args.prompt).tolist()
    decode_rate(model, prompt, 10), prefill_rate(model, long_prompt)  # warm-up
    decode, prefill, first, last = [], [], [], []
    for _ in range(args.rounds):
        decode.append(decode_rate(model, prompt, args.tokens))
        prefill.append(prefill_rate(model, long_prompt))
        a, b = chat_rates(model, args.turns, rng)
        first.append(a), last.append(b)
    print(f"{path}: {args.rounds} rounds, best / median")
    for label, rates in ((f"decode ({args.tokens} tokens)", decode), (f"prefill ({args.prompt}-token prompt)", prefill),
                         ("chat, turn 1 decode", first), (f"chat, turn {args.turns} decode", last)):
        print(f"  {label:<28} {max(rates):8.0f} / {statistics.median(rates):8.0f} tokens/s")


if __name__ == "__main__":
    main()
