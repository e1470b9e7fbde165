"""fast/pages.py hints the kernel about a mapped expert's pages, and the model reuses (and drops) what it decoded."""

import mmap

import numpy as np

import minigptoss
from minigptoss.fast import pages as fastpages
from minigptoss.moe import MXFP4Experts


def mapped_array(tmp_path, nbytes):
    path = tmp_path / "pages.bin"
    path.write_bytes(bytes(range(256)) * (nbytes // 256))
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(data, dtype=np.uint8).reshape(4, -1, 16).view(np.memmap)


def test_will_need_advises_the_pages_of_a_large_array(tmp_path, monkeypatch):
    calls, clock = [], [1000.0]
    monkeypatch.setattr(fastpages, "_madvise", lambda: lambda addr, length, advice: calls.append((length, advice)))
    monkeypatch.setattr(fastpages, "_advised", {})
    monkeypatch.setattr(fastpages.time, "monotonic", lambda: clock[0])
    blocks = mapped_array(tmp_path, 8 * 2**20)  # 4 experts of 2 MiB
    fastpages.will_need(blocks[2])
    assert len(calls) == 1 and calls[0][0] >= 2 * 2**20 and calls[0][1] == fastpages.MADV_WILLNEED
    fastpages.will_need(blocks[2][:10])  # too small to be worth a system call
    assert len(calls) == 1
    clock[0] += fastpages.RECENT_S - 1  # advised a moment ago: its pages were just read
    fastpages.will_need(blocks[2])
    assert len(calls) == 1
    fastpages.will_need(blocks[3])  # another expert: advised
    assert len(calls) == 2
    clock[0] += 2  # long enough ago to have been evicted since: advised again
    fastpages.will_need(blocks[2])
    assert len(calls) == 3


def test_routed_experts_are_advised_once_each(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(fastpages, "will_need", lambda array: seen.append(array.ctypes.data))
    blocks = mapped_array(tmp_path, 8 * 2**20)
    experts = MXFP4Experts(blocks, np.zeros(blocks.shape[:2], np.uint8).view(np.memmap), np.zeros((4, 1)))
    experts.will_need(np.array([[2, 0], [2, 3]]))
    assert sorted(seen) == sorted(blocks[e].ctypes.data for e in (0, 2, 3))
    in_memory = MXFP4Experts(np.array(blocks), np.zeros(blocks.shape[:2], np.uint8), np.zeros((4, 1)))
    in_memory.will_need(np.array([[1, 2]]))  # not a file's pages: nothing to ask
    assert len(seen) == 3


def test_a_real_madvise_call_changes_nothing(tmp_path):
    blocks = mapped_array(tmp_path, 4 * 2**20)
    before = np.array(blocks)
    fastpages.will_need(blocks[1])
    np.testing.assert_array_equal(np.array(blocks), before)


def test_the_model_keeps_its_experts_until_their_weights_are_replaced():
    """Small experts of a loaded (read-only) checkpoint are decoded once per model; replacing a tensor
    (model.weights[name] = array) gives new experts, and the pass uses the new numbers."""
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    tokens = [3, 1, 4, 1, 5]
    before = model.forward(tokens)
    first = model.experts(0, "mlp1")
    assert model.experts(0, "mlp1") is first and first._decoded is not None
    name = "block.0.mlp.mlp1_weight.scales"
    model.weights[name] = np.asarray(model.weights[name]) + np.uint8(1)  # every weight of layer 0's mlp1 doubled
    assert model.experts(0, "mlp1") is not first
    assert not np.allclose(model.forward(tokens), before)
    del model.weights[name]
    np.testing.assert_array_equal(model.forward(tokens), before)
