"""Parity with OpenAI's official gpt-oss reference implementation (no torch needed here).

tests/golden/parity_<case>.npz holds what the reference (`gpt_oss/torch/model.py`, run in float32) computed on
the checkpoint `minigptoss.save(minigptoss.random_model(config, seed))`, for a prompt stored in the file.
Each test rebuilds that model (random_model is deterministic), runs minigptoss's forward pass with the
residual stream captured, and requires, for every piece (embedding, each block's attention and MoE residual,
the logits):

    max |minigptoss - reference| <= 1e-4 * max |reference|      (over the stored rows and columns, and over
                                                                   every row's max |.|)
and the same argmax as the reference on every row (a row whose top-2 reference logits are closer than the
tolerance may take the runner-up). On failure, the message is a per-piece report in forward order naming the
first piece that differs.

tests/golden/mxfp4_reference.npz: MXFP4 blocks with every scale byte 0..254, and the float32 bits the
reference's `Checkpoint._get_mxfp4_tensor` decodes them to; minigptoss must agree bit for bit.

Regenerate the goldens (needs torch + gpt-oss, see tools/reference/setup.sh):
    bash tools/reference/setup.sh && tools/reference/.venv/bin/python tools/reference/make_goldens.py
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import minigptoss
from minigptoss.mxfp4 import decode_mxfp4

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REL_TOL = 1e-4
REGENERATE = "bash tools/reference/setup.sh && tools/reference/.venv/bin/python tools/reference/make_goldens.py"
EXPECTED_CASES = ["tiny", "real_layer_dims", "real_attention_window", "long_context", "rope_unscaled",
                  "odd_shapes", "variants"]
CASE_FILES = sorted(GOLDEN_DIR.glob("parity_*.npz"))


# -- helpers (also used by test_parity_live.py) --------------------------------------------------------------

def load_golden(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def golden_config(golden) -> minigptoss.Config:
    return minigptoss.Config.from_dict(json.loads(str(golden["config_json"])), source="golden config_json")


def residual_pieces(num_layers: int) -> list[str]:
    """The compared pieces in forward order."""
    blocks = [f"blocks.{i}.{part}" for i in range(num_layers) for part in ("resid_mid", "resid_post")]
    return ["embed", *blocks, "logits"]


def piece_label(name: str) -> str:
    if name == "embed":
        return "embedding"
    if name == "logits":
        return "logits (final norm + unembedding)"
    _, layer, part = name.split(".")
    return f"block {layer} " + ("attention (resid_mid)" if part == "resid_mid" else "MoE (resid_post)")


def run_minigptoss(model, tokens) -> dict[str, np.ndarray]:
    """logits and the residual stream after the embedding and after every attention and MoE."""
    with minigptoss.capture("embed", "blocks.*.resid_mid", "blocks.*.resid_post") as cache:
        logits = model.forward(np.asarray(tokens))
    out = {name: np.asarray(cache[name]) for name in cache}
    out["logits"] = np.asarray(logits)
    return out


def run_minigptoss_cached(model, tokens, chunk_sizes) -> dict[str, np.ndarray]:
    """Like run_minigptoss, but the prompt goes through a KV cache in chunks (the reference has no cache)."""
    cache, parts, start = model.new_cache(), defaultdict(list), 0
    sizes = iter(chunk_sizes)
    while start < len(tokens):
        stop = min(len(tokens), start + next(sizes, chunk_sizes[-1]))
        with minigptoss.capture("embed", "blocks.*.resid_mid", "blocks.*.resid_post") as captured:
            logits = model.forward(np.asarray(tokens[start:stop]), cache)
        for name in captured:
            parts[name].append(np.asarray(captured[name]))
        parts["logits"].append(np.asarray(logits))
        start = stop
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


@functools.lru_cache(maxsize=None)
def golden_model(path: Path):
    """random_model(config, seed) of a golden file, built once per test session; and how long that took."""
    golden = load_golden(path)
    t0 = time.perf_counter()
    model = minigptoss.random_model(golden_config(golden), int(golden["seed"]))
    return model, time.perf_counter() - t0


def reference_as_golden(reference: dict[str, np.ndarray], pieces: list[str]) -> dict[str, np.ndarray]:
    """Full reference tensors (a live run) in the golden format, every row and column kept."""
    golden: dict[str, np.ndarray] = {"pieces": np.array(pieces, dtype=np.str_)}
    for name in pieces:
        full = np.asarray(reference[name], dtype=np.float32)
        golden[f"{name}@rows"], golden[f"{name}@cols"] = np.arange(full.shape[0]), np.arange(full.shape[1])
        golden[f"{name}@values"] = full
        golden[f"{name}@absmax"] = np.float32(np.abs(full).max())
        golden[f"{name}@row_absmax"] = np.abs(full).max(axis=1)
    logits = golden["logits@values"]
    order = np.argsort(-logits, axis=1, kind="stable")[:, :2]
    golden["logits@argmax"] = logits.argmax(axis=1)
    golden["logits@top2"] = order
    golden["logits@top2_values"] = np.take_along_axis(logits, order, axis=1)
    return golden


@dataclass
class PieceResult:
    name: str
    ok: bool
    max_diff: float  # over the stored entries and the per-row max |.|
    scale: float  # max |reference| over the whole tensor
    note: str = ""

    @property
    def rel(self) -> float:
        return self.max_diff / self.scale if self.scale else self.max_diff


def compare_piece(golden, name: str, got: np.ndarray | None, rel_tol: float = REL_TOL) -> PieceResult:
    rows, cols = golden[f"{name}@rows"], golden[f"{name}@cols"]
    ref, scale = golden[f"{name}@values"], float(golden[f"{name}@absmax"])
    row_absmax = golden[f"{name}@row_absmax"]
    if got is None:
        return PieceResult(name, False, float("inf"), scale, "not produced by minigptoss")
    got = np.asarray(got)
    expected_shape = (len(row_absmax), None)
    if got.ndim != 2 or got.shape[0] != expected_shape[0] or got.shape[1] <= int(cols.max()):
        return PieceResult(name, False, float("inf"), scale, f"shape {got.shape}, reference has {len(row_absmax)} "
                                                             f"rows and at least {int(cols.max()) + 1} columns")
    with np.errstate(invalid="ignore"):
        diff = np.abs(got[np.ix_(rows, cols)].astype(np.float64) - ref)
        row_diff = np.abs(np.abs(got).max(axis=1).astype(np.float64) - row_absmax)
    diff = np.where(np.isnan(diff), np.inf, diff)
    row_diff = np.where(np.isnan(row_diff), np.inf, row_diff)
    max_diff = max(float(diff.max()), float(row_diff.max()))
    note = ""
    if max_diff > rel_tol * scale:
        if float(diff.max()) >= float(row_diff.max()):
            r, c = np.unravel_index(int(np.argmax(diff)), diff.shape)
            note = (f"worst at token {int(rows[r])}, column {int(cols[c])}: "
                    f"minigptoss {got[rows[r], cols[c]]:.6g} vs reference {ref[r, c]:.6g}")
        else:
            r = int(np.argmax(row_diff))
            note = f"worst row max |.| at token {r}: minigptoss {np.abs(got[r]).max():.6g} vs reference " \
                   f"{row_absmax[r]:.6g}"
    return PieceResult(name, max_diff <= rel_tol * scale, max_diff, scale, note)


def compare_argmax(golden, logits: np.ndarray, rel_tol: float = REL_TOL) -> tuple[bool, str]:
    """Same argmax on every row; a row whose top-2 reference logits are within tolerance may take the runner-up."""
    ref_argmax, top2, top2_values = golden["logits@argmax"], golden["logits@top2"], golden["logits@top2_values"]
    got = np.asarray(logits).argmax(axis=1)
    differ = np.flatnonzero(got != ref_argmax)
    near_tie = (top2_values[:, 0] - top2_values[:, 1]) <= rel_tol * float(golden["logits@absmax"])
    bad = [int(i) for i in differ if not (near_tie[i] and got[i] == top2[i, 1])]
    tolerated = len(differ) - len(bad)
    if bad:
        i = bad[0]
        return False, (f"argmax differs on {len(bad)} of {len(got)} rows, first at token {i}: minigptoss "
                       f"{int(got[i])}, reference {int(ref_argmax[i])}")
    return True, f"argmax identical on all {len(got)} rows" + (
        f" ({tolerated} near-tie rows took the reference's runner-up)" if tolerated else "")


def parity_report(title: str, golden, outputs: dict[str, np.ndarray], rel_tol: float = REL_TOL):
    """(ok, report): every piece in forward order with OK/DIFF and its max difference, then the argmax."""
    pieces = [str(p) for p in golden["pieces"]]
    results = [compare_piece(golden, name, outputs.get(name), rel_tol) for name in pieces]
    argmax_ok, argmax_note = compare_argmax(golden, outputs["logits"], rel_tol) if "logits" in outputs else \
        (False, "no logits")
    lines = [f"{title}: tolerance {rel_tol:g} x max |reference| of each piece"]
    for r in results:
        lines.append(f"  {'OK  ' if r.ok else 'DIFF'} {piece_label(r.name):40s} max diff {r.max_diff:.3e} "
                     f"(rel {r.rel:.2e}, max |ref| {r.scale:.4g})" + (f"  {r.note}" if r.note else ""))
    lines.append(f"  {'OK  ' if argmax_ok else 'DIFF'} {'argmax':40s} {argmax_note}")
    first = next((r for r in results if not r.ok), None)
    if first is not None:
        lines.append(f"  first differing piece: {piece_label(first.name)} ({first.name})")
    elif not argmax_ok:
        lines.append("  first differing piece: argmax of the logits")
    ok = first is None and argmax_ok
    return ok, "\n".join(lines), results


def checkpoint_sha256(model, folder: Path) -> str:
    minigptoss.save(model, folder)
    h = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


# -- the tests ------------------------------------------------------------------------------------------------

def test_every_golden_case_is_present():
    have = sorted(p.stem.removeprefix("parity_") for p in CASE_FILES)
    missing = [c for c in EXPECTED_CASES if c not in have]
    assert not missing, f"golden files missing for {missing} in {GOLDEN_DIR}; regenerate with: {REGENERATE}"
    assert (GOLDEN_DIR / "mxfp4_reference.npz").is_file()


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem.removeprefix("parity_") for p in CASE_FILES])
def test_parity_with_reference(path, tmp_path):
    golden = load_golden(path)
    seed, tokens = int(golden["seed"]), golden["tokens"]
    model, build_time = golden_model(path)
    t1 = time.perf_counter()
    outputs = run_minigptoss(model, tokens)
    t2 = time.perf_counter()
    title = (f"parity case {golden['case']} ({golden['description']}); seed {seed}, {len(tokens)} tokens; "
             f"random_model {build_time:.2f} s, forward {t2 - t1:.2f} s")
    ok, report, _ = parity_report(title, golden, outputs)
    print(report)
    if not ok:
        sha = checkpoint_sha256(model, tmp_path)
        if sha != str(golden["checkpoint_sha256"]):
            report += ("\n  NOTE: random_model(config, seed) no longer writes the checkpoint these goldens were made "
                       "from (model.safetensors sha256 differs). If that change is intended, regenerate the "
                       f"goldens: {REGENERATE}")
        else:
            report += "\n  (random_model still writes the very checkpoint the reference ran on: the forward differs)"
        pytest.fail(report, pytrace=False)


CHUNKS = [1, 2, 5, 11, 13, 100, 28]  # boundaries 1, 3, 8, 19, 32, 132: the last crosses a 128-key window
CACHED_CASE_FILES = [p for p in CASE_FILES if p.stem != "parity_long_context"]  # 4200 tokens: same cost again


@pytest.mark.parametrize("path", CACHED_CASE_FILES, ids=[p.stem.removeprefix("parity_") for p in CACHED_CASE_FILES])
def test_parity_with_reference_through_kv_cache(path):
    """The prompt in chunks through a KV cache (last chunk repeated) gives the reference's numbers too."""
    golden = load_golden(path)
    model, _ = golden_model(path)
    outputs = run_minigptoss_cached(model, golden["tokens"], CHUNKS)
    ok, report, _ = parity_report(f"parity case {golden['case']} through the KV cache, chunks {CHUNKS}",
                                  golden, outputs)
    print(report)
    if not ok:
        pytest.fail(report, pytrace=False)


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem.removeprefix("parity_") for p in CASE_FILES])
def test_cached_generation_equals_uncached_greedy(path):
    """On every golden config: generate() through the KV cache picks the same tokens as re-running the whole
    sequence each step (the prompt is the golden one, cut to 12 tokens to keep the uncached loop cheap)."""
    model, _ = golden_model(path)
    prompt = [int(t) for t in load_golden(path)["tokens"][:12]]
    generated = list(model.generate(prompt, max_new_tokens=4, stop_tokens=[]))
    tokens = list(prompt)
    for _ in range(4):
        tokens.append(int(np.argmax(model.forward(tokens)[-1])))
    assert generated == tokens[len(prompt):]


def test_tiny_weights_file_is_the_tiny_golden_model():
    """tiny_weights/ is the very checkpoint the tiny golden was computed from, and load() reproduces it."""
    golden = load_golden(GOLDEN_DIR / "parity_tiny.npz")
    h = hashlib.sha256((minigptoss.TINY_WEIGHTS / "model.safetensors").read_bytes()).hexdigest()
    assert h == str(golden["checkpoint_sha256"]), "tiny_weights/model.safetensors is not random_model(TINY, 0)"
    ok, report, _ = parity_report("tiny_weights/ loaded from disk", golden,
                                  run_minigptoss(minigptoss.load(minigptoss.TINY_WEIGHTS), golden["tokens"]))
    assert ok, report


def test_tiny_golden_uses_the_tiny_preset():
    golden = load_golden(GOLDEN_DIR / "parity_tiny.npz")
    assert golden_config(golden) == minigptoss.TINY, (
        f"minigptoss.TINY changed since the goldens were made; regenerate: {REGENERATE}")
    assert int(golden["seed"]) == 0


def test_mxfp4_decode_matches_reference_bit_for_bit():
    golden = load_golden(GOLDEN_DIR / "mxfp4_reference.npz")
    blocks, scales, want = golden["blocks"], golden["scales"], golden["decoded_bits"]
    assert set(np.unique(scales).tolist()) == set(range(255))
    got = np.asarray(decode_mxfp4(blocks, scales))
    assert got.dtype == np.float32 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    bad = np.argwhere(got.view(np.uint32) != want)
    if len(bad):
        lines = [f"{len(bad)} of {want.size} decoded MXFP4 values differ from the reference's (bitwise):"]
        for idx in bad[:8]:
            *lead, j = idx
            code = (blocks[(*lead, j // 32, (j % 32) // 2)] >> (4 * (j % 2))) & 0xF
            lines.append(f"  index {tuple(int(i) for i in idx)}: scale byte {int(scales[(*lead, j // 32)])}, "
                         f"code {int(code)}: minigptoss {got[tuple(idx)]!r}, reference "
                         f"{want[tuple(idx)].view(np.float32)!r}")
        pytest.fail("\n".join(lines), pytrace=False)
