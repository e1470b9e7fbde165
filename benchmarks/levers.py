"""Each decode lever of issue 25 measured A/B in one process, alternating rounds, on a real-sized checkpoint.

    python benchmarks/levers.py --weights DIR [--layers N] [--rounds 4] [--steps 3] [--only 1,2,3,4,5,all]

DIR: the 20b-shaped synthetic checkpoint (tools/make_synthetic_checkpoint.py --preset 20b) or the download.
--layers N runs only the first N blocks (a quick bench that reads a few GB: the experts and attention of N
layers, the embedding rows and the whole unembedding). Each lever is switched off and on by the benchmark only
(monkeypatching, an environment variable), never in the package: "off" is the code as it was before the lever.

    1  one BLAS thread for the whole pass, qkv/out/unembedding split by rows over the expert pool
       off: BLAS's own threads for those products and between the expert calls          decode s/token
    2  the unembedding (not kept: the 16 GiB budget, MINIGPTOSS_CACHE_GIB=4) widened in 4 MiB chunks into
       reused per-thread buffers; off: 64 MiB chunks, a fresh buffer each call           decode s/token
    3  a generation's prefill computes the last row of logits only; off: all rows       prefill s (--prompt)
    4  madvise(WILLNEED) on the routed experts; measured on a cold step (this process's expert pages dropped
       and the file evicted from the page cache before each step)                          cold decode s
    5  the numba kernels (MINIGPTOSS_NUMBA=1 vs 0; skipped without numba)                  decode s/token
       (with --only 5p: also a prefill of --prompt tokens)                                  prefill s
    5b with numba: the attention projections and unembedding read as bf16 in place (what minigptoss.load plans
       when numba is on) vs kept float32 copies (both with the compiled expert kernels)  decode s/token
    7  the 4 GiB budget's leftover keeps the unembedding's leading rows (75 % of them for gpt-oss-20b);
       off: the whole unembedding widened per use                                       decode s/token
    all  every lever above on vs off (the code before issue 25)                             decode s/token
    budget  the 16 GiB machine's budget (MINIGPTOSS_CACHE_GIB=4) against the 24 GiB one's (6 GiB): two models
       on the same files in one process, alternating ("off" is the 4 GiB one)                decode s/token

Prints, per lever, the median of the rounds' medians on and off, their ratio, and in how many of the rounds
the lever's side was the faster (k of n). Rounds alternate which side goes first. Linux only (madvise, fadvise).
"""

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import time

import numpy as np

import minigptoss
import minigptoss.model
from minigptoss.checkpoint import open_checkpoint
from minigptoss.checkpoint.lazy import chunked_product
from minigptoss.fast import compiled
from minigptoss.fast import dense as fastdense
from minigptoss.fast import pages as fastpages

GIB = 2**30


# -- the levers, off ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def patched(obj, name, value):
    before = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, before)


@contextlib.contextmanager
def lever1_off():
    """The pass without its one-BLAS-thread scope; the dense products as one BLAS call each (BLAS's threads)."""
    def blas_product(x, weight, widen=None, chunk_bytes=64 * 2**20):
        return chunked_product(x, weight, widen, chunk_bytes)
    with patched(minigptoss.model, "forward", minigptoss.model.forward.__wrapped__), \
            patched(fastdense, "matmul_t", blas_product):
        yield


@contextlib.contextmanager
def lever2_off(weights):
    """64 MiB chunks, a fresh widening buffer each call."""
    def fresh(rows, cols):
        return np.empty((rows, cols), dtype=np.float32)
    with patched(weights, "chunk_bytes", 64 * 2**20), patched(fastdense, "_buffer", fresh):
        yield


@contextlib.contextmanager
def lever4_off():
    with patched(fastpages, "ENABLED", False):
        yield


@contextlib.contextmanager
def lever5_off():
    before = os.environ.get("MINIGPTOSS_NUMBA")
    os.environ["MINIGPTOSS_NUMBA"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINIGPTOSS_NUMBA"]
        else:
            os.environ["MINIGPTOSS_NUMBA"] = before


@contextlib.contextmanager
def all_off(weights):
    with lever1_off(), lever2_off(weights), lever4_off(), lever5_off():
        yield


# -- measurements -----------------------------------------------------------------------------------------------

class Bench:
    """A model (maybe cut to its first layers) with a KV cache holding a short prefix, to decode from again and
    again (the cache is rolled back after each measurement, so every step sees the same context length)."""

    def __init__(self, path, layers, cache_bytes, prompt_tokens, seed=0, in_place=False):
        in_place_min = fastdense.PARALLEL_MIN_WEIGHTS if in_place else None  # as minigptoss.load with numba
        config, weights, info = open_checkpoint(path, cache_bytes, in_place_min)
        if layers:
            config = dataclasses.replace(config, num_hidden_layers=min(layers, config.num_hidden_layers))
        self.model = minigptoss.Model(config, weights, checkpoint=info)
        rng = np.random.default_rng(seed)
        self.prompt = rng.integers(0, config.vocab_size, prompt_tokens)
        self.cache = self.model.new_cache(rollback=1024)
        logits = self.model.forward(self.prompt[:16], self.cache, only_last=True)
        self.base, self.token = self.cache.length, int(np.argmax(logits[-1]))

    def decode(self, steps: int) -> float:
        """Median seconds of `steps` one-token steps."""
        times, token = [], self.token
        for _ in range(steps):
            start = time.perf_counter()
            logits = self.model.forward([token], self.cache, only_last=True)
            times.append(time.perf_counter() - start)
            token = int(np.argmax(logits[-1]))
        self.cache.truncate(self.base)
        return statistics.median(times)

    def prefill(self, only_last: bool) -> float:
        start = time.perf_counter()
        self.model.forward(self.prompt, self.model.new_cache(), only_last=only_last)
        return time.perf_counter() - start

    def cold_decode(self, steps: int) -> float:
        """Median seconds of one-token steps, each after dropping the expert pages (this process's and the
        page cache's)."""
        times = []
        for _ in range(steps):
            self.evict_experts()
            times.append(self.decode(1))
        return statistics.median(times)

    def evict_experts(self) -> None:
        fastpages._advised.clear()  # as after a pause longer than fastpages.RECENT_S
        for name, stored in self.model.weights.stored.items():
            if ".mlp.mlp" in name and not name.endswith("_bias") and stored.release is not None:
                stored.release()
        for path in self.model.checkpoint.files:
            with open(path, "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def ab(measure, off, rounds: int, off_measure=None) -> tuple[list[float], list[float]]:
    """Alternating rounds of measure() with the lever on and off (`off`: a context manager factory;
    off_measure: what to measure on the off side, if not measure itself)."""
    on_times, off_times = [], []
    for r in range(rounds):
        for lever_on in ((True, False) if r % 2 == 0 else (False, True)):
            if lever_on:
                on_times.append(measure())
            else:
                with off():
                    off_times.append((off_measure or measure)())
    return on_times, off_times


def report(label: str, what: str, on: list[float], off: list[float]) -> None:
    wins = sum(a < b for a, b in zip(on, off))
    on_m, off_m = statistics.median(on), statistics.median(off)
    print(f"{label:<5} {what:<34} on {on_m:7.3f} s   off {off_m:7.3f} s   off/on {off_m / on_m:5.2f}x   "
          f"on faster in {wins} of {len(on)} rounds", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, metavar="DIR")
    parser.add_argument("--layers", type=int, default=0, help="only the first N blocks (0: all)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="decode steps per round")
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens for lever 3's prefill")
    parser.add_argument("--only", default="1,2,3,4,5,5b,7,all,budget")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    print(f"levers A/B on {args.weights} ({args.layers or 'all'} layers), {args.rounds} alternating rounds; "
          f"experts: {compiled.kernel_name()}; load average {os.getloadavg()[0]:.1f}", flush=True)

    bench = Bench(args.weights, args.layers, None, args.prompt)
    bench.decode(2)  # warm: pages, kept tensors, the numba kernel
    weights = bench.model.weights
    if "1" in only:
        report("1", "decode (one BLAS thread, row split)", *ab(lambda: bench.decode(args.steps), lever1_off,
                                                                args.rounds))
    if "3" in only:
        report("3", f"prefill {args.prompt} tokens (last row)", *ab_prefill(bench, args.rounds))
    if "4" in only:
        report("4", "cold decode step (WILLNEED)", *ab(lambda: bench.cold_decode(1), lever4_off, args.rounds))
    if "5" in only:
        if compiled.installed():
            report("5", "decode (numba kernel)", *ab(lambda: bench.decode(args.steps), lever5_off, args.rounds))
        else:
            print("5     skipped: numba is not installed (pip install \"minigptoss[fast]\")")
    if "5b" in only and compiled.enabled():
        bench = None
        kept, in_place = (Bench(args.weights, args.layers, None, args.prompt, in_place=flag) for flag in (False, True))
        kept.decode(2), in_place.decode(2)
        report("5b", "decode, bf16 in place vs kept f32", *ab(lambda: in_place.decode(args.steps),
                                                             contextlib.nullcontext, args.rounds,
                                                             off_measure=lambda: kept.decode(args.steps)))
        kept = in_place = None
        bench = Bench(args.weights, args.layers, None, args.prompt)
    if "5p" in only and compiled.installed():
        report("5p", f"prefill {args.prompt} tokens (numba)", *ab(lambda: bench.prefill(True), lever5_off,
                                                                   args.rounds))
    if "all" in only:
        report("all", "decode, every lever on vs off", *ab(lambda: bench.decode(args.steps),
                                                           lambda: all_off(weights), args.rounds))
    small = None
    if "2" in only:
        bench = None  # one model's kept copies at a time
        small = Bench(args.weights, args.layers, 4 * GIB, args.prompt)  # the 16 GiB machine's budget
        small.decode(2)
        kept = "kept" if "unembedding.weight" in small.model.weights.keep else "widened per use"
        report("2", f"decode, 4 GiB budget (unembedding {kept})",
               *ab(lambda: small.decode(args.steps), lambda: lever2_off(small.model.weights), args.rounds))
    if "7" in only:
        bench = None
        small = small or Bench(args.weights, args.layers, 4 * GIB, args.prompt)
        small.decode(2)
        rows = small.model.weights.keep_rows.get("unembedding.weight", 0)
        report("7", f"decode, 4 GiB budget ({rows} rows kept)",
               *ab(lambda: small.decode(args.steps), lambda: patched(small.model.weights, "keep_rows", {}),
                   args.rounds))
    if "budget" in only:
        bench = small = None
        bench, small = (Bench(args.weights, args.layers, budget, args.prompt) for budget in (6 * GIB, 4 * GIB))
        bench.decode(2), small.decode(2)
        kept = [f"{b.model.weights.planned_bytes() / GIB:.2f}" for b in (bench, small)]
        report("budget", f"decode, 6 vs 4 GiB kept ({kept[0]} / {kept[1]})",
               *ab(lambda: bench.decode(args.steps), contextlib.nullcontext, args.rounds,
                   off_measure=lambda: small.decode(args.steps)))


def ab_prefill(bench, rounds):
    on, off = [], []
    for r in range(rounds):
        for last in ((True, False) if r % 2 == 0 else (False, True)):
            (on if last else off).append(bench.prefill(last))
    return on, off


if __name__ == "__main__":
    main(sys.argv[1:])
