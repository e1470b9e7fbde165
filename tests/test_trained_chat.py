"""The trained chat model in tiny_weights/chat answers in harmony: analysis, then final, then <|return|>.

The prompt is what `minigptoss chat` renders with the model's chat.json defaults (a system message that reads
"Reasoning: low") and one user message "sort 60237"; the model writes
    <|channel|>analysis<|message|>5 digits, min 0, max 7.<|end|><|start|>assistant<|channel|>final<|message|>02367<|return|>
Completions are greedy, with harmony's stop tokens (<|return|>, <|call|>) as the chat command uses.
The task module (tools/train/tasks.py, pure Python, no torch) is imported by path.
"""

import importlib.util
import json
import random
from pathlib import Path

import numpy as np

import minigptoss

ROOT = Path(__file__).parent.parent
CHAT_WEIGHTS = ROOT / "tiny_weights" / "chat"


def load_tasks():
    spec = importlib.util.spec_from_file_location("train_tasks", ROOT / "tools" / "train" / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tasks = load_tasks()
model = minigptoss.load(CHAT_WEIGHTS)
fast = tasks.decoded(model)  # experts decoded once: bit-identical logits (checked below), 2x faster
tokenizer = tasks.tokenizer()
STOP = {tokenizer.encode_single_token("<|return|>"), tokenizer.encode_single_token("<|call|>")}


def test_chat_json_gives_the_prompt_the_model_was_trained_on():
    defaults = json.loads((CHAT_WEIGHTS / "chat.json").read_text())
    assert defaults == tasks.CHAT_DEFAULTS
    assert defaults["default_prompt"] == tasks.CHAT_DEFAULT_QUESTION
    fields = dict(defaults["system"])
    fields["valid_channels"] = tuple(fields["valid_channels"])
    system = tasks.SystemMessage(**fields)
    assert system.text() == "Reasoning: low"
    prompt = tasks.render_conversation([system, tasks.Message("user", "sort 60237")], tokenizer)
    assert prompt == tasks.chat_prompt_ids("sort 60237")
    assert tokenizer.decode(prompt) == ("<|start|>system<|message|>Reasoning: low<|end|>"
                                        "<|start|>user<|message|>sort 60237<|end|><|start|>assistant")


def test_training_generator_rejects_held_out_questions():
    held = tasks.chat_held_out()
    assert len(held) == len(set(held)) == tasks.CHAT_HELD_OUT >= 100

    class Replay(random.Random):  # draws the first held-out question, then random ones
        def __init__(self):
            super().__init__(0)
            self.ints, self.chars = [len(held[0]) - 5], list(held[0][5:])

        def randint(self, a, b):
            return self.ints.pop(0) if self.ints else super().randint(a, b)

        def choice(self, seq):
            return self.chars.pop(0) if self.chars and seq == tasks.DIGITS else super().choice(seq)

    rng = Replay()
    batch = tasks.chat_training_batch(rng, 3, set(held))
    assert not rng.chars  # the held-out question was drawn ...
    questions = {tokenizer.decode(p).split("user<|message|>")[-1].split("<|end|>")[0] for p, _ in batch}
    assert held[0] not in questions  # ... and rejected


def test_decoded_experts_give_the_same_logits():
    ids = tasks.chat_prompt_ids(tasks.CHAT_DEFAULT_QUESTION) + tasks.chat_completion_ids(tasks.CHAT_DEFAULT_QUESTION)
    assert np.array_equal(model.forward(ids), fast.forward(ids))


def test_held_out_questions_answered_in_harmony():
    """The first 100 held-out questions (tools/train/train.py reports all 200)."""
    valid, right = tasks.chat_scores(fast, tasks.chat_held_out()[:100])
    assert valid >= 0.99 and right >= 0.95, (valid, right)


def test_generate_matches_shortcut_and_parses():
    """A few completions generated for real, token by token with the KV cache, as `minigptoss chat` does."""
    for q in [tasks.CHAT_DEFAULT_QUESTION, *tasks.chat_held_out()[:2]]:
        prompt = tasks.chat_prompt_ids(q)
        real = [int(t) for t in model.generate(prompt, max_new_tokens=80, temperature=0.0, stop_tokens=STOP)]
        assert real == tasks.greedy_completion(model, prompt, tasks.chat_completion_ids(q), STOP, 80)
        assert tasks.check_chat_completion(q, real) == (True, True), tokenizer.decode(real)
        messages = tasks.parse_completion(real, tokenizer)
        assert [(m.channel, m.end) for m in messages] == [("analysis", "<|end|>"), ("final", "<|return|>")]


def test_checkpoint_is_small():
    assert sum(f.stat().st_size for f in CHAT_WEIGHTS.iterdir()) < 1_000_000
    assert model.config == minigptoss.TINY
