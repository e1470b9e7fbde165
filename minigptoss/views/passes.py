"""Views of a generation, pass after pass (`minigptoss step`): pure functions from recorded passes to renderables.

    pass_line(session)              what the pass reads and writes: "reads '2' at position 10 · writes position 11"
    decode_attention(session, step) the one new query over every key of the text: the sink, each held key's
                                    probability, on sliding layers the keys outside the window marked
    kv_cache_table(session)         the KV cache as the pass left it: per layer keys held, positions, window, bytes
    sampling_view(session)          logits -> temperature -> top-k / top-p cut -> probabilities -> the token drawn
                                    (and the random number, when sampling)
    timeline(passes, ...)           one row per token written: p and the runner-up's, first-choice expert and
                                    sink mass per layer, and where each full layer's strongest head looked

A session here is cli/step.py's Session for one pass: `tokens` is the text through the pass's inputs, `start`
the position of its first input, `this_pass` the cli/generation.py Pass (drawn token, uniform number, KV cache).
Nothing is rerun: every number is a recorded tensor or the draw generate reported.
"""

from __future__ import annotations

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .. import attention
from ..sampling import filter_top_k, filter_top_p
from .summary import probability_text, token_text

OUTSIDE, DROPPED = "×", "-"  # a key still cached but outside the window; a key the cache no longer holds


def quoted(tokenizer, ids, limit: int = 24) -> str:
    """The tokens' text, quoted, cut to `limit` characters (with the count of tokens when cut)."""
    text = "".join(token_text(tokenizer, t) for t in ids)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(ids)} tokens)"


def probabilities(logits: np.ndarray) -> np.ndarray:
    """softmax in float64:  (V,) -> (V,)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits)
    return np.exp(shifted) / np.exp(shifted).sum()


def pass_line(session, total: str = "") -> Text:
    """`reads '2' at position 10 · writes position 11: '3' (p 0.98)`; the prompt's pass reads positions 0..T-1."""
    one = session.this_pass
    inputs, start = one.inputs, one.start
    where = f"position {start}" if len(inputs) == 1 else f"positions {start}..{start + len(inputs) - 1}"
    text = Text.assemble(("reads ", "dim"), (quoted(session.tokenizer, inputs), "bold"), f" at {where}",
                         (" · writes ", "dim"), f"position {one.end}")
    if one.drawn is not None and "logits" in session.cache:
        p = probabilities(session.cache["logits"][-1])[one.drawn]
        text.append_text(Text.assemble(": ", (repr(token_text(session.tokenizer, one.drawn)), "bold green"),
                                       f" (p {probability_text(float(p))})"))
    return text


def key_positions(session, layer_mask: np.ndarray) -> np.ndarray:
    """The absolute positions of the keys a pass attended to: a cache holds a contiguous run of positions
    ending at the pass's last input:  mask (T, Tk) -> (Tk,)."""
    last = session.start + layer_mask.shape[0] - 1
    return np.arange(last - layer_mask.shape[1] + 1, last + 1)


def decode_attention(session, step, cell, width: int = 80, windowed: bool | None = None) -> Group:
    """The pass's last query over every position of the text: one row per head, one column per position
    (labelled with its token): the sink's mass, then each key's probability drawn by `cell(p) -> (char,
    style)` (the prompt's attention view's shading); `×` for a key the cache still holds but the window masks,
    `-` for one a sliding layer's cache has dropped. windowed: whether the layer's window held in this pass
    (False under `window off`; default: the config's)."""
    c, cache = session.config, session.cache
    probs, sink_mass, mask = (cache[f"{step.name}.{key}"] for key in ("probs", "sink_mass", "mask"))
    keys = key_positions(session, mask)
    last = keys[-1]
    shown = range(max(0, last + 1 - max(8, width - 48)), last + 1)  # the positions that fit, latest last
    kv = attention.kv_head_of(c.num_attention_heads, c.num_key_value_heads)
    grid = Table.grid(padding=(0, 1))
    for _ in range(4):
        grid.add_column(no_wrap=True)
    ruler = ""
    for j in shown:  # position numbers every 5 columns, where they fit
        ruler += str(j) if j % 5 == 0 and len(ruler) == j - shown[0] else " " * (len(ruler) <= j - shown[0])
    labels = "".join((token_text(session.tokenizer, session.tokens[j]) + " ")[0] for j in shown)
    grid.add_row("", Text("sink", style="dim"), Text(ruler, style="dim"), Text("strongest key", style="dim"))
    grid.add_row("", "", Text(labels, style="bold"), "")
    where = {int(p): j for j, p in enumerate(keys)}
    for h in range(c.num_attention_heads):
        row = Text()
        for position in shown:
            j = where.get(position)
            if j is None:
                row.append(DROPPED, style="dim")
            elif not mask[-1, j]:
                row.append(OUTSIDE, style="red")
            else:
                row.append(*cell(float(probs[h, -1, j])))
        best = int(np.argmax(probs[h, -1]))
        strongest = (f"{int(keys[best])} {cut(token_text(session.tokenizer, session.tokens[int(keys[best])]))} "
                     f"{probs[h, -1, best]:.2f}")
        grid.add_row(Text(f"h{h} kv{kv[h]}", style="bold"), Text(f"{sink_mass[h, -1]:.2f}"), row, strongest)
    window = c.window(step.layer) if windowed is None or windowed else 0
    held, used = len(keys), int(mask[-1].sum())
    if window:
        note = (f"sliding layer, window {window}: the cache held {held - 1} keys + this one; the query sees the "
                f"last {used} (positions {last - used + 1}..{last}); {OUTSIDE} = cached but outside the window, "
                f"{DROPPED} = dropped from the cache")
    else:
        kind = "full layer" if not c.window(step.layer) else "sliding layer with its window off"
        note = f"{kind}: the query sees every key, positions 0..{last} ({held} keys: {held - 1} cached + its own)"
    if shown[0] > 0:
        note += f"; positions 0..{shown[0] - 1} are off-screen (widen the terminal)"
    legend = Text(f"query: position {last} ({token_text(session.tokenizer, session.tokens[last])!r});  "
                  f"· ░ ▒ ▓ █ = p < .05 .15 .35 .6 <= p", style="dim")
    return Group(Text(note), grid, legend)


def kv_cache_table(session) -> Table:
    """The KV cache as this pass left it, per layer: keys held (and the positions), the window, bytes."""
    c, one = session.config, session.this_pass
    table = Table(box=None, padding=(0, 1))
    for column in ("layer", "kind", "keys held", "positions", "bytes"):
        table.add_column(column, justify="left" if column in ("kind", "positions") else "right")
    for n, layer in enumerate(one.kv):
        window = c.window(n)
        kind = f"sliding {window}" if window else "full"
        positions = f"{layer.first}..{layer.last}" if layer.held else "-"
        if window and layer.first > 0:
            positions += f" (0..{layer.first - 1} dropped)"
        table.add_row(str(n), kind, str(layer.held), positions, f"{layer.nbytes:,}")
    total = sum(layer.nbytes for layer in one.kv)
    table.caption = f"total {total:,} bytes (float32 keys and values)"
    return table


def sampling_view(session, settings, top: int = 8) -> Group:
    """From this pass's last logits row to the token drawn: the logits, divided by the temperature, softmax,
    the top-k and top-p cuts, the probabilities drawn from, and the uniform number u that chose (sampling)."""
    one, tokenizer = session.this_pass, session.tokenizer
    logits = np.asarray(session.cache["logits"][-1], dtype=np.float64)
    order = np.argsort(-logits, kind="stable")[:top]
    if settings.temperature == 0:
        drawn = "" if one.drawn is None else f": {token_text(tokenizer, one.drawn)!r} [{one.drawn}]"
        return Text(f"greedy (temperature 0): the largest logit wins, rank 1 above{drawn} (--temp T samples: "
                    f"this step then shows the cut and the random number drawn)")
    T = settings.temperature
    scaled = probabilities(logits / T)
    cut = filter_top_p(filter_top_k(scaled, settings.top_k), settings.top_p)
    final = cut / cut.sum()
    cdf = np.cumsum(final)
    table = Table(box=None, padding=(0, 1))
    for column in ("rank", "token", "logit", f"logit/{T:g}", "p", "after cut", "cumulative"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for rank, t in enumerate(order, 1):
        style = "bold green" if int(t) == one.drawn else ""
        table.add_row(str(rank), Text(f"{token_text(tokenizer, t)!r}", style=style), f"{logits[t]:.3f}",
                      f"{logits[t] / T:.3f}", probability_text(float(scaled[t])),
                      probability_text(float(final[t])) if final[t] > 0 else Text("cut", style="dim"),
                      f"{cdf[t]:.4f}" if final[t] > 0 else "")
    kept = int(np.count_nonzero(cut))
    cuts = [f"top-k {settings.top_k}" if settings.top_k else "", f"top-p {settings.top_p:g}" if settings.top_p < 1 else ""]
    lines = [Text(f"p = softmax(logits / {T:g}); {' then '.join(c for c in cuts if c) or 'no cut'}: {kept} token(s) "
                  f"kept, renormalised")]
    if one.drawn is not None and one.uniform is not None:
        lines.append(Text.assemble("u = ", (f"{one.uniform:.6f}", "bold"), " (seed ", str(settings.seed),
                                   "): the first token whose cumulative p (in id order) exceeds u -> ",
                                   (f"{token_text(tokenizer, one.drawn)!r} [{one.drawn}]", "bold green")))
    return Group(*lines[:1], table, *lines[1:])


def pass_facts(session_pass, config) -> dict:
    """What the timeline shows of one pass (its cache read at the last query): drawn token, p and the runner-up,
    first-choice expert and mean sink mass per layer, and for full layers (head, key index, p) of the
    strongest attention."""
    cache = session_pass.cache
    logits = np.asarray(cache["logits"][-1], dtype=np.float64)
    p = probabilities(logits)
    order = np.argsort(-p, kind="stable")
    layers = range(config.num_hidden_layers)
    experts = [int(cache[f"blocks.{n}.moe.router.expert_ids"][-1, 0]) for n in layers]
    sinks = [float(cache[f"blocks.{n}.attn.sink_mass"][:, -1].mean()) for n in layers]
    reads = {}
    for n in layers:
        if config.window(n) == 0 and f"blocks.{n}.attn.probs" in cache:
            last = cache[f"blocks.{n}.attn.probs"][:, -1, :]  # (nq, Tk)
            h, j = np.unravel_index(int(np.argmax(last)), last.shape)
            reads[n] = (int(h), int(j), float(last[h, j]))
    drawn = session_pass.drawn if session_pass.drawn is not None else int(order[0])
    runner = int(order[1]) if int(order[0]) == drawn else int(order[0])
    return {"drawn": drawn, "p": float(p[drawn]), "runner": runner, "runner_p": float(p[runner]),
            "experts": experts, "sinks": sinks, "reads": reads}


def cut(text: str, limit: int = 8) -> str:
    """A token's text quoted, cut to `limit` characters ('<|chann…')."""
    return repr(text) if len(text) <= limit else repr(text[:limit - 1] + "…")


def short_p(p: float) -> str:
    """A probability in at most 5 characters: 0.93, 4e-06."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.0e}".replace("e-0", "e-")


def timeline_passes(passes) -> list:
    """The passes the timeline has a row for, in order: those that drew a token (and recorded their logits)."""
    return [one for one in passes if one.drawn is not None and "logits" in one.cache]


def timeline(passes, config, tokenizer, text_tokens, selected: int | None = None) -> Table:
    """One row per token written (a pass that drew one): pass, position, token, p and the runner-up's, the
    first-choice expert per layer, the sink mass per layer (mean over heads, at the pass's last query), and for
    each full layer the position (and token) its strongest head attended to most. selected: a row shown in
    reverse video (the debugger's cursor), counted in timeline_passes."""
    layers = config.num_hidden_layers
    full = [n for n in range(layers) if config.window(n) == 0]
    table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False, caption_justify="left",
                  title="timeline: one row per token written", title_justify="left")
    for column in ("pass", "pos", "token", "p", "runner-up", "experts", "sink %", *(f"L{n} read" for n in full)):
        table.add_column(column, justify="right" if column in ("pass", "pos", "p") else "left", no_wrap=True)
    for row, one in enumerate(timeline_passes(passes)):
        facts = pass_facts(one, config)
        sinks = " ".join(str(min(99, round(100 * s))) for s in facts["sinks"]) if layers <= 6 else \
            "".join("▁▂▃▄▅▆▇█"[min(7, int(s * 8))] for s in facts["sinks"])
        reads = []
        for n in full:
            if n not in facts["reads"]:
                reads.append("")
                continue
            h, j, p = facts["reads"][n]
            position = one.end - one.cache[f"blocks.{n}.attn.probs"].shape[-1] + j
            reads.append(f"{position} {cut(token_text(tokenizer, text_tokens[position]))}")
        table.add_row(str(one.number), str(one.end), cut(token_text(tokenizer, facts["drawn"])),
                      f"{facts['p']:.2f}", f"{cut(token_text(tokenizer, facts['runner']))} {short_p(facts['runner_p'])}",
                      " ".join(map(str, facts["experts"])), sinks, *reads,
                      style="reverse" if row == selected else None)
    table.caption = (f"experts: layers 0..{layers - 1}' first choices for the pass's last token; sink %: what their "
                     f"heads gave the sink (mean); Ln read: the position full layer n's strongest head weighted most")
    return table


def answers_text(tokenizer, prompt, runs) -> Text:
    """The whole text written, then each other run's and where its answer first differs from the first run's:
    runs = [(label, tokens written), ...], the first the unpatched one."""
    (_, mine), others = runs[0], runs[1:]
    text = Text.assemble(("the whole text written: ", "bold"), (tokenizer.decode([*prompt, *mine]), "bold green"))
    for label, theirs in others:
        differ = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                      None if len(mine) == len(theirs) else min(len(mine), len(theirs)))
        where = "the same answer" if differ is None else \
            f"first differs at position {len(prompt) + differ} (pass {differ + 1})"
        text.append_text(Text.assemble(f"\nunder {label}: ", (tokenizer.decode([*prompt, *theirs]), "bold yellow"),
                                       f"  ({where})"))
    return text
