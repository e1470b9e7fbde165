"""The two synthetic tasks the tiny models are trained on: prompts, answers, held-out sets, answer checking.

Pure Python + NumPy (+ minigptoss's harmony renderer and byte tokenizer for the chat task); never torch, so
the tests import this file by path.

sort model (tiny_weights/sort), byte-level tokens, the answer ends with <|return|>:
    sort     8 digits, '=', the digits in ascending order       "26023397="  -> "02233679<|return|>"
    repeat   8 lowercase letters, '=', the same letters again   "kqbzkeaw="  -> "kqbzkeaw<|return|>"
  Repeating needs a head that looks back exactly 9 positions: one position beyond the sliding layers' window
  of 8 keys, so only the full layers can copy, and a sliding head that looks for the letter finds nothing.

chat model (tiny_weights/chat): a harmony conversation, rendered by minigptoss.harmony, about sorting 3 to 6
digits. The user writes "sort 26023397"; the assistant writes a short analysis, then the final answer:
    <|channel|>analysis<|message|>5 digits, min 0, max 9.<|end|>
    <|start|>assistant<|channel|>final<|message|>02379<|return|>
  The system message is short (CHAT_DEFAULTS, written as chat.json beside config.json): just "Reasoning: low",
  not harmony's 190-character default, so a conversation is ~110 tokens and trains in the time we have.

Held-out sets are drawn with their own fixed seeds; the training generators reject every held-out question,
so a held-out prompt is provably never seen in training.
"""

from __future__ import annotations

import random
import string

try:  # after the package restructuring the text modules may live in minigptoss.text
    from minigptoss.text.harmony import Message, SystemMessage, render_conversation, parse_completion
    from minigptoss.text.tokenizer import tokenizer_for
except ImportError:
    from minigptoss.harmony import Message, SystemMessage, render_conversation, parse_completion
    from minigptoss.tokenizer import tokenizer_for

VOCAB_SIZE = 320
DIGITS, LETTERS = "0123456789", string.ascii_lowercase
LENGTH = 8  # symbols per sort/repeat prompt
HELD_OUT_SEED, HELD_OUT_PER_TASK = 12_345, 200
SORT_DEFAULT_PROMPT = "26023397="  # the sort model's default prompt (answer 02233679)


def tokenizer():
    return tokenizer_for(VOCAB_SIZE)


def return_id() -> int:
    return tokenizer().encode_single_token("<|return|>")


# ---------------------------------------------------------------- the sort model's tasks


def sort_answer(question: str) -> str:
    """'26023397' -> '02233679' (digits), 'kqbzkeaw' -> 'kqbzkeaw' (letters: repeat)."""
    return "".join(sorted(question)) if question[0] in DIGITS else question


def draw_question(rng: random.Random, kind: str) -> str:
    alphabet = DIGITS if kind == "sort" else LETTERS
    return "".join(rng.choice(alphabet) for _ in range(LENGTH))


def held_out_questions() -> list[str]:
    """HELD_OUT_PER_TASK sort questions, then as many repeat questions, distinct, from HELD_OUT_SEED."""
    rng, out = random.Random(HELD_OUT_SEED), []
    for kind in ("sort", "repeat"):
        seen = set()
        while len(seen) < HELD_OUT_PER_TASK:
            q = draw_question(rng, kind)
            if q not in seen:
                seen.add(q)
                out.append(q)
    return out


def sort_prompt_ids(question: str) -> list[int]:
    """'26023397' -> ids of '26023397='."""
    return list((question + "=").encode())


def sort_answer_ids(question: str) -> list[int]:
    """ids of the expected completion: the answer's bytes, then <|return|>."""
    return [*sort_answer(question).encode(), return_id()]


def sort_training_batch(rng: random.Random, n: int, held_out: set[str]) -> list[tuple[list[int], list[int]]]:
    """n (prompt ids, answer ids) pairs, half sort, half repeat, none held out."""
    batch = []
    while len(batch) < n:
        q = draw_question(rng, "sort" if len(batch) % 2 == 0 else "repeat")
        if q not in held_out:
            batch.append((sort_prompt_ids(q), sort_answer_ids(q)))
    return batch


# ---------------------------------------------------------------- the chat model's task

CHAT_MIN_DIGITS, CHAT_MAX_DIGITS = 3, 6
CHAT_HELD_OUT_SEED, CHAT_HELD_OUT = 54_321, 200
CHAT_DEFAULT_QUESTION = "sort 60237"
# The chat model's defaults, written as chat.json beside config.json: "system" holds harmony SystemMessage fields
# (this one renders as "Reasoning: low"); "default_prompt" is a question of its task (see tools/train/README.md).
CHAT_DEFAULTS = {
    "system": {"model_identity": None, "knowledge_cutoff": None, "reasoning_effort": "low", "valid_channels": []},
    "default_prompt": CHAT_DEFAULT_QUESTION,
}


def chat_system(reasoning: str | None = None) -> SystemMessage:
    """The chat model's system message (CHAT_DEFAULTS["system"]), with another effort if given."""
    fields = dict(CHAT_DEFAULTS["system"])
    fields["valid_channels"] = tuple(fields["valid_channels"])
    if reasoning is not None:
        fields["reasoning_effort"] = reasoning
    return SystemMessage(**fields)


def chat_answer(question: str) -> str:
    """'sort 26023397' -> '02233679'."""
    return "".join(sorted(question.split()[-1]))


def chat_analysis(question: str) -> str:
    digits = question.split()[-1]
    return f"{len(digits)} digits, min {min(digits)}, max {max(digits)}."


def draw_chat_question(rng: random.Random) -> str:
    n = rng.randint(CHAT_MIN_DIGITS, CHAT_MAX_DIGITS)
    return "sort " + "".join(rng.choice(DIGITS) for _ in range(n))


def chat_held_out() -> list[str]:
    rng, seen, out = random.Random(CHAT_HELD_OUT_SEED), set(), []
    while len(out) < CHAT_HELD_OUT:
        q = draw_chat_question(rng)
        if q not in seen and len(q.split()[-1]) >= 5:  # shorter ones are too few to hold any out
            seen.add(q)
            out.append(q)
    return out


def chat_prompt_ids(question: str, reasoning: str | None = None, history: list[str] = ()) -> list[int]:
    """The prompt minigptoss chat renders: system, earlier turns (user question, assistant final answer: harmony
    drops their analysis), this question, then an open <|start|>assistant."""
    messages = [chat_system(reasoning)]
    for earlier in history:
        messages += [Message("user", earlier), Message("assistant", chat_answer(earlier), channel="final")]
    messages.append(Message("user", question))
    return render_conversation(messages, tokenizer())


def chat_completion_ids(question: str) -> list[int]:
    """What the model should write after the prompt's <|start|>assistant."""
    tok = tokenizer()
    special, text = tok.encode_single_token, tok.encode_ordinary
    return [special("<|channel|>"), *text("analysis"), special("<|message|>"), *text(chat_analysis(question)),
            special("<|end|>"), special("<|start|>"), *text("assistant"), special("<|channel|>"), *text("final"),
            special("<|message|>"), *text(chat_answer(question)), special("<|return|>")]


def check_chat_completion(question: str, completion: list[int]) -> tuple[bool, bool]:
    """(valid harmony: analysis then final, ending in <|return|>; the final answer is right)."""
    try:
        messages = parse_completion(completion, tokenizer())
    except ValueError:
        return False, False
    valid = (len(messages) == 2 and [m.channel for m in messages] == ["analysis", "final"]
             and all(m.role == "assistant" for m in messages) and messages[0].end == "<|end|>"
             and messages[1].end == "<|return|>")
    right = valid and messages[1].content == chat_answer(question)
    return valid, right


def chat_training_batch(rng: random.Random, n: int, held_out: set[str]):
    """n (prompt ids, completion ids) pairs, random effort; a quarter of the batches have one earlier turn
    (all of a batch alike, so that single-turn batches stay short)."""
    batch, turns = [], int(rng.random() < 0.25)
    while len(batch) < n:
        q = draw_chat_question(rng)
        if q in held_out:
            continue
        history = [draw_chat_question(rng) for _ in range(turns)]
        reasoning = rng.choice(["low", "low", "medium", "high"])
        batch.append((chat_prompt_ids(q, reasoning, history), chat_completion_ids(q)))
    return batch


# ---------------------------------------------------------------- greedy answers, computed by minigptoss


def greedy_completion(model, prompt: list[int], expected: list[int], stop_tokens, max_new_tokens: int) -> list[int]:
    """What `model.generate(prompt, temperature=0, stop_tokens=...)` returns, computed cheaply when it is right.

    One forward pass over prompt + expected[:-1] gives, at each answer position, the argmax the greedy decoder
    would take if every earlier token was the expected one. Greedy decoding therefore writes expected[:p] and
    then the argmax at p, where p is the first position whose argmax differs from `expected` (or is a stop
    token): if that is a stop token the completion ends there, otherwise the rest is generated for real
    (KV-cached, one token at a time) from that point. When the model is right this costs one forward pass.
    """
    logits = model.forward([*prompt, *expected[:-1]])
    predicted = [int(t) for t in logits[len(prompt) - 1:].argmax(axis=-1)]
    stops = set(stop_tokens)
    for p, (got, want) in enumerate(zip(predicted, expected)):
        if got != want or got in stops:  # greedy decoding writes expected[:p], then `got` ...
            done = [*expected[:p], got]
            if got in stops or len(done) >= max_new_tokens:
                return done[:max_new_tokens]
            rest = model.generate([*prompt, *done], max_new_tokens=max_new_tokens - len(done), temperature=0.0,
                                  stop_tokens=stops)  # ... and from there on what it generates
            return [*done, *(int(t) for t in rest)]
    return list(expected)[:max_new_tokens]  # (only when `expected` has no stop token)


def sort_accuracy(model, questions=None) -> float:
    """Share of sort-model questions (default: the held-out set) answered exactly, greedy, by minigptoss."""
    questions = held_out_questions() if questions is None else questions
    stop = {return_id()}
    right = sum(greedy_completion(model, sort_prompt_ids(q), sort_answer_ids(q), stop, LENGTH + 1)
                == sort_answer_ids(q) for q in questions)
    return right / len(questions)


def chat_scores(model, questions=None, max_new_tokens: int = 80) -> tuple[float, float]:
    """(share of valid harmony completions, share of right final answers) on chat questions (default: held out),
    generated greedily with harmony's stop tokens (<|return|>, <|call|>) as `minigptoss chat` does."""
    questions = chat_held_out() if questions is None else questions
    tok = tokenizer()
    stop = {tok.encode_single_token("<|return|>"), tok.encode_single_token("<|call|>")}
    valid = right = 0
    for q in questions:
        completion = greedy_completion(model, chat_prompt_ids(q), chat_completion_ids(q), stop, max_new_tokens)
        ok, correct = check_chat_completion(q, completion)
        valid, right = valid + ok, right + correct
    return valid / len(questions), right / len(questions)


def decoded(model):
    """The same model with its MXFP4 experts decoded once by minigptoss.mxfp4.decode_mxfp4 (minigptoss then runs
    them as dense float32 experts: the same matrices and products, bit-identical logits), so that hundreds of
    short forward passes do not decode every expert on every pass (about 2x faster on the tiny model)."""
    import numpy as np
    from minigptoss import Model
    from minigptoss.mxfp4 import decode_mxfp4

    weights = {}
    for name in model.weights:
        if name.endswith(".blocks"):
            base = name.removesuffix(".blocks")
            weights[base] = decode_mxfp4(np.asarray(model.weights[name]), np.asarray(model.weights[f"{base}.scales"]))
        elif not name.endswith(".scales"):
            weights[name] = np.asarray(model.weights[name])
    return Model(model.config, weights)
