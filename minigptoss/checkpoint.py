"""Reading and writing checkpoints in gpt-oss's original layout: `config.json` + `*.safetensors`.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}}, padded with spaces), then the raw little-endian
data. We parse the header ourselves and map the data with `np.memmap`: nothing is copied until used, and
bfloat16 (which NumPy lacks) is read as its uint16 bit patterns. Every offset, dtype and shape is checked
against the file and against the config before any math runs; a bad file gives one sentence naming it.

What it does not do: the Hugging Face layout (different names), or any math beyond widening bf16.
"""

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .config import Config, ConfigError
from .weights import bf16_bits_to_f32, f32_to_bf16_bits, tensor_specs

DTYPES = {"BF16": np.dtype("<u2"), "U8": np.dtype("u1"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
          "I32": np.dtype("<i4"), "I64": np.dtype("<i8")}
MAX_HEADER_BYTES = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint file or folder that cannot be read as a gpt-oss checkpoint."""


# -- safetensors ----------------------------------------------------------------------------------------------

def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """Parse and validate a safetensors header: -> ({name: entry}, offset of the data section)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file ({size} bytes)")
        header_len = int.from_bytes(prefix, "little")
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError(f"{path}: header length {header_len} does not fit in the file ({size} bytes)")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_start, data_len = 8 + header_len, size - 8 - header_len
    for name, entry in header.items():
        _check_entry(path, name, entry, data_len)
    return header, data_start


def _check_entry(path: Path, name: str, entry, data_len: int) -> None:
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} has an unsupported dtype "
                              f"{entry.get('dtype') if isinstance(entry, dict) else entry!r} "
                              f"(expected one of {', '.join(DTYPES)})")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise CheckpointError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_len):
        raise CheckpointError(f"{path}: tensor {name!r} has data offsets {offsets!r} outside the file's "
                              f"{data_len} data bytes (truncated file?)")
    expected = math.prod(shape) * DTYPES[entry["dtype"]].itemsize
    if offsets[1] - offsets[0] != expected:
        raise CheckpointError(f"{path}: tensor {name!r} spans {offsets[1] - offsets[0]} bytes but its "
                              f"{entry['dtype']} shape {shape} needs {expected}")


def map_safetensors(path) -> dict[str, tuple[str, np.ndarray]]:
    """Memory-map every tensor of a safetensors file: -> {name: (dtype name, read-only array)}. No copy."""
    path = Path(path)
    header, data_start = read_safetensors_header(path)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype, shape = DTYPES[entry["dtype"]], tuple(entry["shape"])
        if begin == end:
            tensors[name] = (entry["dtype"], np.zeros(shape, dtype=dtype))
        else:
            tensors[name] = (entry["dtype"], np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin,
                                                       shape=shape))
    return tensors


def write_safetensors(path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """Write {name: (dtype name, array)} as a safetensors file, tensors in the given order, atomically."""
    header, offset = {}, 0
    for name, (dtype, array) in tensors.items():
        nbytes = array.size * DTYPES[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the data section starts 8-byte aligned
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for dtype, array in tensors.values():
            f.write(np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(f.name, 0o666 & ~umask)  # a temporary file is created 0600; give the usual permissions
    os.replace(f.name, path)


# -- checkpoints in the original layout -----------------------------------------------------------------------

def read_checkpoint(path) -> tuple[Config, dict[str, np.ndarray]]:
    """A folder with config.json and *.safetensors -> (config, weights as in `weights.py`), all checked."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder (expected one holding config.json and *.safetensors)")
    config = Config.from_json(folder / "config.json")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors file next to config.json")
    stored: dict[str, tuple[str, np.ndarray]] = {}
    for file in files:
        for name, tensor in map_safetensors(file).items():
            if name in stored:
                raise CheckpointError(f"{file}: tensor {name!r} appears in more than one file")
            stored[name] = tensor
    check_tensors(stored, config, str(folder))
    weights = {name: bf16_bits_to_f32(array) if dtype == "BF16" else array
               for name, (dtype, array) in stored.items()}
    return config, weights


def check_tensors(stored: dict[str, tuple[str, np.ndarray]], config: Config, source: str) -> None:
    """Every tensor the config needs is there with its dtype and shape, and nothing else is."""
    specs = tensor_specs(config)
    for name, (dtype, shape) in specs.items():
        if name not in stored:
            raise CheckpointError(f"{source}: tensor {name!r} is missing (expected {dtype} {list(shape)})")
        got_dtype, array = stored[name]
        if got_dtype != dtype or array.shape != shape:
            raise CheckpointError(f"{source}: tensor {name!r} is {got_dtype} {list(array.shape)}, but "
                                  f"config.json implies {dtype} {list(shape)}")
    extra = [name for name in stored if name not in specs]
    if extra:
        raise CheckpointError(f"{source}: unexpected tensor {extra[0]!r} for this config.json "
                              f"({len(extra)} extra in all; is num_hidden_layers right?)")


def write_checkpoint(path, config: Config, weights: dict[str, np.ndarray]) -> None:
    """Write config.json + model.safetensors in the original layout (float32 tensors rounded to bf16)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (dtype, _) in tensor_specs(config).items():
        array = weights[name]
        tensors[name] = (dtype, f32_to_bf16_bits(array) if dtype == "BF16" else array)
    write_safetensors(folder / "model.safetensors", tensors)
    config.to_json(folder / "config.json")


__all__ = ["CheckpointError", "ConfigError", "read_checkpoint", "write_checkpoint", "map_safetensors",
           "write_safetensors", "read_safetensors_header"]
