"""A whole forward pass as one self-contained HTML page (`minigptoss step --export DIR` writes it).

    report_html(session, steps, top=10) -> str

For each step, in forward order and with an anchor named after it (`index.html#blocks.0.attn`): its title and
place, the equation, its pictures (SVG written by views/svg.py: every head's attention pattern with the sink
column and the window band, the router's tokens x experts grid, the MXFP4 block decoded by hand, the top next
tokens; hover a cell or bar for its value), the debugger's own view of the piece (the rich renderable exported
as HTML with inline styles), and, folded (<details>), the source lines and the input/output tensors'
statistics.

Inline CSS only, no script, no external file: the page opens from disk anywhere. Pure: the session (model,
tokenizer, tokens, recorded cache, as cli/step.py's Session) and the steps in, a string out; nothing rerun
except the one MXFP4 block the by-hand decoding reads from the checkpoint (as the debugger does).
"""

from __future__ import annotations

import io
from html import escape

import numpy as np
from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

from .. import attention, mxfp4
from . import svg
from .steps import (TITLES, equation, fp4_text, hand_decode, piece_view, shown_heads, source_panel, step_title,
                    where_text)
from .passes import pass_line, sampling_view
from .summary import token_text
from .tensor import tensor_stats

RICH_WIDTH = 110  # columns of the exported terminal views

CSS = """
body { margin: 0; font-family: system-ui, sans-serif; color: #222; background: #fff; }
.layout { display: grid; grid-template-columns: 230px minmax(0, 1fr); height: 100vh; }
nav { height: 100vh; overflow-y: auto; background: #f4f4f6; border-right: 1px solid #ddd;
      font-size: 12px; padding: 8px 10px; box-sizing: border-box; }
nav a { display: block; color: #245; text-decoration: none; padding: 1px 0; font-family: monospace; }
nav a:hover { text-decoration: underline; }
nav h3 { margin: 10px 0 2px; font-size: 12px; color: #666; }
main { padding: 0 20px 40px; height: 100vh; overflow-y: auto; box-sizing: border-box; }
section { border-top: 2px solid #ddd; padding-top: 6px; margin-top: 18px; }
h1 { font-size: 20px; margin: 14px 0 4px; }
h2 { font-size: 16px; margin: 6px 0 2px; font-family: monospace; }
.where { color: #775; font-size: 13px; margin-bottom: 6px; }
pre.equation { background: #f6f6ee; border-left: 3px solid #bb9; padding: 6px 10px; font-size: 13px; }
pre.rich { background: #272822; color: #f8f8f2; padding: 8px 10px; font-size: 12px; line-height: 1.15;
           overflow-x: auto; border-radius: 3px;
           font-family: "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace; }
.picture { overflow-x: auto; margin: 8px 0; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #456; font-size: 13px; }
table.decode { border-collapse: collapse; font-family: monospace; font-size: 12px; margin: 6px 0; }
table.decode th, table.decode td { border: 1px solid #ddd; padding: 1px 6px; text-align: right; }
table.decode th { background: #f0f0f0; }
.tokens span { display: inline-block; font-family: monospace; border: 1px solid #ccd; border-radius: 3px;
               padding: 0 4px; margin: 1px; background: #f8f8ff; }
.tokens small { color: #889; }
.note { color: #666; font-size: 12px; }
"""


def rich_html(renderable, width: int = RICH_WIDTH) -> str:
    """A rich renderable as an HTML <pre> fragment with inline styles (dark, like a terminal)."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console.export_html(inline_styles=True, theme=MONOKAI, code_format='<pre class="rich">{code}</pre>')


def plain(markup: str) -> str:
    """Rich markup as plain text ("[bold]x[/]" -> "x")."""
    return Text.from_markup(markup).plain


def token_labels(session) -> list[str]:
    return [token_text(session.tokenizer, t) for t in session.tokens]


def picture(svg_text: str, caption: str = "") -> str:
    """An inline SVG in a scrollable box, with a caption line under it."""
    note = f'<div class="note">{escape(caption)}</div>' if caption else ""
    return f'<div class="picture">{svg.scalable(svg_text)}</div>{note}'


# -- the pictures of each kind of step ---------------------------------------------------------------------------

def attention_picture(session, step) -> str:
    """Every head (or, past 16 heads, one per key/value head) of the layer: sink column, window band."""
    c, cache = session.config, session.cache
    kv = attention.kv_head_of(c.num_attention_heads, c.num_key_value_heads)
    kind = f"sliding window {c.sliding_window}" if c.is_sliding(step.layer) else "full causal"
    drawing = svg.attention_svg(cache[f"{step.name}.probs"], cache[f"{step.name}.sink_mass"],
                                cache[f"{step.name}.mask"], kv, token_labels(session),
                                title=f"layer {step.layer} attention ({kind}): p per query (row) and key (column)",
                                heads=shown_heads(c))
    sinks = sink_table_html(session, step, shown_heads(c))
    return picture(drawing, "hover a cell for the query, the key and the probability") + sinks


def sink_table_html(session, step, heads) -> str:
    """Per head: its sink logit S_h (as stored), and the mass the sink took (mean over queries, last query)."""
    mass = np.asarray(session.cache[f"{step.name}.sink_mass"], dtype=np.float64)  # (nq, T)
    name = f"block.{step.layer}.attn.sinks"
    sinks = session.weights[name] if name in session.weights else None
    kv = attention.kv_head_of(session.config.num_attention_heads, session.config.num_key_value_heads)
    rows = ["<tr><th>head</th><th>kv</th><th>sink S_h</th><th>sink mass: mean</th><th>last query</th></tr>"]
    for h in heads:
        cells = [f"h{h}", f"kv{kv[h]}", svg.number(float(sinks[h])) if sinks is not None else "",
                 f"{mass[h].mean():.3f}", f"{mass[h, -1]:.3f}"]
        rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    return f'<table class="decode">{"".join(rows)}</table>'


# The kinds whose pictures say what the debugger's terminal view says: it is not repeated under them.
PICTURED = ("attn", "router", "mxfp4", "output")


def router_picture(session, step) -> str:
    m = step.name.removesuffix(".router")
    drawing = svg.router_svg(session.cache[f"{m}.router.expert_ids"], session.cache[f"{m}.router.weights"],
                             session.config.num_experts, token_labels(session),
                             title=f"layer {step.layer} router: the top-{session.config.experts_per_token} "
                                   f"experts of each token")
    return picture(drawing)


def mxfp4_picture(session, step) -> str:
    """The first block of row 0 of token 0's first expert's mlp1, decoded by hand, as a table (views/steps.py's
    hand_decode; the same block the debugger's view decodes)."""
    n, w = step.layer, session.weights
    prefix = f"block.{n}.mlp.mlp1_weight"
    if f"{prefix}.blocks" not in w:
        return ""
    e = int(session.cache[f"blocks.{n}.moe.router.expert_ids"][0, 0])
    scale_byte = int(w[f"{prefix}.scales"][e, 0, 0])
    d = hand_decode(w[f"{prefix}.blocks"][e, 0, 0], scale_byte)
    head = ("<tr><th>j</th><th>byte</th><th>low nibble</th><th>FP4</th><th>w[2j]</th>"
            "<th>high nibble</th><th>FP4</th><th>w[2j+1]</th></tr>")
    rows = []
    for j, byte in enumerate(d["bytes"]):
        cells = [str(j), f"0x{byte:02X}"]
        for half in (0, 1):
            i = 2 * j + half
            cells += [f"{d['codes'][i]:X}", fp4_text(float(d["values"][i])), f"{d['weights'][i]}"]
        rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    caption = (f"{prefix}.blocks[{e}, 0, 0] and .scales[{e}, 0, 0]: scale byte {scale_byte} -> "
               f"2^({scale_byte} - {mxfp4.SCALE_BIAS}) = {d['scale']}; w = FP4[code] x scale")
    weights = svg.columns_svg(d["weights"], title=f"the 32 decoded weights W1[{e}][0, 0:32]", value_name="w",
                              height=80)
    return (f'<div class="note">{escape(caption)}</div><table class="decode">{head}{"".join(rows)}</table>'
            + picture(weights))


def output_picture(session, step, top: int) -> str:
    vocab = [token_text(session.tokenizer, i) for i in range(session.config.vocab_size)] \
        if session.config.vocab_size <= 4096 else LazyLabels(session.tokenizer)
    last = len(session.tokens) - 1
    drawing = svg.candidates_svg(session.cache["logits"][-1], vocab, top,
                                 title=f"after position {last}")
    return picture(drawing, "log p is the natural log; p = exp(log p)")


class LazyLabels:
    """token_text(tokenizer, i) on demand (a real vocabulary has 201,088 entries; a few are drawn)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getitem__(self, i: int) -> str:
        return token_text(self.tokenizer, i)


def output_heatmap(session, step) -> str:
    """The step's main recorded output as a tokens x features heatmap (block-averaged when wide)."""
    name = step.outputs[0]
    array = np.asarray(session.cache[name])
    if array.ndim < 2 or array.shape[0] != len(session.tokens):
        return ""
    matrix = array.reshape(array.shape[0], -1).astype(np.float64)  # (T, ...) -> (T, features)
    drawing = svg.heatmap_svg(matrix, svg.token_labels(len(session.tokens), token_labels(session)), [str(i) for i in range(matrix.shape[1])],
                              title=f"{name} {tuple(array.shape)}" + (" (flattened after the token axis)"
                                                                       if array.ndim > 2 else ""),
                              cell=10, value_name=name.rsplit(".", 1)[-1])
    return picture(drawing)


def pictures(session, step, top: int) -> str:
    """The SVG/HTML pictures made for this kind of step ("" if none)."""
    if step.kind == "attn":
        return attention_picture(session, step)
    if step.kind == "router":
        return router_picture(session, step)
    if step.kind == "mxfp4":
        return mxfp4_picture(session, step)
    if step.kind == "output":
        return output_picture(session, step, top)
    if step.kind in ("embed", "moe"):  # the residual stream's start, and what each block's MoE adds to it
        return output_heatmap(session, step)
    return ""


# -- the page ----------------------------------------------------------------------------------------------------

def section(session, step, index: int, total: int, top: int, anchor: str = "", passes: str = "",
            source: bool = True) -> str:
    """One step: title, place, equation, pictures, the debugger's view (unless a picture says the same; a
    generation's sampling step and a decode pass's attention over the cache are the view's own), then source
    (unless not `source`) and tensors folded. `anchor`: its id (default the step's name); `passes`: "pass 2/9"
    in a generation."""
    own = session.this_pass is not None and step.kind == "attn" and session.start > 0
    view = piece_view(session, step, RICH_WIDTH, top) if step.kind not in PICTURED or own else None
    where = "<br>".join(escape(line) for line in where_text(session, step).plain.split("\n"))
    parts = [f'<section id="{escape(anchor or step.name)}">',
             f"<h2>{escape(plain(step_title(step, index, total, passes)))}</h2>",
             f'<div class="where">{where}</div>',
             f'<pre class="equation">{escape(equation(step.kind, session.config, step.layer))}</pre>',
             pictures(session, step, top),
             drawn_html(session) if step.kind == "output" and session.this_pass is not None else "",
             rich_html(view) if view is not None else "",
             f"<details><summary>source</summary>{rich_html(source_panel(step.kind))}</details>" if source else "",
             f"<details><summary>inputs and outputs</summary>{tensors_table(session, step)}</details>",
             "</section>"]
    return "\n".join(part for part in parts if part)


def tensors_table(session, step) -> str:
    """The step's recorded inputs and outputs: name, shape, dtype, min, max, mean, std (finite entries)."""
    rows = ["<tr><th></th><th>name</th><th>shape</th><th>dtype</th><th>min</th><th>max</th><th>mean</th>"
            "<th>std</th><th>masked</th></tr>"]
    for role, names in (("in", step.inputs), ("out", step.outputs)):
        for name in (n for n in names if n in session.cache):
            array = np.asarray(session.cache[name])
            stats = tensor_stats(array)
            cells = [role, name, str(tuple(array.shape)), str(array.dtype),
                     *(svg.number(stats[key]) for key in ("min", "max", "mean", "std")), str(stats["non_finite"])]
            rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    return f'<table class="decode">{"".join(rows)}</table>'


def navigation(steps) -> str:
    """The sidebar: a link to every step, grouped by layer."""
    links, layer = ['<nav><b>steps</b>'], "start"
    for step in steps:
        group = f"layer {step.layer}" if step.layer is not None else ("output" if step.kind in ("norm", "output")
                                                                      else "input")
        if group != layer:
            links.append(f"<h3>{escape(group)}</h3>")
            layer = group
        links.append(f'<a href="#{escape(step.name)}" title="{escape(TITLES[step.kind])}">{escape(step.name)}</a>')
    links.append("</nav>")
    return "\n".join(links)


def tokens_html(session) -> str:
    """The prompt as token chips: position, text, id."""
    chips = "".join(f"<span><small>{i}:</small>{escape(token_text(session.tokenizer, t))}<small>[{t}]</small></span>"
                    for i, t in enumerate(session.tokens))
    return f'<div class="tokens">{chips}</div>'


def report_html(session, steps, top: int = 10, title: str = "minigptoss: one forward pass") -> str:
    """The whole page for these steps (cli/navigation.py's Step objects, in order) of the recorded pass."""
    c = session.config
    text = session.tokenizer.decode(session.tokens)
    header = (f"<h1>{escape(title)}</h1>"
              f'<div class="where">{escape(str(session.source))}: {c.num_hidden_layers} layers, '
              f"{c.num_attention_heads} query heads / {c.num_key_value_heads} key-value heads, {c.num_experts} "
              f"experts (top-{c.experts_per_token}), vocabulary {c.vocab_size}; {len(session.tokens)} tokens: "
              f"{escape(repr(text))}</div>{tokens_html(session)}"
              f'<p class="note">Every step of the pass, in order. Hover a picture\'s cell or bar for its value; '
              f"the dark blocks are the debugger's own views (<code>minigptoss step</code>).</p>")
    body = [section(session, step, i, len(steps), top) for i, step in enumerate(steps)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><div class=\"layout\">\n"
            f"{navigation(steps)}\n<main>{header}\n" + "\n".join(body) + "\n</main></div></body></html>\n")


def drawn_html(session) -> str:
    """How a generation's pass drew its token (views/passes.py's sampling step): one line when greedy, the
    cut and the random number as the debugger shows them when sampling."""
    view = sampling_view(session, session.this_pass.settings)
    return f'<div class="where">{escape(view.plain)}</div>' if isinstance(view, Text) else rich_html(view)


def generation_html(passes, steps, timeline, top: int = 10, title: str = "minigptoss: a generation, pass by pass") -> str:
    """The page of a whole generation: the timeline first, then a section per pass (`#pass-2`), each with its
    steps (`#pass-2-blocks.0.attn`). passes: one session per pass (cli/step.py's Session.passes()); timeline: its
    renderable (views/passes.py). The source lines are folded into pass 1's steps only (the code is the same
    in every pass), which keeps a whole answer of the bundled sort model to a few MB."""
    first, c = passes[0], passes[0].config
    text = first.tokenizer.decode(passes[-1].tokens + ([passes[-1].this_pass.drawn]
                                                        if passes[-1].this_pass.drawn is not None else []))
    links = ['<nav><b><a href="#timeline">timeline</a></b>', "<h3>passes</h3>"]
    body = [f'<section id="timeline"><h2>timeline</h2>{rich_html(timeline)}</section>']
    for one in passes:
        number, label = one.this_pass.number, f"pass {one.this_pass.number}/{len(passes)}"
        reads = pass_line(one).plain
        links.append(f'<a href="#pass-{number}" title="{escape(reads)}">{escape(label)}: '
                     f"{escape(token_text(one.tokenizer, one.this_pass.drawn) if one.this_pass.drawn is not None else '')}"
                     "</a>")
        jump = " ".join(f'<a href="#pass-{number}-{escape(step.name)}">{escape(step.name)}</a>' for step in steps)
        body.append(f'<section id="pass-{number}"><h1>{escape(label)}</h1><div class="where">{escape(reads)}</div>'
                    f'<div class="note">{jump}</div></section>')
        body += [section(one, step, i, len(steps), top, f"pass-{number}-{step.name}", label, source=number == 1)
                 for i, step in enumerate(steps)]
    links.append("</nav>")
    header = (f"<h1>{escape(title)}</h1>"
              f'<div class="where">{escape(str(first.source))}: {c.num_hidden_layers} layers, '
              f"{c.num_attention_heads} query heads / {c.num_key_value_heads} key-value heads, {c.num_experts} "
              f"experts (top-{c.experts_per_token}); {len(first.tokens)} prompt tokens, {len(passes)} passes; "
              f"the text: {escape(repr(text))}</div>{tokens_html(first)}"
              f'<p class="note">The timeline, then every pass: pass 1 reads the prompt, each later pass the token '
              f"the one before it drew, through the KV cache. Hover a picture's cell or bar for its value.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><div class=\"layout\">\n"
            + "\n".join(links) + f"\n<main>{header}\n" + "\n".join(body) + "\n</main></div></body></html>\n")
