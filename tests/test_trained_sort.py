"""The trained tiny model in tiny_weights/sort, run by minigptoss, solves its task on held-out prompts.

Its tasks (tools/train/tasks.py, imported by path: pure Python, no torch): 8 digits then '=' -> the digits sorted,
8 letters then '=' -> the letters repeated; each answer ends with <|return|>. The 400 held-out prompts are drawn
with a fixed seed, and the training generator rejects every one of them.
"""

import random
from pathlib import Path

import numpy as np

import minigptoss
from helpers import train_tasks

ROOT = Path(__file__).parent.parent
SORT_WEIGHTS = ROOT / "tiny_weights" / "sort"


tasks = train_tasks()
model = minigptoss.load(SORT_WEIGHTS)
fast = tasks.decoded(model)  # experts decoded once: bit-identical logits (checked below), 2x faster


def test_held_out_set_is_fixed_distinct_and_balanced():
    questions = tasks.held_out_questions()
    assert len(questions) == len(set(questions)) == 400
    assert questions == tasks.held_out_questions()
    assert sum(q.isdigit() for q in questions) == sum(q.isalpha() for q in questions) == 200


class Replay(random.Random):
    """An rng whose choice() replays given characters: makes the training generator draw a held-out question."""

    def __init__(self, text):
        super().__init__(0)
        self.chars = list(text)

    def choice(self, seq):
        return self.chars.pop(0) if self.chars else super().choice(seq)


def test_training_generator_rejects_held_out_questions():
    held = tasks.held_out_questions()
    batch = tasks.sort_training_batch(Replay(held[0] + held[0] + "12345678"), 1, set(held))
    assert batch == [(tasks.sort_prompt_ids("12345678"), tasks.sort_answer_ids("12345678"))]


def test_decoded_experts_give_the_same_logits():
    for q in tasks.held_out_questions()[::100]:
        ids = tasks.sort_prompt_ids(q) + tasks.sort_answer_ids(q)[:-1]
        assert np.array_equal(model.forward(ids), fast.forward(ids))


def test_answers_held_out_prompts():
    """200 held-out prompts (100 sort, 100 repeat; tools/train/train.py reports all 400)."""
    questions = tasks.held_out_questions()[::2]
    half = len(questions) // 2
    sort, repeat = tasks.sort_accuracy(fast, questions[:half]), tasks.sort_accuracy(fast, questions[half:])
    assert (sort + repeat) / 2 >= 0.99, (sort, repeat)


def test_default_prompt_through_generate():
    tok = tasks.tokenizer()
    out = list(model.generate(tok.encode(tasks.SORT_DEFAULT_PROMPT), max_new_tokens=12, temperature=0.0,
                              stop_tokens=[tasks.return_id()]))
    assert tok.decode(out) == "02233679<|return|>"


def test_shortcut_equals_real_greedy_decoding():
    """tasks.greedy_completion (one teacher-forced pass) returns what model.generate returns."""
    stop = {tasks.return_id()}
    for q in tasks.held_out_questions()[::80]:
        real = [int(t) for t in model.generate(tasks.sort_prompt_ids(q), max_new_tokens=9, temperature=0.0,
                                               stop_tokens=stop)]
        assert tasks.greedy_completion(model, tasks.sort_prompt_ids(q), tasks.sort_answer_ids(q), stop, 9) == real


def test_checkpoint_is_small_and_in_the_original_format():
    assert sum(f.stat().st_size for f in SORT_WEIGHTS.iterdir()) < 1_000_000
    assert model.config == minigptoss.TINY
    assert model.weights["block.0.mlp.mlp1_weight.blocks"].dtype.name == "uint8"
