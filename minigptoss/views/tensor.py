"""One tensor as a rich renderable: tensor summaries, heatmaps and sparklines of recorded intermediates.

What it does: turn arrays the inspector recorded into rich renderables (statistics, a few values, a small
heatmap for 2-D tensors, a sparkline for 1-D ones). What it does not do: any model math; it only reads arrays.
"""

import numpy as np
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

SPARK_CHARS = "▁▂▃▄▅▆▇█"
# Sequential ramp (dark to bright) for non-negative data; diverging blue-white-red for signed data.
SEQUENTIAL = ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06",
              "#f7d13d", "#fcffa4"]
DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d",
             "#b2182b"]


def tensor_stats(array: np.ndarray) -> dict[str, float]:
    """min, max, mean, std over the finite entries (masked -inf scores are left out), and how many are not."""
    values = np.asarray(array, dtype=np.float64)
    finite = values[np.isfinite(values)]
    stats = {"min": np.nan, "max": np.nan, "mean": np.nan, "std": np.nan}
    if finite.size:
        stats = {"min": finite.min(), "max": finite.max(), "mean": finite.mean(), "std": finite.std()}
    stats["non_finite"] = int(values.size - finite.size)
    return stats


def format_number(x: float) -> str:
    """Compact fixed-width-ish number: 4 significant digits."""
    if not np.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def downsample(matrix: np.ndarray, max_rows: int, max_cols: int) -> np.ndarray:
    """The means of the finite entries over a grid of near-equal blocks (as np.array_split cuts them), so a 2-D
    array fits max_rows x max_cols; NaN (drawn blank) where a block has no finite entry:
        (R, C) -> (min(max_rows, R), min(max_cols, C))
    At least one block each way, however narrow the terminal that asked (a width <= 0 gives one column)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    blocks = [max(1, min(k, n)) for n, k in zip(matrix.shape, (max_rows, max_cols))]  # blocks per axis
    if matrix.size == 0:  # nothing to average: blank cells
        return np.full(blocks, np.nan)
    finite = np.isfinite(matrix)
    starts = [np.array([part[0] for part in np.array_split(np.arange(n), k)])
              for n, k in zip(matrix.shape, blocks)]  # each block's first row, first column

    def block_sums(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(values, starts[0], axis=0), starts[1], axis=1)

    total, count = block_sums(np.where(finite, matrix, 0.0)), block_sums(finite.astype(np.int64))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


SHADES = " ·░▒▓█"  # so a heatmap still reads without colour (piped output, tests)


def cell_style(value: float, low: float, high: float, signed: bool) -> tuple[str, str]:
    """(shade characters, colour) of one heatmap cell; masked (non-finite) cells are blank."""
    if not np.isfinite(value):
        return "  ", "grey15"
    if signed:
        bound = max(abs(low), abs(high)) or 1.0
        level, palette, position = abs(value) / bound, DIVERGING, (value / bound + 1) / 2
    else:
        level = position = (value - low) / ((high - low) or 1.0)
        palette = SEQUENTIAL
    shade = SHADES[min(int(level * len(SHADES)), len(SHADES) - 1)]
    colour = palette[min(max(int(round(position * (len(palette) - 1))), 0), len(palette) - 1)]
    return shade * 2, colour


def heatmap(matrix: np.ndarray, max_rows: int = 16, max_cols: int = 32) -> Text:
    """A 2-D array as shaded, coloured cells (blue-red for signed data, dark-bright otherwise); masked = blank."""
    small = downsample(np.asarray(matrix), max_rows, max_cols)
    finite = small[np.isfinite(small)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    text = Text()
    for row in small:
        for value in row:
            text.append(*cell_style(value, low, high, signed=low < 0))
        text.append("\n")
    text.rstrip()
    return text


def sparkline(vector: np.ndarray, width: int = 48) -> Text:
    """A 1-D array as a line of ▁..█ (block-averaged to `width` characters)."""
    small = downsample(np.asarray(vector, dtype=np.float64).reshape(1, -1), 1, width)[0]
    finite = small[np.isfinite(small)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    span = (high - low) or 1.0
    chars = [SPARK_CHARS[int((v - low) / span * (len(SPARK_CHARS) - 1))] if np.isfinite(v) else " " for v in small]
    return Text("".join(chars), style="cyan")


def first_values(array: np.ndarray, count: int = 6) -> str:
    flat = np.asarray(array).reshape(-1)
    shown = ", ".join(format_number(float(v)) for v in flat[:count])
    return f"[{shown}{', …' if flat.size > count else ''}]"


def tensor_panel(name: str, array: np.ndarray, width: int = 80) -> Panel:
    """A panel: name, shape, dtype, statistics, the first values, and a heatmap (2-D) or sparkline (1-D)."""
    array = np.asarray(array)
    stats = tensor_stats(array)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("shape", f"{tuple(array.shape)}  {array.dtype}")
    table.add_row("stats", "  ".join(f"{key} {format_number(stats[key])}" for key in ("min", "max", "mean", "std")))
    if stats["non_finite"]:
        table.add_row("", f"{stats['non_finite']} non-finite entries (masked positions are -inf)")
    table.add_row("values", first_values(array))
    parts = [table]
    picture = picture_of(array, width)
    if picture is not None:
        parts.append(picture)
    return Panel(Group(*parts), title=f"[bold]{name}[/]", title_align="left", width=min(width, 120))


def picture_of(array: np.ndarray, width: int = 80):
    """A heatmap for 2-D data (the last two axes of the first slice for 3-D and up), a sparkline for 1-D."""
    if array.ndim == 0 or array.size == 0 or not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        return None
    values = array.astype(np.float64)
    if values.ndim == 1:
        return sparkline(values, width=max(8, min(width - 8, 64)))
    caption = ""
    while values.ndim > 2:
        values = values[0]
        caption = f"  (first slice of {tuple(array.shape[:-2])})"
    picture = heatmap(values, max_rows=16, max_cols=max(4, min((width - 8) // 2, 48)))
    return Group(picture, Text(f"{values.shape[0]} x {values.shape[1]}{caption}", style="dim"))
