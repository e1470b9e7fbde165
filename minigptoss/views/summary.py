"""Views of a whole forward pass, shared by `run` and the step-through debugger: the tokens, a per-layer table of
the residual stream and attention, the router's load and choices, the next-token candidates.

Pure functions from recorded tensors to rich renderables; printing happens in the commands.
"""

import numpy as np
from rich.columns import Columns
from rich.table import Table
from rich.text import Text

from ..moe import expert_load
from .tensor import sparkline


def token_text(tokenizer, token_id: int) -> str:
    """A token's text for display, with whitespace and control characters made visible."""
    try:
        raw = tokenizer.decode_single_token_bytes(int(token_id))
    except (KeyError, ValueError):
        return f"<{token_id}>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # part of a multi-byte character: show the bytes
        return "".join(f"<0x{byte:02X}>" for byte in raw)
    return "".join(ch if ch.isprintable() and ch != " " else "␣" if ch == " " else
                   ch.encode("unicode_escape").decode("ascii") for ch in text)


def tokens_view(tokens, tokenizer) -> Columns:
    """Each token as `position:text [id]`, wrapped to the terminal width."""
    cells = [Text.assemble((f"{position}:", "dim"), (token_text(tokenizer, token), "bold"), (f"[{token}]", "cyan"))
             for position, token in enumerate(tokens)]
    return Columns(cells, title=f"{len(tokens)} tokens")


def layers_table(config, cache) -> Table:
    table = Table(title="residual stream and attention, per layer", title_justify="left")
    for column in ("layer", "attention", "|x| before", "|attn out|", "|moe out|", "|x| after", "sink mass"):
        table.add_column(column, justify="right")
    rms = lambda a: f"{float(np.sqrt(np.mean(np.square(a)))):.3f}"  # noqa: E731
    for n in range(config.num_hidden_layers):
        kind = f"sliding {config.sliding_window}" if config.is_sliding(n) else "full"
        table.add_row(str(n), kind, rms(cache[f"blocks.{n}.resid_pre"]), rms(cache[f"blocks.{n}.attn.out"]),
                      rms(cache[f"blocks.{n}.moe.out"]), rms(cache[f"blocks.{n}.resid_post"]),
                      f"{float(cache[f'blocks.{n}.attn.sink_mass'].mean()):.3f}")
    table.caption = "|x| is the root-mean-square over the hidden size; sink mass is averaged over heads and queries"
    return table


def router_table(config, cache, tokens, tokenizer) -> Table:
    last = len(tokens) - 1
    table = Table(title=f"router: tokens per expert, and the top-{config.experts_per_token} experts of the last token "
                        f"({token_text(tokenizer, tokens[-1])!r})", title_justify="left")
    for column in ("layer", "tokens per expert (expert 0, 1, ...)", "last token: expert (weight)"):
        table.add_column(column, justify="right" if column == "layer" else "left")
    for n in range(config.num_hidden_layers):
        expert_ids = cache[f"blocks.{n}.moe.router.expert_ids"]
        load = expert_load(expert_ids, config.num_experts)
        load_text = " ".join(str(count) for count in load) if config.num_experts <= 16 else sparkline(load)
        chosen = zip(expert_ids[last], cache[f"blocks.{n}.moe.router.weights"][last])
        table.add_row(str(n), load_text, "  ".join(f"{e} ({w:.2f})" for e, w in chosen))
    return table


def probability_text(p: float) -> str:
    """A probability with 3 significant digits, however small (a real vocabulary spreads the mass thin):
    0.512, 0.0280, 0.00137, 2.41e-07."""
    return f"{p:#.3g}" if p >= 1e-4 or p == 0 else f"{p:.2e}"


def top_tokens_table(logits: np.ndarray, tokenizer, top: int) -> Table:
    """The `top` most likely next tokens: id, text, logit, probability and log-probability (natural log)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max()
    log_probs = shifted - np.log(np.sum(np.exp(shifted)))  # log-softmax, exact for the tail too
    order = np.argsort(-logits, kind="stable")[:max(1, top)]
    table = Table(title="next token: top candidates", title_justify="left")
    for column in ("rank", "id", "text", "logit", "prob", "log p"):
        table.add_column(column, justify="right" if column != "text" else "left")
    for rank, token in enumerate(order, 1):
        table.add_row(str(rank), str(token), token_text(tokenizer, token), f"{logits[token]:.3f}",
                      probability_text(float(np.exp(log_probs[token]))), f"{log_probs[token]:.3f}")
    return table


def compare_candidates(logits: list[np.ndarray], labels: list[str], tokenizer, top: int) -> Table:
    """Next-token candidates of several runs side by side: each of the first run's `top` tokens, then any other
    run's top tokens it lacks, with every run's probability and rank:  [(V,) per run] -> one table."""
    log_probs, ranks = [], []
    for row in logits:
        row = np.asarray(row, dtype=np.float64)
        shifted = row - row.max()
        log_probs.append(shifted - np.log(np.sum(np.exp(shifted))))  # (V,) log-softmax
        order = np.argsort(-row, kind="stable")  # (V,) most likely first
        rank = np.empty_like(order)
        rank[order] = np.arange(1, order.size + 1)
        ranks.append((order[:max(1, top)], rank))
    tokens: list[int] = []
    for order, _ in ranks:
        tokens += [int(t) for t in order if int(t) not in tokens]
    table = Table(title="next token: top candidates of each run", title_justify="left")
    table.add_column("token")
    for label in labels:
        table.add_column(f"p {label}", justify="right", max_width=16)
        table.add_column("rank", justify="right")
    for token in tokens:
        cells = [f"{token_text(tokenizer, token)} [{token}]"]
        for lp, (_, rank) in zip(log_probs, ranks):
            cells += [probability_text(float(np.exp(lp[token]))), str(int(rank[token]))]
        table.add_row(*cells)
    return table
