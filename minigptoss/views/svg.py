"""Pictures as SVG text: pure functions from arrays (and labels) to an SVG string, no plotting library.

    heatmap_svg(matrix, row_labels, col_labels)          any 2-D array; hover a cell for its value
    attention_svg(probs, sink_mass, mask, kv_of, labels) every head of one layer, small multiples "h3 kv0":
                                                         the sink as a first column set apart, masked cells
                                                         (the future, outside the sliding window) hatched grey
    router_svg(expert_ids, weights, num_experts, labels) tokens x experts: the chosen experts' weights
    bars_svg(labels, values) / columns_svg(values)       horizontal bars (top candidates), a long vector
    candidates_svg(logits, labels, top)                  the top next tokens: bars of p, with p and log p
    grid_svg(svgs, columns)                              several pictures as one

Every cell and bar carries a <title> (a browser shows it on hover) with its labels and value. Labels are never
larger than the cells they name (label_font); `scalable` lets a page or notebook scale a picture to its width. Text is escaped
(html.escape), so token texts such as "<|start|>" or "&" are safe. Sizes are estimated (no font metrics): a
character is taken as 0.6 of the font size. No ids are used, so many pictures can share one HTML page.
"""

from __future__ import annotations

import warnings
from html import escape

import numpy as np

from .tensor import DIVERGING, SEQUENTIAL, downsample

FONT = 10  # px
CHAR = 0.6 * FONT  # estimated width of one character
LABEL_CHARS = 12  # longer labels are cut with "…"
LIGHT_TO_DARK = SEQUENTIAL[::-1]  # 0 pale yellow .. 1 black: most cells are near 0, so they stay light
MASKED_FILL, HATCH = "#e4e4e4", "#b0b0b0"
# An opaque light background: the dark labels stay readable where the SVG is shown on a dark page (GitHub's dark
# mode, a dark notebook theme). It is drawn first, so a tooltip-bearing cell is never under it.
BACKGROUND = '<rect width="100%" height="100%" fill="#ffffff"/>'
MAX_CELLS = 96  # a heatmap larger than this (rows or columns) is block-averaged down, and says so


def text_width(text: str, font: float = FONT) -> float:
    return len(text) * 0.6 * font


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """A label cut to `limit` characters."""
    return label if len(label) <= limit else label[:limit - 1] + "…"


def number(value: float) -> str:
    """A value for a tooltip: 4 significant digits, or scientific when tiny; masked entries say so."""
    if not np.isfinite(value):
        return "masked" if np.isneginf(value) or np.isnan(value) else str(value)
    if value != 0 and abs(value) < 1e-4:
        return f"{value:.3e}"
    return f"{value:.4g}"


def document(body: str, width: float, height: float, title: str = "") -> str:
    """A standalone <svg> element of the given size around `body` (SVG elements)."""
    heading = f"<title>{escape(title)}</title>" if title else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="{FONT}">'
            f'{heading}{BACKGROUND}{body}</svg>')


def save(svg_text: str, path) -> None:
    """Write an SVG to `path` (open it in a browser; hover a cell for its value). The walkthroughs' checker
    replaces this function while a page runs, to compare the page's pictures with the files it shows."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(svg_text)


def scalable(svg_text: str, most: float = 1.5) -> str:
    """The SVG with its width set to its container's (from 0.8 to `most` times its drawn size; height follows): a
    page or a notebook cell wider than the picture shows it larger, a narrower one a little smaller, then
    scrolls."""
    width = float(svg_text.split('width="', 1)[1].split('"', 1)[0])
    return svg_text.replace(f'width="{width:.0f}"', f'width="100%" style="max-width:{width * most:.0f}px;'
                                                    f'min-width:{width * 0.8:.0f}px;height:auto"', 1)


def label_font(cell: float) -> tuple[float, int]:
    """(font size, every how many labels are written) for labels one per `cell` px: a font no larger than the
    cell, and at least 6 px, so below 6 px cells only every 2nd (3rd, ...) label is written."""
    step = max(1, int(np.ceil(6 / max(cell, 0.1))))
    return min(FONT, max(6.0, cell) if step > 1 else cell, cell * step), step


def label(x: float, y: float, text: str, anchor: str = "start", rotate: bool = False, bold: bool = False,
          fill: str = "#222", size: float | None = None) -> str:
    """One <text> (of font `size` px, else the document's); rotated labels read bottom to top from (x, y)."""
    weight = ' font-weight="bold"' if bold else ""
    weight += f' font-size="{size:g}"' if size is not None and size != FONT else ""
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{turn}{weight} fill="{fill}">'
            f'{escape(text)}</text>')


# -- colour ------------------------------------------------------------------------------------------------------

def rgb(colour: str) -> tuple[int, int, int]:
    """"#rrggbb" -> (r, g, b)."""
    return tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))


def mix(palette: list[str], position: float) -> str:
    """The colour at `position` in [0, 1] along a palette of hex colours, linearly interpolated."""
    position = min(max(float(position), 0.0), 1.0) * (len(palette) - 1)
    i = min(int(position), len(palette) - 2)
    a, b, f = rgb(palette[i]), rgb(palette[i + 1]), position - i
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))


class Scale:
    """How values map to colours: light-to-dark from `low` to `high`, or blue-white-red around 0 when signed."""

    def __init__(self, low: float, high: float, signed: bool | None = None):
        self.low, self.high = float(low), float(high)
        self.signed = self.low < 0 < self.high if signed is None else signed

    @classmethod
    def of(cls, values: np.ndarray) -> "Scale":
        """A scale spanning the finite entries of `values` (0..1 if there are none)."""
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        return cls(finite.min(), finite.max()) if finite.size else cls(0.0, 1.0)

    def colour(self, value: float) -> str:
        if self.signed:
            bound = max(abs(self.low), abs(self.high)) or 1.0
            return mix(DIVERGING, (value / bound + 1) / 2)
        return mix(LIGHT_TO_DARK, (value - self.low) / ((self.high - self.low) or 1.0))

    def legend(self, x: float, y: float, width: float = 160, caption: str = "") -> tuple[str, float]:
        """(SVG elements, height) of a colour bar from low to high with its end values (and 0 when signed)."""
        steps = 24
        low, high = ((-max(abs(self.low), abs(self.high)), max(abs(self.low), abs(self.high))) if self.signed
                     else (self.low, self.high))
        parts = [label(x, y + FONT, caption or "colour scale", fill="#555")]
        top = y + FONT + 4
        for i in range(steps):
            value = low + (high - low) * (i + 0.5) / steps
            parts.append(f'<rect x="{x + i * width / steps:.1f}" y="{top:.1f}" width="{width / steps + 0.3:.1f}" '
                         f'height="10" fill="{self.colour(value)}"/>')
        parts += [label(x, top + 10 + FONT + 2, number(low)),
                  label(x + width, top + 10 + FONT + 2, number(high), anchor="end")]
        if self.signed:
            parts.append(label(x + width / 2, top + 10 + FONT + 2, "0", anchor="middle"))
        return "".join(parts), FONT + 4 + 10 + FONT + 6


# -- cells -------------------------------------------------------------------------------------------------------

def cell_rects(values: np.ndarray, x: float, y: float, size: float, scale: Scale, titles, masked=None) -> str:
    """One <rect> per entry of `values` (R, C) at (x, y), `size` px square, each with <title>titles(r, c)</title>;
    entries where `masked` is True (or not finite) are grey and hatched with one diagonal."""
    values = np.asarray(values, dtype=np.float64)
    masked = ~np.isfinite(values) if masked is None else (np.asarray(masked, bool) | ~np.isfinite(values))
    rects, hatch = [], []
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            cx, cy = x + c * size, y + r * size
            fill = MASKED_FILL if masked[r, c] else scale.colour(values[r, c])
            rects.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{size:.1f}" height="{size:.1f}" fill="{fill}">'
                         f'<title>{escape(titles(r, c))}</title></rect>')
            if masked[r, c]:
                hatch.append(f"M{cx:.1f} {cy + size:.1f}L{cx + size:.1f} {cy:.1f}")
    if hatch:
        rects.append(f'<path d="{"".join(hatch)}" stroke="{HATCH}" stroke-width="1" fill="none"/>')
    return "".join(rects)


def row_label_width(labels, font: float = FONT) -> float:
    return max((text_width(short(t), font) for t in labels), default=0) + 6 if labels else 0


def fit(matrix: np.ndarray, limit: int = MAX_CELLS) -> tuple[np.ndarray, str]:
    """The matrix, block-averaged to at most `limit` x `limit` cells, and a note when it was."""
    if matrix.shape[0] <= limit and matrix.shape[1] <= limit:
        return matrix, ""
    small = downsample(matrix, limit, limit)  # (R, C) -> (<= limit, <= limit)
    return small, (f"{matrix.shape[0]} x {matrix.shape[1]} averaged over blocks to {small.shape[0]} x "
                   f"{small.shape[1]} cells")


def heatmap_svg(matrix, row_labels=None, col_labels=None, title: str = "", cell: float = 14,
                scale: Scale | None = None, value_name: str = "value") -> str:
    """A 2-D array as coloured cells, rows top to bottom, with row/column labels (cut to 12 characters; the
    tooltip has them whole), a colour scale, and a tooltip per cell "row × column: value". Non-finite entries
    (masked scores) are hatched grey. Larger than 96 x 96 it is block-averaged (labels then dropped)."""
    matrix = np.asarray(matrix)
    matrix = matrix.astype(np.float64) if matrix.ndim == 2 else np.asarray(matrix, np.float64).reshape(1, -1)
    matrix, note = fit(matrix)
    if note:
        row_labels = col_labels = None
    rows = list(row_labels) if row_labels is not None else [str(r) for r in range(matrix.shape[0])]
    cols = list(col_labels) if col_labels is not None else [str(c) for c in range(matrix.shape[1])]
    scale = scale or Scale.of(matrix)
    cell = min(cell, max(4.0, 900 / max(matrix.shape[1], 1)))
    left = row_label_width(rows) + 4
    top = (FONT + 8 if title else 4) + max(text_width(short(t)) for t in cols) + 6
    titles = lambda r, c: f"{rows[r]} × {cols[c]}: {value_name} {number(matrix[r, c])}"  # noqa: E731
    body = [label(4, FONT + 2, title, bold=True) if title else "",
            cell_rects(matrix, left, top, cell, scale, titles)]
    font, every = label_font(cell)
    body += [label(left - 4, top + (r + 0.5) * cell + font * 0.35, short(t), anchor="end", size=font)
             for r, t in enumerate(rows) if r % every == 0]
    body += [label(left + (c + 0.5) * cell + font * 0.35, top - 4, short(t), rotate=True, size=font)
             for c, t in enumerate(cols) if c % every == 0]
    bottom = top + matrix.shape[0] * cell + 8
    if note:
        body.append(label(left, bottom + FONT, note, fill="#555"))
        bottom += FONT + 6
    legend, height = scale.legend(left, bottom, caption=value_name)
    width = max(left + matrix.shape[1] * cell, left + 170, text_width(title) + 8, text_width(note) + left) + 8
    return document("".join(body) + legend, width, bottom + height + 4, title)


# -- attention ---------------------------------------------------------------------------------------------------

PROBS = Scale(0.0, 1.0, signed=False)


def attention_panel(probs, sink, mask, queries, keys, x: float, y: float, cell: float, head: str,
                    row_labels, col_labels, show_rows: bool, show_cols: bool) -> tuple[str, float, float]:
    """One head at (x, y): its name, then per query row the sink's mass, a gap, and one cell per key.

    probs (T, Tk), sink (T,), mask (T, Tk) bool; queries / keys: the positions drawn (the last ones).
    Returns (SVG elements, width, height). Labels are set in a font no larger than a cell (label_font)."""
    font, every = label_font(cell)
    left = x + (row_label_width([row_labels[i] for i in queries], font) if show_rows else 0)
    col_height = max((text_width(short(col_labels[j]), font) for j in keys), default=0) + 6 if show_cols else 0
    top = y + FONT + 4 + col_height
    gap = cell * 0.6
    keys_x = left + cell + gap
    shown_probs = probs[np.ix_(list(queries), list(keys))]  # (T, Tk) -> (queries, keys)
    shown_mask = ~mask[np.ix_(list(queries), list(keys))]
    key_title = lambda r, c: (f"{head} · query {queries[r]} {row_labels[queries[r]]!s} → key {keys[c]} "  # noqa: E731
                              f"{col_labels[keys[c]]}: " + ("masked" if shown_mask[r, c]
                                                            else f"p = {number(shown_probs[r, c])}"))
    sink_values = np.asarray(sink, dtype=np.float64)[list(queries)].reshape(-1, 1)  # (queries, 1)
    sink_title = lambda r, c: f"{head} · query {queries[r]} {row_labels[queries[r]]} → sink: p = {number(sink_values[r, 0])}"  # noqa: E731
    parts = [label(x, y + FONT, head, bold=True),
             cell_rects(sink_values, left, top, cell, PROBS, sink_title),
             f'<rect x="{left:.1f}" y="{top:.1f}" width="{cell:.1f}" height="{len(queries) * cell:.1f}" '
             f'fill="none" stroke="#3060c0" stroke-width="1"/>',
             cell_rects(shown_probs, keys_x, top, cell, PROBS, key_title, masked=shown_mask)]
    if show_rows:
        parts += [label(left - 4, top + (r + 0.5) * cell + font * 0.35, short(row_labels[i]), anchor="end",
                        size=font) for r, i in enumerate(queries) if (len(queries) - 1 - r) % every == 0]
    if show_cols:
        parts.append(label(left + 0.5 * cell + font * 0.35, top - 4, "sink", rotate=True, fill="#3060c0",
                           size=font))
        parts += [label(keys_x + (c + 0.5) * cell + font * 0.35, top - 4, short(col_labels[j]), rotate=True,
                        size=font) for c, j in enumerate(keys) if (len(keys) - 1 - c) % every == 0]
    width = keys_x + len(keys) * cell - x
    height = top + len(queries) * cell - y
    return "".join(parts), width, height


def token_labels(count: int, texts=None) -> list[str]:
    """`count` position labels "3 text" (or just "3" without texts): the last `count` of `texts` when it has
    more (a KV-cached pass's rows come after the positions it reads from the cache)."""
    if texts is None:
        return [str(i) for i in range(count)]
    first = max(0, len(texts) - count)
    return [f"{first + i} {texts[first + i]}" for i in range(count)]


def attention_svg(probs, sink_mass=None, mask=None, kv_of=None, labels=None, title: str = "",
                  columns: int = 4, limit: int = 48, heads=None, max_width: float = 1080) -> str:
    """Every head of one layer as small multiples, `columns` per row, each labelled "h3 kv0".

    probs (nq, T, Tk); sink_mass (nq, T) (drawn as a first column apart; zeros if None); mask (T, Tk) bool
    (False cells hatched; if None, where probs is not finite); kv_of[h]: the key/value head of query head h;
    labels: T token texts (keys are the last T of Tk); heads: which heads to draw (all if None). Only the last
    `limit` queries and keys are drawn, in cells of 5 to 11 px chosen so `columns` panels fit `max_width`.
    Row labels on the first column of panels, key labels on the first row; every cell's tooltip has both."""
    probs = np.asarray(probs, dtype=np.float64)
    nq, T, Tk = probs.shape
    sink_mass = np.zeros((nq, T)) if sink_mass is None else np.asarray(sink_mass, dtype=np.float64)
    mask = np.isfinite(probs[0]) if mask is None else np.asarray(mask, dtype=bool)
    rows = token_labels(T, labels)
    if labels is not None and len(labels) >= Tk:  # the text's every position: the keys are its last Tk
        cols = token_labels(Tk, labels)
    else:
        cols = [f"{j}" for j in range(Tk - T)] + rows  # keys before the T new ones (a KV cache) by position only
    queries, keys = range(max(0, T - limit), T), range(max(0, Tk - limit), Tk)
    columns = max(1, min(columns, nq if heads is None else len(heads)))
    cell = float(min(11, max(5, int((max_width - 70) / columns / (len(keys) + 2.6)))))
    body, x, y, row_height, widths = [], 4.0, (FONT + 10 if title else 4.0), 0.0, []
    if title:
        body.append(label(4, FONT + 2, title, bold=True))
    for n, h in enumerate(range(nq) if heads is None else heads):
        grid_col, grid_row = n % columns, n // columns
        if grid_col == 0 and n:
            x, y = 4.0, y + row_height + 10
            row_height = 0.0
        head = f"h{h} kv{kv_of[h]}" if kv_of is not None else f"h{h}"
        part, width, height = attention_panel(probs[h], sink_mass[h], mask, queries, keys, x, y, cell, head,
                                              rows, cols, show_rows=grid_col == 0, show_cols=grid_row == 0)
        body.append(part)
        widths.append(x + width)
        x += width + 14
        row_height = max(row_height, height)
    bottom = y + row_height + 10
    notes = [f"rows: queries {queries[0]}..{queries[-1]}; keys {keys[0]}..{keys[-1]}",
             "blue-edged column: the sink's mass", "hatched grey: masked (the future, or outside the window)"]
    if max(widths) > text_width(" ".join(notes)) + 8:  # room for one line
        notes = ["; ".join(notes)]
    for line in notes:
        body.append(label(4, bottom + FONT, line, fill="#555"))
        bottom += FONT + 4
    legend, height = PROBS.legend(4, bottom + 2, caption="probability")
    width = max(max(widths), max(text_width(line) for line in notes) + 8, 180) + 8
    return document("".join(body) + legend, width, bottom + 2 + height + 4, title)


# -- router ------------------------------------------------------------------------------------------------------

def router_svg(expert_ids, weights, num_experts: int | None = None, labels=None, title: str = "") -> str:
    """The router's choices as a grid, a row per token and a column per expert: a chosen expert's cell is
    coloured by its weight (with its rank 1, 2, ... written in it), the others are blank; the last row counts
    the tokens each expert received. expert_ids, weights: (T, k)."""
    ids, weights = np.asarray(expert_ids, dtype=np.int64), np.asarray(weights, dtype=np.float64)
    T, k = ids.shape
    E = int(num_experts if num_experts is not None else ids.max() + 1)
    rows = token_labels(T, labels)
    grid = np.full((T, E), np.nan)  # (T, k) -> (T, E): NaN where not chosen
    rank = np.zeros((T, E), dtype=int)
    for t in range(T):
        grid[t, ids[t]] = weights[t]
        rank[t, ids[t]] = np.arange(1, k + 1)
    cell = 16 if E <= 32 else max(6, 900 / E)
    left = max(row_label_width(rows), text_width("tokens") + 6) + 4
    top = (FONT + 10 if title else 4) + text_width("e999") + 8
    scale = Scale(0.0, 1.0, signed=False)
    parts = [label(4, FONT + 2, title, bold=True) if title else ""]
    for t in range(T):
        for e in range(E):
            cx, cy = left + e * cell, top + t * cell
            if rank[t, e]:
                tip = f"{rows[t]} → e{e}: weight {number(grid[t, e])} (choice {rank[t, e]} of {k})"
                parts.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                             f'fill="{scale.colour(grid[t, e])}"><title>{escape(tip)}</title></rect>')
                if cell >= 12:
                    ink = "#fff" if grid[t, e] > 0.5 else "#000"
                    parts.append(label(cx + cell / 2, cy + cell * 0.72, str(rank[t, e]), anchor="middle", fill=ink))
            else:
                parts.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                             f'fill="#fafafa" stroke="#eee" stroke-width="0.5"><title>{escape(rows[t])} → e{e}: '
                             f'not chosen</title></rect>')
    parts += [label(left - 4, top + (t + 0.75) * cell, short(r), anchor="end") for t, r in enumerate(rows)]
    parts += [label(left + (e + 0.7) * cell, top - 4, f"e{e}", rotate=True) for e in range(E)]
    load = np.bincount(ids.reshape(-1), minlength=E)  # (T, k) -> (E,): tokens per expert
    count_y = top + T * cell + 4
    parts.append(label(left - 4, count_y + cell * 0.75, "tokens", anchor="end", fill="#555"))
    for e in range(E):
        parts.append(label(left + (e + 0.5) * cell, count_y + cell * 0.75, str(int(load[e])), anchor="middle",
                           fill="#555" if load[e] else "#bbb"))
    legend, height = scale.legend(left, count_y + cell + 6, caption="router weight (number: rank of the choice)")
    width = max(left + E * cell, left + 260, text_width(title) + 8) + 8
    return document("".join(parts) + legend, width, count_y + cell + 6 + height + 4, title)


# -- bars --------------------------------------------------------------------------------------------------------

def bars_svg(labels, values, title: str = "", value_name: str = "value", length: float = 240,
             colour: str = "#4a78c0", notes=None, high: float | None = None) -> str:
    """Horizontal bars, one per label, from a zero line (negative values go left), each with its value written
    right of it (of the zero line for negative bars), or `notes[i]` instead, and in its tooltip. `high`: the
    value a full-length bar stands for (default the largest), so that two charts can share one scale."""
    values = np.asarray(values, dtype=np.float64)
    names = [short(str(t), 16) for t in labels]
    left = max((text_width(n) for n in names), default=0) + 10
    low = min(0.0, values.min(initial=0.0))
    high = max(0.0, values.max(initial=0.0), high if high is not None else 0.0)
    span = (high - low) or 1.0
    zero = left + (0 - low) / span * length
    top, bar = (FONT + 10 if title else 4), 14
    parts = [label(4, FONT + 2, title, bold=True) if title else ""]
    for i, (name, value) in enumerate(zip(names, values)):
        y = top + i * (bar + 3)
        x0, x1 = sorted((zero, zero + value / span * length))
        parts.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 0.5):.1f}" height="{bar}" '
                     f'fill="{colour}"><title>{escape(f"{labels[i]}: {value_name} {number(value)}")}</title></rect>')
        parts.append(label(left - 6, y + bar * 0.75, name, anchor="end"))
        note = notes[i] if notes is not None else number(value)
        parts.append(label(x1 + 4, y + bar * 0.75, note, fill="#333"))  # right of the bar or of 0
    bottom = top + len(values) * (bar + 3)
    parts.append(f'<line x1="{zero:.1f}" y1="{top - 2}" x2="{zero:.1f}" y2="{bottom:.1f}" stroke="#555"/>')
    parts.append(label(zero, bottom + FONT + 2, f"0 ({value_name})", anchor="end" if low < 0 else "start",
                       fill="#555"))
    longest = max((len(n) for n in notes), default=0) if notes is not None else 10
    width = max(left + length + 10 + text_width("x" * longest), text_width(title) + 8)
    return document("".join(parts), width, bottom + FONT + 8, title)


def columns_svg(values, title: str = "", value_name: str = "value", height: float = 120, limit: int = 256) -> str:
    """A long 1-D array as vertical columns from a zero line (block-averaged to `limit` columns), index below."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    count = values.size
    if count > limit:
        values = downsample(values.reshape(1, -1), 1, limit)[0]  # (n,) -> (limit,)
    groups = np.array_split(np.arange(count), values.size)
    finite = values[np.isfinite(values)]
    low, high = min(0.0, finite.min(initial=0.0)), max(0.0, finite.max(initial=0.0))
    span = (high - low) or 1.0
    width_each = max(2.0, min(14.0, 800 / max(values.size, 1)))
    top, left = (FONT + 10 if title else 4), 50
    zero = top + high / span * height
    parts = [label(4, FONT + 2, title, bold=True) if title else ""]
    for i, value in enumerate(values):
        where = f"[{groups[i][0]}]" if len(groups[i]) == 1 else f"[{groups[i][0]}..{groups[i][-1]}] mean"
        if not np.isfinite(value):
            continue
        y0, y1 = sorted((zero, zero - value / span * height))
        parts.append(f'<rect x="{left + i * width_each:.1f}" y="{y0:.1f}" width="{width_each * 0.85:.1f}" '
                     f'height="{max(y1 - y0, 0.5):.1f}" fill="{"#4a78c0" if value >= 0 else "#c0504a"}">'
                     f'<title>{escape(f"{where}: {value_name} {number(value)}")}</title></rect>')
    right = left + values.size * width_each
    parts += [f'<line x1="{left}" y1="{zero:.1f}" x2="{right:.1f}" y2="{zero:.1f}" stroke="#555"/>',
              label(left - 4, top + FONT * 0.8, number(high), anchor="end"),
              label(left - 4, top + height, number(low), anchor="end"),
              label(left, top + height + FONT + 4, "0"),
              label(right, top + height + FONT + 4, str(count - 1), anchor="end")]
    return document("".join(parts), max(right + 10, text_width(title) + 8), top + height + FONT + 10, title)


def candidates_svg(logits, labels, top: int = 10, title: str = "next token") -> str:
    """The `top` most likely next tokens after one position: a bar per token as long as its probability (the
    most likely longest), its p and log p (natural log) written beside it. logits (V,); labels[i]: token i's
    text. (A bar of log p from 0 would invert the order: the likeliest token, log p ~ 0, would have none.)"""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max()
    log_probs = shifted - np.log(np.sum(np.exp(shifted)))  # (V,): log-softmax
    order = np.argsort(-logits, kind="stable")[:max(1, top)]
    names = [f"{int(i)} {labels[int(i)]}" for i in order]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        probs = np.exp(log_probs[order])
    notes = [f"p {number(p)}   log p {number(lp)}" for p, lp in zip(probs, log_probs[order])]
    return bars_svg(names, probs, title=f"{title}: the most likely next tokens", value_name="p", notes=notes)


def grid_svg(svgs: list[str], columns: int = 4, gap: float = 12) -> str:
    """Standalone SVGs laid out in rows of `columns` (each as a nested <svg>), in one SVG."""
    x = y = row_height = width = 0.0
    parts = []
    for i, one in enumerate(svgs):
        if i and i % columns == 0:
            x, y, row_height = 0.0, y + row_height + gap, 0.0
        w, h = (float(one.split(f'{key}="', 1)[1].split('"', 1)[0]) for key in ("width", "height"))
        parts.append(one.replace("<svg ", f'<svg x="{x:.0f}" y="{y:.0f}" ', 1))
        x, row_height, width = x + w + gap, max(row_height, h), max(width, x + w)
    return document("".join(parts), width, y + row_height)
