"""What `generate` and `chat` share: streaming decoded text, following a harmony completion as it is written,
timing, the sampling flags, and showing the channels.

The pieces, pure (testable without a terminal) first:
    StreamDecoder   token ids -> text as soon as it is decodable (a UTF-8 character split over tokens waits)
    HarmonyTracker  harmony.HarmonyParser's events as text to show, and the moment the output stops being valid
    Stats           prefill and decode timing (tokens/s)
    Sampling        the sampling flags, as model.generate takes them
and the terminal part: Out (styled streaming output), ChannelView (analysis dimmed between "Thinking..." and
"...done thinking.", final plain), run_turn.

The model math lives elsewhere: this module only calls `model.generate` (sampling.py) and text/harmony.py.
"""

from __future__ import annotations

import argparse
import codecs
import random
import sys
import time
import unicodedata
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from ..text.harmony import (
    END_TOKENS,
    REASONING_EFFORTS,
    DeveloperMessage,
    HarmonyParser,
    Message,
    SystemMessage,
    stop_tokens,
)

# Defaults, and why (also in --help):
DEFAULT_TEMPERATURE = 1.0  # OpenAI's gpt-oss README: "We recommend sampling with temperature=1.0 and top_p=1.0"
DEFAULT_TOP_P = 1.0  # (ollama's gpt-oss model sets the same; llama.cpp's generic 0.8 / top-k 40 are not for gpt-oss)
DEFAULT_REASONING = "medium"  # harmony's and ollama's default
GENERATE_MAX_TOKENS = 128  # a NumPy forward pass is slow on the real models: a short default, -n -1 for no limit
CHAT_MAX_TOKENS = 1024  # room for the analysis and the answer; Ctrl-C stops a long one
HEADER_LIMIT = 64  # a message header longer than this (no <|message|> yet) is not harmony: show the raw text
CHAT_COMMANDS = "/exit or /quit (or Ctrl-D) quits, /reset clears the history, /help shows this"



# ---------------------------------------------------------------- pure: decoding, channel tracking, timing


class StreamDecoder:
    """Token ids -> text, incrementally: bytes that end inside a multi-byte UTF-8 character are held until the
    next token completes it; bytes that can never be valid UTF-8 become U+FFFD (as tokenizer.decode does).
    Special tokens decode to their names (`<|start|>`)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._special = {tokenizer.encode_single_token(name) for name in tokenizer.special_tokens_set}

    def is_special(self, token: int) -> bool:
        return int(token) in self._special

    def feed(self, token: int) -> str:
        """The text that became decodable with this token (may be "")."""
        return self._utf8.decode(self.tokenizer.decode_single_token_bytes(int(token)))

    def flush(self) -> str:
        """Whatever is still held, as U+FFFD (the character was never completed); the decoder starts afresh."""
        return self._utf8.decode(b"", final=True)


class HarmonyTracker:
    """Follows a harmony completion (what the model writes after `<|start|>assistant`) token by token, for the
    live display: harmony.HarmonyParser reads it, this turns its events into text to show.

    feed(token) returns a list of events, in order:
        ("message", Message)   a header was completed by <|message|>: role, channel, recipient (content "")
        ("text", str)          content text of the current message, as soon as it is decodable
        ("end", name)          the current message ended with <|end|>, <|return|> or <|call|>
        ("broken", reason)     the output stopped being valid harmony; from here on everything is
        ("raw", str)           raw decoded text (the first "raw" repeats the unparsed text so far)
    """

    def __init__(self, tokenizer, header_limit: int = HEADER_LIMIT):
        self.tokenizer, self.header_limit = tokenizer, header_limit
        self.parser = HarmonyParser(tokenizer)
        self.tokens: list[int] = []
        self.segment_start = 0  # where the not-yet-displayed part (the current header) begins in self.tokens
        self.message: Message | None = None
        self.decoder = StreamDecoder(tokenizer)
        self.broken = False

    def feed(self, token: int) -> list[tuple]:
        t = int(token)
        self.tokens.append(t)
        if self.broken:
            return self._text("raw", self.decoder.feed(t))
        try:
            events = self.parser.feed(t)
        except ValueError as error:
            return self._break(str(error) or "unreadable message header")
        shown: list[tuple] = []
        for kind, value in events:
            if kind == "message":
                self.message, self.segment_start = value, len(self.tokens)
                shown.append(("message", value))
            elif kind == "token":
                shown += self._text("text", self.decoder.feed(value))
            else:  # "end"
                self.segment_start = len(self.tokens)
                shown += [*self._text("text", self.decoder.flush()), ("end", value.end)]
        if self.parser.state == "header" and self.parser.header_tokens > self.header_limit:
            return self._break(f"no <|message|> after {self.header_limit} header tokens")
        return shown

    def finish(self) -> list[tuple]:
        """Events for the end of the output: text still held by the decoder, or an unfinished header."""
        if not self.broken and self.parser.state == "header" and len(self.tokens) > self.segment_start:
            return self._break("it ended inside a message header") + self._text("raw", self.decoder.flush())
        return self._text("raw" if self.broken else "text", self.decoder.flush())

    def _break(self, reason: str) -> list[tuple]:
        self.broken, self.decoder = True, StreamDecoder(self.tokenizer)
        raw = "".join(self.decoder.feed(t) for t in self.tokens[self.segment_start:])
        return [("broken", reason), *self._text("raw", raw)]

    @staticmethod
    def _text(kind: str, text: str) -> list[tuple]:
        return [(kind, text)] if text else []


@dataclass
class Stats:
    """Timing of one generation: the prefill (the prompt in one forward pass, ending with the first new token)
    and the decode (one forward pass per further token)."""

    prompt_tokens: int  # prefilled now
    cached_tokens: int = 0  # the prompt's leading tokens already in the KV cache (a chat's earlier turns)
    new_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    stop: str = "max tokens"  # or the stop token's name, or "interrupted"
    seed: int | None = None  # shown when sampling is random, so the run can be repeated

    def summary(self) -> str:
        decoded = max(self.new_tokens - 1, 0)
        parts = [f"{self.new_tokens} new tokens, stopped at {self.stop}",
                 f"prefill {self.prompt_tokens} tokens"
                 + (f" ({self.cached_tokens} more cached)" if self.cached_tokens else "")
                 + f" in {self.prefill_seconds:.3f} s "
                 f"({rate(self.prompt_tokens, self.prefill_seconds)} tok/s)",
                 f"decode {decoded} tokens in {self.decode_seconds:.3f} s ({rate(decoded, self.decode_seconds)} tok/s)"]
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " · ".join(parts)


def rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:.1f}" if tokens and seconds > 0 else "-"


def timed(generator, stats: Stats):
    """Yield from a `generate` iterator, adding the time of the first step to stats.prefill_seconds and of the
    others to stats.decode_seconds (time spent by the caller, e.g. printing, is not counted)."""
    while True:
        start = time.perf_counter()
        token = next(generator, None)
        elapsed = time.perf_counter() - start
        if stats.new_tokens == 0:
            stats.prefill_seconds += elapsed
        else:
            stats.decode_seconds += elapsed
        if token is None:
            return
        stats.new_tokens += 1
        yield token


def visible(text: str) -> str:
    """Text safe to print: control characters other than newline and tab (the random model writes ESC, CR,
    NUL, ...) shown as escapes like \\x1b instead of acting on the terminal."""
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) != "Cc" else ch.encode("unicode_escape").decode()
                   for ch in text)


@dataclass
class Sampling:
    """The sampling flags, as model.generate takes them."""

    max_new_tokens: int
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int | None = None
    seed: int | None = None

    @classmethod
    def from_args(cls, args, default_temperature: float | None = None) -> Sampling:
        """The flags; without --temp, the model's own temperature (defaults.json), else DEFAULT_TEMPERATURE."""
        temperature = args.temperature
        if temperature is None:
            temperature = DEFAULT_TEMPERATURE if default_temperature is None else default_temperature
        seed = args.seed
        if seed is None and temperature > 0:
            seed = random.SystemRandom().randrange(2**32)  # a fresh seed, printed so the run can be repeated
        return cls(sys.maxsize if args.max_tokens == -1 else args.max_tokens, temperature, args.top_p,
                   args.top_k or None, seed)

    def kwargs(self, seed: int | None) -> dict:
        return dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                    top_k=self.top_k, seed=seed)

    def describe(self) -> str:
        if self.temperature == 0:
            return "greedy (temperature 0)"
        top_k = f", top-k {self.top_k}" if self.top_k else ""
        return f"temperature {self.temperature}, top-p {self.top_p}{top_k}, seed {self.seed}"


# ---------------------------------------------------------------- terminal output


class Out:
    """Streaming, styled output on a rich Console: text as it arrives, no wrapping added, no markup."""

    def __init__(self, console: Console):
        self.console, self.at_line_start = console, True

    def write(self, text: str, style: str = "") -> None:
        if text:
            self.console.print(Text(visible(text), style=style), end="", soft_wrap=True, highlight=False)
            self.at_line_start = text.endswith("\n")

    def newline(self) -> None:
        if not self.at_line_start:
            self.write("\n")

    def note(self, text: str) -> None:
        self.newline()
        self.write(f"({text})\n", "dim italic")


class ChannelView:
    """Shows HarmonyTracker events: the analysis dimmed between "Thinking..." and "...done thinking.", the final
    answer plainly, other channels dimmed under a [channel to=recipient] label, broken output dimmed after a note."""

    def __init__(self, out: Out):
        self.out, self.message = out, None

    def show(self, events) -> None:
        for kind, value in events:
            if kind == "message":
                self.begin(value)
            elif kind == "text":
                self.out.write(value, "" if self.channel == "final" else "dim")
            elif kind == "end":
                self.end(value)
            elif kind == "broken":
                self.out.note(f"the output is not valid harmony: {value}; the raw text follows")
            elif kind == "raw":
                self.out.write(value, "dim")

    @property
    def channel(self) -> str | None:
        return self.message.channel if self.message else None

    def begin(self, message: Message) -> None:
        self.message = message
        self.out.newline()
        if message.channel == "analysis":
            self.out.write("Thinking...\n", "dim")
        elif message.channel != "final" or message.recipient:
            to = f" to={message.recipient}" if message.recipient else ""
            self.out.write(f"[{message.channel or 'no channel'}{to}]\n", "dim")

    def end(self, name: str) -> None:
        self.out.newline()
        if name == "<|call|>":
            self.out.note(f"a tool call to {self.message.recipient}: minigptoss has no tools, so the turn ends here")
        elif self.channel == "analysis":
            self.out.write("...done thinking.\n\n", "dim")


def run_turn(model, tokenizer, prompt: list[int], sampling: Sampling, seed: int | None, out: Out,
             stats: Stats, cache=None) -> HarmonyTracker:
    """Generate one assistant turn after a harmony prompt, streaming it through a ChannelView, until <|return|>
    or <|call|> (not <|end|>: the analysis message ends with it and the final one follows) or max tokens.
    With a KV cache, `prompt` continues what it holds. Returns the tracker, which holds the tokens;
    KeyboardInterrupt propagates (stats are filled so far)."""
    tracker, view = HarmonyTracker(tokenizer), ChannelView(out)
    kwargs = {} if cache is None else {"cache": cache}
    generated = model.generate(prompt, **sampling.kwargs(seed), stop_tokens=stop_tokens(tokenizer), **kwargs)
    for token in timed(generated, stats):
        view.show(tracker.feed(token))
    view.show(tracker.finish())
    stats.stop = stop_name(tokenizer, tracker.tokens, stats.stop)
    out.newline()
    return tracker


def stop_name(tokenizer, tokens: list[int], default: str) -> str:
    """The name of the stop token the output ended with (<|return|>, <|call|>, <|end|>), else `default`."""
    name = tokenizer.decode(tokens[-1:])
    return name if name in END_TOKENS else default


def final_answer(tracker: HarmonyTracker) -> str | None:
    """The content of the last complete final-channel message, for the history (None if there is none, or the
    output was not valid harmony)."""
    if tracker.broken:
        return None
    finals = [m.content for m in tracker.parser.messages if m.channel == "final" and not m.recipient]
    return finals[-1] if finals else None


def system_messages(reasoning: str | None, instructions: str | None, defaults=None) -> list:
    """The system message and, with --system, a developer message. The system message is the model's own
    (`defaults.system` from its defaults.json) if it has one, else harmony's; --reasoning replaces its effort."""
    fields = dict(defaults.system) if defaults is not None else {}
    if reasoning is not None or "reasoning_effort" not in fields:
        fields["reasoning_effort"] = reasoning or DEFAULT_REASONING
    messages = [SystemMessage(**fields)]
    return messages + [DeveloperMessage(instructions)] if instructions else messages


# ---------------------------------------------------------------- arguments


def add_sampling_flags(parser: argparse.ArgumentParser, max_tokens: int, harmony_only: bool = False) -> None:
    only = "; only with --harmony (or a model that speaks harmony)" if harmony_only else ""
    parser.add_argument("--system", "--developer", dest="system", metavar="TEXT",
                        help="instructions for the model (harmony puts them in the developer message)" + only)
    parser.add_argument("--reasoning", choices=REASONING_EFFORTS, default=None,
                        help=f"reasoning effort in the system message (default: the model's own, from its "
                             f"defaults.json, else {DEFAULT_REASONING})" + only)
    parser.add_argument("-n", "--max-tokens", type=max_tokens_arg, default=max_tokens, metavar="N",
                        help=f"stop after N new tokens, -1 for no limit (default: {max_tokens}; a pure-NumPy "
                             "forward pass is slow on the real models)")
    parser.add_argument("--temp", "--temperature", dest="temperature", type=temperature_arg,
                        default=None, metavar="T",
                        help=f"sampling temperature; 0 = greedy, deterministic (default: the model's own, from its "
                             f"defaults.json, else {DEFAULT_TEMPERATURE}, OpenAI's recommendation for gpt-oss, as in "
                             "ollama's gpt-oss model; 0 or --seed makes a run repeatable)")
    parser.add_argument("--top-p", type=top_p_arg, default=DEFAULT_TOP_P, metavar="P",
                        help=f"nucleus sampling: keep the most likely tokens up to probability P "
                             f"(default: {DEFAULT_TOP_P} = off, OpenAI's recommendation for gpt-oss)")
    parser.add_argument("--top-k", type=top_k_arg, default=0, metavar="K",
                        help="keep only the K most likely tokens; 0 = off (default: 0)")
    parser.add_argument("--seed", type=seed_arg, metavar="S",
                        help="random seed, for repeatable sampling (default: a fresh one, printed with the stats)")


def _number(text: str, kind, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def max_tokens_arg(text: str) -> int:
    value = _number(text, int, "a whole number of tokens (-1 for no limit)")
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be >= 0, or -1 for no limit, got {value}")
    return value


def temperature_arg(text: str) -> float:
    value = _number(text, float, "a number >= 0")
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def top_p_arg(text: str) -> float:
    value = _number(text, float, "a probability in (0, 1]")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def seed_arg(text: str) -> int:
    value = _number(text, int, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (NumPy's seeds are), got {value}")
    return value


def top_k_arg(text: str) -> int:
    value = _number(text, int, "a whole number (0 = off)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = off), got {value}")
    return value
