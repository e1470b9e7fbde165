"""The gpt-oss forward pass, composed from the pieces, every intermediate named for the inspector.

    x = E[tokens]                                     embed               (T, H)
    for each block n:
        x = x + Attention_n(RMSNorm(x))               blocks.n.resid_mid  (T, H)
        x = x + MoE_n(RMSNorm(x))                     blocks.n.resid_post (T, H)
    logits = RMSNorm(x) W_unembed^T                   logits              (T, V)

Every `x = record(name, x)` below offers an intermediate to the inspector and goes on with what it returns: the
value itself, or an open patch's replacement (`minigptoss.patch`); `observe` offers a display-only value.
names.py declares each name once (its dotted name, shape and meaning), and a test holds `forward` to that table.

Names follow the official `gpt_oss/torch/model.py` where it has them (attn, mlp1, mlp2, sinks, norm).
"""

import numpy as np

from . import attention
from .attention import attend, attention_mask, attention_scores, sink_softmax, split_qkv, whole_attention_bytes
from .arguments import shown, instance, whole_number
from .config import Config, yarn_ramp_bounds
from .errors import ArgumentError, MinigptossError, TokenError
from .fast import dense as fastdense
from .fast.attention import banded_attention
from .fast.mxfp4 import one_blas_thread
from .inspector import observe, record, wanted
from .kvcache import KVCache
from .nonfinite import NonFiniteError, locate
from .nonfinite import message as non_finite_message
from .moe import DenseExperts, MXFP4Experts, combine, grouped_linear
from .rmsnorm import rms_norm
from .rope import apply_rope, inverse_frequencies, rope_tables
from .router import route, router_logits
from .sampling import check_sampling, generate
from .swiglu import swiglu


class Model:
    """A gpt-oss model: its config and its tensors (original names; see `checkpoint/tensors.py`)."""

    def __init__(self, config: Config, weights: dict[str, np.ndarray], checkpoint=None):
        """weights: a mapping from the original names to float32 arrays (MXFP4 experts as their uint8 blocks and
        scales), e.g. what `random_weights` makes or a loaded checkpoint's lazy mapping; it may also offer
        `rows` and `matmul_t` (see weight_rows, weight_product). checkpoint: what the loader found, or None."""
        self.config, self.weights, self.checkpoint = config, weights, checkpoint
        self._experts: dict[str, DenseExperts] = {}  # kept while the weights behind them stay the same arrays
        self.make_tokenizer, self._tokenizer = None, None  # minigptoss.load gives the vocabulary's tokenizer

    @property
    def tokenizer(self):
        """The tokenizer of this model's vocabulary (o200k_harmony for gpt-oss, bytes for the tiny models):
        `model.forward(model.tokenizer.encode("hello"))`. Made on first use; set by `minigptoss.load`."""
        if self._tokenizer is None:
            if self.make_tokenizer is None:
                raise AttributeError("this model has no tokenizer attached: minigptoss.load attaches one, or use "
                                     "minigptoss.text.tokenizer.tokenizer_for(model.config.vocab_size)")
            self._tokenizer = self.make_tokenizer()
        return self._tokenizer

    def experts(self, layer: int, which: str) -> DenseExperts:
        """Expert weights of `block.{layer}.mlp.{which}` (which: mlp1 or mlp2), decoded lazily per expert."""
        prefix = f"block.{layer}.mlp.{which}"
        mxfp4 = f"{prefix}_weight.blocks" in self.weights
        names = [f"{prefix}_weight.blocks", f"{prefix}_weight.scales"] if mxfp4 else [f"{prefix}_weight"]
        parts = [self.weights[name] for name in [*names, f"{prefix}_bias"]]
        found = self._experts.get(prefix)
        if found is None or any(a is not b for a, b in zip(found.parts, parts)):
            found = self._experts[prefix] = MXFP4Experts(*parts) if mxfp4 else DenseExperts(*parts)
        return found

    def forward(self, tokens, cache: KVCache | None = None, only_last: bool = False) -> np.ndarray:
        """Token ids (T,) -> float32 logits (T, vocab_size). With a cache, the tokens continue what it holds.
        only_last=True: the last token's logits only, (1, vocab_size), what generation needs (cheaper: the
        unembedding is 201,088 rows in gpt-oss). Logits holding NaN or inf raise NonFiniteError naming where
        they first appeared (see nonfinite.py); the module-level `forward` returns them as they are."""
        tokens = check_tokens(tokens, self.config.vocab_size)
        instance("forward", "cache", cache, KVCache, "a KVCache (model.new_cache())", none=True)
        instance("forward", "only_last", only_last, bool, "True or False")
        check_files = getattr(self.weights, "check_files", None)
        if check_files is not None:  # a loaded checkpoint: its files' sizes and times still as `load` saw them
            check_files()
        before = cache.state() if cache is not None else None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # NaN/inf: one NonFiniteError below
            logits = forward(self, tokens, cache, only_last)
            if not np.isfinite(logits).all():
                if cache is not None:
                    cache.restore(before)
                first = locate(lambda: forward(self, tokens, cache, only_last))
                if cache is not None:
                    cache.restore(before)
                raise NonFiniteError(non_finite_message(self.weights, first))
        return logits

    def generate(self, tokens, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, stop_tokens=None, cache: KVCache | None = None,
                 on_draw=None):
        """Yield new token ids one by one (KV-cached); see `sampling.generate`. Stops after one of `stop_tokens`
        (none by default; a chat passes its format's, e.g. `text.harmony.stop_tokens(tokenizer)`) or
        max_new_tokens. cache: the KV cache to fill (default a new one), e.g. an intervention's `new_cache`;
        on_draw(token, u): hears each draw and its uniform number (None when greedy)."""
        check_sampling(max_new_tokens, temperature, top_p, top_k, seed, stop_tokens)  # now, not at the first next()
        instance("generate", "cache", cache, KVCache, "a KVCache (model.new_cache())", none=True)
        return generate(self, check_tokens(tokens, self.config.vocab_size), max_new_tokens, temperature,
                        top_p, top_k, seed, stop_tokens, cache, on_draw)

    def logit_lens(self, residual) -> np.ndarray:
        """The final norm and the unembedding applied to a residual stream (..., H) -> (..., V); see logit_lens."""
        return logit_lens(self, residual)

    def new_cache(self, rollback: int = 0) -> KVCache:
        """An empty KV cache for this model; `rollback`: see KVCache (how far `truncate` can go back)."""
        return KVCache(self.config, whole_number("new_cache", "rollback", rollback, low=0))


def weight_rows(weights, name: str, ids: np.ndarray) -> np.ndarray:
    """weights[name][ids] as float32:  (T,) -> (T, cols). Weights that can serve rows without materialising the
    whole matrix (a loaded checkpoint's, which widens only those rows) offer `rows(name, ids)`; a dict need not."""
    rows = getattr(weights, "rows", None)
    return rows(name, ids) if rows is not None else np.asarray(weights[name][ids], dtype=np.float32)


def weight_product(x: np.ndarray, weights, name: str) -> np.ndarray:
    """x weights[name]^T as float32:  (..., cols) -> (..., rows). Weights may offer `matmul_t(x, name, product)`
    (a loaded checkpoint widens the matrix in row chunks); a dict need not. A large product is shared between
    two threads a chunk of rows at a time (fast/dense.py; equal to `x @ W.T` within float32 rounding)."""
    matmul_t = getattr(weights, "matmul_t", None)
    if matmul_t is not None:
        return matmul_t(x, name, fastdense.matmul_t)
    return fastdense.matmul_t(x, np.asarray(weights[name], dtype=np.float32))


def check_tokens(tokens, vocab_size: int) -> np.ndarray:
    """A sequence or 1-D array of ids in [0, vocab_size) -> (T,) int64, or one clear error."""
    if isinstance(tokens, str):
        raise TokenError(f"tokens must be token ids, not text ({tokens[:20]!r}): encode the text first, e.g. "
                         f"model.forward(model.tokenizer.encode({tokens[:20]!r})) (o200k_harmony for gpt-oss)")
    try:
        ids = np.asarray(tokens)
    except (ValueError, TypeError, OverflowError):  # ragged lists, objects NumPy cannot hold as one array
        raise TokenError(f"tokens must be a non-empty 1-D sequence of integer ids, got {shown(tokens)}") from None
    if ids.dtype == object and ids.ndim == 1 and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        bad = [i for i in ids if not 0 <= i < vocab_size]  # Python ints too large for int64
        if bad:
            raise TokenError(f"token id {bad[0]} is outside the vocabulary [0, {vocab_size})")
    if ids.ndim != 1 or ids.size == 0 or not (np.issubdtype(ids.dtype, np.integer) or ids.dtype == bool):
        raise TokenError(f"tokens must be a non-empty 1-D sequence of integer ids, got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.size:
        raise TokenError(f"token id {int(bad[0])} is outside the vocabulary [0, {vocab_size})")
    return ids.astype(np.int64)


def attention_block(model: Model, n: int, x: np.ndarray, positions: np.ndarray, rope,
                    cache: KVCache | None) -> np.ndarray:
    """x + Attention(RMSNorm(x)) for block n:  (T, H) -> (T, H). Tk = T, plus what the cache holds."""
    c, w, at = model.config, model.weights, f"blocks.{n}.attn."
    t = record(at + "normed", rms_norm(x, w[f"block.{n}.attn.norm.scale"]))  # (T, H)
    qkv = weight_product(t, w, f"block.{n}.attn.qkv.weight") + w[f"block.{n}.attn.qkv.bias"]  # (T, (nq+2nkv)d)
    qkv = record(at + "qkv", qkv)
    q, k, v = split_qkv(qkv, c.num_attention_heads, c.num_key_value_heads, c.head_dim)
    q, k, v = record(at + "q", q), record(at + "k", k), record(at + "v", v)  # (T, nq, d), (T, nkv, d) x 2
    q_rot, k_rot = record(at + "q_rot", apply_rope(q, *rope)), record(at + "k_rot", apply_rope(k, *rope))
    keys, values, key_positions = (k_rot, v, positions) if cache is None else cache.extend(n, k_rot, v, positions)
    sinks = w[f"block.{n}.attn.sinks"]  # (nq,)
    if attention_in_chunks(c.num_attention_heads, len(positions), len(key_positions), at):  # a long prompt
        z, sink_mass = banded_attention(q_rot, keys, values, positions, key_positions, c.window(n), sinks)
    else:
        mask = record(at + "mask", attention_mask(positions, key_positions, c.window(n)))  # (T, Tk)
        scores = record(at + "scores", attention_scores(q_rot, keys, mask))  # (nq, T, Tk)
        probs, sink_mass = sink_softmax(scores, sinks)  # (nq, T, Tk), (nq, T)
        probs = record(at + "probs", probs)
        z = attend(probs, values)  # (T, nq d)
    observe(at + "sink_mass", sink_mass)  # display only: the pass goes on with probs
    z = record(at + "z", z)  # (T, nq d)
    out = record(at + "out", weight_product(z, w, f"block.{n}.attn.out.weight") + w[f"block.{n}.attn.out.bias"])
    return x + out  # (T, H)


class AttentionMemoryError(MinigptossError):
    """A capture or patch asked for a long prompt's whole attention scores, and they would not fit in memory."""


def attention_in_chunks(num_heads: int, T: int, Tk: int, at: str) -> bool:
    """Whether attention runs a chunk of query rows at a time against the keys each may see (fast/attention.py's
    banded_attention): when its scores (nq, T, Tk) would exceed attention.CHUNK_BYTES and no capture or
    patch asks for the mask, scores or probs.
    If one does, they are built whole when that fits in half the available memory, else AttentionMemoryError."""
    if 4 * num_heads * T * Tk <= attention.CHUNK_BYTES:
        return False
    if not any(wanted(at + name) for name in ("mask", "scores", "probs")):
        return True
    need, available = whole_attention_bytes(num_heads, T, Tk), available_memory()
    if available is None or need <= available // 2:
        return False
    fits = int((available // 2 / (12 * num_heads + 1)) ** 0.5)  # T = Tk at which need = available / 2
    raise AttentionMemoryError(f"recording {at}mask/scores/probs for {T} queries x {Tk} keys needs "
                               f"{need / 2**30:.1f} GiB ({num_heads} heads, float32) and {available / 2**30:.1f} GiB "
                               f"are available: capture them on a prompt of at most ~{fits} tokens, or leave them "
                               f"out of the capture (the pass itself computes attention in chunks)")


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def moe_block(model: Model, n: int, x: np.ndarray) -> np.ndarray:
    """x + MoE(RMSNorm(x)) for block n:  (T, H) -> (T, H)."""
    c, w, at = model.config, model.weights, f"blocks.{n}.moe."
    t = record(at + "normed", rms_norm(x, w[f"block.{n}.mlp.norm.scale"]))  # (T, H)
    logits = router_logits(t, w[f"block.{n}.mlp.gate.weight"], w[f"block.{n}.mlp.gate.bias"])  # (T, E)
    ids, weights = route(record(at + "router.logits", logits), c.experts_per_token)  # (T, k), (T, k)
    expert_ids, expert_weights = record(at + "router.expert_ids", ids), record(at + "router.weights", weights)
    expert_in = record(at + "expert_in", t)  # (T, H): t as the experts read it (the router read t)
    t_per_slot = np.broadcast_to(expert_in[:, None, :], (*expert_ids.shape, t.shape[-1]))  # (T, k, H)
    mlp1 = record(at + "mlp1", grouped_linear(t_per_slot, expert_ids, model.experts(n, "mlp1")))  # (T, k, 2I)
    activation = record(at + "swiglu", swiglu(mlp1, c.swiglu_limit))  # (T, k, I)
    expert_out = record(at + "expert_out", grouped_linear(activation, expert_ids, model.experts(n, "mlp2")))
    out = record(at + "out", combine(expert_out, expert_weights))  # (T, H); expert_out (T, k, H) above
    return x + out


@one_blas_thread()  # the whole pass with OpenBLAS on one thread, the caller's count restored after (fast/mxfp4.py)
def forward(model: Model, tokens: np.ndarray, cache: KVCache | None = None, only_last: bool = False) -> np.ndarray:
    """Token ids (T,) -> logits (T, V): embed, the blocks, the final norm, the unembedding. only_last: the logits
    of the last token only, (1, V) (all T rows are still computed and recorded when a capture or patch asks for
    "logits"). Large products share fast/'s two threads, a chunk of rows each, instead of BLAS's own threads."""
    c, w = model.config, model.weights
    start = cache.length if cache is not None else 0
    tokens = record("tokens", tokens)
    positions = record("positions", np.arange(start, start + len(tokens)))  # (T,)
    x = record("embed", weight_rows(w, "embedding.weight", tokens))  # (T, H): only these rows are read and widened
    bounds = record("rope.yarn_bounds", np.array(yarn_ramp_bounds(c)))  # (2,) YaRN's ramp: low, high
    inv_freq = inverse_frequencies(c, bounds)  # (d/2,)
    observe("rope.inv_freq", inv_freq)
    cos, sin = rope_tables(c, positions, bounds, inv_freq)  # (T, d/2) each
    rope = record("rope.cos", cos), record("rope.sin", sin)
    for n in range(c.num_hidden_layers):
        x = record(f"blocks.{n}.resid_pre", x)
        x = record(f"blocks.{n}.resid_mid", attention_block(model, n, x, positions, rope, cache))  # (T, H)
        x = record(f"blocks.{n}.resid_post", moe_block(model, n, x))  # (T, H)
    x = record("norm", rms_norm(x, w["norm.scale"]))  # (T, H)
    if only_last and not wanted("logits"):
        x = x[-1:]  # (1, H): a generation needs the next token's logits only
    logits = record("logits", weight_product(x, w, "unembedding.weight"))  # (T, V), or (1, V)
    if cache is not None:
        cache.length += len(tokens)
    return logits[-1:] if only_last else logits


def logit_lens(model: Model, residual: np.ndarray) -> np.ndarray:
    """The final norm and the unembedding applied to any residual stream:  (..., H) -> (..., V). On the last
    block's resid_post it gives the model's logits, bit for bit; on an earlier one, what the model would
    predict if the remaining blocks were skipped (the "logit lens")."""
    instance("logit_lens", "model", model, Model, "a minigptoss.Model")
    try:
        stream = np.asarray(residual, dtype=np.float32)
    except (ValueError, TypeError):
        stream = None
    if stream is None or stream.ndim == 0 or stream.shape[-1] != model.config.hidden_size:
        got = f"shape {stream.shape}" if stream is not None else shown(residual)
        raise ArgumentError(f"logit_lens: residual must be an array of numbers shaped (..., "
                            f"{model.config.hidden_size}) (a residual stream), got {got}")
    x = rms_norm(stream, model.weights["norm.scale"])  # (..., H)
    return weight_product(x, model.weights, "unembedding.weight")  # (..., V)
