"""The environment variables minigptoss reads, parsed in one place, each refused with its name if unusable.

    MINIGPTOSS_THREADS     threads per fast MXFP4 product (fast/mxfp4.py), a whole number >= 1
                           (default min(2, cores))
    MINIGPTOSS_CACHE_GIB   GiB of float32 weight copies a loaded checkpoint keeps (checkpoint/files.py),
                           a finite number >= 0 (default min(6 GiB, a quarter of RAM))

Importing minigptoss never fails because of them: `threads()` falls back to the default when asked not to be
strict (at import), and `open_checkpoint` (every `load`) and the command line call `check()`, which refuses a
bad value with one sentence naming the variable. Standard library only.
"""

import math
import os

from .errors import SettingError

THREADS = "MINIGPTOSS_THREADS"
CACHE_GIB = "MINIGPTOSS_CACHE_GIB"


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


def check() -> None:
    """Refuse any unusable minigptoss environment variable, with its name (a SettingError)."""
    threads(1)
    cache_gib()
