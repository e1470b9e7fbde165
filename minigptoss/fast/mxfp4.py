"""Fast MXFP4 products for the experts: the numbers of `mxfp4.decode_mxfp4` followed by a matmul, sooner.

`mxfp4.py` is the definition (readable, one idea per line); this module only makes the experts' products
fast, and tests/test_fast_mxfp4.py holds it to that definition. Four ideas:

1. Table decode. Two packed bytes, read as one little-endian uint16, hold four FP4 codes, so one look-up in a
   table of 65,536 rows of four float32 values decodes four weights:
       FOUR_VALUES[u] = (FP4[u & 15], FP4[u >> 4 & 15], FP4[u >> 8 & 15], FP4[u >> 12])       (65536, 4), 1 MiB
   np.take(table, codes, out=buffer) writes into one buffer per thread, reused for every chunk of CHUNK_ROWS
   rows, small enough to stay in cache. The decoded values are exactly those of decode_mxfp4, unscaled.
2. Few tokens (fewer than GEMM_MIN_TOKENS rows of x): scale after the block dot products,
       y[t, o] = sum_g 2^(s[o, g] - 127) * (sum_i v[o, 32 g + i] x[t, 32 g + i])
   The inner 32-wide sums are one batched matrix product over the G blocks; the scales then multiply G partial
   sums per row instead of 32 G weights. Same value as the readable path up to float32 rounding (the same
   terms summed in another order): within 1e-6 of sum_i |x_i w_i| for every output.
3. Many tokens: decode a chunk of rows, scale it (giving exactly decode_mxfp4's float32 weights), and multiply
   it with all the tokens in one GEMM. A BLAS may round a 128-row product unlike one over all the rows
   (OpenBLAS 0.3.31 on an AMD EPYC: 698 of 16,384 values differ in the last bits at gpt-oss's shapes), so this
   too is held to 1e-6 of sum_i |x_i w_i|, not to the bits.
   Measured on 2 cores (gpt-oss-20b mlp1, 5760 x 2880): 1 token 5 ms vs 6.5 ms, 32 tokens 12 vs 16 ms,
   64 tokens 20 vs 22 ms, 96 tokens 30 vs 26 ms: scaling the partial sums wins up to ~64 tokens (not 8: the
   GEMM path pays a full pass to scale the weights), hence GEMM_MIN_TOKENS = 64.
4. Two cores: the rows are split between WORKERS threads (MINIGPTOSS_THREADS, default min(2, cores)).
   np.take, the ufuncs and the matrix products release the GIL. While `linear` runs, OpenBLAS is asked for one
   thread (`one_blas_thread`), so the workers and BLAS never fight over the cores (measured: letting two
   workers each start BLAS threads made 64 tokens at 5760 x 2880 ten times slower). NumPy's OpenBLAS (the
   pthreads build) holds its thread count for the whole process, so the caller's count is saved before and
   restored after (model.forward does the same around the whole pass): nothing outlives the call, and the
   chunk products always run on one BLAS thread, so the bits are the same whatever MINIGPTOSS_THREADS or the
   BLAS thread count is. (Another Python thread of yours calling BLAS while a pass runs would run
   single-threaded meanwhile.)

With numba installed (`pip install "minigptoss[fast]"`), compiled kernels replace ideas 1-3 (fast/compiled.py:
a fused one-token product, and a compiled decode before the GEMM from 2 tokens on; MINIGPTOSS_NUMBA=0 turns
them off), held to the same 1e-6 bound.

Matrices smaller than FAST_MIN_WEIGHTS weights (the tiny test models) take the readable path: there is
nothing to gain there, and their numbers stay exactly those of `decode_mxfp4`.
Memory: the 1 MiB table, and per thread one decode buffer of CHUNK_ROWS x in float32 (1.5 MiB for gpt-oss);
nothing is cached between calls, so nothing grows with the model.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from . import compiled
from ..environment import threads
from ..mxfp4 import BLOCK_SIZE, BYTES_PER_BLOCK, FP4_VALUES, scale_values

GEMM_MIN_TOKENS = 64  # from this many rows of x on, decode-then-GEMM beats scaling the partial sums
CHUNK_ROWS = 128  # weight rows decoded at a time per thread: 128 x 2880 float32 = 1.4 MiB, stays in L2/L3
FAST_MIN_WEIGHTS = 1 << 16  # smaller matrices take the readable path
WORKERS = threads(min(2, os.cpu_count() or 1), strict=False)  # per product; a bad value is refused at load
PARALLEL_MIN_WEIGHTS = 1 << 20  # below this a second thread costs more than it saves

# -- tables ---------------------------------------------------------------------------------------------------


def four_value_table() -> np.ndarray:
    """(65536, 4) float32: row u holds the FP4 values of the four codes in uint16 u, low nibble first."""
    u = np.arange(1 << 16, dtype=np.uint32)
    return np.stack([FP4_VALUES[(u >> shift) & 0xF] for shift in (0, 4, 8, 12)], axis=-1)


FOUR_VALUES = four_value_table()
_FOUR = np.dtype((np.void, 16))  # one row of FOUR_VALUES as a single 16-byte item, so np.take copies it whole
_FOUR_ITEMS = FOUR_VALUES.view(_FOUR).reshape(1 << 16)
SCALES = scale_values(np.arange(256, dtype=np.uint8))  # scale byte -> 2^(e - 127) (NaN for 255), (256,) float32


def block_scales(scales: np.ndarray) -> np.ndarray:
    """(..., G) uint8 -> (..., G) float32, the same numbers as mxfp4.scale_values, by table look-up."""
    return np.take(SCALES, scales)


def decode_unscaled(blocks: np.ndarray, out: np.ndarray) -> np.ndarray:
    """FP4 values of (n, G, 16) uint8 blocks into out (n, G * 32) float32, scales NOT applied.  -> out"""
    n = blocks.shape[0]
    codes = np.ascontiguousarray(blocks).reshape(n, -1).view("<u2")  # (n, 8 G): four codes each
    np.take(_FOUR_ITEMS, codes, out=out.view(_FOUR).reshape(codes.shape), mode="wrap")
    return out


def decode(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """decode_mxfp4 by table look-up, bit for bit:  (out, G, 16) uint8, (out, G) uint8 -> (out, G * 32) float32."""
    rows, groups = scales.shape
    weights = decode_unscaled(blocks, np.empty((rows, groups * BLOCK_SIZE), dtype=np.float32))
    weights.reshape(rows, groups, BLOCK_SIZE)[...] *= block_scales(scales)[..., None]
    return weights


# -- products ---------------------------------------------------------------------------------------------------

def _few_tokens_rows(x_blocks, blocks, scales, out, start, stop, buffer) -> None:
    """out[:, start:stop] = x W^T for rows start..stop, scaling the per-block partial sums.

    x_blocks (G, 32, T): the tokens cut into blocks; buffer (CHUNK_ROWS, G * 32) float32.
    """
    groups = scales.shape[1]
    for first in range(start, stop, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS, stop)
        values = decode_unscaled(blocks[first:last], buffer[:last - first])  # (n, G * 32)
        per_block = values.reshape(last - first, groups, BLOCK_SIZE).transpose(1, 0, 2)  # (G, n, 32)
        partial = np.matmul(per_block, x_blocks)  # (G, n, T): the 32-wide block dot products
        out[:, first:last] = np.einsum("gnt,ng->tn", partial, block_scales(scales[first:last]))


def _gemm_rows(x, blocks, scales, out, start, stop, buffer) -> None:
    """out[:, start:stop] = x W^T for rows start..stop: decode and scale a chunk, then one GEMM with all tokens."""
    groups = scales.shape[1]
    for first in range(start, stop, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS, stop)
        weights = decode_unscaled(blocks[first:last], buffer[:last - first])  # (n, G * 32)
        weights.reshape(last - first, groups, BLOCK_SIZE)[...] *= block_scales(scales[first:last])[..., None]
        out[:, first:last] = x @ weights.T


def linear(x: np.ndarray, blocks: np.ndarray, scales: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x W^T + b with W given as MXFP4:  x (T, in), blocks (out, in/32, 16), scales (out, in/32) -> (T, out).

    Equal to `x @ decode_mxfp4(blocks, scales).T + bias` (see the module notes for how exactly).
    """
    rows, groups = scales.shape
    if blocks.shape != (rows, groups, BYTES_PER_BLOCK) or x.shape[-1] != groups * BLOCK_SIZE:
        raise ValueError(f"MXFP4 blocks {blocks.shape} / scales {scales.shape} do not fit inputs {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    tokens = x.shape[0]
    out = np.empty((tokens, rows), dtype=np.float32)
    compiled_rows = compiled.kernel(tokens)  # numba, when installed (fast/compiled.py)
    if compiled_rows is not None:
        x_in, work = x, compiled_rows
    elif tokens < GEMM_MIN_TOKENS:
        x_in = np.ascontiguousarray(x.reshape(tokens, groups, BLOCK_SIZE).transpose(1, 2, 0))  # (G, 32, T)
        work = _few_tokens_rows
    else:
        x_in, work = x, _gemm_rows
    parallel = WORKERS > 1 and rows * groups * BLOCK_SIZE >= PARALLEL_MIN_WEIGHTS
    spans = _split(rows, WORKERS if parallel else 1)
    with one_blas_thread():
        run_split([(_run, work, x_in, blocks, scales, out, start, stop) for start, stop in spans])
    if bias is not None:
        out += bias
    return out


def _split(rows: int, parts: int) -> list[tuple[int, int]]:
    """rows cut into `parts` spans of whole chunks."""
    chunks = -(-rows // CHUNK_ROWS)
    bounds = [min(rows, (chunks * i // parts) * CHUNK_ROWS) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


# -- threads ----------------------------------------------------------------------------------------------------

_local = threading.local()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _buffer(groups: int) -> np.ndarray:
    """This thread's decode buffer (CHUNK_ROWS, G * 32) float32, reused across calls."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.shape != (CHUNK_ROWS, groups * BLOCK_SIZE):
        buffer = _local.buffer = np.empty((CHUNK_ROWS, groups * BLOCK_SIZE), dtype=np.float32)
    return buffer


def run_split(calls: list[tuple]) -> None:
    """Run each call (function, *arguments) on its own pool thread and wait for all; a lone call runs on the
    caller's thread. The calls write disjoint parts of one output."""
    if len(calls) == 1:
        function, *arguments = calls[0]
        function(*arguments)
        return
    for job in [_pool().submit(*call) for call in calls]:
        job.result()


def _run(work, x_in, blocks, scales, out, start, stop) -> None:
    work(x_in, blocks, scales, out, start, stop, _buffer(scales.shape[1]))


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None or _executor._max_workers != WORKERS:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="minigptoss-mxfp4")
        return _executor


def _forget_pool_after_fork() -> None:
    """A forked child inherits the pool object but not its threads (and maybe a lock a thread held): start afresh."""
    global _executor, _executor_lock, _blas_lock, _blas_scopes
    _executor, _executor_lock, _blas_lock, _blas_scopes = None, threading.Lock(), threading.RLock(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


# -- BLAS threads -------------------------------------------------------------------------------------------------

_blas_lock = threading.RLock()  # guards the two numbers below (never held while a body runs)
_blas_scopes = 0  # one_blas_thread bodies running now, in any thread (nested ones included)
_blas_before = 1  # the count the first of them found, given back when the last one ends


@contextmanager
def one_blas_thread():
    """Run the body with OpenBLAS on one thread, then give the process back the thread count it had.

    NumPy's OpenBLAS is a pthreads build: its thread count is one number for the whole process
    (`openblas_set_num_threads_local` sets that same number there), so it is read and set to 1 when the first
    of the bodies running at once (a forward pass, the expert products inside it, a pass in another thread)
    starts, and restored when the last of them ends: two concurrent callers never restore each other's value,
    and neither waits for the other (a debugger's pass in a thread does not block its screen). Another BLAS (or
    none found, or an OpenMP build, whose count is per thread) is left alone.
    """
    global _blas_scopes, _blas_before
    blas = _process_wide_blas()
    if blas is None:
        yield
        return
    get_threads, set_threads = blas
    with _blas_lock:
        if _blas_scopes == 0:
            _blas_before = get_threads()
            if _blas_before != 1:
                set_threads(1)
        _blas_scopes += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_scopes -= 1
            if _blas_scopes == 0 and _blas_before != 1:
                set_threads(_blas_before)


def blas_threads() -> int | None:
    """OpenBLAS's current thread count (the process's), or None when NumPy's BLAS is not a pthreads OpenBLAS."""
    blas = _process_wide_blas()
    return None if blas is None else blas[0]()


@functools.cache
def _process_wide_blas():
    """(get_num_threads, set_num_threads) of NumPy's OpenBLAS when its thread count is process-wide, else None.

    NumPy's wheels bundle OpenBLAS with prefixed symbols (scipy_openblas_get_num_threads64_); a system
    OpenBLAS has the plain names. openblas_get_parallel says 1 for a pthreads build (0: sequential, 2: OpenMP).
    """
    for path in _openblas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        found = {}
        for what in ("get_num_threads", "set_num_threads", "get_parallel"):
            for symbol in (f"openblas_{what}", f"scipy_openblas_{what}64_", f"scipy_openblas_{what}"):
                if hasattr(library, symbol):
                    found[what] = getattr(library, symbol)
                    break
        if len(found) < 3:
            continue
        found["get_num_threads"].restype = found["get_parallel"].restype = ctypes.c_int
        found["set_num_threads"].argtypes, found["set_num_threads"].restype = [ctypes.c_int], None
        if found["get_parallel"]() != 1:
            return None
        return found["get_num_threads"], found["set_num_threads"]
    return None


def _openblas_paths() -> list[str]:
    """The OpenBLAS libraries loaded in this process (Linux: from /proc/self/maps), NumPy's among them."""
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return []
