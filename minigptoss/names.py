"""Every intermediate the forward pass records, declared once: its dotted name, its shape, what it is.

Names follow TransformerLens's style (`blocks.3.attn.probs`); N stands for a block's index. Shapes use
T (tokens in this pass), Tk (keys: T, or with a KV cache the cached keys plus the T new ones), H (hidden size),
nq / nkv (query / key-value heads), d (head size), E (experts), k (experts per token), I (intermediate size),
V (vocabulary). `step` is the debugger step that shows the tensor (cli/step.py reads it from here).

`model.forward` records exactly these names, in this order, block by block (a test holds it to that); the
debugger's step list, the README and the walkthroughs take the names from here.

Every name can be patched (`minigptoss.patch`): the forward pass goes on with the replacement. Except the
OBSERVED ones, computed for display only (the pass never reads them again): patching one would change nothing,
so `patch` refuses them by exact name and skips them under wildcards (change `blocks.N.attn.probs`, or use
`interventions.sinks_off`, instead).

TRANSFORMER_LENS maps TransformerLens's hook names onto these; `capture`, `patch` and a capture's indexing
accept either spelling (`blocks.0.attn.hook_pattern` is `blocks.0.attn.probs`):

| TransformerLens                      | minigptoss                      | note                                        |
|--------------------------------------|---------------------------------|---------------------------------------------|
| hook_embed                           | embed                           | no positional embedding (RoPE)              |
| blocks.N.hook_resid_pre              | blocks.N.resid_pre              |                                             |
| blocks.N.ln1.hook_normalized         | blocks.N.attn.normed            | RMSNorm, gain applied                       |
| blocks.N.attn.hook_q / hook_k / hook_v | blocks.N.attn.q / k / v       | k, v have nkv heads (grouped-query)         |
| blocks.N.attn.hook_rot_q / hook_rot_k | blocks.N.attn.q_rot / k_rot    |                                             |
| blocks.N.attn.hook_attn_scores       | blocks.N.attn.scores            | (nq, T, Tk), no batch axis                  |
| blocks.N.attn.hook_pattern           | blocks.N.attn.probs             | rows sum to 1 - sink_mass                   |
| blocks.N.attn.hook_z                 | blocks.N.attn.z                 | (T, nq d): heads concatenated; cache.head() |
| blocks.N.hook_attn_out               | blocks.N.attn.out               |                                             |
| blocks.N.hook_resid_mid              | blocks.N.resid_mid              |                                             |
| blocks.N.ln2.hook_normalized         | blocks.N.moe.normed             |                                             |
| blocks.N.mlp.hook_expert_indices     | blocks.N.moe.router.expert_ids  | (TL's hook_expert_weights is over all E)    |
| blocks.N.hook_mlp_out                | blocks.N.moe.out                |                                             |
| blocks.N.hook_resid_post             | blocks.N.resid_post             |                                             |
| ln_final.hook_normalized             | norm                            |                                             |
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Intermediate:
    name: str  # dotted; "N" is a block index
    shape: str
    meaning: str
    step: str  # the debugger step that shows it ("N" as in name)

    @property
    def dims(self) -> tuple[str, ...]:
        """The shape's dimension names: "(nq, T, Tk)" -> ("nq", "T", "Tk"); "(T,)" -> ("T",); "(T, Tk) bool" ->
        ("T", "Tk")."""
        return tuple(dim.strip() for dim in self.shape.split(" bool")[0].strip("()").split(",") if dim.strip())


def _declare(step: str, *rows: tuple[str, str, str]) -> list[Intermediate]:
    return [Intermediate(name, shape, meaning, step) for name, shape, meaning in rows]


INTERMEDIATES: tuple[Intermediate, ...] = tuple([
    *_declare("tokens", ("tokens", "(T,)", "the token ids"),
              ("positions", "(T,)", "their positions: 0..T-1, or continuing a KV cache")),
    *_declare("embed", ("embed", "(T, H)", "rows of embedding.weight: the residual stream's start")),
    *_declare("blocks.N.attn.rope", ("rope.yarn_bounds", "(2,)", "YaRN's ramp bounds (low, high): dims below low "
                                     "keep their frequency, dims above high are divided by s"),
              ("rope.inv_freq", "(d/2,)", "RoPE's angular frequencies after YaRN"),
              ("rope.cos", "(T, d/2)", "cos(position x inv_freq) x YaRN's concentration"),
              ("rope.sin", "(T, d/2)", "sin(position x inv_freq) x YaRN's concentration")),
    *_declare("blocks.N.attn.norm", ("blocks.N.resid_pre", "(T, H)", "the residual stream entering block N")),
    *_declare("blocks.N.attn.norm", ("blocks.N.attn.normed", "(T, H)", "RMSNorm(x) with attn.norm.scale")),
    *_declare("blocks.N.attn.qkv", ("blocks.N.attn.qkv", "(T, (nq+2nkv)d)", "the fused q, k, v projection"),
              ("blocks.N.attn.q", "(T, nq, d)", "queries, before RoPE"),
              ("blocks.N.attn.k", "(T, nkv, d)", "keys, before RoPE"),
              ("blocks.N.attn.v", "(T, nkv, d)", "values")),
    *_declare("blocks.N.attn.rope", ("blocks.N.attn.q_rot", "(T, nq, d)", "queries rotated by RoPE"),
              ("blocks.N.attn.k_rot", "(T, nkv, d)", "keys rotated by RoPE")),
    *_declare("blocks.N.attn", ("blocks.N.attn.mask", "(T, Tk) bool", "True where query i may see key j: causal, "
                                "and within the window on sliding layers"),
              ("blocks.N.attn.scores", "(nq, T, Tk)", "q.k / sqrt(d), -inf where masked"),
              ("blocks.N.attn.probs", "(nq, T, Tk)", "softmax over the keys and the sink; rows sum to 1 - sink"),
              ("blocks.N.attn.sink_mass", "(nq, T)", "the probability each query gave to its head's sink"),
              ("blocks.N.attn.z", "(T, nq d)", "the heads' weighted sums of values, concatenated")),
    *_declare("blocks.N.attn.out", ("blocks.N.attn.out", "(T, H)", "z projected back: attention's output"),
              ("blocks.N.resid_mid", "(T, H)", "x + attention's output")),
    *_declare("blocks.N.moe.norm", ("blocks.N.moe.normed", "(T, H)", "RMSNorm(x) with mlp.norm.scale")),
    *_declare("blocks.N.moe.router", ("blocks.N.moe.router.logits", "(T, E)", "the router's score per expert"),
              ("blocks.N.moe.router.expert_ids", "(T, k)", "the k experts chosen per token, best first"),
              ("blocks.N.moe.router.weights", "(T, k)", "softmax over the chosen k scores")),
    *_declare("blocks.N.moe.mlp1", ("blocks.N.moe.expert_in", "(T, H)", "moe.normed as the chosen experts read "
                                    "it (the router reads moe.normed; they differ only under a patch)"),
              ("blocks.N.moe.mlp1", "(T, k, 2I)", "each chosen expert's first projection "
                                    "(gate and linear interleaved)")),
    *_declare("blocks.N.moe.swiglu", ("blocks.N.moe.swiglu", "(T, k, I)", "clamped SwiGLU of mlp1")),
    *_declare("blocks.N.moe.mlp2", ("blocks.N.moe.expert_out", "(T, k, H)", "each chosen expert's output")),
    *_declare("blocks.N.moe", ("blocks.N.moe.out", "(T, H)", "the router-weighted sum of the experts' outputs"),
              ("blocks.N.resid_post", "(T, H)", "x + the MoE's output: the residual stream leaving block N")),
    *_declare("norm", ("norm", "(T, H)", "the final RMSNorm")),
    *_declare("logits", ("logits", "(T, V)", "the unembedding: next-token scores")),
])

BY_NAME = {entry.name: entry for entry in INTERMEDIATES}

# Computed for display only: the forward pass records them but never reads them again.
OBSERVED = frozenset({"rope.inv_freq", "blocks.N.attn.sink_mass"})

TRANSFORMER_LENS = {
    "hook_embed": "embed", "blocks.N.hook_resid_pre": "blocks.N.resid_pre",
    "blocks.N.ln1.hook_normalized": "blocks.N.attn.normed",
    "blocks.N.attn.hook_q": "blocks.N.attn.q", "blocks.N.attn.hook_k": "blocks.N.attn.k",
    "blocks.N.attn.hook_v": "blocks.N.attn.v", "blocks.N.attn.hook_rot_q": "blocks.N.attn.q_rot",
    "blocks.N.attn.hook_rot_k": "blocks.N.attn.k_rot", "blocks.N.attn.hook_attn_scores": "blocks.N.attn.scores",
    "blocks.N.attn.hook_pattern": "blocks.N.attn.probs", "blocks.N.attn.hook_z": "blocks.N.attn.z",
    "blocks.N.hook_attn_out": "blocks.N.attn.out", "blocks.N.hook_resid_mid": "blocks.N.resid_mid",
    "blocks.N.ln2.hook_normalized": "blocks.N.moe.normed",
    "blocks.N.mlp.hook_expert_indices": "blocks.N.moe.router.expert_ids",
    "blocks.N.hook_mlp_out": "blocks.N.moe.out", "blocks.N.hook_resid_post": "blocks.N.resid_post",
    "ln_final.hook_normalized": "norm",
}


# TransformerLens's short names, as its ActivationCache takes them (`cache["pattern", 0]`, utils.get_act_name)
TL_SHORT = {"embed": "hook_embed", "resid_pre": "blocks.N.hook_resid_pre", "resid_mid": "blocks.N.hook_resid_mid",
            "resid_post": "blocks.N.hook_resid_post", "attn_out": "blocks.N.hook_attn_out",
            "mlp_out": "blocks.N.hook_mlp_out", "q": "blocks.N.attn.hook_q", "k": "blocks.N.attn.hook_k",
            "v": "blocks.N.attn.hook_v", "rot_q": "blocks.N.attn.hook_rot_q", "rot_k": "blocks.N.attn.hook_rot_k",
            "pattern": "blocks.N.attn.hook_pattern", "attn_scores": "blocks.N.attn.hook_attn_scores",
            "scores": "blocks.N.attn.hook_attn_scores", "z": "blocks.N.attn.hook_z"}


def canonical(key) -> str:
    """A key as a recorded name: TransformerLens's `("pattern", 3)` and hook names (`blocks.3.attn.hook_pattern`,
    also without `hook_`: `blocks.3.attn.pattern`) in minigptoss's spelling (`blocks.3.attn.probs`); our own
    names unchanged. KeyError for a tuple it cannot read."""
    if isinstance(key, tuple):
        short, layer = (key + (None,))[:2] if len(key) <= 2 else key[:2]
        if short not in TL_SHORT or (layer is None) != ("N" not in TL_SHORT[short]):
            raise KeyError(f"{key!r}: TransformerLens short names are ({', '.join(TL_SHORT)}) with a layer, "
                           f"e.g. ('pattern', 0)")
        return from_transformer_lens(TL_SHORT[short].replace("N", str(layer), 1))
    name = from_transformer_lens(key)
    if not is_declared(name) and "hook_" not in name:
        head, _, last = name.rpartition(".")
        spelled = f"{head}.hook_{last}" if head else f"hook_{last}"
        if _template(spelled)[0] in TRANSFORMER_LENS:
            return from_transformer_lens(spelled)
    return name


def _template(name: str) -> tuple[str, str | None]:
    """("blocks.N.attn.probs", "3") from "blocks.3.attn.probs" (the layer part may be a wildcard); (name, None)
    for a name outside the blocks."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "blocks":
        return ".".join(["blocks", "N", *parts[2:]]), parts[1]
    return name, None


def from_transformer_lens(name: str) -> str:
    """A TransformerLens hook name (or pattern, e.g. "blocks.*.hook_resid_post") in minigptoss's spelling;
    any other name unchanged."""
    if "hook_" not in name:
        return name
    template, layer = _template(name)
    ours = TRANSFORMER_LENS.get(template)
    if ours is None:
        raise KeyError(f"{name!r}: TransformerLens name with no minigptoss equivalent (see names.py's table)")
    return ours if layer is None else ours.replace("N", layer, 1)


def is_declared(name: str) -> bool:
    """Whether `name` is a concrete recorded name (blocks.3.attn.probs yes, blocks.N.attn.probs or foo no)."""
    template, layer = _template(name)
    return template in BY_NAME and (layer is None or layer.isdigit())


def recorded_names(num_layers: int) -> list[str]:
    """Every name a forward pass records, in the order it records them:  (7 + 25 L + 2) names."""
    per_block = [e.name for e in INTERMEDIATES if e.name.startswith("blocks.N.")]
    head = [e.name for e in INTERMEDIATES if not e.name.startswith("blocks.N.") and e.name not in ("norm", "logits")]
    blocks = [name.replace("N", str(n), 1) for n in range(num_layers) for name in per_block]
    return head + blocks + ["norm", "logits"]


def declared(name: str) -> Intermediate:
    """The declaration of a concrete recorded name (`blocks.3.attn.probs` -> blocks.N.attn.probs's)."""
    if not is_declared(name):
        raise KeyError(f"{name!r} is not a recorded intermediate (see minigptoss/names.py)")
    return BY_NAME[_template(name)[0]]
