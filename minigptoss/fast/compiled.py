"""Optional compiled MXFP4 kernels (numba) for the experts' products: `pip install "minigptoss[fast]"`.

Without numba nothing here runs and nothing changes. With it, `fast/mxfp4.py` hands its products to the two
workers below instead of its NumPy paths, on the same two worker threads (the kernels release the GIL). Turn
them off with the environment variable MINIGPTOSS_NUMBA=0. The CLI names the kernels in use (`kernel_name`).

one token (every expert of a decode step):

    y[o] = sum_g 2^(s[o, g] - 127) * (sum_j v_lo(b) x[32 g + 2 j] + v_hi(b) x[32 g + 2 j + 1])

  with b = blocks[o, g, j] and (v_lo, v_hi) = PAIRS[b], a table of 256 rows of the two FP4 values one byte holds
  (low nibble first, as mxfp4.unpack_nibbles). Each block's 32 terms are summed in four interleaved float32
  chains (so the processor can overlap them), then scaled, as in fast/mxfp4.py's few-token path; no fastmath,
  so the compiler keeps this order.

several tokens (a prefill's experts): a chunk of rows is decoded into the thread's buffer, exactly
  decode_mxfp4's float32 weights (FP4 value times a power of two: bit for bit), then one GEMM with all the
  tokens, as fast/mxfp4.py's many-token path does, but from 2 tokens on: the compiled decode is cheap enough
  that decode-then-GEMM beats scaling the block sums (measured at gpt-oss-20b's mlp1 on one thread, a loaded
  machine: 2 tokens 6.4 vs 13.3 ms, 8 tokens 17 vs 22, 32 tokens 26 vs 40, 63 tokens 38 vs 96).

Every output is within 1e-6 of sum_i |x_i w_i| of `x @ decode_mxfp4(blocks, scales).T` (the same terms summed
in another order; tests/test_fast_compiled.py). One token at mlp1's shape on two threads: 12 ms against 28 ms
for the NumPy table path (same loaded machine).

one token through a bf16 matrix (the attention projections and the unembedding of a loaded checkpoint, fed
by fast/dense.py):

    y[o] = sum_i x[i] w[o, i]        w[o, i] = the float32 whose upper 16 bits are bits[o, i] (exact)

  each row widened into a 1-row buffer (in L1), then one dot product. Here the compiler may reassociate the
  sum (numba fastmath {"reassoc"}: no other fast-math liberty, so every product is an exact float32 product of
  exact values), which lets it sum in vector lanes: the order is fixed by the machine code, so a process gives
  the same bits every time, and the result is held to the same 1e-6 of sum_i |x_i w_i| as everything here.
  Reading the 2-byte bits in place beats a kept float32 copy (4 bytes) at memory bandwidth: with the kernel
  on, `minigptoss.load` keeps no float32 copies of these matrices when they are large (checkpoint/lazy.py's
  cache_plan, in_place_min_weights; the tiny models' stay kept and take `x @ W.T`).
  Measured on the 201,088 x 2880 unembedding, one thread, a loaded machine: 101 ms against 118-130 ms for
  the kept float32 product on two threads; a whole gpt-oss-20b decode step (benchmarks/levers.py 5b, 3
  alternating rounds, idle machine): 0.832 s read in place against 0.944 s through kept float32 copies.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading

import numpy as np

from ..environment import NUMBA, numba_wanted
from ..mxfp4 import FP4_VALUES, scale_values

PAIRS = np.stack([FP4_VALUES[np.arange(256) & 0xF], FP4_VALUES[np.arange(256) >> 4]], axis=-1)  # (256, 2) float32
SCALES = scale_values(np.arange(256, dtype=np.uint8))  # (256,) float32, NaN for 255

_kernel = None  # the compiled one-token kernel, once compiled
_decode = None  # the compiled row decoder
_bf16 = None  # the compiled one-token bf16 product
_lock = threading.Lock()
_failed: str | None = None


@functools.cache  # asked before every expert product: a file-system search each time cost ~3 % of a decode step
def installed() -> bool:
    """numba can be imported (without importing it); looked up once per process."""
    return importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    """The compiled kernel will be used: numba installed, MINIGPTOSS_NUMBA not 0, and it compiled."""
    return numba_wanted() and installed() and _failed is None


def kernel_name() -> str:
    """What runs the experts' products, for a banner: one short phrase."""
    if not installed():
        return 'NumPy MXFP4 kernels (pip install "minigptoss[fast]" for the compiled one)'
    if not numba_wanted():
        return f"NumPy MXFP4 kernels (numba installed, turned off by {NUMBA}={os.environ.get(NUMBA)})"
    if _failed is not None:
        return f"NumPy MXFP4 kernels (numba could not compile the kernel: {_failed})"
    import numba
    return f"compiled MXFP4 kernels (numba {numba.__version__}; {NUMBA}=0 turns them off)"


def _compiled_now() -> None:
    """Compile the kernel whatever MINIGPTOSS_NUMBA says (for the tests of the kernel itself)."""
    if _kernel is None:
        wanted = os.environ.pop(NUMBA, None)
        try:
            kernel()
        finally:
            if wanted is not None:
                os.environ[NUMBA] = wanted


def kernel(tokens: int = 1):
    """The worker (fast/mxfp4.py's signature) for a product with `tokens` rows of x when the compiled kernels
    are enabled, else None. The first call compiles them (numba caches the machine code on disk for the next
    process); if that fails, the NumPy paths are used from then on and `kernel_name` says why."""
    global _kernel, _decode, _bf16, _failed
    if not enabled():
        return None
    with _lock:
        if _kernel is None and _failed is None:
            try:
                import numba
                compile = numba.njit(nogil=True, cache=True, fastmath=False)
                one_token, decode = compile(_one_token_python), compile(_decode_rows_python)
                bf16 = numba.njit(nogil=True, cache=True, fastmath={"reassoc"})(_bf16_rows_python)
                blocks, scales = np.zeros((1, 1, 16), np.uint8), np.full((1, 1), 127, np.uint8)
                one_token(np.ones((1, 32), np.float32), blocks, scales, PAIRS, SCALES, np.empty((1, 1), np.float32),
                          0, 1)
                decode(blocks, scales, PAIRS, SCALES, 0, 1, np.empty((1, 32), np.float32))
                bf16(np.ones(2, np.float32), np.zeros((1, 2), np.uint16), np.empty(1, np.float32), 0, 1,
                     np.empty(2, np.uint32))
                _kernel, _decode, _bf16 = one_token, decode, bf16
            except Exception as problem:  # a numba that cannot compile here: the NumPy path gives the numbers
                _failed = f"{type(problem).__name__}: {(str(problem).splitlines() or [''])[0]}"[:120]
                return None
    if _kernel is None:
        return None
    return one_token_rows if tokens == 1 else many_tokens_rows


def bf16_product():
    """The one-token bf16 product when the compiled kernels are enabled, else None:
    product(x (in,) float32, bits (rows, in) uint16, out (rows,) float32, start, stop, row (in,) uint32)."""
    return _bf16 if kernel(1) is not None else None


def one_token_rows(x, blocks, scales, out, start, stop, buffer) -> None:
    """out[:, start:stop] = x W^T for rows start..stop, x (1, in) (fast/mxfp4.py's worker signature; buffer
    unused)."""
    _kernel(x, np.asarray(blocks), np.asarray(scales), PAIRS, SCALES, out, start, stop)


def many_tokens_rows(x, blocks, scales, out, start, stop, buffer) -> None:
    """out[:, start:stop] = x W^T for rows start..stop, x (T, in): a chunk of rows (buffer's) decoded, then one
    GEMM with all the tokens, chunk after chunk (fast/mxfp4.py's worker signature)."""
    blocks, scales, step = np.asarray(blocks), np.asarray(scales), buffer.shape[0]
    for first in range(start, stop, step):
        last = min(first + step, stop)
        weights = buffer[:last - first]
        _decode(blocks, scales, PAIRS, SCALES, first, last, weights)  # (n, in) decode_mxfp4's weights
        out[:, first:last] = x @ weights.T


def _decode_rows_python(blocks, scales, pairs, scale_table, start, stop, out):
    """The decoder's source (compiled by numba): out[o - start] = decode_mxfp4 of row o, for o in start..stop."""
    groups = scales.shape[1]
    for o in range(start, stop):
        for g in range(groups):
            scale = scale_table[scales[o, g]]
            for j in range(16):
                b = blocks[o, g, j]
                out[o - start, 32 * g + 2 * j] = pairs[b, 0] * scale
                out[o - start, 32 * g + 2 * j + 1] = pairs[b, 1] * scale


def _bf16_rows_python(x, bits, out, start, stop, row):
    """The bf16 kernel's source: out[o] = sum_i x[i] w[o, i] for o in start..stop, each row of bf16 bits widened
    into `row` (uint32, viewed as float32) first."""
    widened = row.view(np.float32)
    for o in range(start, stop):
        for i in range(bits.shape[1]):
            row[i] = np.uint32(bits[o, i]) << 16
        total = np.float32(0.0)
        for i in range(bits.shape[1]):
            total += widened[i] * x[i]
        out[o] = total


def _one_token_python(x, blocks, scales, pairs, scale_table, out, start, stop):
    """The kernel's source (plain Python, compiled by numba): out[0, o] for rows start..stop, x (1, in)."""
    groups = scales.shape[1]
    for o in range(start, stop):
        total = np.float32(0.0)
        for g in range(groups):
            even_lo = even_hi = odd_lo = odd_hi = np.float32(0.0)  # four independent chains of sums
            for j in range(0, 16, 2):
                b, c = blocks[o, g, j], blocks[o, g, j + 1]
                i = 32 * g + 2 * j
                even_lo += pairs[b, 0] * x[0, i]
                even_hi += pairs[b, 1] * x[0, i + 1]
                odd_lo += pairs[c, 0] * x[0, i + 2]
                odd_hi += pairs[c, 1] * x[0, i + 3]
            total += ((even_lo + even_hi) + (odd_lo + odd_hi)) * scale_table[scales[o, g]]
        out[0, o] = total
