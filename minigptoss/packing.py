"""Many sequences in one forward pass, and teacher-forced evaluation over many prompts.

    results = teacher_forced(model, [(prompt_ids, answer_ids), ...], "blocks.*.attn.probs",
                             intervention=sinks_off())
    results.right            # (B,) bool: every answer token is the argmax where it is predicted
    results.score()          # "47 of 50 (0.94)"
    results.stack("blocks.3.attn.probs")   # (B, nq, T, T) when all sequences have the same length

Packing: the sequences are concatenated into one pass, and two patches make the pass treat them as separate
sequences, with no change to the model: the recorded `positions` restart at 0 for each sequence (so RoPE and
the sliding window see each sequence's own positions) and every layer's `attn.mask` is cut down to the
sequence's own keys (block-diagonal). This is how packed batches are trained. The mask is cut *after* any
intervention's own patch, so an intervention that rewrites the mask (window_off) cannot open one sequence to
another; an intervention's `positions` are each sequence's own positions. window_off cannot be packed (it
rebuilds the mask from consecutive positions): it is refused; a config with sliding_window = 0 does the same.

Teacher forcing: prompt + answer (its last token left out: it is only predicted) in one pass; answer token i
is predicted at position len(prompt) - 1 + i. When every one of them is the argmax there, greedy decoding
writes exactly the answer (if one is not, greedy decoding goes wrong there at the latest): one pass instead of
one per answer token.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .inspector import PatchError, capture, patch
from .names import declared, is_declared

MAX_TOKENS = 256  # tokens per packed pass: the (nq, BT, BT) scores stay small


def batches(lengths: list[int], max_tokens: int = MAX_TOKENS) -> list[range]:
    """Consecutive groups of sequence indices whose lengths add up to at most `max_tokens` (one sequence alone
    may be longer)."""
    groups, start, total = [], 0, 0
    for i, length in enumerate(lengths):
        if i > start and total + length > max_tokens:
            groups.append(range(start, i))
            start, total = i, 0
        total += length
    if lengths:
        groups.append(range(start, len(lengths)))
    return groups


def token_axes(name: str) -> list[int]:
    """The axes of a recorded tensor that run over the pass's tokens (T, and Tk: no KV cache here)."""
    if not is_declared(name):
        return []
    return [axis for axis, dim in enumerate(declared(name).dims) if dim in ("T", "Tk")]


def unpack(value: np.ndarray, name: str, bounds: list[tuple[int, int]]) -> list[np.ndarray]:
    """A packed pass's recorded tensor -> one array per sequence (its own rows of every token axis)."""
    axes = token_axes(name)
    out = []
    for start, end in bounds:
        index = [slice(None)] * np.ndim(value)
        for axis in axes:
            index[axis] = slice(start, end)
        out.append(np.asarray(value)[tuple(index)])
    return out


def packed_forward(model, sequences, *patterns: str, intervention=None, max_tokens: int = MAX_TOKENS):
    """Forward passes over many token sequences, several per pass (see the module docstring).

    -> (logits: one (T_b, V) array per sequence, records: one {name: array} per sequence for the captured
    `patterns`, each tensor cut to that sequence's tokens and keys). Agrees with one pass per sequence to
    float32 rounding (the matrix products run on differently shaped batches)."""
    if intervention is not None and intervention.keep_all_keys != ():
        raise PatchError(f"packed_forward: {intervention.label!r} rebuilds the attention mask from consecutive "
                         f"positions and cannot run on packed sequences; use a model whose config has "
                         f"sliding_window = 0, or one pass per sequence")
    sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
    logits, records = [], []
    for group in batches([len(s) for s in sequences], max_tokens):
        lengths = [len(sequences[i]) for i in group]
        ends = np.cumsum(lengths)
        bounds = [(int(e - n), int(e)) for e, n in zip(ends, lengths)]
        owner = np.repeat(np.arange(len(lengths)), lengths)  # (BT,): which sequence each token belongs to
        own_positions = np.concatenate([np.arange(n) for n in lengths])  # (BT,)
        own_keys = owner[:, None] == owner[None, :]  # (BT, BT) block-diagonal
        with ExitStack() as stack:
            cache = stack.enter_context(capture(*patterns)) if patterns else None
            stack.enter_context(patch("positions", lambda p, name: own_positions.astype(p.dtype)))
            if intervention is not None:
                stack.enter_context(intervention)
            stack.enter_context(patch("blocks.*.attn.mask", lambda m, name: m & own_keys))
            out = model.forward(np.concatenate([sequences[i] for i in group]))  # (BT, V)
        logits += [out[start:end] for start, end in bounds]
        split = {name: unpack(cache[name], name, bounds) for name in cache} if cache is not None else {}
        records += [{name: parts[b] for name, parts in split.items()} for b in range(len(group))]
    return logits, records


@dataclass
class TeacherForced:
    """The result of `teacher_forced`: per example its logits, records, and whether the answer is right."""

    prompts: list[list[int]]
    answers: list[list[int]]
    logits: list[np.ndarray]  # per example (T_b, V), T_b = len(prompt) + len(answer) - 1
    records: list[dict[str, np.ndarray]]

    def answer_logits(self, b: int) -> np.ndarray:
        """(len(answer), V): the logits at the positions that predict example b's answer tokens, in order."""
        start = len(self.prompts[b]) - 1
        return self.logits[b][start:start + len(self.answers[b])]

    @property
    def predicted(self) -> list[np.ndarray]:
        """Per example, the argmax at each answer position (what greedy decoding would write, while right)."""
        return [self.answer_logits(b).argmax(-1) for b in range(len(self.answers))]

    @property
    def right(self) -> np.ndarray:
        """(B,) bool: every answer token is the argmax where it is predicted (greedy decoding writes the answer)."""
        return np.array([np.array_equal(p, a) for p, a in zip(self.predicted, self.answers)], dtype=bool)

    def score(self, which=None) -> str:
        """"k of n (rate)" of `right` (over the examples `which` selects, e.g. a slice or a bool mask)."""
        return k_of_n(self.right if which is None else self.right[which])

    def stack(self, name: str) -> np.ndarray:
        """(B, ...): a recorded tensor of every example, stacked (the examples must have the same length)."""
        return np.stack([record[name] for record in self.records])


def teacher_forced(model, examples, *patterns: str, intervention=None, max_tokens: int = MAX_TOKENS
                   ) -> TeacherForced:
    """examples: (prompt ids, answer ids) pairs, the answer ending with its stop token. One packed pass runs
    prompt + answer[:-1] of several examples; see TeacherForced for what comes back."""
    prompts = [list(map(int, prompt)) for prompt, _ in examples]
    answers = [list(map(int, answer)) for _, answer in examples]
    logits, records = packed_forward(model, [p + a[:-1] for p, a in zip(prompts, answers)], *patterns,
                                     intervention=intervention, max_tokens=max_tokens)
    return TeacherForced(prompts, answers, logits, records)


def k_of_n(flags) -> str:
    """(n,) bools -> "k of n (k/n)", e.g. "47 of 50 (0.94)": a finding with its count, not a bare rate."""
    flags = np.asarray(flags, dtype=bool).reshape(-1)
    k, n = int(flags.sum()), flags.size
    return f"{k} of {n} ({k / n:.2f})" if n else "0 of 0"
