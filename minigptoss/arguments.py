"""Checks of a public function's arguments: each returns the value as the function uses it, or raises one
ArgumentError (or the `error` given) naming the function, the argument, the value and what was expected:

    generate: max_new_tokens must be a whole number >= 0, got 1.5

What it does not do: check values against a model (token ids against the vocabulary: model.check_tokens) or a
config (config.py). NumPy only for its integer and floating types.
"""

import math
import numbers
import os

from .errors import ArgumentError


def shown(value) -> str:
    """The value as the message shows it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_whole(value) -> bool:
    """An int or NumPy integer (not a bool, not a float even if integral)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole_number(where: str, name: str, value, low: int | None = None, high: int | None = None,
                 none: bool = False, error: type[Exception] = ArgumentError, what: str = "") -> int | None:
    """An integer in [low, high] (None allowed when `none`) -> int, or one `error`."""
    if value is None and none:
        return None
    if not _is_whole(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = (f" from {low} to {high}" if low is not None and high is not None else
                  f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")
        raise error(f"{where}: {name} must be a whole number{bounds}{' (or None' + what + ')' if none else ''}, "
                    f"got {shown(value)}")
    return int(value)


def real_number(where: str, name: str, value, low: float = -math.inf, high: float = math.inf,
                above_low: bool = False, error: type[Exception] = ArgumentError, what: str = "") -> float:
    """A finite int or float in [low, high] ((low, high] when `above_low`) -> float, or one `error`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
        and low <= value <= high and not (above_low and value == low)
    if not ok:
        expected = what or (f"a finite number {'>' if above_low else '>='} {low}" + (f" and <= {high}"
                                                                                     if high < math.inf else ""))
        raise error(f"{where}: {name} must be {expected}, got {shown(value)}")
    return float(value)


def whole_numbers(where: str, name: str, values, none: bool = False, low: int | None = 0,
                  error: type[Exception] = ArgumentError) -> list[int] | None:
    """An iterable of integers >= low (not a string, not a single number) -> list, or one `error`."""
    if values is None and none:
        return None
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise error(f"{where}: {name} must be a list of whole numbers{' (or None)' if none else ''}, "
                    f"got {shown(values)}")
    values = list(values)
    for value in values:
        if not _is_whole(value) or (low is not None and value < low):
            raise error(f"{where}: {name} must hold whole numbers{f' >= {low}' if low is not None else ''}, "
                        f"got {shown(value)} in {shown(values)}")
    return [int(value) for value in values]


def path_like(where: str, name: str, value, error: type[Exception] = ArgumentError) -> str | os.PathLike:
    """A str or os.PathLike naming a file or folder (not empty), or one `error`."""
    if not isinstance(value, (str, os.PathLike)) or value == "" or "\0" in os.fspath(value):
        raise error(f"{where}: {name} must be a path (a non-empty str or pathlib.Path), got {shown(value)}")
    return value


def text_patterns(where: str, name: str, values, error: type[Exception] = ArgumentError) -> tuple[str, ...]:
    """Strings (e.g. name patterns) -> tuple, or one `error`."""
    for value in values:
        if not isinstance(value, str):
            raise error(f"{where}: {name} must be strings (name patterns such as 'blocks.0.attn.*'), "
                        f"got {shown(value)}")
    return tuple(values)


def instance(where: str, name: str, value, kind: type, what: str, none: bool = False,
             error: type[Exception] = ArgumentError):
    """`value` if it is a `kind` (or None when `none`), else one `error` saying `what` was expected."""
    if (value is None and none) or isinstance(value, kind):
        return value
    raise error(f"{where}: {name} must be {what}{' (or None)' if none else ''}, got {shown(value)}")
