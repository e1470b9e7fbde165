"""Write a checkpoint with exactly the real model's tensor names, shapes and dtypes, and random contents.

    python tools/make_synthetic_checkpoint.py --preset 20b|120b|tiny --layout original|hf|hf-dequantized
                                              --out DIR [--seed 0] [--shards N]

For measuring speed and memory without the real download. The contents are deterministic in --seed and the
same in every layout (each original tensor is drawn from its own generator, seeded by the seed and the
tensor's name; the Hugging Face layout slices and renames those very tensors), so the layouts give the same
logits. "Sane" values: bf16 tensors are normal with the spreads of `weights.random_weights`; MXFP4 codes are
uniform (rms 2.93) under scales 2^-6 (mlp1) or 2^-7 (mlp2), +-1, so weights come out at the spreads
random_weights uses. Streaming: one tensor (one expert for the experts, a few million values otherwise) at a
time, never the whole model; a 20b checkpoint takes ~14 GB of disk and a minute or two.

layouts: original        DIR/config.json + DIR/model.safetensors
         hf              DIR/config.json (transformers' keys) + model-0000i-of-0000n.safetensors + index,
                         MXFP4 experts, as the top level of the published download
         hf-dequantized  the same with experts decoded to bf16 and transposed (20b: ~42 GB)
"""

import argparse
import json
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from minigptoss.checkpoint import hf
from minigptoss.checkpoint import hf_shard_names, shard, write_hf_index, write_safetensors_stream
from minigptoss.config import PRESETS, Config
from minigptoss.mxfp4 import FP4_VALUES, decode_mxfp4
from minigptoss.checkpoint.tensors import f32_to_bf16_bits, init_std, tensor_specs

VALUES_PER_CHUNK = 1 << 23  # bf16 values drawn at a time (32 MB of float32)
FP4_RMS = float(np.sqrt(np.mean(FP4_VALUES ** 2)))  # uniform codes: 2.93
SHARD_BYTES = 4.8e9  # transformers' conversion script cuts shards at 4.8 GB


def expert_scale_byte(name: str, config: Config) -> int:
    """The scale exponent byte that gives the experts random_weights' spread: 3/sqrt(H) for mlp1, 1/sqrt(I)."""
    std = 3 * config.hidden_size ** -0.5 if "mlp1" in name else config.intermediate_size ** -0.5
    return 127 + round(math.log2(std / FP4_RMS))


def generator(seed: int, name: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), *more])


def original_chunks(name: str, dtype: str, shape: tuple[int, ...], config: Config, seed: int):
    """The tensor's data in pieces along axis 0: bf16 bits, or uint8 MXFP4 parts one expert at a time."""
    if name.endswith(".blocks"):
        for e in range(shape[0]):
            yield np.frombuffer(generator(seed, name, e).bytes(math.prod(shape[1:])), np.uint8).reshape(shape[1:])
        return
    if name.endswith(".scales"):
        base = expert_scale_byte(name, config)
        for e in range(shape[0]):
            yield (base + generator(seed, name, e).integers(-1, 2, shape[1:])).astype(np.uint8)
        return
    mean, std = init_std(name, config)  # as random_weights draws them
    rng = generator(seed, name)
    row = math.prod(shape[1:])
    step = max(1, VALUES_PER_CHUNK // max(row, 1))
    for start in range(0, shape[0], step):
        rows = min(step, shape[0] - start)
        values = np.float32(mean) + rng.standard_normal((rows, *shape[1:]), dtype=np.float32) * np.float32(std)
        yield f32_to_bf16_bits(values)


def whole(name: str, config: Config, seed: int) -> np.ndarray:
    dtype, shape = tensor_specs(config)[name]
    return np.concatenate(list(original_chunks(name, dtype, shape, config, seed)))


def hf_chunks(hf_name: str, config: Config, seed: int, sources: dict):
    """A Hugging Face tensor's data, made from the original tensor(s) it comes from."""
    original, parts, transposed = sources[hf_name]
    if transposed:  # dequantized experts: decode each expert, store (in, out) as bf16
        blocks, scales = f"{original}.blocks", f"{original}.scales"
        specs = tensor_specs(config)
        for packed, exps in zip(original_chunks(blocks, "U8", specs[blocks][1], config, seed),
                                original_chunks(scales, "U8", specs[scales][1], config, seed)):
            yield f32_to_bf16_bits(decode_mxfp4(packed, exps).T)
        return
    if len(parts) == 1:
        dtype, shape = tensor_specs(config)[original]
        yield from original_chunks(original, dtype, shape, config, seed)
        return
    start = sum(hf.hf_part_rows(config, part) for part in parts[:parts.index(hf_name)])  # q, k or v rows of qkv
    yield whole(original, config, seed)[start:start + hf.hf_part_rows(config, hf_name)]


def write_original(out: Path, config: Config, seed: int, progress) -> None:
    specs = tensor_specs(config)
    write_safetensors_stream(out / "model.safetensors", specs,
                             lambda name: progress(name, original_chunks(name, *specs[name], config, seed)))
    config.to_json(out / "config.json")


def write_hf(out: Path, config: Config, seed: int, dequantized: bool, shards: int | None, progress) -> None:
    specs = {name: (dtypes[0], shape) for name, (dtypes, shape) in hf.hf_tensor_specs(config, dequantized).items()}
    sources = {}
    for original, (parts, transposed) in hf.hf_sources(config, dequantized).items():
        for part in parts:
            sources[part] = (original, parts, transposed)
    total = sum(math.prod(shape) * (1 if dtype == "U8" else 2) for dtype, shape in specs.values())
    runs = shard(specs, shards or max(1, math.ceil(total / SHARD_BYTES)))
    for run, file in zip(runs, hf_shard_names(len(runs))):
        write_safetensors_stream(out / file, {name: specs[name] for name in run},
                                 lambda name: progress(name, hf_chunks(name, config, seed, sources)))
    write_hf_index(out, runs, specs)
    (out / "config.json").write_text(json.dumps(hf.hf_config_dict(config, mxfp4=not dequantized), indent=2) + "\n")


class Progress:
    """Prints a line every GB written: bytes, rate."""

    def __init__(self, total: int):
        self.total, self.done, self.next_report, self.start = total, 0, 1e9, time.perf_counter()

    def __call__(self, name, chunks):
        for chunk in chunks:
            yield chunk
            self.done += chunk.nbytes
            if self.done >= self.next_report or self.done == self.total:
                elapsed = time.perf_counter() - self.start
                print(f"  {self.done / 1e9:6.2f} / {self.total / 1e9:.2f} GB  ({self.done / 1e9 / elapsed:.2f} GB/s)  "
                      f"{name}", file=sys.stderr, flush=True)
                self.next_report += 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--layout", choices=["original", "hf", "hf-dequantized"], default="original")
    parser.add_argument("--out", required=True, help="folder to write (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, help="Hugging Face layout: number of files (default: 4.8 GB each)")
    args = parser.parse_args(argv)
    config, out = PRESETS[args.preset], Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dequantized = args.layout == "hf-dequantized"
    if args.layout == "original":
        sizes = tensor_specs(config).values()
    else:
        sizes = [(dtypes[0], shape) for dtypes, shape in hf.hf_tensor_specs(config, dequantized).values()]
    total = sum(math.prod(shape) * (1 if dtype == "U8" else 2) for dtype, shape in sizes)
    print(f"writing gpt-oss-{args.preset} ({args.layout} layout, seed {args.seed}) to {out}: {total / 1e9:.2f} GB",
          file=sys.stderr)
    progress = Progress(total)
    if args.layout == "original":
        write_original(out, config, args.seed, progress)
    else:
        write_hf(out, config, args.seed, dequantized, args.shards, progress)
    print(f"done in {time.perf_counter() - progress.start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
