"""Copy an original-layout gpt-oss checkpoint into the Hugging Face layout, with an o200k_harmony tokenizer.json.

    python tools/make_hf_layout.py --original DIR --out DIR [--shards N] [--tokenizer-only]

A dev tool (it needs `tokenizers` and `transformers`, as llama.cpp's converter does; run it from that venv).
What it is for: other engines' converters (llama.cpp's convert_hf_to_gguf.py) read the Hugging Face layout
only, so to compare them with minigptoss on the same synthetic checkpoint (benchmarks/bench_llama_cpp.py) the
very same numbers must be offered in that layout, with a tokenizer they accept.

It writes into --out:
  model-0000i-of-0000n.safetensors + model.safetensors.index.json + config.json
      every tensor of --original renamed and sliced as transformers' conversion script does
      (minigptoss/checkpoint/hf.py documents the mapping): bytes copied, never converted, so the MXFP4 experts
      stay `*_blocks` / `*_scales` (gate/up interleaved along the rows, as published), bf16 stays bf16.
  tokenizer.json, tokenizer_config.json, special_tokens_map.json
      o200k_harmony (201,088 ids) built from the same sha256-checked o200k_base ranks minigptoss reads
      (text/tokenizer.py): the 199,998 byte-pair ranks become a byte-level BPE (transformers' TikTokenConverter,
      as used for the published gpt-oss tokenizer.json), with o200k_base's split pattern, then the 1,090 special
      tokens at ids 199,998-201,087 (<|startoftext|> ... <|call|>, the rest <|reserved_N|>). The tool checks that
      the result encodes a sample text to the same ids as minigptoss's tokenizer and that every special token has
      its o200k_harmony id.
"""

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from minigptoss.checkpoint import hf, hf_shard_names, shard, write_hf_index, write_safetensors_stream
from minigptoss.checkpoint.files import SafetensorsFile, find_checkpoint
from minigptoss.config import Config
from minigptoss.text import tokenizer as ours

ROWS_PER_CHUNK_BYTES = 1 << 26  # copy at most 64 MiB at a time
SHARD_BYTES = 4.8e9  # transformers' conversion script cuts shards at 4.8 GB
SAMPLE = ("Hello, world! It's 2026; we've 3 apples & 4.5 pears.\n\n  Indented\tand tabbed. "
          "Ünïcödé — 日本語のテキスト, emojis 🚀🦙, numbers 1234567 and 'quotes' \"too\".")


def copy_layout(original: Path, out: Path, shards: int | None) -> None:
    """Write the Hugging Face tensors and config.json of the original checkpoint in `original`."""
    layout, folder, _ = find_checkpoint(original)
    if layout != "original":
        sys.exit(f"{original}: expected a checkpoint in the original layout, found the {layout} layout")
    config = Config.from_json(folder / "config.json")
    files = [SafetensorsFile(path) for path in sorted(folder.glob("*.safetensors"))]
    where = {name: f for f in files for name in f.header if name != "__metadata__"}

    parts_of = {}  # HF name -> (original name, start row, rows)
    for name, (parts, transposed) in hf.hf_sources(config).items():
        assert not transposed
        start = 0
        for part in parts:
            rows = hf.hf_part_rows(config, part) if len(parts) > 1 else where[name].shape(name)[0]
            parts_of[part] = (name, start, rows)
            start += rows
    specs = {}
    for part, (name, start, rows) in parts_of.items():
        dtype, shape = where[name].dtype(name), where[name].shape(name)
        specs[part] = (dtype, (rows, *shape[1:]))
    expected = hf.hf_tensor_specs(config)
    assert set(specs) == set(expected), set(specs) ^ set(expected)
    for part, (dtype, shape) in specs.items():
        assert dtype in expected[part][0] and shape == expected[part][1], (part, dtype, shape, expected[part])

    def chunks(part):
        name, start, rows = parts_of[part]
        array = where[name].array(name)
        step = max(1, ROWS_PER_CHUNK_BYTES // max(1, array[0].nbytes))
        for first in range(start, start + rows, step):
            yield np.array(array[first:min(first + step, start + rows)])
        where[name].release(name)

    total = sum(math.prod(shape) * (1 if dtype == "U8" else 2) for dtype, shape in specs.values())
    runs = shard(specs, shards or max(1, math.ceil(total / SHARD_BYTES)))
    out.mkdir(parents=True, exist_ok=True)
    for run, file in zip(runs, hf_shard_names(len(runs))):
        print(f"writing {out / file} ({len(run)} tensors)", file=sys.stderr, flush=True)
        write_safetensors_stream(out / file, {name: specs[name] for name in run}, chunks)
    write_hf_index(out, runs, specs)
    (out / "config.json").write_text(json.dumps(hf.hf_config_dict(config, mxfp4=True), indent=2) + "\n")


def write_tokenizer(out: Path) -> None:
    """tokenizer.json (+ its config files) for o200k_harmony, checked against minigptoss's tokenizer."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    specials = ours.o200k_harmony_special_tokens()
    by_id = sorted(specials, key=specials.get)
    assert [specials[name] for name in by_id] == list(range(ours.O200K_BASE_RANKS, ours.O200K_VOCAB_SIZE))
    with tempfile.TemporaryDirectory() as tmp:
        ranks = Path(tmp) / "o200k_base.tiktoken"
        ranks.write_bytes(ours.read_o200k_base_file())
        converted = TikTokenConverter(vocab_file=str(ranks), pattern=ours.O200K_PATTERN,
                                      additional_special_tokens=by_id).converted()
    out.mkdir(parents=True, exist_ok=True)
    converted.save(str(out / "tokenizer.json"))
    tokens = {"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>"}
    (out / "special_tokens_map.json").write_text(json.dumps(tokens, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 131072, **tokens}, indent=2) + "\n")

    fast = PreTrainedTokenizerFast.from_pretrained(str(out))
    reference = ours.o200k_harmony()
    got, want = fast.encode(SAMPLE, add_special_tokens=False), reference.encode(SAMPLE)
    if got != want:
        sys.exit(f"tokenizer.json encodes the sample differently from minigptoss: {got[:20]} vs {want[:20]}")
    vocab = fast.get_vocab()
    wrong = [name for name, i in specials.items() if vocab.get(name) != i]
    if wrong or len(vocab) != ours.O200K_VOCAB_SIZE:
        sys.exit(f"tokenizer.json: {len(vocab)} ids (want {ours.O200K_VOCAB_SIZE}); special tokens at the wrong "
                 f"id: {wrong[:5]}")
    print(f"tokenizer.json: {len(vocab)} ids; the sample ({len(want)} tokens) encodes as minigptoss does",
          file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", help="checkpoint folder in the original layout (config.json + *.safetensors)")
    parser.add_argument("--out", required=True, help="folder to write (created)")
    parser.add_argument("--shards", type=int, help="number of safetensors files (default: 4.8 GB each)")
    parser.add_argument("--tokenizer-only", action="store_true", help="write only the tokenizer files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.tokenizer_only:
        if not args.original:
            parser.error("--original is required (unless --tokenizer-only)")
        copy_layout(Path(args.original), out, args.shards)
    write_tokenizer(out)


if __name__ == "__main__":
    main()
