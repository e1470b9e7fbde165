"""Speed and memory of minigptoss on a real-sized checkpoint (the download, or tools/make_synthetic_checkpoint.py).

    python benchmarks/bench_real.py --weights DIR [--prompt-tokens 256] [--decode-tokens 8] [--cold] [--warm-prefill]
                                    [--json FILE]

Prints: the memory the run will need (estimated before it starts), the load time, prefill seconds per token for
a prompt of --prompt-tokens random ids (one forward pass into a fresh KV cache; this is also when the weights
are first touched: a progress bar follows the layers), decode seconds per token after it (the median of
--decode-tokens single-token steps through the cache, each feeding back the previous argmax), peak resident
memory (VmHWM: file-backed expert pages included) and peak private memory (the largest RssAnon seen by a
sampler thread every 20 ms). --warm-prefill runs the prompt once, untimed, into a throwaway cache before the timed
prefill, so that the timed one excludes the first touch of the weights (as llama.cpp's llama-bench warms up before
it times). --cold first evicts the checkpoint's files from the page cache
(posix_fadvise DONTNEED on those files only), so the prefill also measures reading them from disk.
Linux only (reads /proc/self/status).
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import minigptoss
from minigptoss.checkpoint import memory_estimate
from minigptoss.fast.compiled import kernel_name

GIB = 2**30


def status_kib(field: str) -> int:
    """A field of /proc/self/status, in KiB (VmHWM, VmRSS, RssAnon, RssFile)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakPrivate(threading.Thread):
    """Samples RssAnon every `interval` seconds and keeps the largest value (bytes)."""

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, 0, threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, status_kib("RssAnon") * 1024)
            self._done.wait(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        self.peak = max(self.peak, status_kib("RssAnon") * 1024)
        return self.peak


def evict_from_page_cache(paths) -> None:
    """Ask the kernel to drop these files' cached pages (other files are untouched)."""
    for path in paths:
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def first_touch_progress(model, console: Console) -> Progress:
    """A progress bar advanced by the weights' first-use hook: bytes of tensors touched so far."""
    weights = model.weights
    total = sum(stored.nbytes for stored in weights.stored.values())
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("weights first touched", total=total)

    def touched(name: str, nbytes: int) -> None:
        layer = name.split(".")[1] if name.startswith("block.") else name.split(".")[0]
        progress.update(task, advance=nbytes, description=f"weights first touched (at {layer})")

    weights.on_first_use = touched
    return progress


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, metavar="DIR")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--decode-tokens", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")
    parser.add_argument("--warm-prefill", action="store_true", help="run the prompt once, untimed, before the prefill")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    if args.cold:
        from minigptoss.checkpoint import find_checkpoint

        evict_from_page_cache(find_checkpoint(args.weights)[1].glob("*.safetensors"))
    sampler = PeakPrivate()
    sampler.start()

    start = time.perf_counter()
    model = minigptoss.load(args.weights)
    load_s = time.perf_counter() - start
    info, config = model.checkpoint, model.config
    console.print(f"found {info.how} ({info.layout} layout, {len(info.files)} file(s), "
                  f"{info.file_bytes / 1e9:.2f} GB); loaded in {load_s:.3f} s; experts: {kernel_name()}")
    need = memory_estimate(config, model.weights, args.prompt_tokens + args.decode_tokens)
    console.print(f"memory it will need: ~{need.resident / GIB:.1f} GiB resident = {need.experts_mapped / GIB:.1f} "
                  f"experts mapped + {need.other_mapped / GIB:.1f} other mapped + {need.kept / GIB:.1f} float32 "
                  f"kept + {need.working / GIB:.1f} working; ~{need.private / GIB:.1f} GiB private")

    rng = np.random.default_rng(args.seed)
    prompt = rng.integers(0, config.vocab_size, args.prompt_tokens)
    cache = model.new_cache()
    with first_touch_progress(model, console):
        if args.warm_prefill:
            start = time.perf_counter()
            model.forward(prompt, model.new_cache(), only_last=True)
            console.print(f"warm-up prefill (untimed in the figures): {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        logits = model.forward(prompt, cache, only_last=True)  # as generate does: the next token's logits only
        prefill_s = time.perf_counter() - start
    model.weights.on_first_use = None
    console.print(f"prefill: {args.prompt_tokens} tokens in {prefill_s:.1f} s = "
                  f"{prefill_s / args.prompt_tokens:.3f} s/token")

    steps = []
    token = int(np.argmax(logits[-1]))
    for i in range(args.decode_tokens):
        start = time.perf_counter()
        logits = model.forward([token], cache, only_last=True)
        steps.append(time.perf_counter() - start)
        token = int(np.argmax(logits[-1]))
        console.print(f"  decode step {i + 1}: {steps[-1]:.3f} s", highlight=False)

    peak_private = sampler.stop()
    figures = {
        "weights": str(args.weights), "layout": info.layout, "cold": args.cold, "load_s": load_s,
        "prompt_tokens": args.prompt_tokens, "warm_prefill": args.warm_prefill, "prefill_s": prefill_s,
        "prefill_s_per_token": prefill_s / args.prompt_tokens,
        "decode_s_per_token_median": statistics.median(steps) if steps else None,
        "decode_steps_s": steps, "peak_rss_gib": status_kib("VmHWM") / 2**20,
        "peak_private_gib": peak_private / GIB, "estimated_resident_gib": need.resident / GIB,
        "estimated_private_gib": need.private / GIB, "kept_float32_gib": model.weights.kept_bytes / GIB,
        "cpus": os.cpu_count(), "load_average": os.getloadavg(), "experts_kernel": kernel_name(),
    }
    table = Table(title=f"bench_real: {args.weights}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("load", f"{load_s:.3f} s"),
            (f"prefill ({args.prompt_tokens} tokens)", f"{figures['prefill_s_per_token']:.3f} s/token"),
            (f"decode (median of {len(steps)})", f"{figures['decode_s_per_token_median'] or float('nan'):.3f} s/token"),
            ("peak resident (VmHWM)", f"{figures['peak_rss_gib']:.2f} GiB"),
            ("peak private (RssAnon)", f"{figures['peak_private_gib']:.2f} GiB"),
            ("float32 kept", f"{figures['kept_float32_gib']:.2f} GiB"),
            ("load average during run", " ".join(f"{x:.1f}" for x in figures["load_average"]))]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
