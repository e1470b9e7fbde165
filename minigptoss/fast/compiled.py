"""An optional compiled MXFP4 kernel (numba) for the experts' one-token products: `pip install "minigptoss[fast]"`.

Without numba nothing here runs and nothing changes. With it, `fast/mxfp4.py` hands its one-token products
(every expert of a decode step) to `one_token_rows` below instead of the NumPy table path, on the same two
worker threads (the kernel releases the GIL). Turn it off with the environment variable MINIGPTOSS_NUMBA=0.
The CLI names the kernel in use (`kernel_name`).

    y[o] = sum_g 2^(s[o, g] - 127) * (sum_j v_lo(b) x[32 g + 2 j] + v_hi(b) x[32 g + 2 j + 1])

with b = blocks[o, g, j] and (v_lo, v_hi) = PAIRS[b], a table of 256 rows of the two FP4 values one byte holds
(low nibble first, as mxfp4.unpack_nibbles). Each block's 32 terms are summed in four interleaved float32 chains
(so the processor can overlap them), then scaled, as in fast/mxfp4.py's few-token path; no fastmath, so the
compiler keeps this order. The same terms as the readable definition summed in another order: every output
within 1e-6 of sum_i |x_i w_i| of `x @ decode_mxfp4(blocks, scales).T` (tests/test_fast_compiled.py).
Measured here at gpt-oss-20b's mlp1 (5760 x 2880, two threads, a loaded machine): 12 ms against 28 ms for the
NumPy table path. Several tokens (a prefill) stay on the NumPy paths: a row-decoding variant tried for 2-32
tokens was slower than them.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np

from ..environment import NUMBA, numba_wanted
from ..mxfp4 import FP4_VALUES, scale_values

PAIRS = np.stack([FP4_VALUES[np.arange(256) & 0xF], FP4_VALUES[np.arange(256) >> 4]], axis=-1)  # (256, 2) float32
SCALES = scale_values(np.arange(256, dtype=np.uint8))  # (256,) float32, NaN for 255

_kernel = None
_lock = threading.Lock()
_failed: str | None = None


def installed() -> bool:
    """numba can be imported (without importing it)."""
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
    return f"compiled MXFP4 kernel (numba {numba.__version__}; {NUMBA}=0 turns it off)"


def _compiled_now() -> None:
    """Compile the kernel whatever MINIGPTOSS_NUMBA says (for the tests of the kernel itself)."""
    if _kernel is None:
        wanted = os.environ.pop(NUMBA, None)
        try:
            kernel()
        finally:
            if wanted is not None:
                os.environ[NUMBA] = wanted


def kernel():
    """The one-token worker (fast/mxfp4.py's signature) when the compiled kernel is enabled, else None. The first
    call compiles it (numba caches the machine code on disk for the next process); if that fails, the NumPy path
    is used from then on and `kernel_name` says why."""
    global _kernel, _failed
    if not enabled():
        return None
    with _lock:
        if _kernel is None and _failed is None:
            try:
                import numba
                compiled = numba.njit(nogil=True, cache=True, fastmath=False)(_one_token_python)
                out = np.empty((1, 1), np.float32)
                compiled(np.ones((1, 32), np.float32), np.zeros((1, 1, 16), np.uint8),
                         np.full((1, 1), 127, np.uint8), PAIRS, SCALES, out, 0, 1)
                _kernel = compiled
            except Exception as problem:  # a numba that cannot compile here: the NumPy path gives the numbers
                _failed = f"{type(problem).__name__}: {(str(problem).splitlines() or [''])[0]}"[:120]
                return None
    return one_token_rows if _kernel is not None else None


def one_token_rows(x, blocks, scales, out, start, stop, buffer) -> None:
    """out[:, start:stop] = x W^T for rows start..stop, x (1, in) (fast/mxfp4.py's worker signature; buffer
    unused)."""
    _kernel(x, np.asarray(blocks), np.asarray(scales), PAIRS, SCALES, out, start, stop)


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
