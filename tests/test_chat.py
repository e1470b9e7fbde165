"""`minigptoss generate` and `minigptoss chat`: streaming text, harmony channels, the chat loop, the flags."""

import io
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

import minigptoss
from minigptoss.cli.chat import chat_loop
from minigptoss.cli.talk import ChannelView, HarmonyTracker, Out, Sampling, StreamDecoder, system_messages, visible
from minigptoss.cli import main
from minigptoss.text.harmony import Message, SystemMessage, render_conversation, stop_tokens
from minigptoss.text.tokenizer import tiny_tokenizer

TOK = tiny_tokenizer(320)


def ids(text: str) -> list[int]:
    return TOK.encode(text, allowed_special="all")


def recording_out() -> tuple[Out, io.StringIO]:
    file = io.StringIO()
    return Out(Console(file=file, width=80)), file


# ---------------------------------------------------------------- streaming decoder


class ChunkTokenizer:
    """A tokenizer whose tokens are arbitrary byte chunks, like BPE tokens that cut a character in two."""

    special_tokens_set = {"<|end|>"}

    def __init__(self, chunks):
        self.chunks = chunks

    def encode_single_token(self, name):
        return len(self.chunks)

    def decode_single_token_bytes(self, token):
        return b"<|end|>" if token == len(self.chunks) else self.chunks[token]


def test_stream_decoder_waits_for_a_character_split_across_tokens():
    # "a✓b" with ✓ = e2 9c 93 cut over three tokens, then é = c3 a9 over two
    tokenizer = ChunkTokenizer([b"a\xe2", b"\x9c", b"\x93b", b"\xc3", b"\xa9"])
    decoder = StreamDecoder(tokenizer)
    assert [decoder.feed(t) for t in range(5)] == ["a", "", "\u2713b", "", "\u00e9"]
    assert decoder.flush() == ""


def test_stream_decoder_on_the_byte_tokenizer_and_a_dangling_byte_before_a_special_token():
    decoder = StreamDecoder(TOK)
    assert [decoder.feed(t) for t in "né✓".encode()] == ["n", "", "é", "", "", "✓"]
    assert decoder.feed(0xC3) == ""
    end = TOK.encode_single_token("<|end|>")
    assert decoder.is_special(end) and not decoder.is_special(65)
    assert decoder.feed(end) == "\ufffd<|end|>"  # the unfinished character is given up, as tokenizer.decode does


@given(st.lists(st.integers(0, 319), max_size=40))
def test_stream_decoder_agrees_with_decode(tokens):
    decoder = StreamDecoder(TOK)
    assert "".join(decoder.feed(t) for t in tokens) + decoder.flush() == TOK.decode(tokens)


def test_visible_escapes_control_characters():
    assert visible("a\x1b[2Jb\n\tc\r") == "a\\x1b[2Jb\n\tc\\r"


# ---------------------------------------------------------------- harmony channel tracking

ANSWER = "<|channel|>analysis<|message|>User says hi.<|end|><|start|>assistant<|channel|>final<|message|>Hi é!<|return|>"


def test_tracker_follows_analysis_then_final():
    tracker = HarmonyTracker(TOK)
    events = [event for t in ids(ANSWER) for event in tracker.feed(t)] + tracker.finish()
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "message" and events[0][1].channel == "analysis"
    assert "".join(v for k, v in events[: kinds.index("end")] if k == "text") == "User says hi."
    final_at = kinds.index("message", 1)
    assert events[final_at][1].channel == "final"
    assert "".join(v for k, v in events[final_at:] if k == "text") == "Hi é!"
    assert events[-1] == ("end", "<|return|>") and not tracker.broken


def test_channel_view_dims_analysis_and_prints_final_plainly():
    file = io.StringIO()
    console = Console(file=file, force_terminal=True, color_system="standard", width=200)
    tracker, view = HarmonyTracker(TOK), ChannelView(Out(console))
    for t in ids(ANSWER):
        view.show(tracker.feed(t))
    styled = file.getvalue()
    assert "\x1b[2mThinking...\x1b[0m\n\x1b[2mU\x1b[0m\x1b[2ms\x1b[0m" in styled  # dim, token by token
    assert "Hi é!" in styled and "\x1b[2mHi" not in styled
    out, text = recording_out()
    tracker, view = HarmonyTracker(TOK), ChannelView(out)
    for t in ids(ANSWER):
        view.show(tracker.feed(t))
    assert text.getvalue() == "Thinking...\nUser says hi.\n...done thinking.\n\nHi é!\n"


@pytest.mark.parametrize("completion, reason, raw", [
    ("x<|end|>", "inside a message header", "x<|end|>"),
    ("<|channel|>final<|message|>ok<|end|>junk", "expected <|start|>", "junk"),
    ("<|channel|><|message|>text", "without a channel name", "<|channel|><|message|>text"),
    ("y" * 80, "no <|message|> after 64", "y" * 80),
])
def test_broken_harmony_shows_the_raw_text_with_a_note(completion, reason, raw):
    out, text = recording_out()
    tracker, view = HarmonyTracker(TOK), ChannelView(out)
    for t in ids(completion):
        view.show(tracker.feed(t))
    view.show(tracker.finish())
    assert tracker.broken
    before, after = text.getvalue().split("the raw text follows)\n")
    assert "not valid harmony" in before and reason in before
    assert after == raw  # the part that could not be parsed, verbatim


def test_output_ending_inside_a_header_is_shown():
    tracker = HarmonyTracker(TOK)
    assert [e for t in ids("<|channel|>ana") for e in tracker.feed(t)] == []
    events = tracker.finish()
    assert events[0][0] == "broken" and events[1] == ("raw", "<|channel|>ana")


# ---------------------------------------------------------------- the chat loop, with a scripted model


class ScriptedModel:
    """Stands in for a Model: each generate() call yields the next scripted completion and records the whole
    prompt (what its cache held plus the tokens fed) and how many tokens were fed."""

    class config:
        vocab_size = 320

    class Cache:
        """Holds the ids fed, as a KVCache holds their keys; truncates like one with room to go back."""

        def __init__(self):
            self.ids = []

        @property
        def length(self):
            return len(self.ids)

        def can_truncate(self, length):
            return 0 <= length <= self.length

        def truncate(self, length):
            del self.ids[length:]

    def __init__(self, *completions, interrupt_after=None):
        self.completions, self.prompts, self.fed, self.interrupt_after = list(completions), [], [], interrupt_after

    def new_cache(self, rollback=0):
        return self.Cache()

    def generate(self, tokens, max_new_tokens, temperature, top_p, top_k, seed, stop_tokens, cache=None):
        cache = cache or self.Cache()
        cache.ids += list(tokens)
        self.prompts.append(TOK.decode(cache.ids))
        self.fed.append(len(tokens))
        for n, t in enumerate(ids(self.completions.pop(0))[:max_new_tokens]):
            if n == self.interrupt_after:
                raise KeyboardInterrupt
            yield t
            if t in stop_tokens:
                return
            cache.ids.append(t)  # fed back, as model.generate does with every token but a stop token


def lines(*entries):
    """A read_line that returns the entries in turn; an exception class among them is raised."""
    entries = list(entries)

    def read_line(prompt):
        entry = entries.pop(0)
        if isinstance(entry, type):
            raise entry
        return entry

    return read_line


def test_chat_keeps_final_answers_drops_analysis_and_resets():
    model = ScriptedModel(ANSWER, ANSWER.replace("Hi é!", "Still here."), ANSWER)
    out, text = recording_out()
    chat_loop(model, TOK, Sampling(100), out, lines("hello", "again", "/reset", "fresh", EOFError),
              system_messages("low", "Be brief."))
    first, second, third = model.prompts
    assert "Reasoning: low" in first and "# Instructions\n\nBe brief." in first and first.endswith(
        "<|start|>user<|message|>hello<|end|><|start|>assistant")
    assert "<|start|>assistant<|channel|>final<|message|>Hi é!<|end|><|start|>user<|message|>again<|end|>" in second
    assert "User says hi." not in second  # the analysis is not carried over
    assert "hello" not in third and "Still here." not in third
    shown = text.getvalue()
    assert shown.count("Thinking...") == 3 and "Still here." in shown and "tok/s" in shown
    assert shown.endswith("bye\n")


def test_chat_without_a_final_answer_keeps_only_the_user_message():
    model = ScriptedModel("garbage<|return|>", ANSWER)
    out, text = recording_out()
    chat_loop(model, TOK, Sampling(100), out, lines("one", "two", "/exit"), system_messages("medium", None))
    assert "no final answer" in text.getvalue()
    assert "<|start|>user<|message|>one<|end|><|start|>user<|message|>two<|end|>" in model.prompts[1]


def test_ctrl_c_stops_the_answer_then_quits_at_the_prompt():
    model = ScriptedModel(ANSWER, interrupt_after=20)
    out, text = recording_out()
    chat_loop(model, TOK, Sampling(100), out, lines("hi", KeyboardInterrupt), system_messages("medium", None))
    shown = text.getvalue()
    assert "(interrupted: this turn is not kept)" in shown and "stopped at interrupted" in shown
    assert shown.endswith("bye\n")


# ---------------------------------------------------------------- the commands on tiny_weights


def test_generate_streams_the_greedy_tokens_and_reports_speed(capsys):
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    expected = list(model.generate(ids("Hello"), max_new_tokens=40, stop_tokens=stop_tokens(TOK, include_end=True)))
    assert main(["generate", "--weights", "tiny", "-p", "Hello", "--temp", "0", "-n", "40"]) == 0
    out, err = capsys.readouterr()
    assert out == "Hello" + visible(TOK.decode(expected)) + "\n"
    assert f"{len(expected)} new tokens" in err and "prefill 5 tokens" in err
    assert f"decode {len(expected) - 1} tokens" in err and err.count("tok/s") == 2


def test_generate_with_harmony_renders_a_user_message(capsys):
    assert main(["generate", "--weights", "tiny", "--harmony", "-p", "Hi", "--temp", "0", "-n", "8", "--reasoning", "high"]) == 0
    out, err = capsys.readouterr()
    prompt = render_conversation([SystemMessage(reasoning_effort="high"), Message("user", "Hi")], TOK)
    assert f"prefill {len(prompt)} tokens" in err and "tok/s" in err and out


def chat_expected_display(user_text: str, max_tokens: int) -> tuple[str, int]:
    """What a greedy chat turn on tiny_weights shows, computed independently with model.generate."""
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    prompt = render_conversation([SystemMessage(), Message("user", user_text)], TOK)
    completion = list(model.generate(prompt, max_new_tokens=max_tokens, stop_tokens=stop_tokens(TOK)))
    out, text = recording_out()
    tracker, view = HarmonyTracker(TOK), ChannelView(out)
    for t in completion:
        view.show(tracker.feed(t))
    view.show(tracker.finish())
    return text.getvalue(), len(completion)


def test_chat_on_tiny_weights_with_piped_input(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n/exit\n"))
    assert main(["chat", "--weights", "tiny", "--temp", "0", "-n", "30"]) == 0
    out, _ = capsys.readouterr()
    shown, count = chat_expected_display("hello", 30)
    assert ">>> hello\n" in out  # piped input is echoed
    assert shown.strip() in out  # the assistant's output, as streamed
    assert f"{count} new tokens" in out and out.count("tok/s") == 2
    assert out.endswith(">>> /exit\nbye\n")


def test_chat_exits_cleanly_at_end_of_input():
    result = subprocess.run([sys.executable, "-m", "minigptoss", "chat", "--weights", "tiny"], input="", capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.endswith(">>> \nbye\n") and result.stderr == ""


@pytest.mark.parametrize("argv, message", [
    (["chat", "--top-p", "2"], "--top-p: must be in (0, 1]"),
    (["chat", "--temp", "hot"], "expected a number >= 0, got 'hot'"),
    (["chat", "--temperature", "-1"], "must be >= 0"),
    (["generate", "-n", "-2"], "-1 for no limit"),
    (["generate", "--top-k", "-1"], "--top-k: must be >= 0"),
    (["chat", "--reasoning", "extreme"], "invalid choice"),
])
def test_bad_flags_are_one_line_and_status_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    _, err = capsys.readouterr()
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1


def test_bad_input_in_the_handlers_is_one_line_and_status_2(capsys, tmp_path):
    assert main(["generate", "--weights", "tiny", "--reasoning", "high"]) == 2
    _, err = capsys.readouterr()
    assert "need --harmony" in err and err.count("\n") == 1
    assert main(["chat", "--weights", str(tmp_path)]) == 2
    _, err = capsys.readouterr()
    assert "config.json" in err and "Traceback" not in err


# ---------------------------------------------------------------- the KV cache across turns


FINAL_ONLY = "<|channel|>final<|message|>Hi é!<|return|>"


def test_the_next_turn_prefills_only_what_the_cache_does_not_hold():
    model = ScriptedModel(FINAL_ONLY, ANSWER, ANSWER, ANSWER)
    out, text = recording_out()
    chat_loop(model, TOK, Sampling(100), out, lines("hello", "again", "more", "/reset", "fresh", EOFError),
              system_messages("low", None))
    first, second, third, fourth = [ids(p) for p in model.prompts]
    assert model.fed[0] == len(first)
    # the answer was generated as ...Hi é! then <|return|> (never fed back); re-rendered it ends with <|end|>:
    # the cache holds everything before that token, so only <|end|> and the new user turn are prefilled
    assert model.fed[1] == len(ids("<|end|><|start|>user<|message|>again<|end|><|start|>assistant"))
    assert first + ids(FINAL_ONLY)[:-1] == second[: len(second) - model.fed[1]]
    # an answer with analysis: the re-rendered turn drops it, so the cache goes back to where the texts part
    # (after <|start|>assistant<|channel|>, before "analysis" / "final") and prefills from there
    assert model.fed[2] == len(third) - len(second) - len(ids("<|channel|>"))
    assert model.fed[3] == len(fourth)  # /reset cleared the cache too
    assert f"prefill {model.fed[1]} tokens ({len(second) - model.fed[1]} more cached)" in text.getvalue()


def chat_session(reuse: bool, turns=("hi", "and?", "ok")) -> tuple[str, list[int]]:
    """A greedy chat on tiny_weights: (what it shows without the timing, tokens prefilled per turn)."""
    model = minigptoss.load(minigptoss.TINY_WEIGHTS)
    out, text = recording_out()
    chat_loop(model, TOK, Sampling(10, temperature=0.0), out, lines(*turns, EOFError),
              system_messages("medium", None), reuse_cache=reuse)
    shown = text.getvalue()
    prefilled = [int(n) for n in re.findall(r"prefill (\d+) tokens", shown)]
    return re.sub(r"prefill .*", "", shown), prefilled


def test_a_persistent_cache_answers_exactly_as_recomputing_every_turn():
    with_cache, cached_prefill = chat_session(reuse=True)
    recomputed, full_prefill = chat_session(reuse=False)
    assert with_cache == recomputed  # the same greedy answers, token for token
    assert cached_prefill[0] == full_prefill[0] and len(cached_prefill) == 3
    assert all(c < f for c, f in zip(cached_prefill[1:], full_prefill[1:]))
    assert full_prefill[2] > full_prefill[1] > full_prefill[0]  # recomputing: the whole conversation each turn
