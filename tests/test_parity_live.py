"""Live parity against OpenAI's official gpt-oss reference, on configs drawn fresh every run.

Skipped unless torch and gpt_oss import (set up with `bash tools/reference/setup.sh`, then run
`tools/reference/.venv/bin/python -m pytest tests/test_parity_live.py -s`). Each run draws a new base seed
(printed; set MINIGPTOSS_PARITY_SEED=<seed> to replay one) and, from it, a few small random configs: layers,
experts and top-k, heads and GQA ratio, head size, widths, vocabulary, window (0 included), RoPE constants
(YaRN or not), SwiGLU limit, prompt length. For each: random_model -> save -> the reference runs the saved
folder in float32 -> minigptoss runs the same model -> the same per-piece report and bounds as
tests/test_parity.py.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", exc_type=ImportError)
pytest.importorskip("gpt_oss.torch.model", exc_type=ImportError)

import minigptoss  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_parity, whatever pytest's import mode
from test_parity import REL_TOL, parity_report, reference_as_golden, residual_pieces, run_minigptoss  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "reference"))
import refrun  # noqa: E402

DRAWS = 3
BASE_SEED = int(os.environ.get("MINIGPTOSS_PARITY_SEED") or secrets.randbits(31))
MIN_ROUTER_MARGIN = 1e-4


def random_config(rng: np.random.Generator) -> minigptoss.Config:
    """A small valid config with every knob drawn at random."""
    while True:
        num_kv = int(rng.integers(1, 4))
        head_dim = int(rng.choice([8, 16, 32, 64]))
        num_experts = int(rng.integers(1, 9))
        scaling = float(rng.choice([1.0, 32.0, round(float(rng.uniform(1.5, 40.0)), 3)]))
        values = dict(
            num_hidden_layers=int(rng.integers(1, 4)),
            num_experts=num_experts,
            experts_per_token=int(rng.integers(1, min(num_experts, 4) + 1)),
            vocab_size=int(rng.integers(8, 700)),
            hidden_size=32 * int(rng.integers(1, 5)),
            intermediate_size=32 * int(rng.integers(1, 5)),
            swiglu_limit=float(rng.choice([7.0, round(float(rng.uniform(0.2, 10.0)), 3)])),
            head_dim=head_dim,
            num_attention_heads=num_kv * int(rng.integers(1, 5)),
            num_key_value_heads=num_kv,
            sliding_window=int(rng.choice([0, int(rng.integers(1, 40)), 128])),
            initial_context_length=int(rng.choice([4096, 2048, 1024])),
            rope_theta=float(rng.choice([150000.0, 10000.0, 500000.0])),
            rope_scaling_factor=scaling,
            rope_ntk_alpha=float(rng.choice([1.0, 2.0])),
            rope_ntk_beta=float(rng.choice([32.0, 16.0])),
        )
        try:
            return minigptoss.Config(**values)
        except minigptoss.ConfigError:
            continue  # e.g. YaRN bounds that need a larger head_dim: draw again


@pytest.mark.parametrize("draw", range(DRAWS))
def test_live_parity_on_a_fresh_random_config(draw, tmp_path):
    seed = BASE_SEED * DRAWS + draw
    rng = np.random.default_rng(seed)
    config = random_config(rng)
    num_tokens = int(rng.integers(1, 97))
    header = (f"live parity draw {draw}: MINIGPTOSS_PARITY_SEED={BASE_SEED} (seed {seed}), {num_tokens} tokens, "
              f"config {config.to_dict()}")
    model = minigptoss.random_model(config, seed)
    minigptoss.save(model, tmp_path)
    reference = refrun.load_reference(tmp_path)
    for _ in range(10):  # a prompt whose routing is not a near-tie (either choice would then be right)
        tokens = rng.integers(0, config.vocab_size, size=num_tokens)
        ref = refrun.run_reference(tmp_path, tokens, model=reference)
        margin = refrun.router_margins(ref, config.num_hidden_layers, config.experts_per_token).min()
        if margin >= MIN_ROUTER_MARGIN or math.isinf(margin):
            break
    else:
        pytest.skip(f"{header}: no prompt without a router near-tie in 10 draws")
    golden = reference_as_golden(ref, residual_pieces(config.num_hidden_layers))
    ok, report, _ = parity_report(header, golden, run_minigptoss(model, tokens), REL_TOL)
    print(report)
    if not ok:
        pytest.fail(report + f"\n  replay: MINIGPTOSS_PARITY_SEED={BASE_SEED} pytest tests/test_parity_live.py",
                    pytrace=False)
