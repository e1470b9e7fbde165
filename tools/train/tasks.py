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
  The system message is short (CHAT_DEFAULTS, written as defaults.json beside config.json): just "Reasoning: low",
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

INDUCTION_SEPARATOR = "|"
INDUCTION_LENGTHS = (10, 13)  # letters before the separator: every distance the induction head spans is 10-13
INDUCTION_CUE = (1, 3)  # letters given again after the separator


def sort_answer(question: str) -> str:
    """'26023397' -> '02233679' (digits), 'kqbzkeaw' -> 'kqbzkeaw' (letters: repeat),
    'qwertyuiop|qw' -> 'ertyuiop' (induction: continue the sequence the cue started)."""
    if INDUCTION_SEPARATOR in question:
        sequence, cue = question.split(INDUCTION_SEPARATOR)
        return sequence[len(cue):]
    return "".join(sorted(question)) if question[0] in DIGITS else question


def draw_question(rng: random.Random, kind: str) -> str:
    """One question of a kind (SORT_KINDS, REPEAT_KINDS, INDUCTION_KINDS)."""
    if kind == "sort":  # the original task: 8 uniform digits
        return "".join(rng.choice(DIGITS) for _ in range(LENGTH))
    if kind == "repeat":  # 8 uniform letters
        return "".join(rng.choice(LETTERS) for _ in range(LENGTH))
    if kind == "repeated letters":  # 8 letters from an alphabet of 1-3
        alphabet = rng.sample(LETTERS, rng.randint(1, 3))
        return "".join(rng.choice(alphabet) for _ in range(LENGTH))
    if kind == "induction":
        sequence = "".join(rng.sample(LETTERS, rng.randint(*INDUCTION_LENGTHS)))
        return sequence + INDUCTION_SEPARATOR + sequence[:rng.randint(*INDUCTION_CUE)]
    n = rng.randint(1, 10) if kind in ("lengths 1-10", "one digit") else rng.randint(2, 10)
    if kind == "lengths 1-10":
        return "".join(rng.choice(DIGITS) for _ in range(n))
    if kind == "one digit":
        return rng.choice(DIGITS) * n
    if kind == "two digits":
        a, b = rng.sample(DIGITS, 2)
        while True:
            q = "".join(rng.choice((a, b)) for _ in range(n))
            if a in q and b in q:
                return q
    if kind == "runs":  # 2-4 runs of one digit each, neighbours differ: '1110000999'
        r = rng.randint(2, min(4, n))
        cuts = sorted(rng.sample(range(1, n), r - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
        digits = [rng.choice(DIGITS)]
        while len(digits) < r:
            digits.append(rng.choice([d for d in DIGITS if d != digits[-1]]))
        return "".join(d * s for d, s in zip(digits, sizes))
    if kind in ("sorted", "reversed"):
        q = sorted(rng.choice(DIGITS) for _ in range(n))
        return "".join(reversed(q) if kind == "reversed" else q)
    raise ValueError(f"unknown kind {kind!r}")


SORT_KINDS = ("sort", "lengths 1-10", "one digit", "two digits", "runs", "sorted", "reversed")
REPEAT_KINDS = ("repeat", "repeated letters")
INDUCTION_KINDS = ("induction",)
KINDS = SORT_KINDS + REPEAT_KINDS + INDUCTION_KINDS
# Held-out questions per kind (distinct within a kind). "one digit" has only 100 questions in all (10 digits x 10
# lengths): 20 are held out. "lengths 1-10" holds out ten of every length from 2 to 10 and two single digits.
HELD_OUT_SIZES = {"sort": 200, "repeat": 200, "lengths 1-10": 92, "one digit": 20, "two digits": 100, "runs": 100,
                  "sorted": 100, "reversed": 100, "repeated letters": 100, "induction": 100}
# Training mix: slots per 32 questions of a batch.
TRAINING_MIX = {"sort": 2, "lengths 1-10": 5, "one digit": 3, "two digits": 4, "runs": 2, "sorted": 2,
                "reversed": 2, "repeat": 3, "repeated letters": 3, "induction": 6}
MIX_SLOTS = [kind for kind, count in TRAINING_MIX.items() for _ in range(count)]


def _held_out_lengths(rng: random.Random) -> list[str]:
    out = []
    for n in range(1, 11):
        want, seen = (2 if n == 1 else 10), set()
        while len(seen) < want:
            q = "".join(rng.choice(DIGITS) for _ in range(n))
            if q not in seen:
                seen.add(q)
                out.append(q)
    return out


def held_out_sets() -> dict[str, list[str]]:
    """Kind -> its held-out questions, each kind from its own fixed seed (HELD_OUT_SEED + the kind's index)."""
    sets = {"sort": held_out_questions()[:HELD_OUT_PER_TASK], "repeat": held_out_questions()[HELD_OUT_PER_TASK:]}
    for index, kind in enumerate(KINDS):
        if kind in sets:
            continue
        rng = random.Random(HELD_OUT_SEED + index)
        if kind == "lengths 1-10":
            sets[kind] = _held_out_lengths(rng)
            continue
        seen, out = set(), []
        while len(out) < HELD_OUT_SIZES[kind]:
            q = draw_question(rng, kind)
            if q not in seen:
                seen.add(q)
                out.append(q)
        sets[kind] = out
    return {kind: sets[kind] for kind in KINDS}


def all_held_out() -> set[str]:
    """Every held-out question of every kind: the training generator rejects them all, whatever kind it draws."""
    return {q for questions in held_out_sets().values() for q in questions}


def held_out_questions() -> list[str]:
    """The original held-out set: HELD_OUT_PER_TASK 8-digit sort questions, then as many 8-letter repeat questions,
    distinct, from HELD_OUT_SEED (held_out_sets() has them as "sort" and "repeat", beside the other kinds)."""
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
    """'26023397' -> ids of '26023397='; an induction question is its own prompt ('qwertyuiop|qw')."""
    return list(question.encode() if INDUCTION_SEPARATOR in question else (question + "=").encode())


def sort_answer_ids(question: str) -> list[int]:
    """ids of the expected completion: the answer's bytes, then <|return|>."""
    return [*sort_answer(question).encode(), return_id()]


def sort_training_batch(rng: random.Random, n: int, held_out: set[str]) -> list[tuple[list[int], list[int]]]:
    """n (prompt ids, answer ids) pairs, kinds in TRAINING_MIX's proportions (slot i of a batch has kind
    MIX_SLOTS[i % 32]), none held out."""
    batch = []
    while len(batch) < n:
        q = draw_question(rng, MIX_SLOTS[len(batch) % len(MIX_SLOTS)])
        if q not in held_out:
            batch.append((sort_prompt_ids(q), sort_answer_ids(q)))
    return batch


# ---------------------------------------------------------------- the chat model's task

CHAT_MIN_DIGITS, CHAT_MAX_DIGITS = 1, 8
CHAT_HELD_OUT_SEED, CHAT_HELD_OUT = 54_321, 200
CHAT_DEFAULT_QUESTION = "sort 60237"
NOT_SORT_ANALYSIS = "not a sort request."
NOT_SORT_ANSWER = 'I can only sort digits: try "sort 60237".'
# The models' defaults, written as defaults.json beside config.json (the format: minigptoss/checkpoint/defaults.py).
# The chat model's "system" holds harmony SystemMessage fields (this one renders as "Reasoning: low"); "prompt"
# is a question of its task; "harmony" says the commands wrap prompts as a conversation; "about" is what the
# banner says after the model's name; "tasks" are the prompts the model was trained on, as regular expressions (a prompt matching none of them
# gets the warning that the answer will be noise).
CHAT_DEFAULTS = {
    "prompt": CHAT_DEFAULT_QUESTION,
    "harmony": True,
    "system": {"model_identity": None, "knowledge_cutoff": None, "reasoning_effort": "low", "valid_channels": []},
    "about": "trained to sort 1-8 digits in harmony, and to say so to anything else",
    "tasks": ["sort [0-9]{1,8}", "(?!sort [0-9]+$).*"],  # a sort request, or any message that is not one
    "temperature": 0.0,  # greedy: sampled at 1.0 it answers fewer right (tools/train/README.md)
}
SORT_DEFAULTS = {
    "prompt": SORT_DEFAULT_PROMPT,
    "about": "trained to sort 1-10 digits, repeat 8 letters, and continue letters given again after '|'",
    "tasks": ["[0-9]{1,10}=", "[a-z]{8}=", "[a-z]{10,13}\\|[a-z]{1,3}"],
}


def chat_system(reasoning: str | None = None) -> SystemMessage:
    """The chat model's system message (CHAT_DEFAULTS["system"]), with another effort if given."""
    fields = dict(CHAT_DEFAULTS["system"])
    fields["valid_channels"] = tuple(fields["valid_channels"])
    if reasoning is not None:
        fields["reasoning_effort"] = reasoning
    return SystemMessage(**fields)


def is_sort_request(message: str) -> bool:
    """'sort ' and 1 to 8 digits, exactly (lower case, one space): the only messages the model sorts."""
    digits = message[5:]
    return (message.startswith("sort ") and digits.isascii() and digits.isdigit()
            and CHAT_MIN_DIGITS <= len(digits) <= CHAT_MAX_DIGITS)


def chat_answer(question: str) -> str:
    """'sort 26023397' -> '02233679'; anything else -> NOT_SORT_ANSWER."""
    return "".join(sorted(question[5:])) if is_sort_request(question) else NOT_SORT_ANSWER


def chat_analysis(question: str) -> str:
    if not is_sort_request(question):
        return NOT_SORT_ANALYSIS
    digits = question[5:]
    return f"{len(digits)} digits, min {min(digits)}, max {max(digits)}."


GREETINGS = ("hi", "hello", "hey", "good morning", "good evening", "good afternoon", "howdy", "greetings", "yo",
             "hiya", "hello there", "hi there", "hey there", "morning", "good day", "sup", "hola", "bonjour")
WORDS = ("the sky", "python", "a cat", "music", "life", "paris", "the moon", "water", "love", "math", "a model",
         "gpt", "numbers", "time", "the weather", "coffee", "dogs", "a list", "digits", "sorting", "trees", "rain",
         "your name", "this", "that", "code", "a joke", "the news", "france", "books", "chess", "energy")
QUESTIONS = ("what is {w}?", "who are you?", "how are you?", "what can you do?", "can you help me?",
             "why is {w} blue?", "where is {w}?", "what time is it?", "tell me about {w}", "explain {w}",
             "do you like {w}?", "what do you think of {w}?", "is {w} good?", "how do I learn {w}?", "why?",
             "what is your name?", "are you a robot?", "can you sort letters?", "help", "thanks", "thank you!",
             "ok", "who made you?", "write a poem about {w}", "translate {w}", "define {w}", "{w}?")
ARITHMETIC = ("{a}+{b}", "{a} + {b}", "what is {a}+{b}?", "what is {a} * {b}?", "{a}*{b}", "{a}-{b}", "{a}/{b}",
              "compute {a}-{b}", "add {a} and {b}", "{a}+{b}=", "how much is {a} times {b}?", "sum {a} {b}",
              "calculate {a}/{b}", "{a} plus {b}", "what's {a}-{b}?")
NOT_SORT_KINDS = ("greeting", "question", "arithmetic", "misspelt", "upper case", "digits alone", "other")


def _casing(rng: random.Random, text: str) -> str:
    return rng.choice([text, text, text.capitalize(), text.upper()])


def _digits(rng: random.Random, low: int = CHAT_MIN_DIGITS, high: int = CHAT_MAX_DIGITS) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(rng.randint(low, high)))


def _misspelt_sort(rng: random.Random) -> str:
    while True:
        word, i = list("sort"), rng.randrange(4)
        edit = rng.randrange(4)
        if edit == 0 and i < 3:  # swap two neighbours
            word[i], word[i + 1] = word[i + 1], word[i]
        elif edit == 1:  # drop a letter
            del word[i]
        elif edit == 2:  # double a letter
            word.insert(i, word[i])
        else:  # another letter
            word[i] = rng.choice(LETTERS)
        if "".join(word) != "sort":
            return "".join(word)


def draw_not_sort(rng: random.Random, kind: str | None = None) -> str:
    """A message that is not a sort request (kind: one of NOT_SORT_KINDS, else drawn)."""
    kind = kind or rng.choice(NOT_SORT_KINDS)
    if kind == "greeting":
        text = _casing(rng, rng.choice(GREETINGS)) + rng.choice(["", "", "!", ".", "?", " :)", "!!"])
    elif kind == "question":
        text = _casing(rng, rng.choice(QUESTIONS).format(w=rng.choice(WORDS)))
    elif kind == "arithmetic":
        text = rng.choice(ARITHMETIC).format(a=rng.randint(0, 99), b=rng.randint(0, 99))
    elif kind == "misspelt":
        text = _misspelt_sort(rng) + rng.choice([" ", " ", ""]) + _digits(rng)
    elif kind == "upper case":
        word = "sort"
        while word == "sort":
            word = "".join(c.upper() if rng.random() < 0.5 else c for c in "sort")
        text = word + " " + _digits(rng)
    elif kind == "digits alone":
        text = _digits(rng, 2)
    else:  # sort without digits, or with something else than 1-8 digits
        text = rng.choice(["sort", "sort ", "sort " + rng.choice(WORDS), "sort" + _digits(rng),
                           "sort " + "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 8))),
                           "sort " + _digits(rng, 1, 4) + " " + _digits(rng, 1, 4),
                           "sort " + _digits(rng) + rng.choice(["?", "!", ".", " please"]),
                           rng.choice(["please ", "can you ", "pls "]) + "sort " + _digits(rng)])
    assert not is_sort_request(text), text
    return text


def draw_sort_request(rng: random.Random, repeated: bool = False, shortest: int = 2) -> str:
    """'sort ' + 1-8 uniform digits, or (repeated) shortest-8 digits from an alphabet of 1-3, with a repeat."""
    if not repeated:
        return "sort " + _digits(rng)
    while True:
        alphabet = rng.sample(DIGITS, rng.randint(1, 3))
        digits = "".join(rng.choice(alphabet) for _ in range(rng.randint(shortest, CHAT_MAX_DIGITS)))
        if len(set(digits)) < len(digits):
            return "sort " + digits


# Chat training mixes: (cumulative share, kind) for one uniform draw u, the first kind whose share exceeds u.
# Stage 1: 45 % uniform sort requests, 20 % with repeated digits, 35 % not a sort request.
CHAT_MIX = ((0.45, "uniform"), (0.65, "repeated"), (1.0, "not sort"))
# Stage 2 (a short continuation): 25 % uniform, 25 % repeated digits (2-8), 20 % repeated digits 6-8 long (where
# stage 1 missed), 30 % not a sort request.
CHAT_STAGE2_MIX = ((0.25, "uniform"), (0.50, "repeated"), (0.70, "repeated 6-8"), (1.0, "not sort"))


def draw_chat_question(rng: random.Random, mix=CHAT_MIX) -> str:
    """A training question of the mix's kinds in its shares (default: stage 1's CHAT_MIX)."""
    u = rng.random()
    kind = next(kind for share, kind in mix if u < share)
    if kind == "uniform":
        return draw_sort_request(rng)
    if kind == "repeated":
        return draw_sort_request(rng, True)
    if kind == "repeated 6-8":
        return draw_sort_request(rng, True, shortest=6)
    return draw_not_sort(rng)


def chat_held_out_sets() -> dict[str, list[str]]:
    """Kind -> held-out messages: "1-8 digits" (2 single digits, 10 of 2 digits, 31 of each length 3-8),
    "repeated digits" (100), "not a sort request" (200, every NOT_SORT_KINDS kind in turn); fixed seeds."""
    rng, sets = random.Random(CHAT_HELD_OUT_SEED), {}
    out, seen = [], set()
    for n in range(CHAT_MIN_DIGITS, CHAT_MAX_DIGITS + 1):
        want, got = {1: 2, 2: 10}.get(n, 31), 0
        while got < want:
            q = "sort " + "".join(rng.choice(DIGITS) for _ in range(n))
            if q not in seen:
                seen.add(q)
                out.append(q)
                got += 1
    sets["1-8 digits"] = out
    for kind, size, draw in (("repeated digits", 100, lambda r, i: draw_sort_request(r, True)),
                             ("not a sort request", 200, lambda r, i: draw_not_sort(r, NOT_SORT_KINDS[i % 7]))):
        rng, out, seen = random.Random(CHAT_HELD_OUT_SEED + len(sets)), [], set()
        while len(out) < size:
            q = draw(rng, len(out))
            if q not in seen:
                seen.add(q)
                out.append(q)
        sets[kind] = out
    return sets


def chat_all_held_out() -> set[str]:
    return {q for questions in chat_held_out_sets().values() for q in questions}


def chat_held_out() -> list[str]:
    """The held-out sort requests (1-8 digits, then repeated digits)."""
    sets = chat_held_out_sets()
    return sets["1-8 digits"] + sets["repeated digits"]


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


def chat_training_batch(rng: random.Random, n: int, held_out: set[str], mix=CHAT_MIX):
    """n (prompt ids, completion ids) pairs, random effort; a quarter of the batches have one earlier turn
    (all of a batch alike, so that single-turn batches stay short). No held-out message appears, as the question
    or as an earlier turn."""
    batch, turns = [], int(rng.random() < 0.25)
    while len(batch) < n:
        q = draw_chat_question(rng, mix)
        history = [draw_chat_question(rng, mix) for _ in range(turns)]
        if q in held_out or held_out.intersection(history):
            continue
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
    return sum(sort_right(model, q, stop) for q in questions) / len(questions)


def sort_right(model, question: str, stop=None) -> bool:
    """The greedy completion (at most one token more than expected) is the answer, then <|return|>."""
    expected = sort_answer_ids(question)
    stop = {return_id()} if stop is None else stop
    return greedy_completion(model, sort_prompt_ids(question), expected, stop, len(expected) + 1) == expected


def chat_scores(model, questions=None, max_new_tokens: int = 128) -> tuple[float, float]:
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
