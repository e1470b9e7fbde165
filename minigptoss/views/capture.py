"""The public `minigptoss.capture`: the inspector's capture, whose recordings can show themselves.

    with minigptoss.capture("blocks.0.attn.*") as cache:
        model.forward(tokens)
    cache.show("blocks.0.attn.probs")     # terminal: rich summary (shape, stats, values, heatmap)
    cache.picture("blocks.0.attn.probs")  # notebook: every head as an SVG heatmap (sink column, window band)
    cache                                 # notebook: a table of the names, shapes and meanings, and a picture

The recording itself is `inspector.py`'s (NumPy only); this adds the views, so the model never imports them.
In Jupyter, a capture and a picture display themselves through `_repr_html_` (and a picture through
`_repr_svg_`), the methods IPython calls; in a terminal the capture's repr stays text.
"""

from html import escape

import numpy as np
from rich.console import Console

from .. import inspector
from ..attention import kv_head_of
from ..names import canonical, declared, is_declared
from ..text.tokenizer import tokenizer_for
from . import svg
from .summary import token_text
from .tensor import first_values, format_number, tensor_panel, tensor_stats

TOP_CANDIDATES = 10


class Picture:
    """A drawing of one recorded tensor: `svg` (the SVG text); a notebook displays it, `save(path)` writes it."""

    def __init__(self, name: str, svg_text: str, caption: str = ""):
        self.name, self.svg, self.caption = name, svg_text, caption

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        """The SVG, scaled to the cell's width, its caption below; the name above only when the picture's own
        title does not already say it."""
        caption = f'<div style="color:#666;font-size:12px">{escape(self.caption)}</div>' if self.caption else ""
        named = f">{escape(self.name)}</text>" in self.svg or f">{escape(self.name)} " in self.svg
        name = "" if named else (f'<div style="font-family:monospace;font-weight:bold;text-align:left">'
                                 f'{escape(self.name)}</div>')
        return f'<div style="overflow-x:auto">{name}{svg.scalable(self.svg)}{caption}</div>'

    def save(self, path) -> None:
        """Write the SVG to `path` (open it in a browser; hover a cell for its value)."""
        svg.save(self.svg, path)

    def __repr__(self) -> str:
        return f"Picture({self.name!r}, {len(self.svg)} characters of SVG)"


class Capture(inspector.Capture):
    """inspector.Capture (names to arrays; repr, stack, head, logit_lens, steps), plus `show(name)` for a
    terminal and `picture(name)` / `_repr_html_` for a notebook."""

    def show(self, name: str, console: Console | None = None) -> None:
        """Print a rich summary of one recorded tensor (to `console`, else a new stdout console). In a notebook,
        display it as HTML instead: the numbers as a table and the picture as SVG (a terminal's block characters
        turn into scattered squares in a notebook's output)."""
        console = console or Console()
        if console.is_jupyter:
            from IPython.display import display  # only inside a notebook, where IPython runs (as rich does)

            display(TensorView(self, name))
            return
        console.print(tensor_panel(name, self[name], width=console.width))

    # -- pictures ------------------------------------------------------------------------------------------------

    def token_labels(self, tokenizer=None) -> list[str] | None:
        """Each position's token text (every position up to this pass's last) if `tokens` was recorded (with `tokenizer`, else the one matching the
        recorded logits' vocabulary, else the ids as "[72]"); None if `tokens` was not recorded."""
        if "tokens" not in self:
            return None
        ids = [*self.earlier_tokens, *(int(t) for t in self["tokens"])]  # at_step: the earlier passes' too
        if tokenizer is None and "logits" in self:
            try:
                tokenizer = tokenizer_for(self["logits"].shape[-1])
            except ValueError:
                tokenizer = None
        return [token_text(tokenizer, t) if tokenizer is not None else f"[{t}]" for t in ids]

    def picture(self, name: str, head: int | None = None, tokenizer=None, step: int | None = None) -> Picture:
        """A drawing of one recorded tensor, chosen by what it is:
        attention probs (nq, T, Tk) -> every head (or `head`) with the sink column and the masked cells;
        scores -> one heatmap per head; router expert_ids / weights -> the tokens x experts grid; logits -> the
        top next tokens after the last position; 2-D -> a heatmap; 1-D -> columns; (T, a, b) -> a heatmap of
        (T, a b). Rows are labelled with the tokens when `tokens` was recorded. step=K (a per_step capture):
        the tensor of pass `cache.steps[K]` (under generate, K = 0 is the prompt's pass, K the pass that read
        the K-th new token: its one query over the cached keys, labelled with their positions and tokens)."""
        if step is not None:
            count = len(self.steps)
            if not 0 <= step < count:
                raise IndexError(f"step={step}: this capture recorded {count} passes (steps 0..{count - 1})")
            return self.at_step(step).picture(name, head, tokenizer)
        name = canonical(name)
        array = np.asarray(self[name])
        if array.size == 0 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"{name!r} ({array.dtype}, shape {array.shape}) has nothing to draw")
        labels = self.token_labels(tokenizer)
        template = declared(name).name if is_declared(name) else name
        prefix = name.rpartition(".")[0]
        if template == "blocks.N.attn.probs":
            return self._attention(name, prefix, array, labels, head)
        if template == "blocks.N.attn.scores":
            return self._per_head(name, array, labels, head)
        if template in ("blocks.N.moe.router.expert_ids", "blocks.N.moe.router.weights") and \
                f"{prefix}.expert_ids" in self and f"{prefix}.weights" in self:
            experts = self[f"{prefix}.logits"].shape[-1] if f"{prefix}.logits" in self else None
            return Picture(name, svg.router_svg(self[f"{prefix}.expert_ids"], self[f"{prefix}.weights"], experts,
                                                labels, title=f"{prefix}: experts per token"))
        if template == "logits":
            return self._candidates(name, array, tokenizer)
        return Picture(name, plain_picture(name, array, labels))

    def _attention(self, name, prefix, probs, labels, head) -> Picture:
        sink = self[f"{prefix}.sink_mass"] if f"{prefix}.sink_mass" in self else None
        mask = self[f"{prefix}.mask"] if f"{prefix}.mask" in self else None
        kv = kv_head_of(probs.shape[0], self[f"{prefix}.k"].shape[1]) if f"{prefix}.k" in self else None
        drawing = svg.attention_svg(probs, sink, mask, kv, labels, title=name, heads=None if head is None else [head])
        note = "" if sink is not None else f" (record {prefix}.sink_mass too for the sink column)"
        return Picture(name, drawing, "hover a cell for the query, the key and the probability" + note)

    def _per_head(self, name, array, labels, head) -> Picture:
        heads = range(array.shape[0]) if head is None else [head]
        pictures = [svg.heatmap_svg(array[h], row_labels(labels, array.shape[1]),
                                    row_labels(labels, array.shape[2], keys=True), title=f"h{h}", cell=8)
                    for h in heads]
        return Picture(name, svg.grid_svg(pictures, columns=4), "hatched: masked (-inf)")

    def _candidates(self, name, logits, tokenizer) -> Picture:
        if tokenizer is None:
            try:
                tokenizer = tokenizer_for(logits.shape[-1])
            except ValueError:
                tokenizer = None
        vocab = _Vocabulary(tokenizer)
        return Picture(name, svg.candidates_svg(logits[-1], vocab, TOP_CANDIDATES,
                                                title=f"after position {logits.shape[0] - 1}"))

    def _repr_html_(self) -> str:
        """The names, shapes, dtypes and meanings as a left-aligned table (folded past FOLD_ROWS names: click to
        open), and a picture of the first attention pattern (or of the logits) recorded."""
        rows = []
        for name, value in self._tensors.items():
            meaning = declared(name).meaning if is_declared(name) else ""
            rows.append(f"<tr><td><code>{escape(name)}</code></td><td>{escape(str(tuple(value.shape)))}</td>"
                        f"<td>{escape(str(value.dtype))}</td><td>{escape(meaning)}</td></tr>")
        steps = f", {len(self.steps)} steps" if self.per_step else ""
        heading = (f"<b>{type(self).__name__}</b> ({len(self)} names{steps}): <code>cache[name]</code>, "
                   f"<code>cache.picture(name)</code>")
        table = (f'<table style="{LEFT}"><tr><th style="{LEFT}">name</th><th style="{LEFT}">shape</th>'
                 f'<th style="{LEFT}">dtype</th><th style="{LEFT}">meaning</th></tr>'
                 + "".join(rows).replace("<td>", f'<td style="{LEFT}">') + "</table>")
        table = (f"{heading}{table}" if len(rows) <= FOLD_ROWS else
                 f"{heading}<details><summary>the {len(rows)} names (click to list)</summary>{table}</details>")
        shown = next((n for n in self._tensors if n.endswith(".attn.probs")), "logits" if "logits" in self else None)
        if shown is None:
            return f"<div>{table}</div>"
        return (f"<div>{table}<details open><summary>{escape(shown)}</summary>"
                f"{self.picture(shown)._repr_html_()}</details></div>")


LEFT = "text-align:left"  # a notebook's table CSS right-aligns cells
FOLD_ROWS = 12  # a capture listing more names shows them folded


class TensorView:
    """One recorded tensor as HTML, for a notebook (`cache.show` there): shape, dtype, statistics, first values,
    and its picture."""

    def __init__(self, cache, name: str):
        self.name, self.array = canonical(name), np.asarray(cache[name])
        try:
            self.picture = cache.picture(self.name)
        except ValueError:  # nothing to draw (not numeric, empty)
            self.picture = None

    def _repr_html_(self) -> str:
        stats = tensor_stats(self.array)
        rows = [("shape", f"{tuple(self.array.shape)}  {self.array.dtype}"),
                ("stats", "  ".join(f"{key} {format_number(stats[key])}" for key in ("min", "max", "mean", "std"))),
                ("values", first_values(self.array))]
        if stats["non_finite"]:
            rows.insert(2, ("", f"{stats['non_finite']} non-finite entries (masked positions are -inf)"))
        table = "".join(f'<tr><th style="{LEFT}">{escape(k)}</th><td style="{LEFT}"><code>{escape(str(v))}</code>'
                        f"</td></tr>" for k, v in rows)
        picture = self.picture._repr_html_() if self.picture is not None else ""
        return (f'<div><div style="font-family:monospace;font-weight:bold">{escape(self.name)}</div>'
                f'<table style="{LEFT}">{table}</table>{picture}</div>')

    def __repr__(self) -> str:
        return f"TensorView({self.name!r}, shape {tuple(self.array.shape)})"


class _Vocabulary:
    """token_text(tokenizer, i) on demand, or "[i]" without a tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getitem__(self, i: int) -> str:
        return token_text(self.tokenizer, i) if self.tokenizer is not None else f"[{i}]"


def row_labels(labels, count: int, keys: bool = False) -> list[str] | None:
    """Position labels "3 text" for the last `count` positions (a pass's query rows, or the keys it attended
    to); positions only for keys before the known texts; None if the texts are not known or do not fit."""
    if labels is None:
        return None
    if count <= len(labels):
        return svg.token_labels(count, labels)
    if keys:  # a KV cache whose earlier tokens were not recorded: those keys by position only
        return [str(j) for j in range(count - len(labels))] + svg.token_labels(len(labels), labels)
    return None


def plain_picture(name: str, array: np.ndarray, labels) -> str:
    """A heatmap (2-D, or (T, ...) flattened after the first axis) or columns (1-D) of any recorded tensor."""
    values, value_name = array.astype(np.float64), name.rsplit(".", 1)[-1]
    if values.ndim == 0:
        values = values.reshape(1)
    if values.ndim == 1:
        if labels is not None and len(labels) == len(values) and len(values) <= 64:
            return svg.bars_svg(svg.token_labels(len(values), labels), values, title=name, value_name=value_name)
        return svg.columns_svg(values, title=name, value_name=value_name)
    title = name if values.ndim == 2 else f"{name} {tuple(values.shape)}, flattened after the first axis"
    matrix = values.reshape(values.shape[0], -1)  # (n, a, b, ...) -> (n, a b ...)
    return svg.heatmap_svg(matrix, row_labels(labels, matrix.shape[0]), None, title=title, cell=10,
                           value_name=value_name)


def capture(*patterns: str, per_step: bool = False):
    """Record every intermediate whose name matches one of `patterns` (all of them if none are given); with
    per_step=True keep every forward pass's values (`cache.steps`, e.g. one per token under `generate`)."""
    return inspector.capture(*patterns, kind=Capture, per_step=per_step)
