"""Loading checkpoints: every layout, zero-copy, lazy widening within a budget, and one-line errors."""

import dataclasses
import importlib.util
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import minigptoss
from helpers import refused, rewrite_header
from minigptoss.checkpoint import hf
from minigptoss.checkpoint import (CheckpointError, header_bytes, memory_estimate, open_checkpoint,
                                   write_hf_checkpoint, write_safetensors_stream)
from minigptoss.config import GPT_OSS_20B, TINY, ConfigError
from minigptoss.checkpoint import LazyWeights, tensor_specs
from minigptoss.checkpoint.files import SafetensorsFile

ROOT = Path(__file__).resolve().parent.parent
PROMPT = list(b"Hello, gpt-oss! What is 2 + 2?")
TINY_MODEL = minigptoss.load(minigptoss.TINY_WEIGHTS)
EXPECTED = TINY_MODEL.forward(PROMPT)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


# -- every layout gives the same model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """tiny_weights/ written in every layout a user may hold."""
    base = tmp_path_factory.mktemp("layouts")
    write_hf_checkpoint(base / "hf", TINY, TINY_MODEL.weights, shards=3)
    write_hf_checkpoint(base / "hf_single", TINY, TINY_MODEL.weights)
    write_hf_checkpoint(base / "hf_dequantized", TINY, TINY_MODEL.weights, dequantized=True)
    shutil.copytree(base / "hf", base / "download")
    shutil.copytree(minigptoss.TINY_WEIGHTS, base / "download" / "original")
    return base


@pytest.mark.parametrize("folder, layout, how", [
    ("hf", "hf-mxfp4", "Hugging Face layout"),
    ("hf_single", "hf-mxfp4", "Hugging Face layout"),
    ("hf_dequantized", "hf-dequantized", "Hugging Face layout"),
    ("download", "original", "the original/ folder of a downloaded model"),
    ("download/original", "original", "original-layout folder"),
    ("download/original/model.safetensors", "original", "original-layout folder"),
])
def test_every_layout_loads_to_identical_logits(layouts, folder, layout, how):
    model = minigptoss.load(layouts / folder)
    assert model.checkpoint.layout == layout and how in model.checkpoint.how
    np.testing.assert_array_equal(model.forward(PROMPT), EXPECTED)


def test_sharded_hf_layout_is_as_transformers_writes_it(layouts):
    names = sorted(path.name for path in (layouts / "hf").iterdir())
    assert names == ["config.json", "model-00000-of-00002.safetensors", "model-00001-of-00002.safetensors",
                     "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    index = json.loads((layouts / "hf" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(hf.hf_tensor_specs(TINY))
    assert "model.layers.0.self_attn.q_proj.weight" in index["weight_map"]


def test_download_root_prefers_original_and_says_so(layouts):
    model = minigptoss.load(layouts / "download")
    assert model.checkpoint.folder == layouts / "download" / "original"
    assert "Hugging Face files beside it are not used" in model.checkpoint.how


def test_dequantized_experts_are_transposed_and_interleaved(layouts):
    """gate_up_proj[e] is (H, 2I) = W1[e]^T: column 2j is gate unit j, column 2j + 1 its linear partner."""
    _, weights, _ = open_checkpoint(layouts / "hf_dequantized")
    stored = weights.stored["block.0.mlp.mlp1_weight"]
    assert stored.transposed and stored.parts[0].shape == (TINY.num_experts, TINY.hidden_size,
                                                           2 * TINY.intermediate_size)
    expected = TINY_MODEL.experts(0, "mlp1").matrix(3)  # (2I, H) decoded from MXFP4
    np.testing.assert_array_equal(weights["block.0.mlp.mlp1_weight"][3], expected)


def test_synthetic_checkpoints_agree_across_layouts(tmp_path):
    spec = importlib.util.spec_from_file_location("synth", ROOT / "tools" / "make_synthetic_checkpoint.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    outs = {}
    for layout in ("original", "hf", "hf-dequantized"):
        synth.main(["--preset", "tiny", "--layout", layout, "--out", str(tmp_path / layout), "--shards", "2"])
        model = minigptoss.load(tmp_path / layout)
        assert model.config == TINY
        outs[layout] = model.forward(PROMPT)
    np.testing.assert_array_equal(outs["original"], outs["hf"])
    np.testing.assert_array_equal(outs["original"], outs["hf-dequantized"])
    assert np.isfinite(outs["original"]).all() and 0.1 < np.abs(outs["original"]).max() < 100


def test_make_hf_layout_copies_an_original_checkpoint_tensor_for_tensor(tmp_path):
    """tools/make_hf_layout.py (its weights part; the tokenizer part needs transformers, a dev-only dependency):
    the copy holds, under each Hugging Face name, the very bytes make_synthetic_checkpoint writes there."""
    def tool(name):
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    synth, copier = tool("make_synthetic_checkpoint"), tool("make_hf_layout")
    for layout in ("original", "hf"):
        synth.main(["--preset", "tiny", "--layout", layout, "--out", str(tmp_path / layout), "--seed", "3"])
    copier.copy_layout(tmp_path / "original", tmp_path / "copy", shards=3)
    written = {name: f for path in (tmp_path / "hf").glob("*.safetensors")
               for f in [SafetensorsFile(path)] for name in f.header if name != "__metadata__"}
    copied = {name: f for path in (tmp_path / "copy").glob("model-*.safetensors")
              for f in [SafetensorsFile(path)] for name in f.header if name != "__metadata__"}
    assert len(list((tmp_path / "copy").glob("model-*.safetensors"))) == 3 and set(copied) == set(written)
    for name, f in written.items():
        assert copied[name].dtype(name) == f.dtype(name), name
        np.testing.assert_array_equal(copied[name].array(name), f.array(name), err_msg=name)
    np.testing.assert_array_equal(minigptoss.load(tmp_path / "copy").forward(PROMPT),
                                  minigptoss.load(tmp_path / "original").forward(PROMPT))


# -- Hugging Face config.json ----------------------------------------------------------------------------------

PUBLISHED_20B_CONFIG = {  # the keys of openai/gpt-oss-20b's config.json that matter here
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "attention_bias": True,
    "experts_per_token": 4, "head_dim": 64, "hidden_size": 2880, "initial_context_length": 4096,
    "intermediate_size": 2880, "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24,
    "num_key_value_heads": 8, "num_local_experts": 32, "rms_norm_eps": 1e-05, "rope_theta": 150000,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                     "rope_type": "yarn", "truncate": False},
    "layer_types": ["sliding_attention", "full_attention"] * 12, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": False, "vocab_size": 201088,
    "quantization_config": {"quant_method": "mxfp4"},
}


def test_hf_config_maps_onto_the_original_fields():
    assert hf.config_from_hf(PUBLISHED_20B_CONFIG) == GPT_OSS_20B
    assert hf.config_from_hf(hf.hf_config_dict(TINY)) == TINY
    newer = {k: v for k, v in PUBLISHED_20B_CONFIG.items() if k not in ("rope_scaling", "rope_theta",
                                                                          "experts_per_token")}
    newer["rope_parameters"] = {**PUBLISHED_20B_CONFIG["rope_scaling"], "rope_theta": 150000.0}
    assert hf.config_from_hf(newer) == GPT_OSS_20B


@pytest.mark.parametrize("change, field", [
    ({"layer_types": ["full_attention"] * 24}, "layer_types[0]"),
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling.rope_type"),
    ({"rope_scaling": {**PUBLISHED_20B_CONFIG["rope_scaling"], "truncate": True}}, "truncate"),
    ({"rms_norm_eps": 1e-6}, "rms_norm_eps"),
    ({"num_local_experts": "32"}, "num_local_experts"),
    ({"model_type": "llama"}, "model_type"),
])
def test_hf_config_refuses_what_minigptoss_does_not_implement(change, field):
    with pytest.raises(ConfigError) as caught:
        hf.config_from_hf({**PUBLISHED_20B_CONFIG, **change}, "x/config.json")
    assert field in str(caught.value) and str(caught.value).startswith("x/config.json")


def test_hf_config_missing_field_is_named():
    data = {k: v for k, v in PUBLISHED_20B_CONFIG.items() if k != "num_local_experts"}
    with pytest.raises(ConfigError, match="missing field 'num_local_experts'"):
        hf.config_from_hf(data)


# -- zero copy, lazy, within a budget ----------------------------------------------------------------------------

def write_sparse(folder: Path, config, layout="original") -> None:
    """A checkpoint whose header is real and whose data is a hole: full size on paper, no disk used."""
    folder.mkdir(parents=True)
    if layout == "original":
        write_safetensors_stream(folder / "model.safetensors", tensor_specs(config), None)
        config.to_json(folder / "config.json")
        return
    specs = {name: (dtypes[0], shape) for name, (dtypes, shape) in hf.hf_tensor_specs(config).items()}
    names = list(specs)
    half = len(names) // 2
    files = {"model-00000-of-00001.safetensors": names[:half], "model-00001-of-00001.safetensors": names[half:]}
    for file, run in files.items():
        write_safetensors_stream(folder / file, {name: specs[name] for name in run}, None)
    weight_map = {name: file for file, run in files.items() for name in run}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(hf.hf_config_dict(config)))


@pytest.mark.parametrize("layout", ["original", "hf"])
def test_real_20b_shapes_load_in_under_a_second_without_reading(tmp_path, layout):
    write_sparse(tmp_path / "m", GPT_OSS_20B, layout)
    size = sum(path.stat().st_size for path in (tmp_path / "m").glob("*.safetensors"))
    assert size > 13e9  # the real 20b's 13.8 GB, as a hole
    before = rss_bytes()
    start = time.perf_counter()
    model = minigptoss.load(tmp_path / "m")
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"loading took {elapsed:.2f} s"
    assert rss_bytes() - before < 64 * 2**20  # nothing read, nothing widened
    info = model.checkpoint
    assert model.config == GPT_OSS_20B and 10.1e9 < info.expert_bytes < 10.2e9
    assert info.kept_bytes <= info.cache_budget
    blocks = model.weights["block.23.mlp.mlp2_weight.blocks"]
    assert isinstance(blocks, np.memmap) and blocks.shape == (32, 2880, 90, 16) and not blocks.flags.writeable
    need = memory_estimate(model.config, model.weights, tokens=256)
    assert need.resident < 16 * 2**30 and need.experts_mapped == info.expert_bytes
    # a 16 GiB machine's budget: every attention matrix kept whole, then three quarters of the unembedding's rows
    _, small, _ = open_checkpoint(tmp_path / "m", cache_bytes=4 * 2**30)
    assert all(name in small.keep for name in small.stored if name.endswith(("attn.qkv.weight", "attn.out.weight")))
    assert list(small.keep_rows) == ["unembedding.weight"] and "unembedding.weight" not in small.keep
    assert 0.70 < small.keep_rows["unembedding.weight"] / GPT_OSS_20B.vocab_size < 0.76
    assert 4 * 2**30 - 4 * 2880 < small.planned_bytes() <= 4 * 2**30


def test_weights_are_widened_on_use_and_kept_within_the_budget():
    config, weights, info = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=50_000)
    model = minigptoss.Model(config, weights, checkpoint=info)
    assert isinstance(weights, LazyWeights) and weights.kept_bytes == 0
    assert "embedding.weight" not in weights.keep  # rows are gathered per token
    assert 0 < weights.planned_bytes() <= 50_000
    np.testing.assert_array_equal(model.forward(PROMPT), EXPECTED)
    assert weights.kept_bytes == weights.planned_bytes()
    assert set(weights._kept) == set(weights.keep)


def test_what_is_left_of_the_budget_keeps_the_leading_rows_of_the_unembedding():
    """The budget keeps everything but half of the unembedding: its first 160 of 320 rows are widened once and
    kept (their source pages handed back, the other rows' never), the others widened per use; the logits stay
    within 1e-6 of sum |x w| of the whole products (a BLAS may round a narrower product differently)."""
    _, everything, _ = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=10**9)
    unembedding = 4 * TINY_MODEL.config.vocab_size * TINY_MODEL.config.hidden_size
    budget = everything.planned_bytes() - unembedding // 2
    config, weights, _ = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=budget)
    assert weights.keep == everything.keep - {"unembedding.weight"}
    assert weights.keep_rows == {"unembedding.weight": config.vocab_size // 2}
    released = []
    stored = weights.stored["unembedding.weight"]
    weights.stored["unembedding.weight"] = dataclasses.replace(stored, release=lambda rows=None: released.append(rows))
    logits = minigptoss.Model(config, weights).forward(PROMPT)
    assert weights.kept_bytes == weights.planned_bytes() <= budget
    assert released and None not in released and max(stop for _, stop in released) == config.vocab_size // 2
    assert (logits.argmax(-1) == EXPECTED.argmax(-1)).all()
    assert np.abs(logits - EXPECTED).max() <= 1e-5 * np.abs(EXPECTED).max()
    summed = weights.matmul_t(np.ones((1, config.hidden_size), np.float32), "unembedding.weight")
    whole = TINY_MODEL.weights["unembedding.weight"]
    np.testing.assert_allclose(summed[0], whole.sum(axis=1), rtol=0, atol=1e-6 * np.abs(whole).sum(axis=1).max())


def test_read_in_place_keeps_no_product_matrix_and_gives_the_same_logits():
    """The plan for a compiled bf16 kernel (load's in_place when numba is on): the attention projections and the
    unembedding are not kept, whatever the budget; the router, biases and norms still are. Without the kernel
    the products widen chunks, so this holds with and without numba."""
    config, weights, _ = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=10**9, in_place_min_weights=0)
    products = ("attn.qkv.weight", "attn.out.weight", "unembedding.weight")
    assert not any(name.endswith(products) for name in weights.keep) and weights.keep_rows == {}
    assert "block.0.mlp.gate.weight" in weights.keep and "norm.scale" in weights.keep
    logits = minigptoss.Model(config, weights).forward(PROMPT)
    assert np.abs(logits - EXPECTED).max() <= 1e-5 * np.abs(EXPECTED).max()
    assert (logits.argmax(-1) == EXPECTED.argmax(-1)).all()


def test_no_cache_gives_identical_logits():
    config, weights, _ = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=0)
    model = minigptoss.Model(config, weights)
    np.testing.assert_array_equal(model.forward(PROMPT), EXPECTED)
    assert weights.kept_bytes == 0


@pytest.mark.parametrize("product", ["chunked_product", "fast"])
def test_unembedding_widened_in_chunks_agrees(product):
    """Row chunks of the unembedding, widened into a reused buffer (on one thread, or shared between two by
    fast/dense.py): the same products; a BLAS may round a narrow chunk differently, so each logit is held to
    1e-6 of sum_i |x_i w_i|, in a decode step (1 row) and a prefill (30 rows)."""
    from minigptoss.fast import dense as fastdense
    config, weights, _ = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=0)
    weights.chunk_bytes = 7 * 64 * 4  # 7 rows at a time
    unembedding = TINY_MODEL.weights["unembedding.weight"]  # (V, H) float32
    x = np.random.default_rng(0).standard_normal((30, config.hidden_size)).astype(np.float32)
    for rows in (x[:1], x):
        chunked = weights.matmul_t(rows, "unembedding.weight", None if product == "chunked_product"
                                   else fastdense.matmul_t)
        assert chunked.shape == (len(rows), config.vocab_size) and chunked.dtype == np.float32
        worst = np.abs(chunked - rows @ unembedding.T) / (np.abs(rows) @ np.abs(unembedding).T)
        assert worst.max() <= 1e-6


def test_every_tensor_widened_in_chunks_agrees():
    """Every bf16 matrix widened per use in 7-row chunks (attention's too): the logits stay within the project's
    1e-5 of the whole-matrix products' (rounding differences in early layers travel through the later ones)."""
    config, weights, _ = open_checkpoint(minigptoss.TINY_WEIGHTS, cache_bytes=0)
    weights.chunk_bytes = 7 * 64 * 4  # 7 rows at a time
    logits = minigptoss.Model(config, weights).forward(PROMPT)
    assert np.abs(logits - EXPECTED).max() <= 1e-5 * np.abs(EXPECTED).max()
    assert (logits.argmax(-1) == EXPECTED.argmax(-1)).all()


def test_first_use_hook_sees_each_tensor_once():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    seen = []
    model.weights.on_first_use = lambda name, nbytes: seen.append((name, nbytes))
    model.forward(PROMPT)
    model.forward(PROMPT)
    names = [name for name, _ in seen]
    assert len(names) == len(set(names)) == len(tensor_specs(TINY))
    assert names[0] == "embedding.weight" and names[-1] == "unembedding.weight"


def test_overrides_replace_a_tensor_until_deleted():
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    sinks = model.weights["block.0.attn.sinks"].copy()
    model.weights["block.0.attn.sinks"] = np.full_like(sinks, -np.inf)
    assert not np.array_equal(model.forward(PROMPT), EXPECTED)
    del model.weights["block.0.attn.sinks"]
    np.testing.assert_array_equal(model.forward(PROMPT), EXPECTED)


def test_saving_a_loaded_model_writes_the_same_bytes(tmp_path):
    minigptoss.save(TINY_MODEL, tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == (minigptoss.TINY_WEIGHTS / "model.safetensors").read_bytes()


# -- one clear error per broken checkpoint -------------------------------------------------------------------------

def test_truncated_file(tiny_copy):
    path = tiny_copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    refused(CheckpointError, tiny_copy, str(path), "unembedding.weight", "truncated")


def test_header_lying_about_offsets(tiny_copy):
    path = tiny_copy / "model.safetensors"

    def overlap(header):  # the sinks start 2 bytes early, inside the tensor before them
        header["block.0.attn.sinks"]["data_offsets"] = [n - 2 for n in header["block.0.attn.sinks"]["data_offsets"]]
    rewrite_header(path, overlap)
    refused(CheckpointError, tiny_copy, str(path), "overlap")


def test_header_lying_about_a_dtype_size(tiny_copy):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: header["norm.scale"].update(dtype="F32"))
    refused(CheckpointError, tiny_copy, str(path), "'norm.scale'", "needs")


def test_header_with_a_dtype_the_config_does_not_imply(tiny_copy):
    path = tiny_copy / "model.safetensors"
    rewrite_header(path, lambda header: header["norm.scale"].update(dtype="F16"))  # same byte count as BF16
    refused(CheckpointError, tiny_copy, str(path), "'norm.scale' is F16 [64]", "implies BF16 [64]")


def test_config_with_fewer_layers_than_the_tensors(tiny_copy):
    config = json.loads((tiny_copy / "config.json").read_text())
    (tiny_copy / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    refused(CheckpointError, tiny_copy, "unexpected tensor 'block.3.", "num_hidden_layers")


def test_config_with_another_hidden_size(tiny_copy):
    config = json.loads((tiny_copy / "config.json").read_text())
    (tiny_copy / "config.json").write_text(json.dumps({**config, "hidden_size": 96}))
    refused(CheckpointError, tiny_copy, "'embedding.weight' is BF16 [320, 64]", "implies BF16 [320, 96]",
                   str(tiny_copy / "config.json"))


def test_hf_config_disagreeing_with_the_tensors(layouts, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(layouts / "hf", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_local_experts": 4}))
    refused(CheckpointError, folder, "model.layers.0.mlp.router.weight", "implies BF16 or F32 [4, 64]")


def test_index_naming_a_missing_shard(layouts, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(layouts / "hf", folder)
    (folder / "model-00001-of-00002.safetensors").unlink()
    refused(CheckpointError, folder, "model.safetensors.index.json", "model-00001-of-00002.safetensors")


def test_missing_tensor_in_hf_layout(layouts, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(layouts / "hf_single", folder)
    path = folder / "model.safetensors"
    rewrite_header(path, lambda header: header.pop("model.layers.1.self_attn.sinks"))
    refused(CheckpointError, folder, "'model.layers.1.self_attn.sinks' is missing")


def test_original_config_with_hf_files_says_so(layouts, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(layouts / "hf_single", folder)
    shutil.copy(minigptoss.TINY_WEIGHTS / "config.json", folder / "config.json")
    refused(CheckpointError, folder, "'embedding.weight' is missing", "Hugging Face names")


def test_not_a_checkpoint(tmp_path):
    refused(CheckpointError, tmp_path / "nowhere", "no such folder")
    refused(CheckpointError, tmp_path, "no config.json")


def test_header_bytes_are_what_write_safetensors_writes(tmp_path):
    specs = {"a": ("BF16", (2, 3)), "b": ("U8", (5,))}
    write_safetensors_stream(tmp_path / "x.safetensors", specs, lambda name: [np.zeros(specs[name][1], "u1"
                                                                                       if name == "b" else "<u2")])
    data = (tmp_path / "x.safetensors").read_bytes()
    assert data.startswith(header_bytes(specs)) and len(data) == len(header_bytes(specs)) + 12 + 5


def test_cli_runs_on_the_hf_layout(layouts, capsys):
    from minigptoss.cli import main

    assert main(["run", "--weights", str(layouts / "hf"), "--tokens", "1,2,3", "--top", "3"]) == 0
    assert "top candidates" in capsys.readouterr().out
