"""Time and peak memory of one forward pass over a long prompt on the bundled tiny model.

    python benchmarks/bench_long_prompt.py [--tokens 20000] [--limit-gib 4] [--whole]

Runs in a child process under an address-space limit (RLIMIT_AS, as `ulimit -v`; 0: none) and prints: the
prompt length, the seconds of the pass (wall clock, and CPU time: on a shared machine the wall clock also
counts other people's work; the load average is printed beside it), the peak resident memory (VmHWM) and whether the pass finished within
the limit. --whole instead computes every layer's attention as the readable path does (the whole T x T scores
per chunk of rows, no band), the before-and-after comparison in one run. Linux only (reads /proc/self/status).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np
import minigptoss
from minigptoss import attention

tokens, whole = int(sys.argv[1]), sys.argv[2] == "whole"
if whole:  # every chunk against every key (the pre-band behaviour), through the readable functions
    def readable_chunks(q, k, v, qp, kp, window, sinks, chunk_bytes=None):
        z = np.empty((len(qp), q.shape[1] * q.shape[2]), np.float32)
        mass = np.empty((q.shape[1], len(qp)), np.float32)
        step = max(1, attention.CHUNK_BYTES // (4 * q.shape[1] * len(kp)))  # rows of 256 MiB of scores
        for rows in (slice(start, start + step) for start in range(0, len(qp), step)):
            probs, mass[:, rows] = attention.sink_softmax(
                attention.attention_scores(q[rows], k, attention.attention_mask(qp[rows], kp, window)), sinks)
            z[rows] = attention.attend(probs, v)
        return z, mass
    import minigptoss.model
    minigptoss.model.banded_attention = readable_chunks
model = minigptoss.load("tiny")
ids = np.random.default_rng(0).integers(0, model.config.vocab_size, tokens)
start, cpu = time.perf_counter(), time.process_time()
logits = model.forward(ids)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_kib": peak, "argmax": int(logits[-1].argmax())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--limit-gib", type=float, default=4.0, help="address-space limit (0: none)")
    parser.add_argument("--whole", action="store_true", help="the readable whole-row attention, for comparison")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    def limit():
        if args.limit_gib > 0:
            size = int(args.limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(args.tokens), "whole" if args.whole else "band"],
                              capture_output=True, text=True, timeout=args.timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        print(f"{args.tokens} tokens ({'whole rows' if args.whole else 'banded'}): still running after "
              f"{args.timeout:.0f} s")
        return
    wall = time.perf_counter() - started
    what = "whole rows" if args.whole else "banded"
    limit_text = f"{args.limit_gib:g} GiB address-space limit" if args.limit_gib > 0 else "no limit"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        print(f"{args.tokens} tokens ({what}, {limit_text}): failed with status {done.returncode} after "
              f"{wall:.1f} s: {last}")
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args.tokens} tokens ({what}, {limit_text}): forward {result['seconds']:.2f} s "
          f"({result['cpu']:.2f} s of CPU; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), peak resident "
          f"{result['peak_kib'] / 2**20:.2f} GiB, last argmax {result['argmax']}")


if __name__ == "__main__":
    main()
