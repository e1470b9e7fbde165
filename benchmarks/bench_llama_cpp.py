"""minigptoss side by side with llama.cpp on the same checkpoint, in alternating rounds: decode, prefill, peak memory.

    python benchmarks/bench_llama_cpp.py --weights DIR --gguf FILE --llama-bench BIN [--rounds 3]
        [--prompt-tokens 64] [--decode-tokens 16] [--variant LABEL[:VAR=VALUE,...]]... [--json FILE]

Each round runs llama.cpp, then each minigptoss variant, one after the other (never two at once), so that a
change in the machine's load hits both sides; every ratio is minigptoss / llama.cpp within one round, and the
summary gives the median over rounds of each figure and of each ratio.

llama.cpp: `llama-bench -m GGUF -t 2 -p P -n 0 -r 1 -o json` (prefill: the P-token prompt processed as one
  batch, seconds per token = avg_ns / P) and `llama-bench -m GGUF -t 2 -p 0 -n N -d P -r 1 -o json` (decode: N
  tokens generated one at a time after P tokens of context, seconds per token = avg_ns / N, the mean of the N).
  llama-bench runs a warm-up of each test before it times it, so its figures exclude its first touch of the
  weights. Peak memory: the larger ru_maxrss (the process's VmHWM: mapped GGUF pages it touched count) of the two.
minigptoss: `benchmarks/bench_real.py --weights DIR --prompt-tokens P --decode-tokens N --warm-prefill --json TMP`
  in a subprocess with the variant's environment (e.g. MINIGPTOSS_NUMBA=0, MINIGPTOSS_CACHE_GIB=4): prefill
  seconds per token (after an untimed warm-up prefill, as llama-bench does; --minigptoss-cold-prefill times the
  first prefill instead, which is also minigptoss's first touch of the mapped weights), decode median seconds per
  token of the N steps after the prompt, peak memory as its VmHWM (checked against ru_maxrss from wait4).
Both sides also get "private": the largest RssAnon sampled every 20 ms (memory not backed by the weight files:
llama.cpp's repacked weight copies and buffers, minigptoss's float32 copies and working arrays).
Before each side runs, its weight files are read once (--no-preread to skip), so each starts with them in the
page cache: the two files together (2 x ~13-14 GB for gpt-oss-20b) exceed a 24 GiB machine's memory, and the
first touch would otherwise read the disk. The load average (1 min) is printed before each run.

Variants: --variant numpy:MINIGPTOSS_NUMBA=0 --variant numba (numba used if installed in --python's venv; the
run reports the experts' kernel bench_real names). Without --variant, one variant with the inherited environment.

Making the GGUF (llama.cpp's own converter; dev tools, in their own venv, nothing of llama.cpp in this repo):

    # llama.cpp source: e.g. the vendored copy in llama-cpp-python's sdist (vendor/llama.cpp)
    cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF
    ninja -C build -j2 llama-bench llama-simple llama-completion llama-eval-callback llama-tokenize
    python3 -m venv venv && venv/bin/pip install torch numpy sentencepiece "transformers==4.57.6" protobuf
    venv/bin/pip install -e /path/to/minigptoss
    venv/bin/python tools/make_hf_layout.py --original SYNTH20B --out SYNTH20B-HF   # same bytes, HF names
    venv/bin/python llama.cpp/convert_hf_to_gguf.py SYNTH20B-HF --outfile synth20b.gguf
       # default outtype: the experts stay MXFP4, as for the real release; the rest as the converter chooses

Linux only (/proc, wait4). Prints figures; asserts nothing about speed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GIB = 2**30
HERE = Path(__file__).resolve().parent


def load1() -> float:
    return os.getloadavg()[0]


def rss_anon_kib(pid: int) -> int:
    """RssAnon of a process (KiB): its private resident memory, file-backed (mapped weights) pages excluded."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict | None = None, log=None) -> tuple[str, float, float, float]:
    """Run cmd to completion: (its stdout, wall seconds, its peak resident memory in GiB from wait4's rusage,
    its peak private memory in GiB: the largest RssAnon seen every 20 ms)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=log or subprocess.DEVNULL, env=env)
        peak_private, done = [0], threading.Event()

        def sample():
            while not done.wait(0.02):
                peak_private[0] = max(peak_private[0], rss_anon_kib(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode()
    if child.returncode != 0:
        sys.exit(f"{cmd[0]} exited with {child.returncode}: {' '.join(cmd)}" + (f" (log: {log.name})" if log else ""))
    return text, wall, usage.ru_maxrss * 1024 / GIB, peak_private[0] * 1024 / GIB  # both in KiB


def preread(paths) -> float:
    """Read files once so their pages are in the page cache; returns seconds."""
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass
    return time.perf_counter() - start


buffer = bytearray(64 << 20)


def llama_cpp(args, log) -> dict:
    """Prefill and decode seconds per token and peak memory of llama-bench (two invocations)."""
    base = [args.llama_bench, "-m", args.gguf, "-t", str(args.threads), "-r", "1", "-o", "json"]
    text, wall_p, peak_p, private_p = run_measured(base + ["-p", str(args.prompt_tokens), "-n", "0"], log=log)
    (pp,) = [r for r in json.loads(text) if r["n_prompt"] == args.prompt_tokens and r["n_gen"] == 0]
    text, wall_d, peak_d, private_d = run_measured(base + ["-p", "0", "-n", str(args.decode_tokens),
                                                "-d", str(args.prompt_tokens)], log=log)
    (tg,) = [r for r in json.loads(text) if r["n_gen"] == args.decode_tokens and r["n_prompt"] == 0]
    return {"prefill_s_per_token": pp["avg_ns"] / 1e9 / args.prompt_tokens,
            "decode_s_per_token": tg["avg_ns"] / 1e9 / args.decode_tokens,
            "peak_gib": max(peak_p, peak_d), "peak_private_gib": max(private_p, private_d), "wall_s": wall_p + wall_d,
            "build": f"{pp.get('build_commit', '?')} ({pp.get('build_number', '?')})", "cpu": pp.get("cpu_info", "?"),
            "model_type": pp.get("model_type", "?"), "model_size": pp.get("model_size"),
            "threads": pp.get("n_threads"), "pp": pp, "tg": tg}


def minigptoss(args, variant_env: dict, log) -> dict:
    """bench_real.py's figures for one variant, in a subprocess with the variant's environment."""
    env = {**os.environ, **variant_env}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench_real.json"
        _, wall, peak, _ = run_measured([args.python, str(HERE / "bench_real.py"), "--weights", args.weights,
                                      "--prompt-tokens", str(args.prompt_tokens),
                                      "--decode-tokens", str(args.decode_tokens), "--json", str(out)]
                                     + ([] if args.minigptoss_cold_prefill else ["--warm-prefill"]),
                                     env=env, log=log)
        figures = json.loads(out.read_text())
    return {"prefill_s_per_token": figures["prefill_s_per_token"],
            "decode_s_per_token": figures["decode_s_per_token_median"],
            "peak_gib": figures["peak_rss_gib"], "peak_rusage_gib": peak, "wall_s": wall,
            "peak_private_gib": figures["peak_private_gib"], "kernel": figures["experts_kernel"],
            "decode_steps_s": figures["decode_steps_s"]}


def parse_variant(text: str) -> tuple[str, dict]:
    label, _, assignments = text.partition(":")
    env = {}
    for item in filter(None, assignments.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"--variant {text!r}: expected LABEL[:VAR=VALUE,...]")
        env[key] = value
    return label, env


def weight_files(weights: str) -> list[Path]:
    folder = Path(weights)
    folder = folder / "original" if (folder / "original" / "config.json").exists() else folder
    return sorted(folder.glob("*.safetensors"))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="minigptoss checkpoint folder")
    parser.add_argument("--gguf", required=True, help="the same checkpoint converted by llama.cpp")
    parser.add_argument("--llama-bench", required=True, help="path of llama.cpp's llama-bench binary")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (minigptoss uses its own two)")
    parser.add_argument("--variant", action="append", type=parse_variant, metavar="LABEL[:VAR=VALUE,...]",
                        help="a minigptoss run per round with these environment variables (repeatable)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for bench_real.py")
    parser.add_argument("--minigptoss-cold-prefill", action="store_true",
                        help="time minigptoss's first prefill (no warm-up; llama-bench always warms up)")
    parser.add_argument("--no-preread", action="store_true", help="do not read each side's files before it runs")
    parser.add_argument("--log", help="file for the engines' own output (default: discarded)")
    parser.add_argument("--json", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    variants = args.variant or [("minigptoss", {})]
    log = open(args.log, "ab") if args.log else None
    rows = []  # (round, side, figures)

    print(f"minigptoss vs llama.cpp: prompt {args.prompt_tokens} tokens, decode {args.decode_tokens} tokens, "
          f"{args.rounds} rounds; llama.cpp -t {args.threads}; {os.cpu_count()} CPUs; minigptoss prefill "
          f"{'the first one (cold)' if args.minigptoss_cold_prefill else 'after an untimed warm-up prefill'}")
    print(f"  weights {args.weights}\n  gguf    {args.gguf}\n  python  {args.python}")
    for label, env in variants:
        print(f"  variant {label}: {' '.join(f'{k}={v}' for k, v in env.items()) or '(inherited environment)'}")
    header = (f"{'round':>5}  {'side':<26} {'prefill s/tok':>13} {'decode s/tok':>12} {'peak GiB':>9} "
              f"{'private':>8} {'load1':>6}")
    print(header)
    for r in range(1, args.rounds + 1):
        sides = [("llama.cpp", None)] + variants
        for label, env in sides:
            if not args.no_preread:
                preread([Path(args.gguf)] if env is None else weight_files(args.weights))
            before = load1()
            figures = llama_cpp(args, log) if env is None else minigptoss(args, env, log)
            figures["load1_before"], figures["load1_after"] = before, load1()
            rows.append((r, label, figures))
            extra = f"  [{figures['kernel'].split(' (')[0]}]" if "kernel" in figures else ""
            print(f"{r:>5}  {label:<26} {figures['prefill_s_per_token']:>13.4f} {figures['decode_s_per_token']:>12.4f} "
                  f"{figures['peak_gib']:>9.2f} {figures['peak_private_gib']:>8.2f} {before:>6.2f}{extra}", flush=True)
        if log:
            log.flush()

    def med(label, key):
        return statistics.median(f[key] for _, side, f in rows if side == label)

    def ratios(label, key):
        by_round = {r: f[key] for r, side, f in rows if side == "llama.cpp"}
        return [f[key] / by_round[r] for r, side, f in rows if side == label]

    llama = rows[0][2]
    print(f"\nllama.cpp build {llama['build']}, model {llama['model_type']}, "
          f"{(llama['model_size'] or 0) / GIB:.2f} GiB, cpu {llama['cpu']}")
    print(f"medians over {args.rounds} rounds (ratio = minigptoss / llama.cpp, the median of the per-round ratios; "
          f"min-max in brackets)")
    print(f"{'side':<26} {'decode s/tok':>12} {'ratio':>17} {'prefill s/tok':>13} {'ratio':>17} {'peak GiB':>9} "
          f"{'ratio':>6} {'private GiB':>11}")
    summary = {}
    for label in ["llama.cpp"] + [label for label, _ in variants]:
        s = {key: med(label, key) for key in ("decode_s_per_token", "prefill_s_per_token", "peak_gib",
                                              "peak_private_gib")}
        cells = []
        for key in ("decode_s_per_token", "prefill_s_per_token", "peak_gib"):
            q = ratios(label, key)
            s[key + "_ratio"] = statistics.median(q)
            s[key + "_ratio_range"] = (min(q), max(q))
            cells.append(f"{statistics.median(q):.2f} [{min(q):.2f}-{max(q):.2f}]" if label != "llama.cpp" else "")
        summary[label] = s
        print(f"{label:<26} {s['decode_s_per_token']:>12.4f} {cells[0]:>17} {s['prefill_s_per_token']:>13.4f} "
              f"{cells[1]:>17} {s['peak_gib']:>9.2f} {cells[2].split(' ')[0]:>6} {s['peak_private_gib']:>11.2f}")
    loads = [f["load1_before"] for _, _, f in rows]
    print(f"load average (1 min) before the runs: median {statistics.median(loads):.2f}, "
          f"range {min(loads):.2f}-{max(loads):.2f}; now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for label, _ in variants:
        kernels = {f["kernel"] for _, side, f in rows if side == label}
        print(f"  {label}: experts on {'; '.join(sorted(kernels))}")
    result = {"args": vars(args) | {"variant": variants}, "rounds": rows, "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
