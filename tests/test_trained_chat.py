"""The trained chat model in tiny_weights/chat answers in harmony: analysis, then final, then <|return|>.

The prompt is what `minigptoss chat` renders with the model's defaults.json (a system message that reads
"Reasoning: low") and one user message "sort 60237"; the model writes
    <|channel|>analysis<|message|>5 digits, min 0, max 7.<|end|><|start|>assistant<|channel|>final<|message|>02367<|return|>
Completions are greedy, with harmony's stop tokens (<|return|>, <|call|>) as the chat command uses.
The task module (tools/train/tasks.py, pure Python, no torch) is imported by path.
"""

import json
import random
from pathlib import Path

import numpy as np

import minigptoss
from helpers import train_tasks
from minigptoss.cli.common import model_defaults
from minigptoss.cli.talk import HarmonyTracker, final_answer, system_messages
from minigptoss.text.harmony import Message, render_conversation, stop_tokens

ROOT = Path(__file__).parent.parent
CHAT_WEIGHTS = ROOT / "tiny_weights" / "chat"


tasks = train_tasks()
model = minigptoss.load(CHAT_WEIGHTS)
fast = tasks.decoded(model)  # experts decoded once: bit-identical logits (checked below), 2x faster
tokenizer = tasks.tokenizer()
STOP = {tokenizer.encode_single_token("<|return|>"), tokenizer.encode_single_token("<|call|>")}


def test_defaults_json_gives_the_prompt_the_model_was_trained_on():
    defaults = json.loads((CHAT_WEIGHTS / "defaults.json").read_text())
    assert defaults == tasks.CHAT_DEFAULTS
    assert defaults["prompt"] == tasks.CHAT_DEFAULT_QUESTION and defaults["harmony"] is True
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


def chat_command_prompt(question: str) -> list[int]:
    """The prompt `minigptoss chat` sends for a first question: its system message from the model's defaults.json
    (cli.talk.system_messages), the user's message, rendered by text.harmony."""
    system = system_messages(None, None, model_defaults(model))
    return render_conversation([*system, Message("user", question)], tokenizer)


def chat_command_reading(completion: list[int]) -> tuple[bool, str | None]:
    """What the chat command makes of a completion: fed token by token to its HarmonyTracker (as the live display
    does), -> (valid harmony: analysis then final, ending in <|return|>; the final answer it keeps)."""
    tracker = HarmonyTracker(tokenizer)
    for token in completion:
        tracker.feed(token)
    tracker.finish()
    messages = tracker.parser.messages
    valid = not tracker.broken and [(m.channel, m.end) for m in messages] == [("analysis", "<|end|>"),
                                                                             ("final", "<|return|>")]
    return valid, final_answer(tracker)


def test_the_chat_command_builds_the_prompt_the_model_was_trained_on():
    assert chat_command_prompt("sort 60237") == tasks.chat_prompt_ids("sort 60237")
    assert stop_tokens(tokenizer) == STOP


def test_held_out_questions_answered_in_harmony():
    """100 held-out questions through the chat command's prompt, stop tokens and parser. Completions are greedy;
    tasks.greedy_completion gives exactly what model.generate gives (one teacher-forced pass, decoding for real
    from the first token that differs: checked below against model.generate)."""
    questions = tasks.chat_held_out()[:100]
    valid = right = 0
    for q in questions:
        completion = tasks.greedy_completion(fast, chat_command_prompt(q), tasks.chat_completion_ids(q), STOP, 80)
        ok, answer = chat_command_reading(completion)
        valid, right = valid + ok, right + (answer == tasks.chat_answer(q))
    assert valid / len(questions) >= 0.99 and right / len(questions) >= 0.95, (valid, right)


def test_the_chat_command_answers_for_real():
    """Two turns of `chat_loop` itself (KV cache kept across turns), greedy, on held-out questions."""
    import io

    from rich.console import Console

    from minigptoss.cli.chat import chat_loop
    from minigptoss.cli.talk import Out, Sampling

    q1, q2 = tasks.chat_held_out()[:2]
    lines = iter([q1, q2, "/exit"])
    file = io.StringIO()
    chat_loop(model, tokenizer, Sampling(80, temperature=0.0), Out(Console(file=file, width=120)),
              lambda prompt: next(lines), system_messages(None, None, model_defaults(model)))
    shown = file.getvalue()
    assert shown.count("Thinking...") == 2 and shown.count("stopped at <|return|>") == 2
    assert tasks.chat_answer(q1) in shown and tasks.chat_answer(q2) in shown
    assert "more cached" in shown  # the second turn prefilled only what the cache did not hold


def test_generate_matches_shortcut_and_parses():
    """A few completions generated for real, token by token with the KV cache, as `minigptoss chat` does."""
    for q in [tasks.CHAT_DEFAULT_QUESTION, *tasks.chat_held_out()[:2]]:
        prompt = chat_command_prompt(q)
        real = [int(t) for t in model.generate(prompt, max_new_tokens=80, temperature=0.0, stop_tokens=STOP)]
        assert real == tasks.greedy_completion(model, prompt, tasks.chat_completion_ids(q), STOP, 80)
        assert chat_command_reading(real) == (True, tasks.chat_answer(q)), tokenizer.decode(real)


def test_checkpoint_is_small():
    assert sum(f.stat().st_size for f in CHAT_WEIGHTS.iterdir()) < 1_000_000
    assert model.config == minigptoss.TINY
