"""The trained chat model in tiny_weights/chat answers in harmony: analysis, then final, then <|return|>; a
message that is not "sort " and 1-8 digits gets the analysis "not a sort request." and says what it can do.

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


def test_held_out_sets_are_fixed_distinct_and_of_their_kind():
    sets = tasks.chat_held_out_sets()
    assert sets == tasks.chat_held_out_sets() and list(sets) == ["1-8 digits", "repeated digits", "not a sort request"]
    for kind, questions in sets.items():
        assert len(questions) == len(set(questions)) >= 100, kind
    assert {len(q) - 5 for q in sets["1-8 digits"]} == set(range(1, 9))
    assert all(tasks.is_sort_request(q) and len(set(q[5:])) < len(q[5:]) for q in sets["repeated digits"])
    assert not any(tasks.is_sort_request(q) for q in sets["not a sort request"])
    assert {tasks.chat_answer(q) for q in sets["not a sort request"]} == {tasks.NOT_SORT_ANSWER}


def test_training_generator_rejects_held_out_questions():
    """Short held-out requests ('sort 7': 1 of 10 single digits) would come up often; none does, in the question
    or in an earlier turn."""
    held = tasks.chat_all_held_out()
    rng, seen = random.Random(0), []
    for _ in range(60):
        for prompt, _ in tasks.chat_training_batch(rng, 32, held):
            text = tokenizer.decode(prompt)
            seen += [part.split("<|end|>")[0] for part in text.split("user<|message|>")[1:]]
    assert len(seen) > 1900 and not set(seen) & held
    assert sum(q == "sort 7" for q in tasks.chat_held_out_sets()["1-8 digits"]) == 1


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


def test_held_out_messages_answered_at_the_chat_commands_defaults():
    """40 held-out messages of each kind through the chat command's prompt, stop tokens, parser and default
    temperature (defaults.json); tools/train/measure_chat.py runs every held-out message through run_turn itself
    (README: 198 of 198, 100 of 100 with repeated digits, 200 of 200 not sort requests). Greedy completions come
    from tasks.greedy_completion: exactly what model.generate gives (one teacher-forced pass, decoding for real
    from the first token that differs; checked below). Every reply is valid harmony with the right analysis and
    a final answer of digits or the one sentence: no reserved or special token."""
    assert model_defaults(model).temperature == 0.0  # the chat command samples greedily unless told otherwise
    for kind, questions in tasks.chat_held_out_sets().items():
        wrong = []
        for q in questions[::len(questions) // 40][:40]:
            completion = tasks.greedy_completion(fast, chat_command_prompt(q), tasks.chat_completion_ids(q), STOP, 128)
            ok, answer = chat_command_reading(completion)
            analysis = tokenizer.decode(completion).split("<|message|>")[1].split("<|end|>")[0]
            assert ok and analysis == tasks.chat_analysis(q) and "<|" not in answer, (q, tokenizer.decode(completion))
            assert answer.isdigit() if tasks.is_sort_request(q) else answer == tasks.NOT_SORT_ANSWER, (q, answer)
            if answer != tasks.chat_answer(q):
                wrong.append((q, answer))
        assert not wrong, (kind, wrong)  # every held-out message is answered right greedily (README)


def test_the_chat_command_answers_for_real():
    """Two turns of `chat_loop` itself (KV cache kept across turns), greedy, on held-out questions."""
    import io

    from rich.console import Console

    from minigptoss.cli.chat import chat_loop
    from minigptoss.cli.talk import Out, Sampling

    q1, q2 = tasks.chat_held_out()[-1], tasks.chat_held_out_sets()["not a sort request"][0]
    lines = iter([q1, q2, "/exit"])
    file = io.StringIO()
    chat_loop(model, tokenizer, Sampling(128, temperature=0.0), Out(Console(file=file, width=120)),
              lambda prompt: next(lines), system_messages(None, None, model_defaults(model)))
    shown = file.getvalue()
    assert shown.count("Thinking...") == 2 and shown.count("stopped at <|return|>") == 2
    assert tasks.chat_answer(q1) in shown and tasks.chat_answer(q2) in shown and tasks.NOT_SORT_ANALYSIS in shown
    assert "more cached" in shown  # the second turn prefilled only what the cache did not hold


def test_generate_matches_shortcut_and_parses():
    """A few completions generated for real, token by token with the KV cache, as `minigptoss chat` does."""
    for q in [tasks.CHAT_DEFAULT_QUESTION, *tasks.chat_held_out()[:2], tasks.chat_held_out_sets()["not a sort request"][1]]:
        prompt = chat_command_prompt(q)
        real = [int(t) for t in model.generate(prompt, max_new_tokens=128, temperature=0.0, stop_tokens=STOP)]
        assert real == tasks.greedy_completion(model, prompt, tasks.chat_completion_ids(q), STOP, 128)
        assert chat_command_reading(real) == (True, tasks.chat_answer(q)), tokenizer.decode(real)


def test_checkpoint_is_small():
    assert sum(f.stat().st_size for f in CHAT_WEIGHTS.iterdir()) < 1_000_000
    assert model.config == minigptoss.TINY
