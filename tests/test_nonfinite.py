"""Non-finite weights are not silent: NaN/inf logits raise NonFiniteError naming where they first appeared."""

import json
import struct

import numpy as np
import pytest

import minigptoss
from minigptoss.cli import main
from minigptoss.errors import MinigptossError
from minigptoss.nonfinite import NonFiniteError

PROMPT = list(b"Hello!")


def poke(folder, tensor: str, index: int, raw: bytes) -> None:
    """Overwrite the bytes of element `index` of `tensor` in folder/model.safetensors."""
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    header_size = struct.unpack("<Q", data[:8])[0]
    entry = json.loads(data[8:8 + header_size])[tensor]
    start = 8 + header_size + entry["data_offsets"][0] + index * len(raw)
    data[start:start + len(raw)] = raw
    path.write_bytes(bytes(data))


def test_a_nan_in_a_bf16_tensor_is_named_where_it_first_spreads(tiny_copy):
    poke(tiny_copy, "block.1.attn.qkv.weight", 70, struct.pack("<H", 0x7FC0))  # bf16 NaN, row 1
    with pytest.raises(NonFiniteError) as caught:
        minigptoss.load(tiny_copy).forward(PROMPT)
    assert str(caught.value) == ("non-finite values first appear at blocks.1.attn.qkv (from "
                                 "block.1.attn.qkv.weight: 1 of its 12288 values are NaN or inf)")
    assert isinstance(caught.value, MinigptossError)


def test_an_mxfp4_scale_byte_255_is_named(tiny_copy):
    poke(tiny_copy, "block.2.mlp.mlp1_weight.scales", 0, b"\xff")  # expert 0, row 0, block 0: NaN
    with minigptoss.capture("blocks.2.moe.router.expert_ids") as cache:  # a token whose router picks expert 0
        minigptoss.load(minigptoss.TINY_WEIGHTS).forward(np.arange(256))
    tokens = [int(np.argmax((cache["blocks.2.moe.router.expert_ids"] == 0).any(axis=1)))]
    with pytest.raises(NonFiniteError) as caught:
        minigptoss.load(tiny_copy).forward(tokens)
    assert str(caught.value) == ("non-finite values first appear at blocks.2.moe.mlp1 (from "
                                 "block.2.mlp.mlp1_weight.scales: 1 scale byte(s) are 255, which is NaN in MXFP4)")


def test_a_cached_pass_that_fails_leaves_the_cache_as_it_was(tiny_copy):
    poke(tiny_copy, "norm.scale", 3, struct.pack("<H", 0x7F80))  # bf16 +inf in the final norm
    model = minigptoss.load(tiny_copy)
    cache = model.new_cache()
    with pytest.raises(NonFiniteError, match=r"first appear at norm \(from norm.scale: 1 of its 64 values"):
        model.forward(PROMPT, cache)
    assert cache.length == 0 and all(len(keys) == 0 for keys in cache.keys)


def test_the_callers_captures_see_one_pass_only(tiny_copy):
    poke(tiny_copy, "unembedding.weight", 5, struct.pack("<H", 0x7FC0))
    model = minigptoss.load(tiny_copy)
    with minigptoss.capture("logits", per_step=True) as cache, pytest.raises(NonFiniteError, match="at logits"):
        model.forward(PROMPT)
    assert len(cache.steps) == 1  # the locating pass is not recorded in the caller's capture


def test_finite_logits_cost_one_check_and_pass_through():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    np.testing.assert_array_equal(model.forward(PROMPT), minigptoss.model.forward(model, np.array(PROMPT)))


def test_cli_run_prints_one_line_and_exits_2(tiny_copy, capsys):
    poke(tiny_copy, "embedding.weight", 72 * 64, struct.pack("<H", 0x7FC0))  # the row of "H"
    assert main(["run", "--weights", str(tiny_copy), "-p", "Hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: non-finite values first appear at embed (from embedding.weight: 1 of its 20480 values "
                   "are NaN or inf)")
