"""The environment variables minigptoss reads, parsed in one place, each refused with its name if unusable.

    MINIGPTOSS_THREADS     threads per fast MXFP4 product (fast/mxfp4.py), a whole number >= 1
                           (default min(2, cores))
    MINIGPTOSS_CACHE_GIB   GiB of float32 weight copies a loaded checkpoint keeps (checkpoint/files.py),
                           a finite number >= 0 (default min(6 GiB, a quarter of RAM))
    MINIGPTOSS_NUMBA       0 turns off the compiled expert kernel (fast/compiled.py), 1 or unset: use it
                           when numba is installed

Importing minigptoss never fails because of them: `threads()` falls back to the default when asked not to be
strict (at import), and `open_checkpoint` (every `load`) and the command line call `check()`, which refuses a
bad value with one sentence naming the variable. Standard library only.
"""

import math
import os

from .errors import SettingError

THREADS = "MINIGPTOSS_THREADS"
CACHE_GIB = "MINIGPTOSS_CACHE_GIB"
NUMBA = "MINIGPTOSS_NUMBA"


def threads(default: int, strict: bool = True) -> int:
    """MINIGPTOSS_THREADS as a whole number >= 1, or `default` when unset (or invalid and not strict)."""
    text = os.environ.get(THREADS, "").strip()
    if not text:
        return default
    if text.isascii() and text.isdigit() and len(text) <= 6 and int(text) >= 1:
        return int(text)
    if not strict:
        return default
    raise SettingError(f"environment variable {THREADS}={os.environ[THREADS]!r} must be a whole number of "
                       f"threads >= 1 (or unset, for min(2, cores))")


def cache_gib() -> float | None:
    """MINIGPTOSS_CACHE_GIB as a finite number >= 0 of GiB, or None when unset."""
    text = os.environ.get(CACHE_GIB, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 2**40:  # NaN, infinities and negatives fail this test
        raise SettingError(f"environment variable {CACHE_GIB}={os.environ[CACHE_GIB]!r} must be a finite number "
                           f"of GiB >= 0 (or unset, for min(6 GiB, a quarter of RAM))")
    return value


def numba_wanted(strict: bool = False) -> bool:
    """MINIGPTOSS_NUMBA: False for 0, True for 1 or unset (or an unusable value, when not strict)."""
    text = os.environ.get(NUMBA, "").strip()
    if text in ("", "0", "1"):
        return text != "0"
    if not strict:
        return True
    raise SettingError(f"environment variable {NUMBA}={os.environ[NUMBA]!r} must be 0 (NumPy kernels only) or 1 "
                       f"(or unset: the compiled kernel when numba is installed)")


def check() -> None:
    """Refuse any unusable minigptoss environment variable, with its name (a SettingError)."""
    threads(1)
    cache_gib()
    numba_wanted(strict=True)
