"""The harmony chat format of gpt-oss: render a conversation to token ids, parse generated ids back.

A harmony message is

    <|start|>{role}[ to={recipient}][<|channel|>{channel}][ {content_type}]<|message|>{content}<|end|>

where an assistant message with a recipient (a tool call) ends with <|call|> instead of <|end|>.
A prompt is the rendered conversation followed by an open `<|start|>assistant`; the model then
writes the rest of a header (usually `<|channel|>analysis` or `<|channel|>final`), <|message|>,
the text, and one of <|end|> (more messages follow), <|return|> (final answer, stop) or <|call|>
(tool call, stop).

What it does, byte-for-byte like openai-harmony 0.0.8 (`HarmonyEncodingName.HARMONY_GPT_OSS`),
which the tests use as the oracle:
- the system message: model identity, knowledge cutoff, an optional current date (never today's
  date unless you pass it), `Reasoning: low|medium|high`, and the valid-channels line;
- the developer message's `# Instructions`;
- user, assistant and tool messages, with channel, recipient and content type;
- auto-dropping of earlier analysis when the conversation ends with a final answer (exactly
  openai-harmony's rule: analysis messages before the FIRST final message are dropped);
- text is tokenized with `encode_ordinary`, piece by piece as openai-harmony does, so a user
  typing "<|end|>" gets ordinary text tokens, never the special token.

What it does not do: tool definitions (the `# Tools` sections that openai-harmony writes from
JSON schemas, and the "Calls to these tools must go to the commentary channel" line that comes
with function tools), user names (`user:alice`), several content parts in one message,
and rendering for training (<|return|> as the last token). Parsing is incremental (HarmonyParser),
so the chat's live display and parse_completion read tokens the same way.

It works with any tokenizer of minigptoss.tokenizer: on o200k_harmony the ids equal
openai-harmony's, on the tiny byte tokenizer the decoded text is the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import ClassVar, Union

DEFAULT_MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
DEFAULT_KNOWLEDGE_CUTOFF = "2024-06"
CHANNELS = ("analysis", "commentary", "final")
REASONING_EFFORTS = ("low", "medium", "high")
END_TOKENS = ("<|end|>", "<|return|>", "<|call|>")


@dataclass(frozen=True)
class SystemMessage:
    """The system message; every field at its default renders like openai-harmony's SystemContent()."""

    reasoning_effort: str | None = "medium"
    current_date: str | None = None  # e.g. "2025-08-05"; openai-harmony's conversation_start_date
    model_identity: str | None = DEFAULT_MODEL_IDENTITY
    knowledge_cutoff: str | None = DEFAULT_KNOWLEDGE_CUTOFF
    valid_channels: tuple[str, ...] = CHANNELS  # () leaves the channels line out
    channel_required: bool = True
    role: ClassVar[str] = "system"

    def __post_init__(self):
        if self.reasoning_effort not in (*REASONING_EFFORTS, None):
            allowed = ", ".join(REASONING_EFFORTS)
            raise ValueError(f"reasoning_effort must be {allowed} or None, got {self.reasoning_effort!r}")

    def text(self) -> str:
        identity = [self.model_identity] if self.model_identity is not None else []
        if self.knowledge_cutoff is not None:
            identity.append(f"Knowledge cutoff: {self.knowledge_cutoff}")
        if self.current_date is not None:
            identity.append(f"Current date: {self.current_date}")
        sections = ["\n".join(identity)] if identity else []
        if self.reasoning_effort is not None:
            sections.append(f"Reasoning: {self.reasoning_effort}")
        if self.valid_channels:
            line = f"# Valid channels: {', '.join(self.valid_channels)}."
            sections.append(line + (" Channel must be included for every message." if self.channel_required else ""))
        return "\n\n".join(sections)


@dataclass(frozen=True)
class DeveloperMessage:
    """The developer message: instructions for the model (what other chat formats call 'system')."""

    instructions: str
    role: ClassVar[str] = "developer"

    def text(self) -> str:
        return f"# Instructions\n\n{self.instructions}"


@dataclass
class Message:
    """A user, assistant or tool message.

    role is "user", "assistant", or for a tool's answer the tool's name ("functions.get_weather").
    recipient is set on tool calls ("functions.get_weather") and tool answers ("assistant").
    end is filled in by parse_completion only: the token that closed the message ("<|end|>",
    "<|return|>", "<|call|>"), or None when the output stopped first. It is ignored by == and
    by rendering (a finished answer is re-rendered with <|end|>, as openai-harmony does).
    """

    role: str
    content: str
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None
    end: str | None = field(default=None, compare=False)

    def text(self) -> str:
        return self.content


AnyMessage = Union[SystemMessage, DeveloperMessage, Message]


# ---------------------------------------------------------------- rendering


def render_message(msg: AnyMessage, tokenizer) -> list[int]:
    """Token ids of one complete message, from <|start|> to its <|end|> or <|call|>."""
    special, text = tokenizer.encode_single_token, tokenizer.encode_ordinary
    channel, recipient, content_type = (getattr(msg, k, None) for k in ("channel", "recipient", "content_type"))
    ids = [special("<|start|>"), *text(msg.role)]
    if recipient is not None and recipient != "all":
        ids += text(f" to={recipient}")
    if channel is not None:
        ids += [special("<|channel|>"), *text(channel)]
    if content_type is not None:
        ids += _render_content_type(content_type, tokenizer)
    ids += [special("<|message|>"), *text(msg.text())]
    is_call = msg.role == "assistant" and recipient is not None
    return ids + [special("<|call|>" if is_call else "<|end|>")]


def _render_content_type(content_type: str, tokenizer) -> list[int]:
    """' json', or for '<|constrain|>json' a space, the <|constrain|> token, then 'json'."""
    marker = "<|constrain|>"
    if not content_type.startswith(marker):
        return tokenizer.encode_ordinary(f" {content_type}")
    rest = content_type[len(marker) :]
    return [*tokenizer.encode_ordinary(" "), tokenizer.encode_single_token(marker), *tokenizer.encode_ordinary(rest)]


def drop_old_analysis(messages: list[AnyMessage]) -> list[AnyMessage]:
    """openai-harmony's auto_drop_analysis: if the last assistant message is a final answer,
    drop the analysis messages that come before the first final message."""
    assistant = [m for m in messages if m.role == "assistant"]
    if not assistant or assistant[-1].channel != "final":
        return list(messages)
    first_final = next(i for i, m in enumerate(messages) if getattr(m, "channel", None) == "final")
    return [m for i, m in enumerate(messages) if not (i < first_final and getattr(m, "channel", None) == "analysis")]


def render_conversation(
    messages: list[AnyMessage], tokenizer, next_turn: str | None = "assistant", drop_analysis: bool = True
) -> list[int]:
    """Token ids of the conversation, ending with an open `<|start|>{next_turn}` unless next_turn is None."""
    kept = drop_old_analysis(messages) if drop_analysis else messages
    ids = [t for m in kept for t in render_message(m, tokenizer)]
    if next_turn is not None:
        ids += [tokenizer.encode_single_token("<|start|>"), *tokenizer.encode_ordinary(next_turn)]
    return ids


def stop_tokens(tokenizer, include_end: bool = False) -> set[int]:
    """Ids at which sampling stops: <|return|> and <|call|>, plus <|end|> if include_end."""
    names = END_TOKENS if include_end else END_TOKENS[1:]
    return {tokenizer.encode_single_token(n) for n in names}


# ---------------------------------------------------------------- parsing


class HarmonyParser:
    """Reads a harmony completion one token at a time; the one parser behind `parse_completion` and the chat's
    live display.

    With role="assistant" the ids are what the model writes after the prompt's `<|start|>assistant` (so they
    begin inside a header); with role=None they begin with <|start|>. feed(token) returns events, in order:
        ("message", Message)   a header was completed by <|message|> (role, channel, recipient; content "")
        ("token", id)          an id of the current message's content
        ("end", Message)       the message ended with <|end|>, <|return|> or <|call|>: content decoded, .end set
    A malformed header, an end token inside a header, or a token other than <|start|> between messages raises
    ValueError. `state` is "header", "content" or "between"; `header_tokens` counts the open header's ids.
    """

    def __init__(self, tokenizer, role: str | None = "assistant"):
        self.tokenizer, self.role = tokenizer, role
        special = tokenizer.encode_single_token
        self._start, self._body = special("<|start|>"), special("<|message|>")
        self._ends = {special(name): name for name in END_TOKENS}
        self.messages: list[Message] = []  # the completed ones
        self.current: Message | None = None  # the message whose content is being read
        self._header: list[int] | None = [] if role is not None else None  # None: not inside a header
        self._content: list[int] | None = None  # not None: inside a message's content

    @property
    def state(self) -> str:
        return "content" if self._content is not None else "header" if self._header is not None else "between"

    @property
    def header_tokens(self) -> int:
        return len(self._header or ())

    def feed(self, token) -> list[tuple]:
        t = int(token)
        if self._content is not None:
            if t not in self._ends:
                self._content.append(t)
                return [("token", t)]
            message = self._close(self._ends[t])
            return [("end", message)]
        if self._header is not None:
            if t == self._body:
                self.current = _message(_parse_header(self.tokenizer.decode(self._header), self.role), "", None)
                self._header, self._content, self.role = None, [], None
                return [("message", self.current)]
            if t in self._ends:
                raise ValueError(f"{self._ends[t]} inside a message header: {self.tokenizer.decode(self._header)!r}")
            self._header.append(t)
            return []
        if t == self._start:
            self._header = []
            return []
        raise ValueError(f"expected <|start|> between messages, got token {t} ({self.tokenizer.decode([t])!r})")

    def finish(self) -> list[Message]:
        """Every message so far: the completed ones, then one cut off inside its content (its text so far,
        end=None) or inside a header that can already be read (empty content)."""
        if self._content is not None:
            return [*self.messages, replace(self.current, content=self.tokenizer.decode(self._content))]
        if self._header:
            try:
                return [*self.messages, _message(_parse_header(self.tokenizer.decode(self._header), self.role), "", None)]
            except ValueError:
                pass
        return list(self.messages)

    def _close(self, end: str) -> Message:
        message = replace(self.current, content=self.tokenizer.decode(self._content), end=end)
        self.messages.append(message)
        self.current, self._content = None, None
        return message


def parse_completion(tokens: list[int], tokenizer, role: str | None = "assistant") -> list[Message]:
    """Messages in generated token ids (see HarmonyParser for role). Each message ends at <|end|>, <|return|>
    or <|call|> (recorded in Message.end). Output cut off inside a message's text gives that message with the
    text so far and end=None; cut off inside a header, a message with empty content if the header can already
    be read, else nothing. A malformed header, or a token other than <|start|> between messages, raises
    ValueError. Ids may be numpy integers.
    """
    parser = HarmonyParser(tokenizer, role)
    for t in tokens:
        parser.feed(t)
    return parser.finish()


def _message(header: dict, content: str, end: str | None) -> Message:
    return Message(content=content, end=end, **header)


_ASCII_WHITESPACE = re.compile(r"[ \t\n\f\r]+")


def _parse_header(header: str, role: str | None) -> dict:
    """role, channel, recipient and content_type from a header's text, following openai-harmony.

    e.g. 'assistant<|channel|>commentary to=functions.f <|constrain|>json' ->
    role assistant, channel commentary, recipient functions.f, content_type <|constrain|>json.
    """
    channel, header = _take_channel(header)
    header = header.strip()
    if "<|constrain|>" in header:
        header = header.replace("<|constrain|>", " <|constrain|>").strip()
    parts = [p for p in _ASCII_WHITESPACE.split(header) if p]
    if role is None:
        if not parts:
            raise ValueError("message header has no role")
        role = parts.pop(0)
    elif parts and parts[0] == role:
        parts.pop(0)
    recipient, content_type = _recipient_and_type(parts)
    if parts:
        raise ValueError(f"unexpected words in message header: {' '.join(parts)!r}")
    return dict(role=role, channel=channel, recipient=recipient, content_type=content_type)


def _take_channel(header: str) -> tuple[str | None, str]:
    """The channel named after <|channel|> (up to whitespace or '<'), and the header without it."""
    marker = "<|channel|>"
    at = header.find(marker)
    if at < 0:
        return None, header
    after = header[at + len(marker) :]
    stop = next((i for i, c in enumerate(after) if c.isspace() or c == "<"), len(after))
    if stop == 0:
        raise ValueError(f"{marker} without a channel name in message header {header!r}")
    return after[:stop], header[:at] + after[stop:]


def _recipient_and_type(parts: list[str]) -> tuple[str | None, str | None]:
    """Pop the recipient ('to=x', or a lone word) and content type (a last word) off `parts`."""
    if not parts:
        return None, None
    alone, last = len(parts) == 1, parts.pop()
    if last.startswith("to="):
        return last[3:], None
    if alone:
        return last, None
    raw = parts.pop()
    return (raw[3:] if raw.startswith("to=") else raw), last
