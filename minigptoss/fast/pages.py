"""Ask the OS to start reading a memory-mapped tensor's pages before it is used: madvise(MADV_WILLNEED).

A loaded checkpoint's MXFP4 experts stay in the file's pages (checkpoint/files.py), which the kernel may evict
when they are left untouched (here after about a minute). Read on demand, an evicted expert then costs one page
fault at a time as the product walks it; told first, the kernel reads the routed experts' pages ahead, in large
requests, while the products run (measured on gpt-oss-20b after a pause, issue 25: a cold decode step 6.50 / 3.84
s without, 2.95 / 2.60 s with). A hint only: it never changes a number, and where it is unavailable (not Linux,
a failing call) nothing happens. `ENABLED` lets benchmarks/levers.py measure it against nothing.
An expert advised less than RECENT_S seconds ago is not advised again: its pages were just read, and each call
walks the expert's page tables (the 384 calls of a warm gpt-oss-20b decode step cost ~25 ms in a profile).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import time

import numpy as np

MIN_BYTES = 1 << 20  # smaller tensors (the tiny models) are not worth a system call
MADV_WILLNEED = getattr(mmap, "MADV_WILLNEED", None)
ENABLED = True
RECENT_S = 10.0  # well under the ~1 minute after which untouched pages were seen evicted here
_advised: dict[tuple[int, int], float] = {}  # (address, bytes) -> when it was last advised (time.monotonic)


def will_need(array: np.ndarray) -> None:
    """Hint that the pages under a contiguous array (a view into a memory-mapped file) are about to be read.
    (On memory that is not a file's the call does nothing useful, and no harm: the caller asks for mapped ones.)"""
    if not ENABLED or MADV_WILLNEED is None or array.nbytes < MIN_BYTES:
        return
    madvise = _madvise()
    if madvise is None or not array.flags.c_contiguous:
        return
    start, now = array.ctypes.data, time.monotonic()
    if now - _advised.get((start, array.nbytes), -RECENT_S) < RECENT_S:
        return
    _advised[start, array.nbytes] = now
    first = start - start % mmap.PAGESIZE
    madvise(first, start + array.nbytes - first, MADV_WILLNEED)  # addr page-aligned, as madvise requires


@functools.cache
def _madvise():
    """libc's madvise(addr, length, advice), or None where it cannot be found."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return madvise
