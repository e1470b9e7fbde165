"""Train a tiny gpt-oss (minigptoss.TINY) on a synthetic task, round it to bf16 + MXFP4, save it, check it.

    tools/train/.venv/bin/python tools/train/train.py sort     # -> tiny_weights/sort
    tools/train/.venv/bin/python tools/train/train.py chat     # -> tiny_weights/chat (+ defaults.json)

Phases: (1) float32 training with AdamW (warm-up, cosine decay); (2) training through the storage rounding
(bf16 everywhere, MXFP4 experts) with a straight-through estimator, at a low learning rate; (3) export with
minigptoss.save; (4) parity: the saved checkpoint, loaded by minigptoss, against this torch forward on the same
rounded weights (max |delta logit|); (5) accuracy on the held-out set, computed by minigptoss (not torch).
Fixed seeds throughout; prints the wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import minigptoss  # noqa: E402
from minigptoss.mxfp4 import decode_mxfp4, encode_mxfp4  # noqa: E402

import tasks  # noqa: E402
import torch_model as tm  # noqa: E402

RUNS = HERE / "runs"
SETTINGS = {  # per task: steps of float training, steps through the rounding, batch, peak learning rate
    "sort": dict(steps=1600, quant_steps=150, batch=128, val=512, early_stop=False, lr=3e-3, out=REPO / "tiny_weights" / "sort"),
    "chat": dict(steps=2400, quant_steps=150, batch=32, val=256, lr=2e-3, out=REPO / "tiny_weights" / "chat"),
}
# A second stage that continues automatically from the first stage's checkpoint as saved (bf16 + MXFP4, experts
# decoded), with its own data seed and a mix heavy in repeated digits (tasks.CHAT_STAGE2_MIX), a fresh optimizer,
# a short warm-up and a low peak learning rate; no early stop.
STAGE2 = {
    "chat": dict(steps=300, quant_steps=100, lr=4e-4, warmup=30, mix=tasks.CHAT_STAGE2_MIX, seed_offset=2),
}


def batches(task: str, seed: int, n: int, mix=None):
    rng, held = random.Random(seed), (tasks.all_held_out() if task == "sort" else tasks.chat_all_held_out())
    if task == "sort":
        while True:
            yield tasks.sort_training_batch(rng, n, held)
    while True:
        yield tasks.chat_training_batch(rng, n, held, mix or tasks.CHAT_MIX)


def tensors(pairs, pad: int = 0):
    """(prompt, completion) pairs -> inputs (B, T), targets (B, T), loss mask (B, T): loss on completions only."""
    T = max(len(p) + len(c) - 1 for p, c in pairs)
    inputs = torch.full((len(pairs), T), pad, dtype=torch.long)
    targets = torch.zeros((len(pairs), T), dtype=torch.long)
    mask = torch.zeros((len(pairs), T), dtype=torch.bool)
    for i, (p, c) in enumerate(pairs):
        seq = [*p, *c]
        inputs[i, : len(seq) - 1] = torch.tensor(seq[:-1])
        targets[i, : len(seq) - 1] = torch.tensor(seq[1:])
        mask[i, len(p) - 1: len(seq) - 1] = True
    return inputs, targets, mask


def exact_share(cfg, params, pairs, quantize: bool) -> float:
    """Teacher-forced exactness in torch (= greedy exactness): for progress reports only."""
    with torch.no_grad():
        inputs, targets, mask = tensors(pairs)
        predicted = tm.forward(cfg, params, inputs, quantize=quantize).argmax(-1)
        wrong = ((predicted != targets) & mask).any(-1)
    return 1.0 - wrong.float().mean().item()


def train(task: str, cfg, seed: int, steps: int, quant_steps: int, batch: int, val: int, lr: float,
          log_every: int = 100, float_copy: dict | None = None, init: dict | None = None, early_stop: bool = True,
          warmup: int = 100, mix=None, data_seed: int | None = None):
    """Float phase of `steps` (left early, deterministically, once the validation batch is answered exactly at
    two consecutive reports), then `quant_steps` through the rounding. float_copy, if a dict, receives the
    float32 weights as they were at the end of the float phase (for the float-vs-MXFP4 ablation). init, if given,
    holds the weights to start from (else a random init from seed); mix, the chat training mix; data_seed, the
    seed of the data stream (default: seed)."""
    torch.manual_seed(seed)
    params = tm.init_parameters(cfg, torch.Generator().manual_seed(seed))
    if init is not None:
        assert set(init) == set(params), sorted(set(init) ^ set(params))
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.from_numpy(np.asarray(init[name], dtype=np.float32)).reshape(p.shape))
    seed = seed if data_seed is None else data_seed
    decay = [p for name, p in params.items() if p.dim() >= 2 and name != "embedding.weight"]
    no_decay = [p for name, p in params.items() if not (p.dim() >= 2 and name != "embedding.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    val = next(batches(task, seed + 1, val, mix))  # drawn like training data (never held-out questions)
    data = batches(task, seed, batch, mix)
    start, total, perfect, step = time.time(), steps + quant_steps, 0, 0
    while step < total:
        quantize = step >= steps
        if step < warmup:
            rate = lr * (step + 1) / warmup
        elif not quantize:
            rate = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup))))
        else:
            rate = lr * 0.05
        for group in opt.param_groups:
            group["lr"] = rate
        inputs, targets, mask = tensors(next(data))
        aux = []
        logits = tm.forward(cfg, params, inputs, quantize=quantize, aux=aux)
        loss = F.cross_entropy(logits[mask], targets[mask])
        total_loss = loss + 0.01 * sum(aux) / len(aux)
        opt.zero_grad(set_to_none=True)
        total_loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        step += 1
        if step % log_every == 0 or step == total:
            share = exact_share(cfg, params, val, quantize=quantize)
            print(f"step {step:5d}/{total} {'mxfp4' if quantize else 'float'} loss {loss.item():.4f} "
                  f"val exact {share:.3f}  {time.time() - start:.0f}s", flush=True)
            perfect = perfect + 1 if share == 1.0 else 0
            if early_stop and perfect == 2 and step < steps:
                print(f"float phase done early at step {step}", flush=True)
                total, steps = step + quant_steps, step
        if step == steps and float_copy is not None:
            float_copy.update({name: p.detach().numpy().copy() for name, p in params.items()})
    return params


def stored_weights(folder: Path) -> dict[str, np.ndarray]:
    """A saved model's weights as float32 arrays under the training names (MXFP4 experts decoded)."""
    weights = minigptoss.load(folder).weights
    out = {}
    for name in weights:
        if name.endswith(".blocks"):
            base = name.removesuffix(".blocks")
            out[base] = decode_mxfp4(np.asarray(weights[name]), np.asarray(weights[f"{base}.scales"]))
        elif not name.endswith(".scales"):
            out[name] = np.asarray(weights[name], dtype=np.float32)
    return out


def export(cfg, params, folder: Path) -> dict[str, np.ndarray]:
    """The weights dict minigptoss.random_model would have (bf16-exact float32; MXFP4 blocks/scales), saved."""
    weights = {}
    for name, p in params.items():
        value = p.detach().float()
        if name.endswith(("mlp1_weight", "mlp2_weight")):
            blocks, scales = encode_mxfp4(value.numpy())
            assert np.array_equal(decode_mxfp4(blocks, scales), tm.round_mxfp4(value).numpy()), name
            weights[f"{name}.blocks"], weights[f"{name}.scales"] = blocks, scales
        else:
            weights[name] = tm.round_bf16(value).numpy()
    minigptoss.save(minigptoss.Model(cfg, weights), folder)
    return weights


def parity(cfg, params, folder: Path, sequences: list[list[int]]) -> float:
    """max |delta logit| between minigptoss (the saved checkpoint) and torch (same rounded weights)."""
    model = minigptoss.load(folder)
    rounded = {name: value.detach() for name, value in tm.stored_view(params, quantize=True).items()}
    worst = 0.0
    with torch.no_grad():
        for seq in sequences:
            ours = model.forward(seq)
            theirs = tm.forward(cfg, rounded, torch.tensor([seq]))[0].numpy()
            worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=sorted(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="float training steps")
    parser.add_argument("--quant-steps", type=int, help="steps through the bf16/MXFP4 rounding")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--init", type=Path, help="start from this saved model instead of a random init")
    parser.add_argument("--stage", type=int, choices=(1, 2),
                        help="chat: run only this stage (2 continues from --init, a stage-1 checkpoint)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    args = parser.parse_args(argv)
    settings, stage2 = SETTINGS[args.task], STAGE2.get(args.task)
    steps = args.steps if args.steps is not None else settings["steps"]
    quant_steps = args.quant_steps if args.quant_steps is not None else settings["quant_steps"]
    out = args.out or settings["out"]
    if args.stage == 2 and not (stage2 and args.init):
        parser.error("--stage 2 needs a task with a second stage (chat) and --init (its stage-1 checkpoint)")
    torch.set_num_threads(args.threads)
    cfg = minigptoss.TINY
    began = time.time()
    float_weights = {}
    RUNS.mkdir(exist_ok=True)  # not committed (see .gitignore): tools/train/measure.py reads it if present
    if args.stage != 2:
        init = stored_weights(args.init) if args.init else None
        params = train(args.task, cfg, args.seed, steps, quant_steps, settings["batch"], settings["val"],
                       settings["lr"], log_every=50, float_copy=float_weights, init=init,
                       early_stop=settings.get("early_stop", True))
        print(f"stage 1: {time.time() - began:.0f}s", flush=True)
    if stage2 and args.stage != 1:
        start = args.init if args.stage == 2 else RUNS / f"{args.task}-stage1"
        if args.stage != 2:
            export(cfg, params, start)  # stage 2 starts from stage 1's checkpoint as saved (bf16 + MXFP4)
        began2 = time.time()
        print(f"stage 2 from {start}: {stage2['steps']} float + {stage2['quant_steps']} MXFP4 steps", flush=True)
        params = train(args.task, cfg, args.seed, stage2["steps"], stage2["quant_steps"], settings["batch"],
                       settings["val"], stage2["lr"], log_every=50, float_copy=float_weights,
                       init=stored_weights(start), early_stop=False, warmup=stage2["warmup"], mix=stage2["mix"],
                       data_seed=args.seed + stage2["seed_offset"])
        print(f"stage 2: {time.time() - began2:.0f}s", flush=True)
    trained = time.time()
    np.savez(RUNS / f"{args.task}-float.npz", **float_weights)
    export(cfg, params, out)
    defaults = tasks.CHAT_DEFAULTS if args.task == "chat" else tasks.SORT_DEFAULTS
    (out / "defaults.json").write_text(json.dumps(defaults, indent=2) + "\n")
    sizes = sum(f.stat().st_size for f in out.iterdir())
    if args.task == "sort":
        qs = [q for questions in tasks.held_out_sets().values() for q in questions[:10]]
        seqs = [tasks.sort_prompt_ids(q) + tasks.sort_answer_ids(q)[:-1] for q in qs]
    else:
        qs = [q for questions in tasks.chat_held_out_sets().values() for q in questions[::15]]
        seqs = [tasks.chat_prompt_ids(q) + tasks.chat_completion_ids(q)[:-1] for q in qs]
    delta = parity(cfg, params, out, seqs)
    model = minigptoss.load(out)
    print(f"saved {out} ({sizes / 1024:.0f} kB); parity minigptoss vs torch on {len(seqs)} sequences: "
          f"max |delta logit| = {delta:.2e}")
    if args.task == "sort":
        fast = tasks.decoded(model)
        for kind, qs in tasks.held_out_sets().items():
            right = [q for q in qs if tasks.sort_right(fast, q)]
            wrong = [q for q in qs if q not in set(right)]
            print(f"held-out {kind} (minigptoss, greedy): {len(right)} of {len(qs)}  wrong: {wrong[:5]}", flush=True)
    else:
        fast = tasks.decoded(model)
        for kind, qs in tasks.chat_held_out_sets().items():
            valid, right = tasks.chat_scores(fast, qs)
            print(f"held-out chat {kind} (minigptoss, greedy): valid harmony {round(valid * len(qs))} of {len(qs)}, "
                  f"right final answer {round(right * len(qs))} of {len(qs)}", flush=True)
    print(f"wall time: training {trained - began:.0f}s, total {time.time() - began:.0f}s")


if __name__ == "__main__":
    main()
