"""Run OpenAI's official gpt-oss reference (PyTorch, `gpt_oss/torch/model.py`) as a float32 oracle.

This module needs torch and gpt-oss; it is used by `make_goldens.py` (to write tests/golden/) and by
tests/test_parity_live.py (skipped where torch is absent). Nothing in the minigptoss package imports it.

How the reference is run, and why:
- `Transformer.from_checkpoint(dir, device="cpu")` builds the model in bfloat16 (RMSNorm gains are float32)
  and copies the checkpoint in; MXFP4 experts are decoded to bf16 by `Checkpoint._get_mxfp4_tensor` (exact:
  an FP4 value times a power of two fits bf16). `.float()` then upcasts every parameter exactly, so the float32
  model holds the very numbers stored on disk, and its forward pass is float32 throughout (RoPE tables are
  float32 in the reference anyway).
- Residuals come from forward hooks: `model.embedding` returns the embedding, `model.block[i].attn` returns
  x + Attention(x) (= minigptoss's `blocks.i.resid_mid`), `model.block[i].mlp` returns x + MoE(x)
  (= `blocks.i.resid_post`). `model.block[i].mlp.gate` returns the router logits, used only to check that no
  top-k choice is a near tie (a tie would make the two implementations pick different experts legitimately).
- Memory: the reference gathers per-token expert weights, (T, k, 2I, H) and (T, k, H, I) float32, and builds
  (nkv, q/kv, T, T) attention scores. With H = I = 2880 and k = 2 that is ~133 MB per token: keep T small.

Quirks of the reference found while writing this (see also the report in make_goldens.py):
- MXFP4 scale byte 255 is not NaN: the reference computes ldexp(value, 255 - 127), so codes 0 give +-0,
  +-0.5 gives +-2^127 and larger magnitudes +-inf. (Scales 253 and 254 overflow to inf for large codes too,
  as plain float32 arithmetic does.)
- RoPE: inv_freq is computed in float32 (torch's float32 pow, which can differ by one ulp from NumPy's),
  angles = float32(position) * inv_freq rounded to float32, then float32 cos/sin. Near position 4200 a float32
  angle carries an error of up to ~2.4e-4 rad, and the reference's logits carry its effect: computing the
  angles in float64 instead moved the logits by 2.2e-5 (relative to max |logits|) on the long_context golden
  model, and by 2.7e-4 on a model with larger q/k (beyond the 1e-4 parity bound). So the reference's float32
  rounding is what must be matched ("float32 at least" is not enough). One-ulp differences in inv_freq
  (NumPy's float32 pow vs torch's) cost ~2e-5 there: harmless.
- The checkpoint loader only knows MXFP4 tensor names for blocks 0..35 (PARAM_NAME_MAP): a checkpoint with
  more than 36 layers cannot be loaded by the reference.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from gpt_oss.torch import model as reference_model
from gpt_oss.torch.model import Transformer
from gpt_oss.torch.weights import Checkpoint
from safetensors.torch import save_file


def load_reference(checkpoint_dir) -> torch.nn.Module:
    """The reference model of a folder in the original layout, upcast to float32, in eval mode."""
    model = Transformer.from_checkpoint(str(checkpoint_dir), device="cpu")
    return model.float().eval()


def run_reference(checkpoint_dir, tokens, model: torch.nn.Module | None = None) -> dict[str, np.ndarray]:
    """Run the float32 reference on `tokens` -> float32 arrays:

    "embed" (T, H), "blocks.i.resid_mid" (T, H), "blocks.i.resid_post" (T, H), "logits" (T, V),
    and "blocks.i.router_logits" (T, E) (for the near-tie check only).
    """
    if model is None:
        model = load_reference(checkpoint_dir)
    out: dict[str, np.ndarray] = {}
    handles = []

    def keep(name):
        def hook(module, inputs, output):
            out[name] = output.detach().to(torch.float32).numpy().copy()
        return hook

    handles.append(model.embedding.register_forward_hook(keep("embed")))
    for i, block in enumerate(model.block):
        handles.append(block.attn.register_forward_hook(keep(f"blocks.{i}.resid_mid")))
        handles.append(block.mlp.register_forward_hook(keep(f"blocks.{i}.resid_post")))
        handles.append(block.mlp.gate.register_forward_hook(keep(f"blocks.{i}.router_logits")))
    try:
        with torch.inference_mode():
            logits = model(torch.as_tensor(np.asarray(tokens), dtype=torch.int64))
    finally:
        for handle in handles:
            handle.remove()
    out["logits"] = logits.detach().to(torch.float32).numpy().copy()
    return out


def router_margins(ref: dict[str, np.ndarray], num_layers: int, k: int) -> np.ndarray:
    """Per layer, the smallest gap between the k-th and (k+1)-th router logit over all tokens (inf if k = E)."""
    margins = []
    for i in range(num_layers):
        g = np.sort(ref[f"blocks.{i}.router_logits"], axis=-1)[:, ::-1]  # (T, E) descending
        margins.append(float(np.min(g[:, k - 1] - g[:, k])) if g.shape[1] > k else math.inf)
    return np.array(margins, dtype=np.float64)


def decode_mxfp4_reference(blocks: np.ndarray, scales: np.ndarray, dtype=torch.float32) -> np.ndarray:
    """Decode MXFP4 with the reference's own `Checkpoint._get_mxfp4_tensor` -> float32 array (..., G * 32).

    The tensors go through a real safetensors file, the way the reference reads them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        save_file({"w.blocks": torch.from_numpy(np.ascontiguousarray(blocks, dtype=np.uint8)),
                   "w.scales": torch.from_numpy(np.ascontiguousarray(scales, dtype=np.uint8))},
                  os.path.join(tmp, "mxfp4.safetensors"))
        checkpoint = Checkpoint(tmp, torch.device("cpu"))
        decoded = checkpoint._get_mxfp4_tensor("w.blocks", "w.scales", dtype=dtype)
        return decoded.to(torch.float32).numpy().copy()


def reference_versions() -> dict[str, str]:
    """Versions of everything that produced a golden, and the hash of the reference model source."""
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("gpt-oss", "safetensors", "minigptoss"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed as a distribution"
    for module in (reference_model, ):
        source = Path(module.__file__).read_bytes()
        versions["gpt_oss/torch/model.py sha256"] = hashlib.sha256(source).hexdigest()
    weights_src = Path(reference_model.__file__).with_name("weights.py").read_bytes()
    versions["gpt_oss/torch/weights.py sha256"] = hashlib.sha256(weights_src).hexdigest()
    return versions


def versions_json() -> str:
    return json.dumps(reference_versions(), sort_keys=True)
