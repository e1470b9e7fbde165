"""Large dense products x W^T on both cores: the attention projections (qkv, out) and the unembedding.

The readable definition is `x @ W.T` (float32). This module computes the same products a chunk of rows of W at a
time, the chunks shared between the expert kernel's worker threads (fast/mxfp4.py's pool) with OpenBLAS on one
thread, so that no BLAS thread is left busy-waiting on the core the MXFP4 workers need (measured on gpt-oss-20b:
36-39 % of a decode step, issue 25). A matrix-vector product is bound by memory bandwidth, and two threads read
faster than one (here 16.6 GB/s on one, 23.5 GB/s on two).

    out[..., a:b] = x @ widen(W[a:b]).T        for the chunks [a, b) of CHUNK_BYTES of float32 rows each

`widen` (optional) turns a chunk of stored rows into float32 (a checkpoint's bf16 unembedding, when it is not
kept widened): each thread widens into one reused buffer of CHUNK_BYTES, small enough to stay in cache, so a
widened copy of the whole matrix never exists (at gpt-oss's width, 4 MiB is 364 rows). The chunk bounds depend
on the matrix's shape only, never on the number of threads, so the bits do not depend on MINIGPTOSS_THREADS;
a BLAS may round a chunk's product unlike the whole one, so the result is held to within 1e-6 of
sum_i |x_i w_i| of `x @ W.T` by tests (tests/test_fast_dense.py), never to the bits. Matrices below
PARALLEL_MIN_WEIGHTS (the tiny models) take `x @ W.T` itself.

With the optional compiled kernels (fast/compiled.py), one row of x against a large matrix of bf16 bits
(`bf16_bits=True`, at least PARALLEL_MIN_WEIGHTS: `minigptoss.load` keeps no float32 copy of those) is read in
place instead, the rows split between the same two threads: no widened chunk at
all, half the bytes of a float32 copy.
"""

from __future__ import annotations

import threading

import numpy as np

from . import compiled
from . import mxfp4 as fastmxfp4

CHUNK_BYTES = 4 * 2**20  # float32 bytes of W per chunk (a widened chunk lives in one reused per-thread buffer)
PARALLEL_MIN_WEIGHTS = 1 << 20  # below this the readable product, on the caller's thread

_local = threading.local()


def chunk_rows(cols: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Rows of a (rows, cols) float32 matrix in one chunk: at least 1."""
    return max(1, chunk_bytes // (4 * cols))


def matmul_t(x: np.ndarray, weight: np.ndarray, widen=None, chunk_bytes: int = CHUNK_BYTES,
             bf16_bits: bool = False) -> np.ndarray:
    """x W^T in float32:  x (..., cols), weight (rows, cols) -> (..., rows).

    widen(stored_rows, out) -> out: fills `out` (n, cols) float32 from n stored rows (None: weight is float32).
    bf16_bits: weight holds bf16 bit patterns (uint16) and widen widens them (the compiled kernel may read them).
    """
    rows, cols = weight.shape
    if widen is None and rows * cols < PARALLEL_MIN_WEIGHTS:
        return (x @ weight.T).astype(np.float32, copy=False)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((*x.shape[:-1], rows), dtype=np.float32)
    product = compiled.bf16_product() if bf16_bits and x.size == cols and rows * cols >= PARALLEL_MIN_WEIGHTS \
        else None
    if product is not None:  # one token, a large matrix of bf16 bits: read in place (fast/compiled.py)
        _in_place(product, x.reshape(cols), weight, out.reshape(rows))
        return out
    step = chunk_rows(cols, chunk_bytes)
    chunks = [(start, min(start + step, rows)) for start in range(0, rows, step)]
    workers = fastmxfp4.WORKERS if rows * cols >= PARALLEL_MIN_WEIGHTS else 1
    parts = [chunks[len(chunks) * i // workers:len(chunks) * (i + 1) // workers] for i in range(workers)]
    parts = [part for part in parts if part]
    with fastmxfp4.one_blas_thread():
        fastmxfp4.run_split([(_rows, x, weight, widen, out, part, step) for part in parts])
    return out


def _in_place(product, x, bits, out) -> None:
    """out = W x for bf16 bits W (rows, cols), the rows split in halves between the pool's threads."""
    rows, workers = len(bits), fastmxfp4.WORKERS
    fastmxfp4.run_split([(_in_place_rows, product, x, bits, out, rows * i // workers, rows * (i + 1) // workers)
                         for i in range(workers)])


def _in_place_rows(product, x, bits, out, start, stop) -> None:
    """out[start:stop] = W[start:stop] x, with this thread's reused row buffer."""
    row = getattr(_local, "bits_row", None)
    if row is None or row.shape != (bits.shape[1],):
        row = _local.bits_row = np.empty(bits.shape[1], dtype=np.uint32)
    product(x, np.asarray(bits), out, start, stop, row)


def _rows(x, weight, widen, out, chunks, step) -> None:
    """out[..., a:b] = x @ W[a:b]^T for each chunk (a, b), widening each into this thread's buffer if asked."""
    buffer = _buffer(step, weight.shape[1]) if widen is not None else None
    for start, stop in chunks:
        if widen is None:
            chunk = weight[start:stop]  # (n, cols) float32, used in place
        else:
            chunk = widen(weight[start:stop], buffer[:stop - start])  # (n, cols) float32
        out[..., start:stop] = x @ chunk.T


def _buffer(rows: int, cols: int) -> np.ndarray:
    """This thread's widening buffer (rows, cols) float32, reused across calls of the same width."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.shape != (rows, cols):
        buffer = _local.buffer = np.empty((rows, cols), dtype=np.float32)
    return buffer
