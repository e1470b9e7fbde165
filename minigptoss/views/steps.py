"""What the step-through debugger shows for each piece of gpt-oss, as rich renderables.

`render_step(session, step, ...)` builds one screen: where we are (layer, positions, sliding or full), the
piece's equation, the source of the functions that compute it, its input and output tensors (shape, dtype,
statistics, a small heatmap or sparkline), and a view made for the piece (`VIEWS[step.kind]`).

Everything here reads the tensors a `capture()` recorded (plus the config and the tokenizer); nothing reruns
the model. Two deliberate exceptions: the MXFP4 view decodes one stored block of the checkpoint by hand
(bytes -> nibbles -> table values -> times the scale), which is its point, and the RoPE view shows the angles
as recorded rope.inv_freq times the positions. `session` is a `step.Session` (model, tokenizer, tokens, cache).
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import numpy as np
from rich.columns import Columns
from rich.console import Group
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .. import attention, model, moe, mxfp4, rmsnorm, rope, router, swiglu
from .passes import decode_attention, kv_cache_table, pass_line, sampling_view
from .summary import token_text, tokens_view, top_tokens_table
from ..names import declared, is_declared
from ..config import RMS_NORM_EPS, SWIGLU_ALPHA, yarn_ramp_bounds
from .tensor import SEQUENTIAL, format_number, heatmap, sparkline, tensor_stats

TITLES = {"tokens": "tokens", "embed": "embedding", "norm": "RMSNorm", "qkv": "QKV projection",
          "rope": "RoPE (YaRN)", "attn": "attention with sinks", "attn_out": "attention output + residual",
          "router": "router", "mxfp4": "experts' first projection (MXFP4 weights)", "swiglu": "SwiGLU (clamped)",
          "mlp2": "experts' second projection", "moe": "MoE combine + residual", "output": "unembedding: logits"}

# For each kind of step, the functions that compute it: (function, None) for all of it, or
# (function, needles) for its lines from the first to the last holding one of the needles.
SOURCES = {
    "tokens": [(model.forward, ('positions = record("positions"',))],
    "embed": [(model.forward, ('"embedding.weight"',))],
    "norm": [(rmsnorm.rms, None), (rmsnorm.rms_norm, None)],
    "qkv": [(model.attention_block, ('qkv = record(at + "qkv"', "q, k, v = split_qkv")), (attention.split_qkv, None)],
    "rope": [(rope.inverse_frequencies, None), (rope.apply_rope, None)],
    "attn": [(attention.attention_scores, None), (attention.sink_softmax, None), (attention.attend, None)],
    "attn_out": [(model.attention_block, ('out = record(at + "out"',)), (model.attention_block, ("return x + out",))],
    "router": [(router.router_logits, None), (router.route, None)],
    "mxfp4": [(mxfp4.decode_mxfp4, None), (moe.grouped_linear, None)],
    "swiglu": [(swiglu.swiglu, None)],
    "mlp2": [(model.moe_block, ('"expert_out", grouped_linear',)), (moe.MXFP4Experts.matrix, None)],
    "moe": [(moe.combine, None), (model.moe_block, ("return x + out",))],
    "output": [(model.forward, ('w["norm.scale"]', '"unembedding.weight"'))],
}


def equation(kind: str, config, layer: int | None, sliding: bool | None = None) -> str:
    """The math of one kind of step, with this model's constants filled in. `sliding`: whether this layer's
    window held in the pass shown (False under `window off`); the config's word when None."""
    c = config
    if sliding is None:
        sliding = layer is not None and c.is_sliding(layer)
    window = f"and i - j < {c.sliding_window}" if sliding else "(full)"
    if not sliding and layer is not None and c.is_sliding(layer):
        window = f"(full: this run switched the window of {c.sliding_window} off)"
    return {
        "tokens": "text -> token ids (T,) with the tokenizer;  positions = 0 .. T-1\n"
                  "generating: each later pass reads the one token the pass before it drew, at the next position",
        "embed": "x_t = E[token_t]        E = embedding.weight (V, H)\nnot scaled, not tied to the unembedding",
        "norm": f"y = x / sqrt(mean(x^2) + {RMS_NORM_EPS:g}) * g\nno centring, no bias, the gain g used as stored",
        "qkv": f"qkv = t W_qkv^T + b_qkv\nq = the first {c.num_attention_heads}*{c.head_dim} columns, "
               f"k = the next {c.num_key_value_heads}*{c.head_dim}, v = the rest (heads of {c.head_dim})",
        "rope": "x1' = x1 cos(a) - x2 sin(a)       x2' = x2 cos(a) + x1 sin(a)\n"
                "(x1, x2) = the two halves of each q and k head (not v);  a_ti = position_t * inv_freq_i\n"
                "cos and sin are both multiplied by c = 1 + 0.1 ln(s)",
        "attn": f"s_hij = q_hi . k_kv(h),j / sqrt({c.head_dim})   -inf unless j <= i {window}\n"
                "p_hij = exp(s_hij) / (sum_j' exp(s_hij') + exp(S_h))     S_h: the sink\n"
                f"z_hi  = sum_j p_hij v_kv(h),j                kv(h) = floor(h / {c.queries_per_kv_head})",
        "attn_out": "attn_out = z W_out^T + b_out\nx <- x + attn_out   (the residual stream)",
        "router": f"g = t W_gate^T + b_gate        ids = the {c.experts_per_token} largest entries of g\n"
                  f"weights = softmax(g[ids]), over those {c.experts_per_token} only",
        "mxfp4": "h_tk = W1[e] t_t + b1[e]   e = expert_ids[t, k]   (2I rows: gate, linear, gate, ...)\n"
                 "W1[e] is stored in MXFP4:  w[32g + i] = FP4[code_i] * 2^(scale_g - 127)",
        "swiglu": f"glu = min(h[0::2], {c.swiglu_limit:g})     lin = clip(h[1::2], -{c.swiglu_limit:g}, "
                  f"{c.swiglu_limit:g})\nu = glu * sigmoid({SWIGLU_ALPHA} glu) * (lin + 1)",
        "mlp2": "y_tk = W2[e] u_tk + b2[e]      e = expert_ids[t, k]\n"
                "W2 is MXFP4 too; the bias is added before the router weight",
        "moe": "MoE(t) = sum_k weight_tk y_tk\nx <- x + MoE(t)   (the residual stream)",
        "output": "logits = RMSNorm(x; norm.scale) W_unembed^T\nno bias, no soft-capping",
    }[kind]


# -- shared pieces ----------------------------------------------------------------------------------------------

def source_of(func, needles=None) -> tuple[str, int, str]:
    """(code, first line number, "file.py:line name") of a function, or of its lines from the first to the last
    holding one of the needles. A needle that no longer matches is a LookupError (tests/test_step.py checks every
    SOURCES entry), never a silent fallback to the whole function."""
    lines, start = inspect.getsourcelines(func)
    if needles:
        missing = [needle for needle in needles if not any(needle in line for line in lines)]
        if missing:
            raise LookupError(f"{func.__qualname__} no longer contains {missing} (views/steps.py SOURCES)")
        hits = [i for i, line in enumerate(lines) if any(needle in line for needle in needles)]
        lines, start = lines[hits[0]:hits[-1] + 1], start + hits[0]
    label = f"{Path(inspect.getsourcefile(func)).name}:{start}  {func.__qualname__}"
    return textwrap.dedent("".join(lines)).rstrip(), start, label


def source_panel(kind: str) -> Panel:
    """The source lines of the functions that compute this kind of step."""
    parts = []
    for func, needles in SOURCES[kind]:
        code, start, label = source_of(func, needles)
        parts += [Text(label, style="bold cyan"),
                  Syntax(code, "python", line_numbers=True, start_line=start, word_wrap=True,
                         theme="ansi_dark", background_color="default")]
    return Panel(Group(*parts), title="source", title_align="left")


def titled(title: str, table: Table) -> Group:
    """A table under a title line of its own (a table's own title would wrap to the table's width)."""
    return Group(Text(title, style="italic"), table)


def rms_per_row(array: np.ndarray) -> np.ndarray:
    """Root-mean-square of each row over the last axis (a display statistic): (T, H) -> (T,)."""
    values = np.asarray(array, dtype=np.float64)
    return np.sqrt(np.mean(np.square(values), axis=-1))


def compact_picture(array: np.ndarray, cells: int):
    """A sparkline (1-D) or a heatmap of at most 4 rows (rows = first axis), `cells` wide; None if not numeric."""
    array = np.asarray(array)
    if array.size == 0 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return None
    values = array.astype(np.float64)
    if values.ndim <= 1:
        return sparkline(values.reshape(-1), width=max(4, 2 * cells))
    return heatmap(values.reshape(values.shape[0], -1), max_rows=4, max_cols=max(2, cells))


def tensor_summary(role: str, name: str, array: np.ndarray) -> Text:
    """role + name, shape and dtype, min/max, mean/std (and how many entries are masked)."""
    array = np.asarray(array)
    stats = tensor_stats(array)
    shape = f"({', '.join(declared(name).dims)}) = {array.shape}" if is_declared(name) else f"{array.shape}"
    text = Text.assemble((f"{role} ", "dim"), (name, "bold"), "\n", (f"{shape} {array.dtype}", "cyan"),
                         "\n", f"min {format_number(stats['min'])}  max {format_number(stats['max'])}", "\n",
                         f"mean {format_number(stats['mean'])}  std {format_number(stats['std'])}")
    if stats["non_finite"]:
        text.append(f"\n{stats['non_finite']} masked (-inf)", style="dim")
    return text


def tensors_panel(session, step, width: int) -> Panel:
    """The step's recorded inputs and outputs (summary + picture) and the checkpoint tensors it uses."""
    rows = [("in", name) for name in step.inputs] + [("out", name) for name in step.outputs]
    rows = [(role, name) for role, name in rows if name in session.cache]
    summaries = [tensor_summary(role, name, session.cache[name]) for role, name in rows]
    left = max((len(line) for s in summaries for line in s.plain.split("\n")), default=20)
    cells = max(4, (width - 4 - left - 2) // 2)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for (role, name), summary in zip(rows, summaries):
        grid.add_row(summary, compact_picture(session.cache[name], cells) or "")
    parts = [grid]
    used = [name for name in step.weights if name in session.weights]
    if used:
        lines = Text("weights  ", style="dim")
        for i, name in enumerate(used):
            shape, kind = weight_info(session.weights, name)
            lines.append(("\n         " if i else "") + f"{name} {shape} {kind}")
        parts.append(lines)
    return Panel(Group(*parts), title="inputs and outputs", title_align="left")


def weight_info(weights, name: str) -> tuple[tuple[int, ...], str]:
    """(shape, dtype as stored) of a checkpoint tensor, without reading it when the weights are lazy."""
    stored = getattr(weights, "stored", {}).get(name)  # LazyWeights: the checkpoint's view, not widened
    if stored is not None:
        return tuple(stored.shape), "MXFP4 bytes" if stored.dtype == "U8" else stored.dtype
    array = weights[name]
    return tuple(array.shape), "MXFP4 bytes" if array.dtype == np.uint8 else str(array.dtype)


def where_text(session, step) -> Text:
    """Which layer (sliding or full) and which token positions this step is about; in a generation, a line
    before it saying what the pass reads and writes (views/passes.py)."""
    c, T, start = session.config, len(session.tokens), session.start
    if step.layer is None:
        layer = "before the blocks" if step.kind in ("tokens", "embed") else "after the blocks"
    else:
        kind = f"sliding, window {c.sliding_window}" if c.is_sliding(step.layer) else "full causal"
        layer = f"layer {step.layer} of {c.num_hidden_layers} ({kind})"
    positions = f"positions 0..{T - 1} ({T} tokens)" if start == 0 else \
        f"position {start} (1 new token, {start} before it)" if T - start == 1 else \
        f"positions {start}..{T - 1} ({T - start} new, {start} before)"
    where = Text.assemble((layer, "bold yellow"), " · ", positions, " · ", ("piece ", "dim"), (step.piece, "bold"))
    if session.this_pass is None:
        return where
    both = Text("\n").join([pass_line(session), where])
    both.no_wrap, both.overflow = True, "ellipsis"  # two lines, each cut to the width, never wrapped
    return both


def step_title(step, index: int, total: int, passes: str = "") -> str:
    """`step 6/48 · blocks.0.attn · attention with sinks` (rich markup); in a generation, `passes` ("pass 3/10")
    goes first."""
    title = f"[bold]{passes + ' · ' if passes else ''}step {index + 1}/{total} · {step.name}[/]"
    if TITLES[step.kind] != step.name:
        title += f" · {TITLES[step.kind]}"
    return title


def piece_view(session, step, width: int = 80, top: int = 10):
    """The view made for the piece, in its green panel (None if the piece has none)."""
    view = VIEWS[step.kind](session, step, width, top=top)
    if view is None:
        return None
    return Panel(view, title=f"[bold]{TITLES[step.kind]}[/]", title_align="left", border_style="green")


def window_held(session, layer: int | None) -> bool:
    """Whether layer `layer` attended through its sliding window in this pass: the config says it slides and the
    recorded mask keeps no key at or beyond the window (an intervention such as `window off` opens it)."""
    c = session.config
    if layer is None or not c.is_sliding(layer):
        return False
    mask = session.cache[f"blocks.{layer}.attn.mask"] if f"blocks.{layer}.attn.mask" in session.cache else None
    if mask is None:
        return True
    T, Tk = mask.shape
    distance = np.arange(T)[:, None] + (Tk - T) - np.arange(Tk)[None, :]  # (T, Tk): i - j, absolute
    return not bool(np.any(mask & (distance >= c.sliding_window)))


def sinks_removed(sink_mass: np.ndarray) -> np.ndarray:
    """(nq,) True for the heads whose sink got no mass at any query: S_h = -inf in this pass (`sinks off`)."""
    return ~np.any(np.asarray(sink_mass) != 0, axis=-1)


def equation_panel(session, step) -> Panel:
    text = equation(step.kind, session.config, step.layer, window_held(session, step.layer))
    return Panel(Text(text), title="equation", title_align="left")


def step_body(session, step, width: int = 80, top: int = 10, source: bool = False, tensors: bool = False) -> Group:
    """What the interactive debugger scrolls: the equation and the piece's own view first, then (when asked)
    the source and the tensor list; the title and position line are pinned above it."""
    parts = [equation_panel(session, step), piece_view(session, step, width, top)]
    if source:
        parts.append(source_panel(step.kind))
    if tensors:
        parts.append(tensors_panel(session, step, width))
    return Group(*(part for part in parts if part is not None))


def render_step(session, step, index: int, total: int, width: int = 80, top: int = 10, passes: str = "",
                source: bool = True) -> Group:
    """One full screen for `step` (the printed mode): title, where, equation, source (unless not `source`: a
    generation prints it in its first pass only), tensors, the piece's view."""
    parts = [Rule(step_title(step, index, total, passes), characters="━"),
             where_text(session, step),
             equation_panel(session, step),
             source_panel(step.kind) if source else None,
             tensors_panel(session, step, width)]
    parts.append(piece_view(session, step, width, top))
    return Group(*(part for part in parts if part is not None))


def token_label(session, position: int) -> str:
    """The display text of the token at `position`."""
    return token_text(session.tokenizer, session.tokens[position])


def row_position(session, row: int) -> int:
    """The position of row `row` of this pass's (T, ...) tensors (a decode pass's rows start after the cache)."""
    return session.start + row


MAX_ROWS = 64  # per-token tables show the last 64 positions (the body scrolls)


def last_rows(count: int, limit: int) -> tuple[range, str]:
    """The last `limit` of `count` positions, and a note saying so when some are left out."""
    shown = range(max(0, count - limit), count)
    return shown, (f"(last {len(shown)} of {count} positions)" if len(shown) < count else "")


# -- one view per kind of step ----------------------------------------------------------------------------------

def view_tokens(session, step, width: int, top: int = 10):
    """The text, split into tokens with their ids; in a decode pass, the one token it reads and the KV cache
    it attends to (as the pass left it)."""
    text = session.tokenizer.decode(session.tokens)
    if session.start == 0:
        return Group(Text.assemble(("text ", "dim"), repr(text)), tokens_view(session.tokens, session.tokenizer))
    new = session.tokens[session.start:]
    return Group(Text.assemble(("text so far ", "dim"), repr(text)),
                 Text.assemble(("this pass reads ", "dim"), (repr(session.tokenizer.decode(new)), "bold"),
                               f" {new} at position {session.start}: one query, and one key and value per layer "
                               f"added to the KV cache; every earlier key is read from the cache, not recomputed"),
                 titled("the KV cache after this pass", kv_cache_table(session)))


def view_embed(session, step, width: int, top: int = 10):
    """Which rows of the embedding the tokens picked, and their sizes."""
    x = session.cache["embed"]
    norms = rms_per_row(x)
    return Group(Text(f"x_t is row token_t of embedding.weight {weight_info(session.weights, 'embedding.weight')[0]}: "
                      f"rows {', '.join(map(str, session.tokens[:12]))}{', …' if len(session.tokens) > 12 else ''}"),
                 Text.assemble(("rms per token  ", "dim"), sparkline(norms, width=min(len(norms), width - 40)),
                               f"  {format_number(norms.min())} .. {format_number(norms.max())}"))


def view_norm(session, step, width: int, top: int = 10):
    """The RMS of each token's vector before and after the norm."""
    before, after = rms_per_row(session.cache[step.inputs[0]]), rms_per_row(session.cache[step.outputs[0]])
    rows, note = last_rows(len(before), MAX_ROWS)
    table = Table(box=None, padding=(0, 2))
    for column in ("pos", "token", "rms before", "rms after"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for t in rows:
        table.add_row(str(row_position(session, t)), token_label(session, row_position(session, t)),
                      f"{before[t]:.4f}", f"{after[t]:.4f}")
    spark = max(4, min(len(before), width - 40))
    lines = [Text.assemble((f"{label:<11}", "dim"), sparkline(values, width=spark),
                           f"  {format_number(values.min())} .. {format_number(values.max())}")
             for label, values in (("before", before), ("after", after))]
    return Group(titled(f"RMS over the hidden size, per token {note}", table), Text("all positions:", style="dim"),
                 *lines,
                 Text("after ≈ rms of the gain g (each vector is first scaled to rms 1)", style="dim"))


def view_qkv(session, step, width: int, top: int = 10):
    """How the fused projection's rows split into query, key and value heads, and which share."""
    c, name = session.config, step.name.removesuffix(".qkv")
    nq, nkv, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    table = Table(box=None, padding=(0, 2))
    for column in ("part", "columns of qkv", "heads x size", "rms"):
        table.add_column(column)
    start = 0
    for part, heads in (("q", nq), ("k", nkv), ("v", nkv)):
        array = session.cache[f"{name}.{part}"]
        table.add_row(part, f"{start} .. {start + heads * d - 1}", f"{heads} x {d}",
                      format_number(float(np.sqrt(np.mean(np.square(array, dtype=np.float64))))))
        start += heads * d
    return Group(table, gqa_text(c))


def gqa_text(config) -> Text:
    """Which query heads read which key/value head (grouped-query attention)."""
    kv = attention.kv_head_of(config.num_attention_heads, config.num_key_value_heads)
    groups = [f"kv{g} <- q{np.flatnonzero(kv == g)[0]}..q{np.flatnonzero(kv == g)[-1]}"
              for g in range(config.num_key_value_heads)]
    return Text("grouped-query attention: " + ",  ".join(groups), style="cyan")


def view_rope(session, step, width: int, top: int = 10):
    """The frequencies (which dims YaRN kept, which it stretched), the angles, the concentration factor."""
    c, cache = session.config, session.cache
    inv_freq, positions = cache["rope.inv_freq"], cache["positions"]
    base = 1.0 / rope.base_frequencies(c).astype(np.float64)  # 1 / theta^(2i/d): before YaRN
    low, high = cache["rope.yarn_bounds"] if "rope.yarn_bounds" in cache else yarn_ramp_bounds(c)  # as the pass used
    last = int(positions[-1])
    table = Table(box=None, padding=(0, 1))
    for column in ("i", "1/theta^(2i/d)", "inv_freq", "stretch", "YaRN", "wavelength", f"angle @{last}"):
        table.add_column(column, justify="right")
    for i, f in enumerate(inv_freq.astype(np.float64)):
        stretch = base[i] / f
        if c.rope_scaling_factor <= 1 or i <= low:
            what = "kept"
        elif i >= high:
            what = f"/{c.rope_scaling_factor:g}"
        else:
            what = f"ramp {(i - low) / (high - low):.2f}"
        table.add_row(str(i), f"{base[i]:.4g}", f"{f:.4g}", f"x{stretch:.3g}", what,
                      f"{2 * np.pi / f:.4g}", f"{last * f:.4g}")
    magnitude = float(np.hypot(cache["rope.cos"], cache["rope.sin"]).mean())
    c_formula = rope.concentration(c)
    lines = [Text(f"YaRN ramp: dims i <= {low:.2f} keep their frequency, i >= {high:.2f} are divided by "
                  f"s = {c.rope_scaling_factor:g}, in between they blend", style="dim"),
             Text(f"concentration c = 1 + 0.1 ln({c.rope_scaling_factor:g}) = {c_formula:.4f};  recorded "
                  f"|(cos, sin)| = {magnitude:.4f};  every q.k logit is scaled by c^2 = {c_formula ** 2:.3f}")]
    return Group(titled(f"each head's pairs (i, i+{c.head_dim // 2}), rotated by angle position * inv_freq_i", table),
                 *lines)


PROB_LEVELS = (0.05, 0.15, 0.35, 0.6)  # probability below each level -> · ░ ▒ ▓ ; at or above the last -> █
PROB_CHARS = "·░▒▓█"


def prob_cell(p: float) -> tuple[str, str]:
    """(character, colour) of one attention probability; every allowed cell shows at least '·'; NaN is '?'."""
    if not np.isfinite(p):
        return "?", "red"
    char = PROB_CHARS[int(np.searchsorted(PROB_LEVELS, p, side="right"))]
    palette = SEQUENTIAL[3:]  # skip the darkest colours: they vanish on a dark terminal
    return char, palette[min(int(p * len(palette)), len(palette) - 1)]


def head_grid(probs: np.ndarray, sink_mass: np.ndarray, mask: np.ndarray, queries: range, keys: range) -> Text:
    """One head's pattern: a header of key positions (last digit), then a row per query: the sink's mass, '│',
    then one cell per key (blank = masked)."""
    text = Text("s│" + "".join(str(j % 10) for j in keys) + "\n", style="dim")
    for row, i in enumerate(queries):
        text.append(*prob_cell(float(sink_mass[i])))
        text.append("│", style="dim")
        for j in keys:
            text.append(*prob_cell(float(probs[i, j]))) if mask[i, j] else text.append(" ")
        if row < len(queries) - 1:
            text.append("\n")
    return text


def shown_heads(config) -> list[int]:
    """All heads when there are at most 16; otherwise the first query head of each key/value head."""
    nq = config.num_attention_heads
    return list(range(nq)) if nq <= 16 else list(range(0, nq, config.queries_per_kv_head))


LABEL_WIDTH = 8  # the query labels left of the heads: "text pos", cut to this


def query_labels(session, queries: range) -> Text:
    """One line per query: its token's text and position ("=  8"), right-aligned, cut to LABEL_WIDTH."""
    lines = []
    for i in queries:
        position = f" {i}"
        text = token_label(session, i)[:max(1, LABEL_WIDTH - len(position))]
        lines.append(f"{text}{position}".rjust(LABEL_WIDTH))
    return Text("\n" + "\n".join(lines), style="cyan")  # the first line faces the heads' key header


def pattern_size(width: int, T: int) -> int:
    """How many queries (and keys) each head's grid shows so that three heads fit across `width` beside the
    query labels (at least 8, so a window's band shows)."""
    return max(1, min(T, 64, max(8, (width - 6 - LABEL_WIDTH) // 3 - 4)))


def heads_per_row(width: int, n: int) -> int:
    """How many head grids of n keys (plus the sink and '│', and a gap of 2) fit across `width` (inside a panel)
    beside the query labels."""
    return max(1, (width - 6 - LABEL_WIDTH) // (n + 4))


def view_attn(session, step, width: int, top: int = 10):
    """Each head's attention pattern (sink column, window band) beside the query tokens, the sink mass per query,
    the GQA groups. The heads are laid out in rows of a fixed count for the width, so two runs side by side
    (an intervention) line up."""
    c, cache = session.config, session.cache
    probs, sink_mass, mask = (cache[f"{step.name}.{key}"] for key in ("probs", "sink_mass", "mask"))
    T, Tk = mask.shape
    if session.start > 0:  # a decode pass: its one query over the KV cache
        return Group(decode_attention(session, step, prob_cell, width, window_held(session, step.layer)),
                     sink_table(session, step, shown_heads(c), sink_mass, width), gqa_text(c))
    n = pattern_size(width, T)
    queries, keys = range(T - n, T), range(Tk - n, Tk)
    kv = attention.kv_head_of(c.num_attention_heads, c.num_key_value_heads)
    heads = shown_heads(c)
    per_row = heads_per_row(width, n)
    grid = Table.grid(padding=(0, 0, 0, 2))
    for _ in range(1 + min(per_row, len(heads))):
        grid.add_column(no_wrap=True)
    labels = query_labels(session, queries)
    for first in range(0, len(heads), per_row):
        chunk = heads[first:first + per_row]
        grid.add_row("", *(Text(f"h{h} kv{kv[h]}", style="bold") for h in chunk))
        grid.add_row(labels.copy(), *(head_grid(probs[h], sink_mass[h], mask, queries, keys) for h in chunk))
    window = (f"outside the window of {c.sliding_window}" if window_held(session, step.layer) else "")
    legend = Text(f"rows: queries {queries[0]}..{queries[-1]} top to bottom (token, position);  first column (s): the "
                  f"sink's mass, then │, then keys {keys[0]}..{keys[-1]} (the last digit of the position above)"
                  + (f" (keys 0..{keys[0] - 1} off-screen)" if keys[0] else "")
                  + f";  blank = masked (future{' or ' + window if window else ''});  "
                  f"· ░ ▒ ▓ █ = p < .05 .15 .35 .6 <= p", style="dim")
    if len(heads) < c.num_attention_heads:
        legend.append(f";  showing the first query head of each kv head ({len(heads)} of {c.num_attention_heads})")
    return Group(grid, legend, sink_table(session, step, heads, sink_mass, width), gqa_text(c))


def sink_table(session, step, heads: list[int], sink_mass: np.ndarray, width: int) -> Table:
    """Per head: its sink logit, and the probability mass it gave the sink (mean, last query, every query)."""
    name = f"block.{step.layer}.attn.sinks"
    sinks = session.weights[name] if name in session.weights else None  # (nq,): small
    T = sink_mass.shape[1]
    table = Table(box=None, padding=(0, 1))
    for column in ("head", "kv", "sink S_h", "mean", f"q{row_position(session, T - 1)}", "per query"):
        table.add_column(column, justify="left" if column == "per query" else "right")
    kv = attention.kv_head_of(session.config.num_attention_heads, session.config.num_key_value_heads)
    spark = max(4, min(T, width - 46))
    removed = sinks_removed(sink_mass)
    for h in heads:
        logit = "-inf (off)" if removed[h] else format_number(float(sinks[h])) if sinks is not None else ""
        table.add_row(f"h{h}", f"kv{kv[h]}", logit,
                      f"{sink_mass[h].mean():.3f}", f"{sink_mass[h, -1]:.3f}", sparkline(sink_mass[h], width=spark))
    return titled("sink mass per query (what the row gave the sink: 1 - its sum)", table)


def residual_lines(session, names: list[tuple[str, str]], width: int) -> Group:
    """Per-token RMS of a few recorded (T, ...) tensors (over everything but the token axis), as sparklines."""
    lines = []
    for label, name in names:
        array = session.cache[name]
        values = rms_per_row(array.reshape(array.shape[0], -1))
        spark = sparkline(values, width=max(4, min(len(values), width - 40)))
        lines.append(Text.assemble((f"{label:<14}", "dim"), spark,
                                   f"  mean {format_number(values.mean())}"))
    return Group(Text("RMS per token, all positions:", style="dim"), *lines)


def view_attn_out(session, step, width: int, top: int = 10):
    """How big the attention output is next to the residual stream it is added to."""
    b = f"blocks.{step.layer}"
    return residual_lines(session, [("x before", f"{b}.resid_pre"), ("attn out", f"{b}.attn.out"),
                                    ("x after", f"{b}.resid_mid")], width)


def view_router(session, step, width: int, top: int = 10):
    """For each token its top-k experts and their weights; how many tokens each expert received."""
    c, m = session.config, step.name.removesuffix(".router")
    ids, weights = session.cache[f"{m}.router.expert_ids"], session.cache[f"{m}.router.weights"]
    rows, note = last_rows(len(ids), MAX_ROWS)
    table = Table(box=None, padding=(0, 2))
    for column in ("pos", "token", "experts"):
        table.add_column(column, justify="right" if column == "pos" else "left")
    for t in rows:
        table.add_row(str(row_position(session, t)), token_label(session, row_position(session, t)),
                      "  ".join(f"e{int(e)} {float(w):.3f}" for e, w in zip(ids[t], weights[t])))
    per_token = titled(f"top-{c.experts_per_token} experts per token, with weights {note}", table)
    load = expert_load_view(moe.expert_load(ids, c.num_experts))
    return Columns([per_token, load], padding=(0, 4)) if c.num_experts <= 16 else Group(per_token, load)


def expert_load_view(load: np.ndarray):
    """How many tokens each expert received: a bar per expert (up to 16 experts), else a wrapped list."""
    if len(load) > 16:
        text = Text()
        for e, count in enumerate(load):
            text.append(f"e{e}:{count}  ", style="dim" if count == 0 else "magenta")
        idle = int(np.sum(load == 0))
        return titled(f"tokens per expert ({idle} of {len(load)} received none)", text)
    table = Table(box=None, padding=(0, 2))
    for column in ("expert", "tokens", ""):
        table.add_column(column, justify="left" if not column else "right")
    for e, count in enumerate(load):
        table.add_row(f"e{e}", str(int(count)), Text("█" * int(count), style="magenta"))
    return titled("tokens per expert", table)


def hand_decode(block: np.ndarray, scale_byte: int) -> dict:
    """Decode one MXFP4 block step by step: 16 bytes -> 32 nibble codes -> FP4 table values -> times 2^(e - 127).

    Element 2j is byte j's LOW nibble, element 2j+1 its HIGH nibble. Returns every intermediate.
    """
    block = np.asarray(block, dtype=np.uint8).reshape(mxfp4.BYTES_PER_BLOCK)
    low, high = block & 0x0F, block >> 4
    codes = np.empty(mxfp4.BLOCK_SIZE, dtype=np.uint8)
    codes[0::2], codes[1::2] = low, high
    values = mxfp4.FP4_VALUES[codes]
    exponent = int(scale_byte) - mxfp4.SCALE_BIAS
    scale = np.float32(np.nan) if scale_byte == mxfp4.NAN_SCALE else np.float32(2.0 ** exponent)
    with np.errstate(over="ignore"):  # 6 * 2^127 is inf in float32, as decode_mxfp4 gives too
        weights = (values * scale).astype(np.float32)
    return {"bytes": block, "low": low, "high": high, "codes": codes, "values": values,
            "exponent": exponent, "scale": scale, "weights": weights}


def fp4_text(value: float) -> str:
    """An FP4 table value with its sign, -0 included."""
    return "-0" if value == 0 and np.signbit(value) else f"{value:+g}"


def view_mxfp4(session, step, width: int, top: int = 10):
    """The first block of row 0 of the first chosen expert's mlp1 in this layer, decoded by hand."""
    n, w = step.layer, session.weights
    prefix = f"block.{n}.mlp.mlp1_weight"
    if f"{prefix}.blocks" not in w:
        return Text("this checkpoint stores the experts already decoded (float), so there are no MXFP4 bytes to show")
    e = int(session.cache[f"blocks.{n}.moe.router.expert_ids"][0, 0])
    blocks, scales = w[f"{prefix}.blocks"], w[f"{prefix}.scales"]
    scale_byte = int(scales[e, 0, 0])
    d = hand_decode(blocks[e, 0, 0], scale_byte)
    table = Table(box=None, padding=(0, 1))
    for column in ("j", "byte", "low: code -> FP4 -> w[2j]", "high: code -> FP4 -> w[2j+1]"):
        table.add_column(column, justify="right" if column in ("j", "byte") else "left")
    for j, byte in enumerate(d["bytes"]):
        cells = [f"w{2 * j + half}: {code:X} -> {fp4_text(float(d['values'][2 * j + half])):>4} -> "
                 f"{d['weights'][2 * j + half]}" for half, code in ((0, d["low"][j]), (1, d["high"][j]))]
        table.add_row(str(j), f"0x{byte:02X}", *cells)
    check = mxfp4.decode_mxfp4(blocks[e, 0, 0:1], scales[e, 0, 0:1])
    same = np.array_equal(check, d["weights"], equal_nan=True)
    first = row_position(session, 0)
    token = token_label(session, first)
    return Group(
        Text(f"W1[{e}][0, 0:32]: expert {e} is token {first} ({token!r})'s first choice; row 0 of mlp1 is a gate row "
             f"(rows alternate gate, linear); block 0 holds its weights for inputs 0..31"),
        Text(f"stored at {prefix}.blocks[{e}, 0, 0] (16 bytes) and .scales[{e}, 0, 0] (1 byte):", style="dim"),
        Text(f"  bytes {' '.join(f'{b:02X}' for b in d['bytes'])}   scale byte {scale_byte}", style="cyan"),
        Text("byte j: its low nibble (right hex digit) is w[2j], its high nibble (left digit) w[2j+1]", style="dim"),
        table,
        Text(f"scale: byte {scale_byte} -> 2^({scale_byte} - 127) = 2^{d['exponent']} = {d['scale']}"),
        Text("FP4 (E2M1) table: " + "  ".join(f"{code:X}:{fp4_text(float(v))}"
                                              for code, v in enumerate(mxfp4.FP4_VALUES)), style="dim"),
        Text(f"{'✓' if same else '✗'} decode_mxfp4 gives {'the same' if same else 'DIFFERENT'} 32 weights "
             f"(W1[{e}][0, 0:32]); this expert's mlp1 has {blocks.shape[1]} rows x {blocks.shape[2]} blocks, "
             f"4.25 bits per weight", style="green" if same else "bold red"))


def view_swiglu(session, step, width: int, top: int = 10):
    """How many activations the clamps touched (swiglu.clamped_counts), and where."""
    c = session.config
    h = session.cache[step.inputs[0]]
    limit = c.swiglu_limit
    gate_over, lin_out = swiglu.clamped_counts(h, limit)
    per_half = h[..., 0::2].size
    glu, lin = h[..., 0::2], h[..., 1::2]
    lines = [Text(f"gate   values > {limit:g}:          {gate_over:>6} of {per_half}   (largest gate {glu.max():.4g})"),
             Text(f"linear values outside ±{limit:g}:   {lin_out:>6} of {per_half}   (range {lin.min():.4g} .. "
                  f"{lin.max():.4g})")]
    hit = np.argwhere((glu > limit).any(-1) | (np.abs(lin) > limit).any(-1))  # (token, slot) pairs clamped
    if len(hit):
        ids = session.cache[f"blocks.{step.layer}.moe.router.expert_ids"]
        where = ", ".join(f"pos {t} e{int(ids[t, k])}" for t, k in hit[:12])
        lines.append(Text(f"clamped in: {where}{' …' if len(hit) > 12 else ''}", style="yellow"))
    return Group(*lines)


def view_mlp2(session, step, width: int, top: int = 10):
    """Which experts ran their second projection, on how many rows."""
    ids = session.cache[f"blocks.{step.layer}.moe.router.expert_ids"]
    load = moe.expert_load(ids, session.config.num_experts)
    used = ", ".join(f"e{e} x{int(load[e])}" for e in np.flatnonzero(load))
    return Group(Text(f"grouped by expert, one product per expert: {used}"),
                 residual_lines(session, [("|y| per token", f"blocks.{step.layer}.moe.expert_out")], width))


def view_moe(session, step, width: int, top: int = 10):
    """How the chosen experts' outputs were weighted and added to the residual stream."""
    b = f"blocks.{step.layer}"
    ids, weights = session.cache[f"{b}.moe.router.expert_ids"], session.cache[f"{b}.moe.router.weights"]
    y = session.cache[f"{b}.moe.expert_out"]
    rows, note = last_rows(len(ids), MAX_ROWS)
    table = Table(box=None, padding=(0, 2))
    for column in ("pos", "token", "experts", "rms MoE"):
        table.add_column(column, justify="left" if column in ("token", "experts") else "right")
    moe_rms = rms_per_row(session.cache[f"{b}.moe.out"])
    for t in rows:
        slots = "  ".join(f"e{int(e)} {float(w):.2f}x{rms_per_row(y[t, k]):.3g}"
                          for k, (e, w) in enumerate(zip(ids[t], weights[t])))
        table.add_row(str(row_position(session, t)), token_label(session, row_position(session, t)), slots,
                      format_number(moe_rms[t]))
    return Group(titled(f"per token: each chosen expert's weight x rms(y) {note}", table),
                 residual_lines(session, [("x before", f"{b}.resid_mid"), ("MoE out", f"{b}.moe.out"),
                                                 ("x after", f"{b}.resid_post")], width))


def view_output(session, step, width: int, top: int = 10):
    """The top next-token candidates after the last position, with their text and probabilities."""
    logits = session.cache["logits"]
    last = len(session.tokens) - 1
    candidates = Group(Text(f"after position {last} ({token_label(session, last)!r}):"),
                       top_tokens_table(np.asarray(logits[-1], dtype=np.float64), session.tokenizer, top))
    if session.this_pass is None:
        return candidates
    return Group(candidates, titled("the token drawn for position " + str(last + 1),
                                    sampling_view(session, session.this_pass.settings)))


VIEWS = {"tokens": view_tokens, "embed": view_embed, "norm": view_norm, "qkv": view_qkv, "rope": view_rope,
         "attn": view_attn, "attn_out": view_attn_out, "router": view_router, "mxfp4": view_mxfp4,
         "swiglu": view_swiglu, "mlp2": view_mlp2, "moe": view_moe, "output": view_output}
