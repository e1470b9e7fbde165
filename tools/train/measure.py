"""What the trained sort model does, measured by minigptoss with `capture` (pure NumPy; no torch).

    python tools/train/measure.py [FOLDER]      (any Python with minigptoss; FOLDER defaults to tiny_weights/sort)

On 200 held-out prompts (the first 100 sort and 100 repeat ones), each run teacher-forced (prompt + its answer: the same
tokens greedy decoding produces when the answer is right), for the trained model and, as the baseline, the
random model of tiny_weights/:
  1. copy heads: per layer and head, the attention mass a query puts on the input position(s) holding the symbol
     it is about to write (sort: every input position with that digit; repeat: the letter's own position), vs
     chance (a head spreading its mass evenly over the keys it may see) and vs the random model's best head;
  2. sinks: per sliding-layer head, the mass given to the sink at answer positions (where the symbol to copy is
     9 positions back, one beyond the window of 8) vs at input positions;
  3. router: mutual information (bits) between a token's type (input, '=', answer) and its first-choice expert;
  4. ablations: held-out accuracy with sinks removed, window removed, YaRN off, top-1 routing, softmax over all
     experts before top-k, and, if tools/train/runs/sort-float.npz exists (written by train.py), the float
     weights before rounding, and those same weights rounded to bf16 + MXFP4 without training through it.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import minigptoss  # noqa: E402
import minigptoss.model as model_module  # noqa: E402
from minigptoss.mxfp4 import encode_mxfp4  # noqa: E402

import tasks  # noqa: E402

SORT = REPO / "tiny_weights" / "sort"
RANDOM = REPO / "tiny_weights"
L = tasks.LENGTH  # answer symbol i is predicted at position L + i (the '=' is at position L)


def runs(model, questions):
    """Per question: the captured attention probs, sink mass and router choices over prompt + answer."""
    out = []
    for q in questions:
        ids = tasks.sort_prompt_ids(q) + tasks.sort_answer_ids(q)[:-1]
        with minigptoss.capture("blocks.*.attn.probs", "blocks.*.attn.sink_mass",
                                "blocks.*.moe.router.expert_ids") as cache:
            model.forward(ids)
        out.append({name: np.array(cache[name]) for name in cache.keys()})
    return out


def source_mass(model, questions, records):
    """(layers, heads) mean mass on the right source, and the chance level, over answer-predicting queries."""
    c = model.config
    mass = np.zeros((c.num_hidden_layers, c.num_attention_heads))
    chance, count = 0.0, 0
    for q, rec in zip(questions, records):
        answer = tasks.sort_answer(q)
        for i in range(L):
            query = L + i  # predicts answer[i]
            if q.isdigit():
                sources = [j for j in range(L) if q[j] == answer[i]]
            else:
                sources = [i]
            for n in range(c.num_hidden_layers):
                mass[n] += rec[f"blocks.{n}.attn.probs"][:, query, sources].sum(-1)
            chance += len(sources) / (query + 1)
            count += 1
    return mass / count, chance / count


def sink_at(model, questions, records, positions):
    c = model.config
    total = np.zeros((c.num_hidden_layers, c.num_attention_heads))
    for rec in records:
        for n in range(c.num_hidden_layers):
            total[n] += rec[f"blocks.{n}.attn.sink_mass"][:, positions].mean(-1)
    return total / len(records)


def mutual_information(x, y) -> float:
    """I(X; Y) in bits from paired samples."""
    xs, x_idx = np.unique(x, return_inverse=True)
    ys, y_idx = np.unique(y, return_inverse=True)
    joint = np.zeros((len(xs), len(ys)))
    np.add.at(joint, (x_idx, y_idx), 1)
    joint /= joint.sum()
    px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (px @ py)[nz])).sum())


def router_mi(model, records):
    """Per layer: I(token type; first-choice expert), types: input symbol, '=', answer symbol."""
    types = np.array([0] * L + [1] + [2] * L)  # positions 0..2L of prompt + answer[:-1]
    result = []
    for n in range(model.config.num_hidden_layers):
        experts = np.concatenate([rec[f"blocks.{n}.moe.router.expert_ids"][:, 0] for rec in records])
        result.append(mutual_information(np.tile(types, len(records)), experts))
    return result


def expert_load(model, records, n):
    ids = np.concatenate([rec[f"blocks.{n}.moe.router.expert_ids"].reshape(-1) for rec in records])
    return np.bincount(ids, minlength=model.config.num_experts) / len(ids)


# ---------------------------------------------------------------- ablations

def weights_dict(model) -> dict:
    """A plain dict of the model's tensors, experts already decoded (tasks.decoded: bit-identical logits)."""
    return dict(tasks.decoded(model).weights)


@contextmanager
def softmax_over_all_experts():
    """The classic bug: softmax over all E router logits, then keep the top-k weights (not renormalised)."""
    original = model_module.route

    def route(logits, k):
        ids = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        return ids, np.take_along_axis(exp / exp.sum(-1, keepdims=True), ids, axis=-1)

    model_module.route = route
    try:
        yield
    finally:
        model_module.route = original


def round_bf16(x: np.ndarray) -> np.ndarray:
    """Nearest bfloat16 (ties to even) as float32, as minigptoss.save rounds."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32)).view(np.float32)


def float_models(config):
    """(float weights as trained before rounding, the same rounded to bf16 + MXFP4), or None without the file."""
    path = HERE / "runs" / "sort-float.npz"
    if not path.exists():
        return None
    raw = dict(np.load(path))
    floats = {name: value.astype(np.float32) for name, value in raw.items()}  # dense experts: DenseExperts path
    rounded = {}
    for name, value in raw.items():
        if name.endswith(("mlp1_weight", "mlp2_weight")):
            rounded[f"{name}.blocks"], rounded[f"{name}.scales"] = encode_mxfp4(value)
        else:
            rounded[name] = round_bf16(value)
    return minigptoss.Model(config, floats), minigptoss.Model(config, rounded)


def accuracy_row(model, questions):
    half = len(questions) // 2
    sort, repeat = tasks.sort_accuracy(model, questions[:half]), tasks.sort_accuracy(model, questions[half:])
    return sort, repeat, (sort + repeat) / 2


def ablations(model, questions):
    c, w = model.config, weights_dict(model)
    rows = [("shipped model (bf16 + MXFP4, as saved)", minigptoss.Model(c, w))]
    no_sinks = dict(w)
    for n in range(c.num_hidden_layers):
        no_sinks[f"block.{n}.attn.sinks"] = np.full_like(w[f"block.{n}.attn.sinks"], -1e30)
    rows.append(("sinks removed (S_h = -1e30)", minigptoss.Model(c, no_sinks)))
    rows.append(("window removed (sliding_window = 10^6)",
                 minigptoss.Model(dataclasses.replace(c, sliding_window=10**6), w)))
    rows.append(("YaRN off (rope_scaling_factor = 1)",
                 minigptoss.Model(dataclasses.replace(c, rope_scaling_factor=1.0), w)))
    rows.append(("top-1 routing (experts_per_token = 1)",
                 minigptoss.Model(dataclasses.replace(c, experts_per_token=1), w)))
    rows.append(("softmax over all 8 experts before top-2", "softmax"))
    floats = float_models(c)
    if floats is not None:
        rows.append(("float weights before rounding (dense float32 experts)", floats[0]))
        rows.append(("those float weights rounded to bf16 + MXFP4, no training through it", floats[1]))
    table = []
    for label, m in rows:
        if m == "softmax":
            with softmax_over_all_experts():
                table.append((label, *accuracy_row(minigptoss.Model(c, w), questions)))
        else:
            table.append((label, *accuracy_row(m, questions)))
    return table


# ---------------------------------------------------------------- the induction circuit


def induction_records(model, questions):
    """Per induction question ('qwertyuiopas|qw'): the captured attention probs over prompt + answer."""
    out = []
    for q in questions:
        ids = tasks.sort_prompt_ids(q) + tasks.sort_answer_ids(q)[:-1]
        with minigptoss.capture("blocks.*.attn.probs") as cache:
            model.forward(ids)
        out.append({name: np.array(cache[name]) for name in cache.keys()})
    return out


def visible_keys(config, layer: int, query: int) -> int:
    window = config.window(layer)
    return min(query + 1, window) if window else query + 1


def previous_token_mass(model, questions, records, first: int = 7):
    """(layers, heads) mean attention from position i to i - 1, over every position i >= `first` of prompt +
    answer, and the chance level per layer (1 / the keys a head may see there, averaged)."""
    c = model.config
    mass, chance, count = np.zeros((c.num_hidden_layers, c.num_attention_heads)), np.zeros(c.num_hidden_layers), 0
    for q, rec in zip(questions, records):
        T = rec["blocks.0.attn.probs"].shape[1]
        for i in range(first, T):
            for n in range(c.num_hidden_layers):
                mass[n] += rec[f"blocks.{n}.attn.probs"][:, i, i - 1]
                chance[n] += 1 / visible_keys(c, n, i)
            count += 1
    return mass / count, chance / count


def induction_mass(model, questions, records):
    """(layers, heads) mean attention, at each position that predicts an answer token (the last cue letter and
    every answer letter but the last), on the position just after the earlier occurrence of the current letter
    (the letter to write next, or '|' before <|return|>), and the chance level per layer."""
    c = model.config
    mass, chance, count = np.zeros((c.num_hidden_layers, c.num_attention_heads)), np.zeros(c.num_hidden_layers), 0
    for q, rec in zip(questions, records):
        sequence, cue = q.split(tasks.INDUCTION_SEPARATOR)
        L, k = len(sequence), len(cue)
        for p in range(L + k, 2 * L + 1):  # query position p holds sequence[p - L - 1]; predicts sequence[p - L]
            source = p - L  # the position after that letter's first occurrence
            for n in range(c.num_hidden_layers):
                mass[n] += rec[f"blocks.{n}.attn.probs"][:, p, source]
                chance[n] += 1 / visible_keys(c, n, p)
            count += 1
    return mass / count, chance / count


def best_head(mass):
    n, h = np.unravel_index(mass.argmax(), mass.shape)
    return int(n), int(h)


def kind_accuracies(model, sets, intervention=None):
    """Kind -> (right, of n), greedy, by minigptoss, under the intervention if given."""
    result = {}
    for kind, qs in sets.items():
        if intervention is None:
            right = sum(tasks.sort_right(model, q) for q in qs)
        else:
            with intervention:
                right = sum(tasks.sort_right(model, q) for q in qs)
        result[kind] = (right, len(qs))
    return result


def induction_report(trained, random_model, per_kind: int = 100) -> None:
    from minigptoss.interventions import zero_head

    c = trained.config
    sets = tasks.held_out_sets()
    questions = sets["induction"][:per_kind]
    rec_t, rec_r = induction_records(trained, questions), induction_records(random_model, questions)
    prev_t, prev_chance = previous_token_mass(trained, questions, rec_t)
    prev_r, _ = previous_token_mass(random_model, questions, rec_r)
    ind_t, ind_chance = induction_mass(trained, questions, rec_t)
    ind_r, _ = induction_mass(random_model, questions, rec_r)
    kinds = lambda n: "sliding" if c.is_sliding(n) else "full"  # noqa: E731
    print(f"[induction] {len(questions)} held-out questions, teacher-forced")
    for label, mass, chance, rand in (("previous-token", prev_t, prev_chance, prev_r),
                                      ("induction", ind_t, ind_chance, ind_r)):
        n, h = best_head(mass)
        print(f"[induction] {label} head: layer {n} ({kinds(n)}) head {h} puts {mass[n, h]:.2f} of its attention on "
              f"its target; chance {chance[n]:.2f}; random model: same head {rand[n, h]:.2f}, best head "
              f"{rand.max():.2f}")
        print(f"[induction]   per layer, best head: " + ", ".join(
            f"L{m} ({kinds(m)}) {mass[m].max():.2f} (h{mass[m].argmax()}, chance {chance[m]:.2f})"
            for m in range(c.num_hidden_layers)))
    rows = [("shipped model", None)]
    for label, mass in (("previous-token", prev_t), ("induction", ind_t)):
        n, h = best_head(mass)
        heads = [int(x) for x in np.flatnonzero(mass[n] >= 0.5)]  # every head of that layer doing the same job
        others = [int(x) for x in np.argsort(mass[n], kind="stable")[:len(heads)]]  # as many heads doing least
        rows += [(f"best {label} head zeroed (layer {n} head {h})", [(n, h)]),
                 (f"every {label} head of layer {n} zeroed (heads {', '.join(map(str, heads))}: mass >= 0.5)",
                  [(n, x) for x in heads]),
                 (f"control: as many other heads of layer {n} zeroed (heads {', '.join(map(str, others))})",
                  [(n, x) for x in others])]
    subset = {kind: qs[:per_kind] for kind, qs in sets.items()}
    print("\nhead ablations (held-out questions answered exactly, greedy, by minigptoss; k of n):")
    print("| variant | " + " | ".join(subset) + " |")
    print("|---|" + "---:|" * len(subset))
    for label, heads in rows:
        intervention = None if heads is None else functools.reduce(operator.add, [zero_head(*x) for x in heads])
        accuracy = kind_accuracies(trained, subset, intervention)
        print(f"| {label} | " + " | ".join(f"{k} of {n}" for k, n in accuracy.values()) + " |", flush=True)


def main() -> None:
    every = tasks.held_out_questions()  # 200 sort, then 200 repeat; the first 100 of each are measured
    questions = every[:100] + every[200:300]
    half = len(questions) // 2
    trained = minigptoss.load(sys.argv[1] if len(sys.argv) > 1 else SORT)
    random_model = tasks.decoded(minigptoss.load(RANDOM))
    c = trained.config
    print(f"{len(questions)} held-out prompts ({half} sort, {half} repeat), teacher-forced, captured by minigptoss\n",
          flush=True)
    for task, qs in (("sort", questions[:half]), ("repeat", questions[half:])):
        rec_t, rec_r = runs(tasks.decoded(trained), qs), runs(random_model, qs)
        mass_t, chance = source_mass(trained, qs, rec_t)
        mass_r, _ = source_mass(random_model, qs, rec_r)
        n, h = np.unravel_index(mass_t.argmax(), mass_t.shape)
        kind = "sliding" if c.is_sliding(n) else "full"
        print(f"[{task}] copy head: layer {n} ({kind}) head {h} puts {mass_t[n, h]:.2f} of its attention on the "
              f"source of the symbol it writes next; chance {chance:.2f}; random model: same head "
              f"{mass_r[n, h]:.2f}, best head {mass_r.max():.2f}")
        print(f"[{task}]   per layer, best head: " + ", ".join(
            f"L{m} {mass_t[m].max():.2f} (h{mass_t[m].argmax()})" for m in range(c.num_hidden_layers)))
        answer_pos, input_pos = list(range(L, 2 * L + 1)), list(range(1, L))
        sink_t_ans, sink_t_in = sink_at(trained, qs, rec_t, answer_pos), sink_at(trained, qs, rec_t, input_pos)
        sink_r_ans, sink_r_in = sink_at(random_model, qs, rec_r, answer_pos), sink_at(random_model, qs, rec_r, input_pos)
        for m in range(c.num_hidden_layers):
            if not c.is_sliding(m):
                continue
            print(f"[{task}] sink mass of sliding layer {m}, per head, at input positions 1-7 -> at '=' and answer "
                  f"positions 8-16: trained " + ", ".join(
                      f"h{hh} {sink_t_in[m, hh]:.2f}->{sink_t_ans[m, hh]:.2f}" for hh in range(c.num_attention_heads))
                  + "; random " + ", ".join(
                      f"h{hh} {sink_r_in[m, hh]:.2f}->{sink_r_ans[m, hh]:.2f}" for hh in range(c.num_attention_heads)))
        mi_t, mi_r = router_mi(trained, rec_t), router_mi(random_model, rec_r)
        print(f"[{task}] router I(type; first expert) bits per layer: trained "
              + ", ".join(f"{v:.2f}" for v in mi_t) + "; random " + ", ".join(f"{v:.2f}" for v in mi_r))
        print(f"[{task}] expert load (share of slots) per layer, trained: " + "; ".join(
            " ".join(f"{v:.2f}" for v in expert_load(trained, rec_t, m)) for m in range(c.num_hidden_layers)))
        print()
    induction_report(tasks.decoded(trained), random_model)
    print()
    print("ablation (held-out accuracy, greedy, by minigptoss):")
    print(f"| {'variant':<70} | sort | repeat | all |")
    print(f"|{'-' * 72}|-----:|-------:|----:|")
    for label, sort, repeat, both in ablations(trained, questions):
        print(f"| {label:<70} | {sort:.3f} | {repeat:.3f} | {both:.3f} |")


if __name__ == "__main__":
    main()
