"""Reading and writing gpt-oss checkpoints, in the original layout and in Hugging Face's (names: see `hf.py`).

`open_checkpoint(path)` accepts every way the model is held, and says which it found:

    DIR/config.json + DIR/*.safetensors, original names      a folder in the original layout (e.g. `original/`)
    DIR/original/ beside Hugging Face files                   a downloaded openai/gpt-oss-20b or -120b: reads original/
    DIR/config.json (transformers) + model*.safetensors       the Hugging Face layout, sharded with
        [+ model.safetensors.index.json]                       model.safetensors.index.json or not, with MXFP4
                                                               experts (*_blocks, *_scales) or already dequantized

Zero copy. A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}}), then raw little-endian data. We parse the header
ourselves and map each file once (mmap, read-only); every tensor is a NumPy view into that map (bfloat16 as
its uint16 bit patterns), so nothing is read until used. Before any math runs, every offset is checked to lie
inside the file, no two tensors may overlap, each byte count must equal dtype x shape, and the names, dtypes
and shapes must be exactly those the config implies: a bad checkpoint is one sentence naming the file, the
tensor or the config field.

Load policy (the mapping it returns is a `weights.LazyWeights`):
  - MXFP4 experts stay in the map: the kernel reads an expert's pages when the router first picks it, and may
    drop them again under memory pressure (they are clean file pages).
  - bf16 tensors are widened to float32 where they are used. Those that fit in the cache budget (default
    min(6 GiB, a quarter of RAM); `cache_bytes=`, or the environment variable MINIGPTOSS_CACHE_GIB) are
    widened once and kept, in forward order: every layer's attention, router, biases and norms, then the
    unembedding. Once a tensor is kept, its bf16 pages are handed back (madvise DONTNEED).
  - The embedding is never widened whole: the rows of the prompt's tokens are gathered and widened.
  - What is left of the budget keeps the leading rows of the first matrix that did not fit (the unembedding:
    on a 16 GiB machine, a 4 GiB budget keeps the attention and 75 % of its rows); tensors beyond the budget,
    and such a matrix's other rows, are widened each time they are used (the unembedding in row chunks).
  - With the optional compiled kernels (`minigptoss.load` passes in_place_min_weights) the attention
    projections and the unembedding of a real-sized model are not kept at all: a decode step reads their bf16 bits in place, faster than a float32
    copy, and a prompt's pass widens them a chunk at a time.
For gpt-oss-20b that keeps 4.9 GB of float32 and maps 10.2 GB of experts: under 16 GiB resident (with the
compiled kernels, ~0.03 GB kept).

Do not change a file while a model loaded from it is in use: the tensors ARE the file's pages. Truncating it,
or rewriting it in place (`cp new.safetensors model.safetensors`, a download resuming over it), kills the
process with SIGBUS the next time a page past the new end is touched, or silently changes the numbers; Python
cannot catch that signal. Replacing it by rename (`mv`, an atomic save) is safe: the map keeps the old file.
Guarded: before each pass `Model.forward` compares every file's size and modification time (fstat of the file
it keeps open) with what `load` saw, and a change made between passes is one CheckpointError instead of SIGBUS.
Not guarded: a change made during a pass (between the check and the pages it reads), which can still kill the
process; and a rewrite that keeps both size and modification time.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import math
import mmap
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from . import hf
from .. import environment
from ..attention import CHUNK_BYTES
from ..config import Config, ConfigError, open_regular, read_json
from ..errors import MinigptossError
from ..mxfp4 import decode_mxfp4
from .lazy import LazyWeights, Stored, cache_plan
from .tensors import f32_to_bf16_bits, tensor_specs

DTYPES = {"BF16": np.dtype("<u2"), "U8": np.dtype("u1"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
          "I32": np.dtype("<i4"), "I64": np.dtype("<i8")}
MAX_HEADER_BYTES = 100 * 1024 * 1024
DEFAULT_CACHE_CAP = 6 * 2**30  # bytes of float32 copies kept, at most (also capped at a quarter of RAM)


class CheckpointError(MinigptossError):
    """A checkpoint file or folder that cannot be read as a gpt-oss checkpoint."""


# -- safetensors ----------------------------------------------------------------------------------------------

def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """Parse and validate a safetensors header: -> ({name: entry}, offset of the data section).

    Only a regular file is opened (see config.open_regular); every entry is checked for its JSON types before
    any arithmetic on it, so a bad header is one CheckpointError naming the file and the tensor or field."""
    path = Path(path)
    with open_regular(path, CheckpointError) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path}: too short to be a safetensors file ({size} bytes)")
            header_len = int.from_bytes(prefix, "little")
            if header_len > min(size - 8, MAX_HEADER_BYTES):
                raise CheckpointError(f"{path}: header length {header_len} does not fit in the file ({size} bytes)")
            text = f.read(header_len)
        except OSError as problem:
            raise CheckpointError(f"{path}: cannot read the file ({problem.strerror})") from None
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON (UTF-8)") from None
    except RecursionError:
        raise CheckpointError(f"{path}: the safetensors header is JSON nested too deeply to read") from None
    except ValueError:  # an integer literal of thousands of digits (Python's int conversion limit)
        raise CheckpointError(f"{path}: the safetensors header holds an integer with too many digits") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_start, data_len = 8 + header_len, size - 8 - header_len
    for name, entry in header.items():
        _check_entry(path, name, entry)
    _check_extent(path, header, data_len)
    return header, data_start


def _whole(n, below: int = 2**64) -> bool:
    """A JSON integer (not a bool, not a float) in [0, below)."""
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < below


def _check_entry(path: Path, name: str, entry) -> None:
    """One header entry: a known dtype, a shape, offsets whose span is exactly dtype x shape bytes."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"{path}: tensor {name!r:.80} is described by {entry!r:.40}, not an object with "
                              f"'dtype', 'shape' and 'data_offsets'")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(dtype, str) and dtype in DTYPES):
        raise CheckpointError(f"{path}: tensor {name!r:.80} has an unsupported dtype {dtype!r:.40} "
                              f"(expected one of {', '.join(DTYPES)})")
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_whole(n, 2**63) for n in shape)
            and math.prod(shape) < 2**63):
        raise CheckpointError(f"{path}: tensor {name!r:.80} has an invalid shape {shape!r:.60} (expected a list "
                              f"of at most 8 whole numbers, with fewer than 2**63 elements in all)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_whole(n) for n in offsets)
            and offsets[0] <= offsets[1]):
        raise CheckpointError(f"{path}: tensor {name!r:.80} has invalid data offsets {offsets!r:.60} (expected "
                              f"[begin, end], whole numbers, begin <= end)")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != expected:
        raise CheckpointError(f"{path}: tensor {name!r:.80} spans {offsets[1] - offsets[0]} bytes but its "
                              f"{dtype} shape {shape} needs {expected}")


def _check_extent(path: Path, header: dict, data_len: int) -> None:
    """Every tensor inside the file's data section, and no two tensors sharing a byte."""
    spans = sorted((entry["data_offsets"][0], entry["data_offsets"][1], name) for name, entry in header.items()
                   if entry["data_offsets"][1] > entry["data_offsets"][0])
    if spans and max(end for _, end, _ in spans) > data_len:
        begin, end, name = max(spans, key=lambda span: span[1])
        raise CheckpointError(f"{path}: tensor {name!r} ends at data byte {end} but the file holds only "
                              f"{data_len} data bytes (a truncated file, or a header that lies about offsets)")
    for (_, end0, name0), (begin1, _, name1) in zip(spans, spans[1:]):
        if begin1 < end0:
            raise CheckpointError(f"{path}: tensors {name0!r} and {name1!r} overlap (data bytes {begin1}..{end0}): "
                                  f"the header's offsets are inconsistent")


class SafetensorsFile:
    """One safetensors file: its validated header, and read-only zero-copy views of its tensors.

    The file is mapped once, on first use. `release(name)` hands a tensor's pages back to the kernel (they are
    read again from the page cache or disk if the view is used later).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = open_regular(self.path, CheckpointError)  # kept open: the file mapped and checked is this one
        self.seen = _signature(os.fstat(self._file.fileno()))
        self.header, self.data_start = read_safetensors_header(self.path)
        self._map: mmap.mmap | None = None

    def check_unchanged(self) -> None:
        """One CheckpointError if the file was truncated, grown or rewritten in place since it was loaded (its size
        or modification time differ from what `load` saw), before a pass touches a page past its new end (SIGBUS).
        A file replaced by rename is not a change: the open file and the map are still the old one."""
        now = _signature(os.fstat(self._file.fileno()))
        if now != self.seen:
            how = (f"it now holds {now[0]} bytes, not {self.seen[0]}" if now[0] != self.seen[0] else
                   "rewritten in place: its modification time changed")
            raise CheckpointError(f"{self.path}: the file changed after the model was loaded ({how}); load the "
                                  f"checkpoint again (its tensors are the file's pages, so a pass over the changed "
                                  f"file could crash the process or give other numbers)")

    def dtype(self, name: str) -> str:
        return self.header[name]["dtype"]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.header[name]["shape"])

    def array(self, name: str) -> np.ndarray:
        """The tensor as a read-only np.memmap view of the mapped file:  shape as in the header, bf16 as uint16."""
        entry = self.header[name]
        dtype, shape = DTYPES[entry["dtype"]], tuple(entry["shape"])
        count = math.prod(shape)
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        start = self.data_start + entry["data_offsets"][0]
        return np.frombuffer(self._mapped(), dtype=dtype, count=count, offset=start).reshape(shape).view(np.memmap)

    def release(self, name: str, rows: tuple[int, int] | None = None) -> None:
        """Drop this process's pages of the tensor's bytes, or of its rows [start, stop) (whole pages only)."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        begin, end = (self.data_start + offset for offset in self.header[name]["data_offsets"])
        if rows is not None:
            row_bytes = (end - begin) // max(1, self.header[name]["shape"][0])
            begin, end = begin + rows[0] * row_bytes, begin + rows[1] * row_bytes
        first, last = -(-begin // mmap.PAGESIZE) * mmap.PAGESIZE, end // mmap.PAGESIZE * mmap.PAGESIZE
        if last > first:
            self._map.madvise(mmap.MADV_DONTNEED, first, last - first)

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map


def _signature(status: os.stat_result) -> tuple[int, int]:
    """What `check_unchanged` compares: the size and the modification time in nanoseconds."""
    return status.st_size, status.st_mtime_ns


def header_bytes(specs: dict[str, tuple[str, tuple[int, ...]]]) -> bytes:
    """The length prefix and JSON header for tensors {name: (dtype, shape)} stored back to back, in order."""
    header, offset = {}, 0
    for name, (dtype, shape) in specs.items():
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned
    return len(text).to_bytes(8, "little") + text


def write_safetensors_stream(path, specs: dict[str, tuple[str, tuple[int, ...]]],
                             chunks: Callable[[str], Iterable[np.ndarray]] | None) -> None:
    """Write a safetensors file tensor by tensor, atomically: `chunks(name)` yields the tensor's data in order
    (any split along axis 0). With chunks=None only the header is written and the file is extended to its full
    size: a sparse file of zeros that costs no disk."""
    path = Path(path)
    head = header_bytes(specs)
    total = sum(math.prod(shape) * DTYPES[dtype].itemsize for dtype, shape in specs.values())
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
        try:
            f.write(head)
            if chunks is None:
                f.truncate(len(head) + total)
            else:
                for name, (dtype, shape) in specs.items():
                    written = 0
                    for chunk in chunks(name):
                        data = np.ascontiguousarray(chunk, dtype=DTYPES[dtype])
                        f.write(data.data if data.size else b"")
                        written += data.nbytes
                    if written != math.prod(shape) * DTYPES[dtype].itemsize:
                        raise ValueError(f"tensor {name!r}: wrote {written} bytes, its {dtype} shape {list(shape)} "
                                         f"needs {math.prod(shape) * DTYPES[dtype].itemsize}")
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(f.name, 0o666 & ~umask)  # a temporary file is created 0600; give the usual permissions
    os.replace(f.name, path)


def write_safetensors(path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """Write {name: (dtype name, array)} as a safetensors file, tensors in the given order, atomically."""
    specs = {name: (dtype, tuple(array.shape)) for name, (dtype, array) in tensors.items()}
    write_safetensors_stream(path, specs, lambda name: [tensors[name][1]])


# -- finding a checkpoint -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What `open_checkpoint` found, and what it costs in memory."""

    layout: str  # "original", "hf-mxfp4" or "hf-dequantized"
    folder: Path  # the folder actually read
    how: str  # one sentence: what was found where
    files: tuple[Path, ...]
    expert_bytes: int  # expert weights on disk (MXFP4 blocks and scales, or dense): memory-mapped, never copied
    other_bytes: int  # everything else on disk (bf16)
    kept_bytes: int  # float32 copies the cache plan keeps once all are used
    cache_budget: int

    @property
    def file_bytes(self) -> int:
        return self.expert_bytes + self.other_bytes


def _kind(path: Path) -> str:
    """"file", "folder", "other" or "missing" (absent, a dangling symlink, a symlink loop): what `path` is, or
    one CheckpointError naming it when it cannot be looked at (a folder on the way without search permission)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as problem:
        if problem.errno == errno.ELOOP:
            return "missing"
        blocked = next((folder for folder in path.parents if _stats(folder)), None)  # the one it cannot search
        if blocked is None:
            raise CheckpointError(f"{path}: cannot look at it ({problem.strerror})") from None
        raise CheckpointError(f"{blocked}: cannot look inside the folder for {path.relative_to(blocked)} "
                              f"({problem.strerror})") from None
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "other"


def _stats(path: Path) -> bool:
    try:
        path.stat()
        return True
    except OSError:
        return False


def safetensors_in(folder: Path) -> list[Path]:
    """The *.safetensors entries of `folder`, sorted, or one CheckpointError if the folder cannot be listed
    (Path.glob would silently find nothing in a folder without read permission)."""
    try:
        return sorted(entry for entry in folder.iterdir() if entry.name.endswith(".safetensors"))
    except OSError as problem:
        raise CheckpointError(f"{folder}: cannot list the folder ({problem.strerror})") from None


def find_checkpoint(path) -> tuple[str, Path, str]:
    """Which layout a path holds: -> ("original" or "hf", the folder to read, how it was found). A folder or
    file that cannot be looked at or listed (permissions) is one CheckpointError naming it."""
    given = Path(path)
    folder = given.parent if _kind(given) == "file" else given
    if _kind(folder) != "folder":
        raise CheckpointError(f"{given}: no such folder (expected a gpt-oss checkpoint: config.json + "
                              f"*.safetensors, or a downloaded model holding original/)")
    original = folder / "original"
    if _kind(original / "config.json") == "file" and safetensors_in(original):
        beside = "; the Hugging Face files beside it are not used" if _kind(folder / "config.json") == "file" else ""
        return "original", original, f"the original/ folder of a downloaded model in {folder}{beside}"
    config_path = folder / "config.json"
    if _kind(config_path) != "file":
        raise CheckpointError(f"{folder}: no config.json (expected a gpt-oss checkpoint folder: config.json + "
                              f"*.safetensors, or a downloaded model holding original/)")
    if hf.is_hf_config(read_json(config_path)):
        return "hf", folder, f"a Hugging Face layout folder {folder}"
    return "original", folder, f"an original-layout folder {folder}"


def default_cache_budget() -> int:
    """Bytes of float32 copies to keep: MINIGPTOSS_CACHE_GIB if set, else min(6 GiB, a quarter of RAM)."""
    gib = environment.cache_gib()
    if gib is not None:
        return int(gib * 2**30)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_CACHE_CAP
    return min(DEFAULT_CACHE_CAP, ram // 4)


def open_checkpoint(path, cache_bytes: int | None = None,
                    in_place_min_weights: int | None = None) -> tuple[Config, LazyWeights, CheckpointInfo]:
    """Find, validate and map a checkpoint: -> (config, lazily widened weights, what was found). Reads headers only.
    in_place_min_weights: one-token products read bf16 matrices this large in place (the compiled kernel is on;
    see lazy.cache_plan), so they are not kept."""
    environment.check()  # MINIGPTOSS_THREADS and _CACHE_GIB: refused here, with their names, if unusable
    layout, folder, how = find_checkpoint(path)
    if layout == "original":
        config, stored, files, layout = _open_original(folder)
    else:
        config, stored, files, layout = _open_hf(folder)
    if cache_bytes is not None and not (isinstance(cache_bytes, (int, float)) and 0 <= cache_bytes < 2**50):
        raise CheckpointError(f"cache_bytes must be a number of bytes >= 0 (or None for the default), "
                              f"got {cache_bytes!r}")
    budget = default_cache_budget() if cache_bytes is None else int(cache_bytes)
    keep, keep_rows = cache_plan(stored, budget, in_place_min_weights)
    weights = LazyWeights(stored, keep, keep_rows=keep_rows)
    weights.check_files = functools.partial(_check_unchanged, tuple(files))
    experts = sum(s.nbytes for name, s in stored.items() if ".mlp.mlp" in name and not name.endswith("_bias"))
    total = sum(s.nbytes for s in stored.values())
    info = CheckpointInfo(layout, folder, how, tuple(file.path for file in files), experts, total - experts,
                          weights.planned_bytes(), budget)
    return config, weights, info


def _check_unchanged(files: tuple[SafetensorsFile, ...]) -> None:
    """Every file of a loaded checkpoint still as `load` saw it (a few fstat calls: cheap before each pass)."""
    for file in files:
        file.check_unchanged()


def _open_files(files: list[Path]) -> dict[str, SafetensorsFile]:
    """name -> the file holding it, refusing a name held twice."""
    where: dict[str, SafetensorsFile] = {}
    for path in files:
        file = SafetensorsFile(path)
        for name in file.header:
            if name in where:
                raise CheckpointError(f"{path}: tensor {name!r} appears in more than one file "
                                      f"(also in {where[name].path.name})")
            where[name] = file
    return where


def _open_original(folder: Path):
    config = Config.from_json(folder / "config.json")
    files = safetensors_in(folder)
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors file next to config.json")
    where = _open_files(files)
    _check_layer_count(where, config, folder / "config.json", "block.")
    specs = {name: ((dtype,), shape) for name, (dtype, shape) in tensor_specs(config).items()}
    check_specs(where, specs, folder / "config.json")
    stored = {name: Stored(where[name].dtype(name), (where[name].array(name),),
                           release=functools.partial(where[name].release, name)) for name in specs}
    return config, stored, _unique(where.values()), "original"


def _open_hf(folder: Path):
    config_path = folder / "config.json"
    config = hf.config_from_hf(read_json(config_path), source=str(config_path))
    where = _open_files(_hf_files(folder))
    _check_layer_count(where, config, config_path, "model.layers.")
    dequantized = hf.is_dequantized(where)
    check_specs(where, hf.hf_tensor_specs(config, dequantized), config_path)
    stored = {}
    for name, (parts, transposed) in hf.hf_sources(config, dequantized).items():
        dtypes = {where[part].dtype(part) for part in parts}
        if len(dtypes) > 1:
            raise CheckpointError(f"{where[parts[0]].path}: tensors {', '.join(map(repr, parts))} (which form "
                                  f"{name!r}) mix dtypes {sorted(dtypes)}")
        releases = [functools.partial(where[part].release, part) for part in parts]
        release = releases[0] if len(parts) == 1 else lambda rows=None, releases=releases: [r() for r in releases]
        stored[name] = Stored(dtypes.pop(), tuple(where[part].array(part) for part in parts), transposed, release)
    return config, stored, _unique(where.values()), "hf-dequantized" if dequantized else "hf-mxfp4"


def _hf_files(folder: Path) -> list[Path]:
    """The safetensors files of a Hugging Face folder: those its index names, or all of them."""
    index_path = folder / "model.safetensors.index.json"
    if _kind(index_path) != "file":
        files = safetensors_in(folder)
        if not files:
            raise CheckpointError(f"{folder}: no *.safetensors file next to config.json")
        return files
    index = read_json(index_path, CheckpointError)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path}: expected a 'weight_map' object of tensor name -> file name")
    files = []
    for file_name in dict.fromkeys(weight_map.values()):
        path = folder / file_name
        if Path(file_name).name != file_name or _kind(path) != "file":
            raise CheckpointError(f"{index_path}: names file {file_name!r}, which is not in {folder}")
        files.append(path)
    for path in files:  # the index and the files' headers must agree
        names = set(read_safetensors_header(path)[0])
        listed = {name for name, file_name in weight_map.items() if file_name == path.name}
        for name in sorted(listed - names)[:1]:
            raise CheckpointError(f"{index_path}: says tensor {name!r} is in {path.name}, which does not hold it")
        for name in sorted(names - listed)[:1]:
            raise CheckpointError(f"{path}: holds tensor {name!r}, which {index_path.name} does not list there")
    return files


def _unique(files) -> list[SafetensorsFile]:
    return list({id(file): file for file in files}.values())


def check_specs(where: dict[str, SafetensorsFile], specs: dict[str, tuple[tuple[str, ...], tuple]],
                config_path) -> None:
    """Every tensor the config implies is there with an accepted dtype and its shape, and nothing else is."""
    for name, (dtypes, shape) in specs.items():
        if name not in where:
            raise CheckpointError(f"{config_path.parent}: tensor {name!r} is missing (expected {dtypes[0]} "
                                  f"{list(shape)}){_layout_hint(where, specs)}")
        file = where[name]
        if file.dtype(name) not in dtypes or file.shape(name) != tuple(shape):
            raise CheckpointError(f"{file.path}: tensor {name!r} is {file.dtype(name)} {list(file.shape(name))}, "
                                  f"but {config_path} implies {' or '.join(dtypes)} {list(shape)}")
    extra = [name for name in where if name not in specs]
    if extra:
        raise CheckpointError(f"{where[extra[0]].path}: unexpected tensor {extra[0]!r} for {config_path} "
                              f"({len(extra)} extra in all; is num_hidden_layers right?)")


def _check_layer_count(where: dict[str, SafetensorsFile], config: Config, config_path: Path, prefix: str) -> None:
    """A config may not name more layers than the files hold: checked on the headers' names before the list of
    expected tensors is built (which takes time and memory in proportion to num_hidden_layers)."""
    layers = {int(index) for index, _, _ in (name[len(prefix):].partition(".") for name in where
                                             if name.startswith(prefix)) if index.isdecimal() and len(index) < 10}
    held = max(layers) + 1 if layers else 0
    if config.num_hidden_layers > (held if layers else len(where)):
        found = f"only layers 0..{held - 1}" if layers else f"no {prefix}N.* tensors"
        raise CheckpointError(f"{config_path}: num_hidden_layers is {config.num_hidden_layers}, but the safetensors "
                              f"files hold {found} (is num_hidden_layers right?)")


def _layout_hint(where, specs) -> str:
    """Why every name might be missing: the files hold the other layout's names."""
    theirs_hf = any(name.startswith(("model.", "lm_head")) for name in where)
    ours_hf = any(name.startswith("model.") for name in specs)
    if theirs_hf and not ours_hf:
        return "; the files hold Hugging Face names but config.json is in the original format"
    if ours_hf and not theirs_hf and where:
        return "; the files hold original names but config.json is in the Hugging Face format"
    return ""


# -- memory -----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a forward pass, in bytes, by kind."""

    experts_mapped: int  # expert pages the router may touch: file-backed, reclaimable
    other_mapped: int  # bf16 pages mapped and not handed back (tensors widened per use, embedding rows)
    kept: int  # float32 copies kept (private)
    working: int  # activations, KV cache, temporaries (private)

    @property
    def resident(self) -> int:
        return self.experts_mapped + self.other_mapped + self.kept + self.working

    @property
    def private(self) -> int:
        return self.kept + self.working


def working_bytes(config: Config, tokens: int, context: int = 0) -> int:
    """Rough activations + temporaries of one forward pass over `tokens` new tokens after `context` cached ones."""
    c, T = config, tokens
    S = context + tokens
    H, I, k = c.hidden_size, c.intermediate_size, c.experts_per_token
    qkv_rows = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim
    logits = 2 * T * c.vocab_size * 4  # logits, and one temporary
    # scores, exp, probs, mask-sized temporaries: whole up to CHUNK_BYTES of scores, else fast/attention.py's
    # chunks (a few MiB) and its per-layer copies of q, k, v and z
    scores = 4 * c.num_attention_heads * T * S
    attention = 4 * scores if scores <= CHUNK_BYTES else \
        16 * 2**20 + 4 * 2 * (T + S) * c.num_attention_heads * c.head_dim
    moe = 3 * T * k * (2 * I + I + H) * 4  # mlp1, swiglu, expert_out and gathered rows
    widened = (qkv_rows + H) * H * 4  # one layer's attention weights widened per use
    decode = 2 * (2 * I) * H * 4 // 8  # decoded expert chunks (fastmxfp4), generous
    kv = 2 * c.num_hidden_layers * S * c.num_key_value_heads * c.head_dim * 4
    return logits + attention + moe + widened + decode + kv + 128 * 2**20  # + interpreter, NumPy, BLAS


def memory_estimate(config: Config, weights: LazyWeights, tokens: int, context: int = 0) -> MemoryEstimate:
    """What a forward pass over `tokens` tokens (after `context` cached ones) will need, before it starts.

    Experts: the expected share a pass touches if routing were uniform, 1 - (1 - k/E)^tokens (all of them for a
    256-token prompt; k/E for one decoded token; a session touches them all sooner or later).
    """
    share = 1 - (1 - config.experts_per_token / config.num_experts) ** tokens
    experts = other = 0
    for name, stored in weights.stored.items():
        if ".mlp.mlp" in name and not name.endswith("_bias"):
            experts += round(share * stored.nbytes)
        elif name == "embedding.weight":
            other += min(stored.nbytes, (tokens + context) * stored.nbytes // len(stored.parts[0]) * 2)
        elif name not in weights.keep:  # mapped: all of it, or the rows not kept
            other += stored.nbytes - stored.nbytes * weights.keep_rows.get(name, 0) // len(stored.parts[0])
    return MemoryEstimate(experts, other, weights.planned_bytes(), working_bytes(config, tokens, context))


# -- writing ----------------------------------------------------------------------------------------------------

def _stored_tensors(config: Config, weights) -> dict[str, tuple[str, np.ndarray]]:
    """Original name -> (dtype, bits or uint8) for writing: float32 rounded to bf16; a lazily loaded
    checkpoint's own bytes where they are still as read."""
    tensors = {}
    for name, (dtype, _) in tensor_specs(config).items():
        stored = weights.stored.get(name) if isinstance(weights, LazyWeights) else None
        unchanged = stored is not None and name not in weights._overrides
        if unchanged and stored.dtype == dtype and len(stored.parts) == 1 and not stored.transposed:
            tensors[name] = (dtype, stored.parts[0])
            continue
        array = weights[name]
        tensors[name] = (dtype, f32_to_bf16_bits(array) if dtype == "BF16" else array)
    return tensors


def write_checkpoint(path, config: Config, weights) -> None:
    """Write config.json + model.safetensors in the original layout (float32 tensors rounded to bf16)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", _stored_tensors(config, weights))
    config.to_json(folder / "config.json")


def hf_shard_names(count: int) -> list[str]:
    """transformers' conversion names n shards model-00000-of-{n-1:05d} ... (as in the published gpt-oss)."""
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count - 1:05d}.safetensors" for i in range(count)]


def shard(specs: dict[str, tuple[str, tuple[int, ...]]], count: int) -> list[list[str]]:
    """Split tensor names, in order, into `count` runs of roughly equal bytes."""
    sizes = {name: math.prod(shape) * DTYPES[dtype].itemsize for name, (dtype, shape) in specs.items()}
    target, runs, used = sum(sizes.values()) / count, [[]], 0
    for name, size in sizes.items():
        if used >= target * len(runs) and len(runs) < count:
            runs.append([])
        runs[-1].append(name)
        used += size
    return runs


def write_hf_index(folder: Path, runs: list[list[str]], specs) -> None:
    """model.safetensors.index.json for shards written from `runs` (skipped for a single file)."""
    names = hf_shard_names(len(runs))
    if len(runs) == 1:
        return
    total = sum(math.prod(shape) * DTYPES[dtype].itemsize for dtype, shape in specs.values())
    weight_map = {name: file for run, file in zip(runs, names) for name in run}
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")


def write_hf_checkpoint(path, config: Config, weights, shards: int = 1, dequantized: bool = False) -> None:
    """Write `weights` in the Hugging Face layout: config.json (transformers' keys), model*.safetensors and, when
    sharded, model.safetensors.index.json. dequantized=True stores the experts decoded, transposed, as BF16."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    original = _stored_tensors(config, weights)
    if dequantized:
        for n in range(config.num_hidden_layers):
            for which in ("mlp1", "mlp2"):
                prefix = f"block.{n}.mlp.{which}_weight"
                dense = decode_mxfp4(original.pop(f"{prefix}.blocks")[1], original.pop(f"{prefix}.scales")[1])
                original[prefix] = ("BF16", f32_to_bf16_bits(dense))  # exact: FP4 times a power of two
    tensors = hf.hf_tensors_from_original(config, original, dequantized)
    specs = {name: (dtype, tuple(array.shape)) for name, (dtype, array) in tensors.items()}
    runs = shard(specs, shards)
    for run, file in zip(runs, hf_shard_names(len(runs))):
        write_safetensors(folder / file, {name: tensors[name] for name in run})
    write_hf_index(folder, runs, specs)
    (folder / "config.json").write_text(json.dumps(hf.hf_config_dict(config, mxfp4=not dequantized), indent=2)
                                        + "\n")


__all__ = ["CheckpointError", "ConfigError", "CheckpointInfo", "MemoryEstimate", "open_checkpoint",
           "write_checkpoint", "write_hf_checkpoint", "find_checkpoint",
           "write_safetensors", "write_safetensors_stream", "read_safetensors_header", "memory_estimate",
           "default_cache_budget"]
