"""Lazy widening: the mapping a loaded checkpoint offers instead of a dict of float32 arrays.

`LazyWeights` maps the original names to the file's memory-mapped arrays, widening bf16 to float32 when a
tensor is used and keeping the widened copies planned by `cache_plan` within a byte budget. Like a plain dict
of arrays it satisfies the forward pass's weights interface (`model.weight_rows`, `model.weight_product`):
`rows(name, ids)` and `matmul_t(x, name)` serve the embedding and unembedding without widening them whole.
What it does not do: parse files (`files.py`) or decide names and shapes (`tensors.py`).
"""

import dataclasses
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from .tensors import bf16_bits_to_f32

DENSE_EXPERT_SUFFIXES = ("mlp.mlp1_weight", "mlp.mlp2_weight")  # already-dequantized expert stacks


@dataclasses.dataclass(frozen=True)
class Stored:
    """One tensor as the checkpoint holds it, before any conversion.

    dtype       safetensors dtype of the parts: "BF16" (uint16 bit patterns), "F32", or "U8" (MXFP4 parts)
    parts       arrays, usually memory-mapped, joined along axis 0 to make the tensor: one part, or a Hugging
                Face q, k, v triple that forms the original qkv
    transposed  the part holds per-expert matrices as (E, in, out) (an already-dequantized Hugging Face
                checkpoint) while the tensor is (E, out, in)
    release     release(rows=None): hand back the source pages of rows [start, stop), or of the whole tensor,
                once they have been widened and kept (or None)
    """

    dtype: str
    parts: tuple
    transposed: bool = False
    release: Callable[..., None] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        first = self.parts[0].shape
        rows = sum(part.shape[0] for part in self.parts)
        shape = (rows, *first[1:])
        return (*shape[:-2], shape[-1], shape[-2]) if self.transposed else shape

    @property
    def nbytes(self) -> int:
        """Bytes on disk."""
        return sum(part.nbytes for part in self.parts)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


def widen(dtype: str, array: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A stored array -> float32 values: BF16 bits widened exactly; F32 passed through (no copy unless `out`)."""
    if dtype == "BF16":
        return bf16_bits_to_f32(array, out)
    if dtype == "F32":
        if out is None:
            return np.asarray(array, dtype=np.float32)
        out[...] = array
        return out
    raise ValueError(f"cannot widen a {dtype} tensor to float32")


def is_dense_expert_stack(name: str, stored: Stored) -> bool:
    """Dense expert weights (E, out, in) are widened one expert at a time, never as a whole."""
    return stored.dtype != "U8" and name.endswith(DENSE_EXPERT_SUFFIXES)


def widens(name: str, stored: Stored) -> bool:
    """Whether `w[name]` makes a float32 copy of the whole tensor (the kind of tensor a cache can keep)."""
    if stored.dtype == "U8" or is_dense_expert_stack(name, stored) or name == "embedding.weight":
        return False  # raw MXFP4 parts; per-expert stacks; embedding rows are gathered per token
    return not (stored.dtype == "F32" and len(stored.parts) == 1)  # a lone F32 part is used in place


PRODUCT_ONLY = ("attn.qkv.weight", "attn.out.weight", "unembedding.weight")  # used only through matmul_t


def cache_plan(stored: Mapping[str, Stored], budget_bytes: int,
               in_place_min_weights: int | None = None) -> tuple[list[str], dict[str, int]]:
    """The float32 copies to keep within `budget_bytes`: (the tensors kept whole, {name: leading rows kept}).

    In forward order, each tensor that still fits is kept whole. What is left of the budget then keeps the
    leading rows of the first product-only matrix that did not fit (`matmul_t` widens its other rows a chunk at
    a time on each use). On a 16 GiB machine (a 4 GiB budget) gpt-oss-20b keeps its attention whole and three
    quarters of the unembedding's rows, instead of widening all of them each token.
    in_place_min_weights: product-only matrices of at least this many weights are not kept at all, because a
    compiled kernel multiplies one token by their bf16 bits in place, faster than by a float32 copy
    (fast/compiled.py; None: no such kernel).
    """
    def read_in_place(name: str, tensor: Stored) -> bool:
        return in_place_min_weights is not None and product_only(name, tensor) and tensor.size >= in_place_min_weights

    candidates = {name: tensor for name, tensor in stored.items()
                  if widens(name, tensor) and not read_in_place(name, tensor)}
    keep, used = [], 0
    for name, tensor in candidates.items():
        if used + 4 * tensor.size <= budget_bytes:
            keep.append(name)
            used += 4 * tensor.size
    for name, tensor in candidates.items():
        if name not in keep and product_only(name, tensor):
            rows, cols = tensor.shape
            kept = min(rows - 1, (budget_bytes - used) // (4 * cols))
            return keep, ({name: kept} if kept > 0 else {})
    return keep, {}


def product_only(name: str, stored: Stored) -> bool:
    """A 2-D matrix in one bf16 part that the pass only multiplies (`matmul_t`, a chunk of rows at a time): it
    can be kept in part, or read in place."""
    return (name.endswith(PRODUCT_ONLY) and stored.dtype == "BF16" and len(stored.parts) == 1
            and not stored.transposed and len(stored.shape) == 2)


def chunked_product(x: np.ndarray, weight: np.ndarray, widen=None, chunk_bytes: int = 4 * 2**20,
                    bf16_bits: bool = False) -> np.ndarray:
    """x W^T in float32, W (rows, cols) taken chunk_bytes of float32 rows at a time, each widened by
    widen(stored_rows, out) into one reused buffer (or used as it is when widen is None):  (..., cols) -> (..., rows).
    bf16_bits (what W holds) is for products that can read bf16 in place (fast/dense.py); here it changes nothing."""
    rows, cols = weight.shape
    if widen is None:
        return (x @ weight.T).astype(np.float32, copy=False)
    step = max(1, chunk_bytes // (4 * cols))
    out = np.empty((*x.shape[:-1], rows), dtype=np.float32)
    buffer = np.empty((min(step, rows), cols), dtype=np.float32)  # one widened chunk, reused
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        out[..., start:stop] = x @ widen(weight[start:stop], buffer[:stop - start]).T  # (stop - start, cols)
    return out


class ExpertStack:
    """Dense expert matrices, widened one expert at a time:  stack[e] -> (out, in) float32."""

    def __init__(self, stored: Stored):
        self.stored, self.shape, self.dtype = stored, stored.shape, np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, e) -> np.ndarray:
        if not isinstance(e, (int, np.integer)):
            raise TypeError("index an ExpertStack with one expert id")
        matrix = widen(self.stored.dtype, self.stored.parts[0][e])  # (out, in), or (in, out) if transposed
        # a contiguous (out, in) copy: x @ W.T then runs exactly as for an MXFP4 expert, to the same bits
        return np.ascontiguousarray(matrix.T) if self.stored.transposed else matrix

    def __array__(self, dtype=None, copy=None):
        """All experts at once, (E, out, in) float32: large; for inspection only."""
        whole = np.stack([self[e] for e in range(len(self))])
        return whole if dtype is None else whole.astype(dtype)


class LazyWeights(Mapping):
    """A checkpoint's tensors under their original names, widened to float32 only when used.

    w[name] holds what `random_weights` would: float32 for BF16/F32 tensors, the raw (memory-mapped) uint8 array
    for MXFP4 parts; dense expert weights come as an `ExpertStack`. Names in `keep` are widened on first use and
    kept (their source pages released); any other tensor is widened each time it is asked for, then dropped.
    `rows` and `matmul_t` serve the embedding and unembedding without widening them whole.
    `w[name] = array` replaces a tensor (kept until deleted with `del`). `on_first_use(name, nbytes)`, if
    set, is called the first time each tensor is touched: a progress hook.
    """

    def __init__(self, stored: Mapping[str, Stored], keep=(), chunk_bytes: int = 4 * 2**20, keep_rows=None):
        self.stored, self.keep, self.chunk_bytes = dict(stored), frozenset(keep), chunk_bytes
        self.keep_rows: dict[str, int] = dict(keep_rows or {})  # name -> leading rows kept (cache_plan)
        self.on_first_use: Callable[[str, int], None] | None = None
        self.check_files: Callable[[], None] | None = None  # raises if a file changed since loading (files.py)
        self._kept: dict[str, np.ndarray] = {}
        self._kept_rows: dict[str, np.ndarray] = {}  # name -> its first keep_rows[name] rows, widened
        self._overrides: dict[str, np.ndarray] = {}
        self._touched: set[str] = set()

    # -- the mapping ----------------------------------------------------------------------------------------

    def __getitem__(self, name: str):
        found = self._overrides.get(name)
        if found is None:
            found = self._kept.get(name)  # (_ready, inlined: this runs ~100 times per forward pass)
        if found is not None:
            return found
        stored = self._touch(name)
        if stored.dtype == "U8":
            return stored.parts[0]
        if is_dense_expert_stack(name, stored):
            return ExpertStack(stored)
        if name not in self.keep:
            return self._widen_whole(stored)
        self._kept[name] = array = self._widen_and_release(stored)
        return array

    def __setitem__(self, name: str, value) -> None:
        self._overrides[name] = value

    def __delitem__(self, name: str) -> None:
        del self._overrides[name]

    def __contains__(self, name) -> bool:
        return name in self._overrides or name in self.stored

    def __iter__(self) -> Iterator[str]:
        yield from self.stored
        yield from (name for name in self._overrides if name not in self.stored)

    def __len__(self) -> int:
        return len(self.stored) + sum(name not in self.stored for name in self._overrides)

    # -- partial access -------------------------------------------------------------------------------------

    def rows(self, name: str, ids: np.ndarray) -> np.ndarray:
        """W[ids] as float32, widening only those rows:  (T,) -> (T, cols)."""
        found = self._ready(name)
        if found is not None:
            return np.asarray(found[ids], dtype=np.float32)
        stored = self._touch(name)
        if len(stored.parts) == 1 and not stored.transposed:
            return widen(stored.dtype, np.asarray(stored.parts[0])[ids])  # a plain view: no memmap bookkeeping
        return self._widen_whole(stored)[ids]

    def matmul_t(self, x: np.ndarray, name: str, product=None) -> np.ndarray:
        """x W^T in float32 for a 2-D W (rows, cols): (..., cols) -> (..., rows); W widened a chunk of rows at a
        time (chunk_bytes of float32, into one reused buffer) unless it is kept (the first call then widens and
        keeps it). product(x, weight, widen=None, chunk_bytes=...): how to multiply (the forward pass passes
        fast/dense.py's, which shares the chunks between two threads); by default `chunked_product`."""
        product = product or chunked_product
        if name in self.keep or name in self._overrides:
            return product(x, np.asarray(self[name], dtype=np.float32))
        stored = self._touch(name)
        if len(stored.parts) != 1 or stored.transposed or stored.dtype == "F32":
            return product(x, self._widen_whole(stored))
        weight, kept = stored.parts[0], 0  # weight (rows, cols): bf16 bits
        if name in self.keep_rows:  # kept in part: its leading rows as float32, the others widened below
            head = self._kept_rows.get(name)
            if head is None:
                head = self._kept_rows[name] = self._widen_and_release(stored, self.keep_rows[name])
            kept, head_product = len(head), product(x, head)  # (..., kept)
        tail_product = product(x, weight[kept:], widen=lambda rows, out: widen(stored.dtype, rows, out),
                               chunk_bytes=self.chunk_bytes, bf16_bits=stored.dtype == "BF16")  # (..., rows - kept)
        return np.concatenate([head_product, tail_product], axis=-1) if kept else tail_product

    # -- bookkeeping ----------------------------------------------------------------------------------------

    @property
    def kept_bytes(self) -> int:
        """Private memory held by widened tensors (and leading rows of tensors) kept so far."""
        return sum(array.nbytes for array in [*self._kept.values(), *self._kept_rows.values()])

    def planned_bytes(self) -> int:
        """Private memory the kept tensors will hold once all have been used."""
        rows = sum(4 * rows * self.stored[name].shape[1] for name, rows in self.keep_rows.items())
        return sum(4 * self.stored[name].size for name in self.keep) + rows

    def _ready(self, name: str):
        if name in self._overrides:
            return self._overrides[name]
        return self._kept.get(name)

    def _touch(self, name: str) -> Stored:
        try:
            stored = self.stored[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in this checkpoint") from None
        if name not in self._touched:
            self._touched.add(name)
            if self.on_first_use is not None:
                self.on_first_use(name, stored.nbytes)
        return stored

    def _widen_and_release(self, stored: Stored, rows: int | None = None) -> np.ndarray:
        """Widen a tensor to keep (or its first `rows` rows), handing its source pages back chunk by chunk (never
        both copies whole)."""
        if len(stored.parts) != 1 or stored.transposed or stored.release is None:
            array = self._widen_whole(stored)
            if stored.release is not None and rows is None:
                stored.release()
            return array if rows is None else array[:rows].copy()
        part = stored.parts[0]
        count = len(part) if rows is None else rows
        array = np.empty((count, *part.shape[1:]), dtype=np.float32)
        step = max(1, self.chunk_bytes // max(1, 4 * part[:1].size))
        for start in range(0, count, step):
            stop = min(start + step, count)
            widen(stored.dtype, part[start:stop], out=array[start:stop])
            stored.release((start, stop))
        if rows is None:
            stored.release()
        return array

    @staticmethod
    def _widen_whole(stored: Stored) -> np.ndarray:
        if len(stored.parts) == 1:
            return widen(stored.dtype, stored.parts[0])
        out = np.empty(stored.shape, dtype=np.float32)
        start = 0
        for part in stored.parts:
            widen(stored.dtype, part, out=out[start:start + len(part)])
            start += len(part)
        return out
