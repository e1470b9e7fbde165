"""Interventions: named changes to a forward pass, built on `inspector.patch` (the names are names.py's).

    with minigptoss.interventions.sinks_off(layers=[1]):          # S_h = -inf on layer 1's heads
        logits = model.forward(tokens)
    cache, logits = run_with(model, tokens, zero_head(2, 5))      # capture + logits in one call

Each helper returns an `Intervention`: a label and the patches that make it, opened together by `with`
(`a + b` opens both). Each one replaces recorded intermediates only, so the weights and the config are never
touched, the capture sees what the pass used, and it works under `model.generate` with the KV cache (a patched
k_rot / v is what gets cached). What each one patches:

    sinks_off(layers, heads)          blocks.N.attn.probs = sink_softmax(scores, S_h = -inf) on those heads;
                                      sink_mass (display) is 0 there. Same bits as setting the sink weight to -inf.
    window_off(layers)                blocks.N.attn.mask = causal (j <= i) over every key. Under a KV cache the
                                      sliding layers keep only W keys: generate with cache=iv.new_cache(model)
                                      (refused with a PatchError otherwise, never silently wrong).
    force_experts(experts, ...)       blocks.N.moe.router.expert_ids / weights: the experts are chosen (they take
    forbid_experts(experts, ...)      the last slots' places) or never chosen; weights = softmax of the router's
                                      own logits over the new choice, as `route` does.
    top1_routing(layers)              blocks.N.moe.router.weights = (1, 0, ..., 0): only the best expert counts.
                                      The logits of experts_per_token = 1, to float32 rounding.
    zero_head(layer, head)            blocks.N.attn.z: that head's d columns set to 0 (before the out projection).
    patch_from(cache, names, ...)     activation patching: the named tensors (or rows of them, at positions)
                                      taken from a capture of another prompt.

`positions` arguments are absolute positions (0 = the prompt's first token), so an intervention at one
position works the same in a prefill and in generate's one-token steps. `PRESETS` lists the ones a user can
pick by name (the debugger's menu): `preset("zero head", layer=1, head=3)`.
"""

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from .attention import sink_softmax
from . import numerics
from .arguments import instance, text_patterns, whole_number, whole_numbers
from .inspector import Capture, Intervention, Patch, PatchError, capture
from .names import declared, from_transformer_lens
from .router import softmax, top_k


class _Positions:
    """Remembers the current pass's absolute positions (recorded first, before any block)."""

    def __init__(self):
        self.current = np.zeros(0, dtype=np.int64)
        self.patch = Patch("positions", self._see)

    def _see(self, value: np.ndarray, name: str) -> np.ndarray:
        self.current = np.asarray(value)
        return value

    def rows(self, wanted: Iterable[int] | None) -> np.ndarray:
        """Indices (into this pass's T axis) of the wanted absolute positions (all if None)."""
        if wanted is None:
            return np.arange(len(self.current))
        return np.flatnonzero(np.isin(self.current, np.asarray(list(wanted), dtype=np.int64)))


def _numbers(where: str, name: str, values, none: bool = True) -> list[int] | None:
    """Layers, heads, experts or positions: whole numbers >= 0 (None: all), or one PatchError naming them."""
    return whole_numbers(where, name, values, none=none, error=PatchError)


def _numbers_or_list(values):
    """An iterable of names as a list (a non-iterable is returned as is, for text_patterns to name)."""
    return list(values) if hasattr(values, "__iter__") else [values]


def _block_patterns(layers: Iterable[int] | None, suffix: str) -> list[str]:
    return [f"blocks.*.{suffix}"] if layers is None else [f"blocks.{int(n)}.{suffix}" for n in layers]


def _layer(name: str) -> int:
    return int(name.split(".")[1])


def _label(what: str, layers, heads=None, positions=None) -> str:
    parts = [what]
    if layers is not None:
        parts.append(f"layers {', '.join(map(str, layers))}")
    if heads is not None:
        parts.append(f"heads {', '.join(map(str, heads))}")
    if positions is not None:
        parts.append(f"positions {', '.join(map(str, positions))}")
    return ", ".join(parts)


def _remember(patterns: list[str], store: dict, display: bool = False) -> Patch:
    """A patch that changes nothing and keeps the newest value of each matching name in `store`."""
    def keep(value, name):
        store[name] = value
        return value
    return Patch(patterns, keep, display=display)


def sinks_off(layers: Iterable[int] | None = None, heads: Iterable[int] | None = None) -> Intervention:
    """Remove the attention sinks: S_h = -inf for `heads` (all if None) of `layers` (all if None), so those
    heads' probabilities sum to 1 over the keys (plain softmax) and sink_mass is 0.

    Patches blocks.N.attn.probs with sink_softmax(scores, -inf): the same bits as a model whose
    block.N.attn.sinks weight holds -inf there."""
    layers, heads = _numbers("sinks_off", "layers", layers), _numbers("sinks_off", "heads", heads)
    scores: dict[str, np.ndarray] = {}
    removed: dict[str, np.ndarray] = {}  # blocks.N.attn -> (probs, sink_mass) without the sinks

    def pick(count: int) -> np.ndarray:
        chosen = np.arange(count) if heads is None else np.asarray(heads)
        if chosen.size and (chosen.min() < 0 or chosen.max() >= count):
            raise PatchError(f"sinks_off: heads {list(chosen)} outside the layer's {count} heads")
        return chosen

    def new_probs(probs, name):
        prefix = name.rpartition(".")[0]
        chosen = pick(probs.shape[0])
        without = sink_softmax(scores[f"{prefix}.scores"][chosen], np.full(len(chosen), -np.inf, np.float32))
        removed[prefix] = (chosen, without[1])
        result = probs.copy()
        result[chosen] = without[0]
        return result

    def new_sink_mass(mass, name):
        chosen, without = removed.pop(name.rpartition(".")[0])
        result = mass.copy()
        result[chosen] = without
        return result

    return Intervention(_label("sinks off", layers, heads), [
        _remember(_block_patterns(layers, "attn.scores"), scores),
        Patch(_block_patterns(layers, "attn.probs"), new_probs),
        Patch(_block_patterns(layers, "attn.sink_mass"), new_sink_mass, display=True)])


def window_off(layers: Iterable[int] | None = None) -> Intervention:
    """Disable the sliding window on `layers` (all if None; full layers are unchanged): the mask becomes plain
    causal, allowed(i, j) = j <= i, so every earlier token is seen.

    Patches blocks.N.attn.mask. Without a cache, the same bits as a config with sliding_window = 0. Under a KV
    cache, sliding layers keep only their last W keys: pass `cache=intervention.new_cache(model)` to
    `model.generate` / `model.forward` (a cache that keeps every key there); with a cache missing keys this
    raises a PatchError rather than computing something else."""
    layers = _numbers("window_off", "layers", layers)
    where = _Positions()

    def causal(mask, name):
        queries = where.current  # (T,) absolute positions; the keys are the last Tk positions up to the last query
        last = int(queries[-1])
        keys = np.arange(last + 1 - mask.shape[1], last + 1)  # (Tk,)
        if keys[0] > 0:
            raise PatchError(f"window_off on {name!r}: the KV cache holds only keys {keys[0]}..{last} of 0..{last} "
                             f"(it dropped those beyond the window); make the cache with intervention.new_cache(model)")
        return keys[None, :] <= queries[:, None]  # (T, Tk)

    mask = Patch(_block_patterns(layers, "attn.mask"), causal)
    return Intervention(_label("window off", layers), [where.patch, mask], keep_all_keys=layers)


def reroute(layers: Iterable[int] | None = None, positions: Iterable[int] | None = None,
            force: Iterable[int] = (), forbid: Iterable[int] = ()) -> Intervention:
    """Change the router's choice on `layers` at `positions` (all if None): the experts in `force` are always
    among the k chosen (they take the places of the lowest-ranked choices), those in `forbid` never are; the
    weights are the softmax of the router's own logits over the new choice, as `router.route` computes them.

    Patches blocks.N.moe.router.expert_ids and .weights (the recorded router.logits stay what the router said)."""
    layers, positions = _numbers("reroute", "layers", layers), _numbers("reroute", "positions", positions)
    force, forbid = _numbers("reroute", "force", force, none=False), _numbers("reroute", "forbid", forbid, none=False)
    if set(force) & set(forbid):
        raise PatchError(f"reroute: experts {sorted(set(force) & set(forbid))} are both forced and forbidden")
    where, logits, chosen = _Positions(), {}, {}

    def new_ids(ids, name):
        prefix = name.rsplit(".", 1)[0]
        g = logits[f"{prefix}.logits"]  # (T, E)
        k, E = ids.shape[1], g.shape[1]
        if any(not 0 <= e < E for e in force + forbid):
            raise PatchError(f"reroute on {name!r}: experts must be in [0, {E}), got force={force} forbid={forbid}")
        if len(force) > k or E - len(forbid) < k:
            raise PatchError(f"reroute on {name!r}: {k} experts are chosen per token, cannot force {len(force)} "
                             f"or leave fewer than {k} of {E} after forbidding {len(forbid)}")
        rows = where.rows(positions)
        biased = g.copy()
        biased[np.ix_(rows, force)] = np.inf
        biased[np.ix_(rows, forbid)] = -np.inf
        new, _ = top_k(biased, k)  # (T, k): the rows not chosen are the router's own choice
        chosen[prefix] = softmax(np.take_along_axis(g, new, axis=-1))  # (T, k)
        return new.astype(ids.dtype)

    def new_weights(weights, name):
        return chosen.pop(name.rsplit(".", 1)[0]).astype(weights.dtype)

    what = ", ".join([f"force experts {force}"] * bool(force) + [f"forbid experts {forbid}"] * bool(forbid))
    return Intervention(_label(what or "reroute (no change)", layers, positions=positions), [
        where.patch, _remember(_block_patterns(layers, "moe.router.logits"), logits),
        Patch(_block_patterns(layers, "moe.router.expert_ids"), new_ids),
        Patch(_block_patterns(layers, "moe.router.weights"), new_weights)])


def force_experts(experts: Iterable[int], layers: Iterable[int] | None = None,
                  positions: Iterable[int] | None = None) -> Intervention:
    """The router always chooses `experts` on `layers` at `positions` (see `reroute`)."""
    return reroute(layers, positions, force=experts)


def forbid_experts(experts: Iterable[int], layers: Iterable[int] | None = None,
                   positions: Iterable[int] | None = None) -> Intervention:
    """The router never chooses `experts` on `layers` at `positions` (see `reroute`)."""
    return reroute(layers, positions, forbid=experts)


def top1_routing(layers: Iterable[int] | None = None) -> Intervention:
    """Only each token's best expert counts: router weights (1, 0, ..., 0) on `layers` (all if None).

    Patches blocks.N.moe.router.weights; the other chosen experts still run but are multiplied by 0, so the
    logits equal those of the same weights with experts_per_token = 1 (softmax over one logit is 1), up to float32
    rounding (each expert's matrix product runs on a different batch of tokens)."""
    layers = _numbers("top1_routing", "layers", layers)

    def first_only(weights, name):
        result = np.zeros_like(weights)
        result[:, 0] = 1
        return result

    weights = Patch(_block_patterns(layers, "moe.router.weights"), first_only)
    return Intervention(_label("top-1 routing", layers), [weights])


def zero_head(layer: int, head: int, positions: Iterable[int] | None = None) -> Intervention:
    """Ablate one attention head: its slice of z (columns head*d .. (head+1)*d) is 0 at `positions` (all if
    None), so it adds nothing to the out projection (the out bias is still added). Patches blocks.N.attn.z."""
    layer = whole_number("zero_head", "layer", layer, low=0, error=PatchError)
    head = whole_number("zero_head", "head", head, low=0, error=PatchError)
    positions = _numbers("zero_head", "positions", positions)
    where, probs = _Positions(), {}

    def zeroed(z, name):
        heads = probs[f"blocks.{layer}.attn.probs"].shape[0]
        if not 0 <= head < heads:
            raise PatchError(f"zero_head: layer {layer} has {heads} heads; head {head} does not exist")
        result = z.reshape(z.shape[0], heads, -1).copy()  # (T, nq, d)
        result[where.rows(positions), head] = 0
        return result.reshape(z.shape)

    return Intervention(_label(f"zero head {head} of layer {layer}", None, positions=positions), [
        where.patch, _remember([f"blocks.{layer}.attn.probs"], probs), Patch(f"blocks.{layer}.attn.z", zeroed)])


def _token_axis(name: str) -> int:
    """Which axis of a recorded tensor is T (the tokens of the pass), from names.py's declared shape."""
    return declared(name).dims.index("T")


def patch_from(source: Capture, names: str | Iterable[str] = "*",
               positions: Iterable[int] | None = None) -> Intervention:
    """Activation patching: the tensors named by `names` (patterns; those the `source` capture holds) are taken
    from `source` (a capture of another prompt's forward pass from position 0): whole (shapes must match), or
    only the rows of the given absolute `positions` along the token axis (the rest stays this pass's own)."""
    instance("patch_from", "source", source, Capture, "a capture (from `with minigptoss.capture() as source:`)",
             error=PatchError)
    if not isinstance(names, str):
        names = text_patterns("patch_from", "names", _numbers_or_list(names), error=PatchError)
    positions = _numbers("patch_from", "positions", positions)
    patterns = [from_transformer_lens(p) for p in ([names] if isinstance(names, str) else names)]
    taken = [name for name in source if any(fnmatchcase(name, p) for p in patterns)]
    if not taken:
        raise PatchError(f"patch_from: the source capture holds no name matching {patterns}")
    where = _Positions()

    def from_source(value, name):
        other = source[name]
        if positions is None:
            return other if other.dtype == value.dtype else other.astype(value.dtype)
        axis, rows = _token_axis(name), where.rows(positions)
        if other.ndim != value.ndim or other.shape[:axis] + other.shape[axis + 1:] != \
                value.shape[:axis] + value.shape[axis + 1:]:
            raise PatchError(f"patch_from {name!r}: the source has shape {other.shape}, this pass {value.shape} "
                             f"(they must agree except along the token axis {axis})")
        at = where.current[rows]
        if at.size and at.max() >= other.shape[axis]:
            raise PatchError(f"patch_from {name!r}: position {int(at.max())} is beyond the source's "
                             f"{other.shape[axis]} tokens")
        result = np.array(value)
        index = [slice(None)] * value.ndim
        index[axis] = rows
        result[tuple(index)] = np.take(other, at, axis=axis)
        return result

    return Intervention(_label(f"patch {len(taken)} names from another run", None, positions=positions),
                        [where.patch, Patch(taken, from_source, display=True)])


def run_with(model, tokens, intervention: Intervention | None = None, *patterns: str,
             kind: type[Capture] = Capture) -> tuple[Capture, np.ndarray]:
    """One forward pass over `tokens` under `intervention` (None: none), capturing `patterns` (all if none) into
    a `kind`:  -> (capture, logits (T, V)). What the debugger calls to re-run a pass with an intervention."""
    instance("run_with", "intervention", intervention, Intervention, "an Intervention (e.g. sinks_off())",
             none=True, error=PatchError)
    with ExitStack() as stack:
        cache = stack.enter_context(capture(*patterns, kind=kind))
        if intervention is not None:
            stack.enter_context(intervention)
        logits = model.forward(tokens)
    return cache, logits


@dataclass(frozen=True)
class Preset:
    """An intervention a user picks by name; `params` are the integers it asks for."""
    name: str
    description: str
    params: tuple[str, ...]
    make: Callable[..., Intervention]


PRESETS = {preset.name: preset for preset in [
    Preset("sinks off", "every head's sink logit set to -inf (plain softmax over the keys)", (), lambda: sinks_off()),
    Preset("sinks off in layer", "one layer's sinks set to -inf", ("layer",), lambda layer: sinks_off([layer])),
    Preset("window off", "no sliding window: every layer attends to all earlier tokens", (), lambda: window_off()),
    Preset("zero head", "one head's output (its slice of z) set to 0", ("layer", "head"),
           lambda layer, head: zero_head(layer, head)),
    Preset("force expert", "the router always chooses this expert, in every layer", ("expert",),
           lambda expert: force_experts([expert])),
    Preset("forbid expert", "the router never chooses this expert, in every layer", ("expert",),
           lambda expert: forbid_experts([expert])),
    Preset("top-1 routing", "only each token's best expert counts", (), lambda: top1_routing()),
    # other engines' roundings (numerics.py)
    Preset("llama.cpp", "llama.cpp's CPU roundings: Q8_0 expert inputs, bf16 matmul inputs, rounded YaRN ramp, "
           "fp16 KV cache", (), lambda: numerics.llama_cpp()),
    Preset("llama.cpp f32 kv", "llama.cpp's roundings with an f32 KV cache", (),
           lambda: numerics.llama_cpp(kv="f32")),
    Preset("bf16", "the torch reference's bf16 run: every tensor it holds in bf16 rounded to bf16", (),
           lambda: numerics.bf16_activations()),
    Preset("q8_0 expert inputs", "llama.cpp: the experts' inputs quantized to Q8_0 (blocks of 32, int8)", (),
           lambda: numerics.q8_0_expert_inputs()),
    Preset("bf16 matmul inputs", "llama.cpp: attention qkv/out and unembedding inputs rounded to bf16", (),
           lambda: numerics.bf16_matmul_inputs()),
    Preset("rounded yarn ramp", "llama.cpp: YaRN's ramp bounds floored/ceiled (a different RoPE)", (),
           lambda: numerics.rounded_yarn_ramp()),
    Preset("fp16 kv cache", "llama.cpp: keys, values, queries and probabilities in fp16", (),
           lambda: numerics.fp16_kv_cache()),
]}


def preset(name: str, **params: int) -> Intervention:
    """The named preset with its parameters: preset("zero head", layer=1, head=3)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise PatchError(f"no intervention preset {name!r}; the presets are {', '.join(PRESETS)}")
    wanted = PRESETS[name].params
    if set(params) != set(wanted):
        raise PatchError(f"preset {name!r} takes {', '.join(wanted) or 'no parameters'}, "
                         f"got {', '.join(params) or 'none'}")
    return PRESETS[name].make(**{key: whole_number(f"preset {name!r}", key, value, low=0, error=PatchError)
                                 for key, value in params.items()})
