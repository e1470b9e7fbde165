"""The expert products alone: how many MXFP4 weights per second each kernel multiplies, on a real-sized checkpoint.

    python benchmarks/bench_experts.py --weights DIR [--layers 2] [--rounds 3] [--tokens 1,8]

For each of --layers layers, each expert's mlp1 (5760 x 2880 for gpt-oss-20b) and mlp2 (2880 x 2880) is
multiplied by --tokens random rows through fast/mxfp4.linear, on the file's mapped pages (read once before
timing), the NumPy kernels and, when numba is installed, the compiled ones, alternating in one process
(MINIGPTOSS_NUMBA=0 / unset). Prints the median over rounds of G weights/s for each, and what that implies for
one decode step: experts_per_token x layers x (mlp1 + mlp2) weights at that rate, the time a decode step
cannot go below with that kernel (the rest of the step comes on top). Figures only; asserts nothing.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

import minigptoss
from minigptoss.fast import compiled
from minigptoss.fast import mxfp4 as fastmxfp4


def rate(weights, layers, which, x) -> float:
    """G weights/s of one pass over every expert of `which` in `layers` (each expert once)."""
    count, start = 0, time.perf_counter()
    for layer in layers:
        blocks = weights[f"block.{layer}.mlp.{which}_weight.blocks"]
        scales = weights[f"block.{layer}.mlp.{which}_weight.scales"]
        for e in range(len(blocks)):
            fastmxfp4.linear(x, np.asarray(blocks[e]), np.asarray(scales[e]))
            count += blocks[e].size * 2
    return count / (time.perf_counter() - start) / 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, metavar="DIR")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", default="1,8")
    args = parser.parse_args(argv)
    model = minigptoss.load(args.weights)
    config, weights = model.config, model.weights
    layers = range(min(args.layers, config.num_hidden_layers))
    kernels = {"NumPy": "0"} | ({"compiled": "1"} if compiled.installed() else {})
    print(f"{args.weights}: layers {list(layers)}, {config.num_experts} experts each, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)
    before = os.environ.get("MINIGPTOSS_NUMBA")
    try:
        for tokens in (int(t) for t in args.tokens.split(",")):
            x = rng.standard_normal((tokens, config.hidden_size)).astype(np.float32)
            figures = {(kernel, which): [] for kernel in kernels for which in ("mlp1", "mlp2")}
            for which in ("mlp1", "mlp2"):
                rate(weights, layers, which, x)  # the pages read once, the kernels compiled
            for r in range(args.rounds):
                for kernel, setting in (kernels.items() if r % 2 == 0 else reversed(kernels.items())):
                    os.environ["MINIGPTOSS_NUMBA"] = setting
                    for which in ("mlp1", "mlp2"):
                        figures[kernel, which].append(rate(weights, layers, which, x))
            for kernel in kernels:
                mlp1, mlp2 = (statistics.median(figures[kernel, which]) for which in ("mlp1", "mlp2"))
                per_token = config.experts_per_token * config.num_hidden_layers
                sizes = [weights[f"block.0.mlp.{which}_weight.blocks"][0].size * 2 for which in ("mlp1", "mlp2")]
                floor = per_token * (sizes[0] / mlp1 + sizes[1] / mlp2) / 1e9
                line = f"  {tokens} token(s), {kernel:<8}  mlp1 {mlp1:5.2f}  mlp2 {mlp2:5.2f} G weights/s"
                print(line + (f"   -> a decode step's experts alone: {floor:.3f} s" if tokens == 1 else ""))
    finally:
        if before is None:
            os.environ.pop("MINIGPTOSS_NUMBA", None)
        else:
            os.environ["MINIGPTOSS_NUMBA"] = before


if __name__ == "__main__":
    main(sys.argv[1:])
