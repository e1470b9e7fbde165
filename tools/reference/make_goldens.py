#!/usr/bin/env python
"""Write tests/golden/: what OpenAI's official gpt-oss reference computes on random minigptoss checkpoints.

    bash tools/reference/setup.sh                                  # once: venv with torch + gpt-oss + minigptoss
    tools/reference/.venv/bin/python tools/reference/make_goldens.py            # every case + the MXFP4 table
    tools/reference/.venv/bin/python tools/reference/make_goldens.py --list     # what the cases are
    tools/reference/.venv/bin/python tools/reference/make_goldens.py --only odd_shapes mxfp4

For each case: build the Config, `minigptoss.random_model(config, seed)`, `minigptoss.save()` it to a temporary
folder (config.json + model.safetensors, the original layout), load that folder with the reference's
`Transformer.from_checkpoint(dir, device="cpu").float()`, run it on a deterministic prompt, and store
tests/golden/parity_<case>.npz (see GOLDEN FORMAT below). tests/test_parity.py rebuilds the same model with
random_model(config, seed) (deterministic) and compares, without torch.

Also writes tests/golden/mxfp4_reference.npz: MXFP4 blocks with every scale byte 0..254 and the float32 bits
the reference's `Checkpoint._get_mxfp4_tensor` decodes them to (plus, for information only, scale 255).

GOLDEN FORMAT (.npz, deflated, no pickled objects: strings are 0-d np.str_ arrays)
    format            int, 1
    case, description str
    config_json       str: the 16 keys of config.json
    seed              int: random_model's seed
    tokens            (T,) int64: the prompt
    checkpoint_sha256 str: sha256 of the model.safetensors that save() wrote (tells a changed random_model
                      from a changed forward pass when a test fails)
    versions_json     str: python, torch, numpy, gpt-oss, safetensors, minigptoss, hashes of the reference source
    pieces            (P,) str: "embed", "blocks.0.resid_mid", "blocks.0.resid_post", ..., "logits", in order
    <piece>@rows      (r,) int64: stored rows (positions)
    <piece>@cols      (c,) int64: stored columns
    <piece>@values    (r, c) float32: reference values at those rows and columns
    <piece>@absmax    () float32: max |reference| over the WHOLE tensor (the tolerance's scale)
    <piece>@row_absmax (T,) float32: max |reference| of every row over all columns
    logits@argmax     (T,) int64: argmax of every full row
    logits@top2       (T, 2) int64 and logits@top2_values (T, 2) float32: the two largest logits of every row
    router_margin     (L,) float64: per layer, the smallest gap between the k-th and (k+1)-th router logit
                      (prompts are redrawn until it is >= 2e-4 and every row's top-2 logit gap is >= 1e-5 of
                      max |logits|, both far above float32 noise)
Small tensors are stored whole; big ones as a subset of rows (first ones, both sides of the sliding window's
edge and of initial_context_length, the last ones, a few random) and of columns (random, plus the top-2
columns of the stored logits rows). Everything together stays at a few MB.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN_DIR = REPO / "tests" / "golden"
sys.path.insert(0, str(HERE))
if (REPO / "minigptoss").is_dir():
    sys.path.insert(0, str(REPO))  # use this tree's minigptoss even if another one is installed

import minigptoss  # noqa: E402
from minigptoss.config import GPT_OSS_20B, TINY  # noqa: E402

import refrun  # noqa: E402  (needs torch + gpt-oss)

FORMAT = 1
MAX_WHOLE = 65536  # tensors with at most this many elements are stored whole
MAX_COLS = 256  # random columns kept of a wider tensor
MIN_ROUTER_MARGIN = 2e-4  # smallest allowed top-k gap in router logits (float32 noise is ~1e-6)
MIN_TOP2_GAP = 1e-5  # smallest allowed gap between a row's two largest logits, relative to max |logits|


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    config: minigptoss.Config
    seed: int
    num_tokens: int


def real_dims(**changes) -> minigptoss.Config:
    """gpt-oss-20b's per-layer dimensions (H = I = 2880, 64 q / 8 kv heads of 64, window 128, YaRN s = 32)."""
    return dataclasses.replace(GPT_OSS_20B, **changes)


CASES = [
    Case("tiny", "minigptoss.config.TINY (the model of tiny_weights/), seed 0, 40 tokens: 5x its window of 8",
         TINY, 0, 40),
    Case("real_layer_dims", "gpt-oss-20b layer dims (H = I = 2880, 64/8 heads of 64, window 128), 2 layers, "
         "4 experts top-2, vocab 1024, 8 tokens",
         real_dims(num_hidden_layers=2, num_experts=4, experts_per_token=2, vocab_size=1024), 1, 8),
    Case("real_attention_window", "gpt-oss-20b attention (H 2880, 64/8 heads of 64, window 128), "
         "intermediate 64, 8 experts top-4, 2 layers, vocab 1024, 160 tokens: past the window",
         real_dims(num_hidden_layers=2, num_experts=8, experts_per_token=4, vocab_size=1024,
                   intermediate_size=64), 2, 160),
    # 8400 routing decisions would always hold a near-tie at float32 noise level, so both experts are chosen.
    Case("long_context", "4200 tokens, past initial_context_length 4096 (real RoPE: head_dim 64, YaRN s = 32), "
         "tiny width (H 64, 2 q heads / 1 kv head), 2 layers, window 128, 2 experts both chosen",
         real_dims(num_hidden_layers=2, num_experts=2, experts_per_token=2, vocab_size=64, hidden_size=64,
                   intermediate_size=64, num_attention_heads=2, num_key_value_heads=1), 3, 4200),
    Case("rope_unscaled", "rope_scaling_factor 1 (no YaRN, concentration 1), head_dim 32, 2 layers, 48 tokens",
         dataclasses.replace(TINY, num_hidden_layers=2, rope_scaling_factor=1.0, head_dim=32,
                             num_attention_heads=4, num_key_value_heads=2, vocab_size=128), 4, 48),
    Case("odd_shapes", "GQA ratio 3 (6 q / 2 kv heads), top-3 of 6 experts, 3 layers (layer 2 slides again), "
         "H 96, I 160, vocab 97, window 8, 24 tokens",
         dataclasses.replace(TINY, num_hidden_layers=3, num_experts=6, experts_per_token=3, vocab_size=97,
                             hidden_size=96, intermediate_size=160, num_attention_heads=6,
                             num_key_value_heads=2), 5, 24),
    Case("variants", "other constants: rope_theta 10000, initial_context_length 1024, ntk alpha 2 / beta 16, "
         "YaRN s = 8, swiglu_limit 0.5 (clamps everywhere), plain multi-head (4 q / 4 kv), top-1 of 4, "
         "window 16, 64 tokens",
         dataclasses.replace(TINY, num_hidden_layers=2, num_experts=4, experts_per_token=1, vocab_size=200,
                             intermediate_size=96, head_dim=32, num_attention_heads=4, num_key_value_heads=4,
                             sliding_window=16, initial_context_length=1024, rope_theta=10000.0,
                             rope_scaling_factor=8.0, rope_ntk_alpha=2.0, rope_ntk_beta=16.0,
                             swiglu_limit=0.5), 6, 64),
]


# -- which rows and columns to keep ---------------------------------------------------------------------------

def pick_rows(num_tokens: int, config: minigptoss.Config, rng: np.random.Generator) -> np.ndarray:
    if num_tokens <= 64:
        return np.arange(num_tokens)
    rows = set(range(4)) | set(range(num_tokens - 8, num_tokens))
    W, L0 = config.sliding_window, config.initial_context_length
    for edge in (W, 2 * W, L0):
        if 0 < edge < num_tokens:
            rows |= set(range(edge - 2, min(edge + 2, num_tokens)))
    rows |= set(rng.choice(num_tokens, size=min(8, num_tokens), replace=False).tolist())
    return np.array(sorted(rows), dtype=np.int64)


def pick_cols(width: int, rng: np.random.Generator, extra=()) -> np.ndarray:
    if width <= 2 * MAX_COLS:
        return np.arange(width, dtype=np.int64)
    cols = set(rng.choice(width, size=MAX_COLS, replace=False).tolist()) | {int(c) for c in extra}
    return np.array(sorted(cols), dtype=np.int64)


def store_piece(arrays: dict, name: str, full: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    full = np.asarray(full, dtype=np.float32)
    if full.size <= MAX_WHOLE:
        rows, cols = np.arange(full.shape[0]), np.arange(full.shape[1])
    arrays[f"{name}@rows"] = rows.astype(np.int64)
    arrays[f"{name}@cols"] = cols.astype(np.int64)
    arrays[f"{name}@values"] = np.ascontiguousarray(full[np.ix_(rows, cols)])
    arrays[f"{name}@absmax"] = np.float32(np.abs(full).max())
    arrays[f"{name}@row_absmax"] = np.abs(full).max(axis=1).astype(np.float32)


def write_npz(path: Path, arrays: dict) -> None:
    """np.savez_compressed, but byte-identical for identical arrays (fixed zip timestamps), so regenerating
    unchanged goldens leaves git clean. np.load reads it as usual; nothing is pickled."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    tmp.replace(path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


# -- one case -------------------------------------------------------------------------------------------------

def make_case(case: Case, out_dir: Path) -> dict:
    t0 = time.time()
    config = case.config
    model = minigptoss.random_model(config, case.seed)
    t_model = time.time() - t0
    with tempfile.TemporaryDirectory(prefix=f"golden-{case.name}-") as tmp:
        minigptoss.save(model, tmp)
        checkpoint_sha = sha256(Path(tmp) / "model.safetensors")
        saved_keys = set(json.loads((Path(tmp) / "config.json").read_text()))
        assert saved_keys == {f.name for f in dataclasses.fields(minigptoss.Config)}, saved_keys
        reference = refrun.load_reference(tmp)
        # A prompt whose router choices and argmaxes are nowhere near a tie (a tie makes either choice
        # legitimate, and a different expert is a large difference).
        for attempt in range(20):
            prompt_rng = np.random.default_rng([case.seed, attempt, 7])
            tokens = prompt_rng.integers(0, config.vocab_size, size=case.num_tokens).astype(np.int64)
            t1 = time.time()
            ref = refrun.run_reference(tmp, tokens, model=reference)
            t_ref = time.time() - t1
            margins = refrun.router_margins(ref, config.num_hidden_layers, config.experts_per_token)
            top2 = -np.sort(-ref["logits"], axis=1)[:, :2]
            top2_gap = float((top2[:, 0] - top2[:, 1]).min() / np.abs(ref["logits"]).max())
            if margins.min() >= MIN_ROUTER_MARGIN and top2_gap >= MIN_TOP2_GAP:
                break
            print(f"  {case.name}: prompt {attempt} has a near-tie (router {margins.min():.2e}, "
                  f"argmax {top2_gap:.2e}); drawing another")
        else:
            raise RuntimeError(f"{case.name}: no prompt without a near-tie in 20 draws")
        del reference

    T, L = case.num_tokens, config.num_hidden_layers
    pieces = ["embed"] + [f"blocks.{i}.{p}" for i in range(L) for p in ("resid_mid", "resid_post")] + ["logits"]
    select_rng = np.random.default_rng([case.seed, 99])
    rows = pick_rows(T, config, select_rng)
    logits = ref["logits"]
    order = np.argsort(-logits, axis=1, kind="stable")[:, :2]  # (T, 2)
    arrays = {
        "format": np.int64(FORMAT),
        "case": np.str_(case.name),
        "description": np.str_(case.description),
        "config_json": np.str_(json.dumps(config.to_dict(), sort_keys=True)),
        "seed": np.int64(case.seed),
        "tokens": tokens,
        "checkpoint_sha256": np.str_(checkpoint_sha),
        "versions_json": np.str_(json.dumps(refrun.reference_versions() | {"minigptoss.__version__":
                                                                         minigptoss.__version__},
                                            sort_keys=True)),
        "pieces": np.array(pieces, dtype=np.str_),
        "router_margin": margins,
        "logits@argmax": logits.argmax(axis=1).astype(np.int64),
        "logits@top2": order.astype(np.int64),
        "logits@top2_values": np.take_along_axis(logits, order, axis=1).astype(np.float32),
    }
    for name in pieces:
        full = ref[name]
        extra = order[rows].ravel() if name == "logits" else ()
        store_piece(arrays, name, full, rows, pick_cols(full.shape[1], select_rng, extra))
    path = out_dir / f"parity_{case.name}.npz"
    write_npz(path, arrays)
    gaps = arrays["logits@top2_values"][:, 0] - arrays["logits@top2_values"][:, 1]
    info = dict(case=case.name, tokens=T, random_model_s=round(t_model, 2), reference_s=round(t_ref, 2),
                file_kb=round(path.stat().st_size / 1024, 1), router_margin=float(margins.min()),
                min_top2_gap_rel=float(gaps.min() / np.abs(logits).max()))
    print("  " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return info


# -- MXFP4 decode table ---------------------------------------------------------------------------------------

def make_mxfp4(out_dir: Path) -> None:
    """Every scale 0..254 in several positions, every code in both nibbles, decoded by the reference."""
    rng = np.random.default_rng(2024)
    n_scales, rows, groups = 255, 4, 2
    # scales (rows, 255, groups): each (row, group) column is a permutation of 0..254
    scales = np.stack([np.stack([rng.permutation(n_scales) for _ in range(groups)], axis=-1)
                       for _ in range(rows)]).astype(np.uint8)  # (4, 255, 2)
    blocks = rng.integers(0, 256, size=(*scales.shape, 16), dtype=np.uint8)  # (4, 255, 2, 16)
    # block row 0: all 256 byte values over the 255 scales' first 16 bytes (every low/high code pair)
    blocks[0, :16, 0, :] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    decoded = refrun.decode_mxfp4_reference(blocks, scales, dtype=refrun.torch.float32)  # (4, 255, 64)
    decoded_bf16 = refrun.decode_mxfp4_reference(blocks, scales, dtype=refrun.torch.bfloat16)
    assert np.array_equal(decoded.view(np.uint32), decoded_bf16.view(np.uint32)), "bf16 and f32 decodes differ"
    blocks255 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)  # (1, 16 groups, 16 bytes): every byte
    scales255 = np.full((1, 16), 255, dtype=np.uint8)
    decoded255 = refrun.decode_mxfp4_reference(blocks255, scales255)
    path = out_dir / "mxfp4_reference.npz"
    write_npz(path, dict(
        format=np.int64(FORMAT), blocks=blocks, scales=scales, decoded_bits=decoded.view(np.uint32),
        scale255_blocks=blocks255, scale255_scales=scales255, scale255_decoded_bits=decoded255.view(np.uint32),
        versions_json=np.str_(refrun.versions_json()),
        note=np.str_("decoded_bits: float32 bit patterns from gpt_oss.torch.weights.Checkpoint._get_mxfp4_tensor "
                     "(dtype float32; the bf16 decode is identical). scale255_*: the reference's decode of scale "
                     "byte 255 (value * 2^128: +-0, +-2^127, +-inf), NOT the spec's NaN; informational.")))
    print(f"  mxfp4: {blocks.shape} blocks, scales 0..254 -> {path.name} ({path.stat().st_size / 1024:.1f} kB); "
          f"scale 255 decodes to {np.unique(decoded255[np.isfinite(decoded255)]).tolist()} and "
          f"{int(np.isinf(decoded255).sum())} infs, {int(np.isnan(decoded255).sum())} NaNs")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="CASE", help="cases to (re)write; 'mxfp4' for the table")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR, help=f"output folder (default {GOLDEN_DIR})")
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.name:24s} seed {case.seed}, {case.num_tokens} tokens: {case.description}")
        print(f"{'mxfp4':24s} MXFP4 decode of every scale 0..254")
        return 0
    names = {case.name for case in CASES} | {"mxfp4"}
    wanted = set(args.only or names)
    unknown = wanted - names
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {sorted(names)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"reference: {refrun.versions_json()}")
    start = time.time()
    for case in CASES:
        if case.name in wanted:
            print(f"{case.name}: {case.description}")
            make_case(case, args.out)
    if "mxfp4" in wanted:
        make_mxfp4(args.out)
    total = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    print(f"done in {time.time() - start:.0f} s; {args.out} holds {total / 1e6:.2f} MB of .npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
