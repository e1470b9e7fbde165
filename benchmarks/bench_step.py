"""How soon the debugger shows the second pass of a generation: `minigptoss step`'s app, headless, on a checkpoint.

    python benchmarks/bench_step.py --weights DIR [--runs 2] [--poll 0.2] [--json FILE]

The app (cli/debugger.py, at 80x24, Textual's headless pilot) opens on pass 1 while the generation runs beside
it (cli/generation.py, every intermediate of every pass recorded) and `]` is pressed at once, so the screen
waits for pass 2. Measured, from the same clock:

    prefill      the prompt's pass: from the start of generation to its token drawn
    decode       pass 2 alone: from pass 1's token drawn to pass 2's (one decode step through the KV cache)
    shown after  from pass 1's token drawn to pass 2's first step (tokens, with the KV cache) on screen

Target: `shown after` within one decode step (the page: ~2 s on gpt-oss-20b's shapes on the 2-core machine),
i.e. a user stepping pass 2 while pass 3 is computed. Run it on the synthetic checkpoint with gpt-oss-20b's
real shapes (tools/make_synthetic_checkpoint.py --preset 20b --layout original --out DIR), on a quiet machine.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's minigptoss

from rich.console import Console  # noqa: E402

import minigptoss  # noqa: E402
from minigptoss.cli import build_parser  # noqa: E402
from minigptoss.cli import step as stepper  # noqa: E402
from minigptoss.cli.debugger import DebuggerApp  # noqa: E402


def screen(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def one_run(model, weights: str, poll: float, prompt: str | None) -> dict:
    """Open the app on a fresh generation of 3 tokens, press `]`, time pass 1's draw, pass 2's draw and the
    moment pass 2's first step is on screen."""
    argv = ["step", "--weights", weights, "-n", "3"] + (["-p", prompt] if prompt else [])
    args = build_parser().parse_args(argv)
    began = time.monotonic()
    session = stepper.open_session(args, Console(stderr=True), model=model, wait=False)
    every, shown, breaks = stepper.plan(args, session)
    run, times = session.run, {}
    app = DebuggerApp(session, shown, breaks, poll=poll)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("right_square_bracket")
            while "shown" not in times or len(times) < 4:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                if len(run.draws) >= 1 and "pass1" not in times:
                    times["pass1"] = now
                if len(run.draws) >= 2 and "pass2" not in times:
                    times["pass2"] = now
                if "shown" not in times and "pass1" in times:
                    text = screen(app)
                    if text.startswith("pass 2/") and "reads " in text.split("\n")[1] and "waiting" not in text:
                        times["shown"] = now
                if run.done.is_set() and "pass2" not in times:
                    raise RuntimeError(f"the generation ended early: {run.error}")
                if "pass1" in times and "shown" in times and "pass2" in times:
                    times["end"] = now
    finally:
        session.stop()
    return {"prefill_s": times["pass1"] - began, "decode_s": times["pass2"] - times["pass1"],
            "shown_after_s": times["shown"] - times["pass1"], "prompt_tokens": len(session.tokens)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="checkpoint folder (or a bundled model's name)")
    parser.add_argument("--runs", type=int, default=2, help="how many times (the first touches the weights)")
    parser.add_argument("--poll", type=float, default=0.2, help="the app's refresh interval while generating (s)")
    parser.add_argument("-p", "--prompt", help="prompt text (default: the command's)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    console = Console()
    with console.status(f"loading {args.weights}"):
        model = minigptoss.load(args.weights)
    runs = []
    for i in range(args.runs):
        figures = asyncio.run(one_run(model, args.weights, args.poll, args.prompt))
        runs.append(figures)
        console.print(f"run {i + 1}: {figures['prompt_tokens']}-token prompt; prefill {figures['prefill_s']:.2f} s, "
                      f"decode (pass 2) {figures['decode_s']:.2f} s, pass 2's first step on screen "
                      f"{figures['shown_after_s']:.2f} s after pass 1's token", highlight=False)
    shown = statistics.median(r["shown_after_s"] for r in runs)
    decode = statistics.median(r["decode_s"] for r in runs)
    console.print(f"median: pass 2 on screen {shown:.2f} s after the prompt's pass; one decode step {decode:.2f} s "
                  f"({'within' if shown <= decode else 'NOT within'} one decode step)", highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "shown_after_s": shown, "decode_s": decode}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
