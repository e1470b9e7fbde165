"""`minigptoss chat`: an interactive harmony chat in the terminal.

    minigptoss chat [--system TEXT] [sampling flags]

The analysis channel is shown dimmed, the final answer plainly; /reset clears the history, /exit quits.

One KV cache lives across turns (TurnCache): each turn's prompt is the whole conversation re-rendered, and only
what the cache does not already hold is prefilled. Harmony re-renders the last answer differently from how it
was generated (its analysis dropped, <|end|> where <|return|> stopped it), so the cache first goes back to
where the two texts part, or, if a sliding layer no longer holds the keys before that point, starts afresh.
"""

from __future__ import annotations

import random
import sys

from rich.console import Console
from rich.text import Text

from ..text.harmony import Message, render_conversation
from .common import (CHAT_WEIGHTS, add_model_arguments, get_tokenizer, load_model, model_banner, model_defaults,
                     say_cost)
from .talk import (CHAT_COMMANDS, CHAT_MAX_TOKENS, Out, Sampling, Stats, add_sampling_flags,
                   final_answer, run_turn, system_messages)


def cmd_chat(args, console: Console, read_line=None) -> None:
    """`minigptoss chat`: load the model and talk to it until /exit, /quit, Ctrl-D or Ctrl-C."""
    model, path = load_model(args.weights, console, default=CHAT_WEIGHTS)
    tokenizer = get_tokenizer(model.config.vocab_size)
    defaults = model_defaults(model)
    sampling = Sampling.from_args(args, defaults.temperature)
    system = system_messages(args.reasoning, args.system, defaults)
    out = Out(console)
    say_cost(console, model, len(render_conversation(system, tokenizer)) + 64)  # the first turn, about
    instructions = f", --system {args.system!r}" if args.system else ""
    console.print(Text(f"minigptoss chat on {model_banner(model, path)}: {model.config.num_hidden_layers} layers, "
                       f"vocabulary {model.config.vocab_size}, reasoning {system[0].reasoning_effort}"
                       f"{instructions}, {sampling.describe()}", style="bold"), highlight=False)  # wrapped at words
    if tokenizer.n_vocab != 201088 and not defaults.harmony:
        out.write("This is a tiny model with random weights: expect gibberish, often not even valid harmony.\n",
                  "dim")
    out.write(f"Type a message; {CHAT_COMMANDS}.\n", "dim")
    chat_loop(model, tokenizer, sampling, out, read_line or terminal_reader(console),
              system)


def terminal_reader(console: Console):
    """A read_line(prompt) for the terminal: readline editing and history when stdin is a terminal; otherwise
    (piped input) each line is echoed after the prompt, so the output reads like the session it was."""
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass

    def read_line(prompt: str) -> str:
        console.file.flush()
        line = input(prompt)
        if not interactive:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return line

    return read_line


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many leading ids the two lists have in common."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class TurnCache:
    """The chat's KV cache across turns, and the exact token ids it holds (`ids`, one per cached position).

    before(prompt) -> the ids to prefill: the cache is rolled back to the longest prefix it shares with
    `prompt` (at least one token is left to feed, for the next-token logits), or replaced by a new cache when
    it cannot go back that far exactly (KVCache.can_truncate). after(generated): the cache now also holds the
    generated tokens that were fed back (all but a final stop token), so `ids` becomes prompt + those.
    `rollback` is how far back sliding layers keep keys: enough to undo one answer (its analysis is dropped
    from the next prompt). reuse=False recomputes every turn from scratch (for comparison)."""

    def __init__(self, model, rollback: int, reuse: bool = True):
        self.model, self.rollback, self.reuse = model, rollback, reuse
        self.clear()

    def clear(self) -> None:
        self.cache, self.ids, self.prompt = None, [], []

    def before(self, prompt: list[int]) -> list[int]:
        keep = min(shared_prefix(self.ids, prompt), len(prompt) - 1)
        if not self.reuse or self.cache is None or not self.cache.can_truncate(keep):
            self.cache, keep = self.model.new_cache(rollback=self.rollback), 0
        self.cache.truncate(keep)
        self.ids, self.prompt = prompt[:keep], list(prompt)
        return prompt[keep:]

    def after(self, generated: list[int]) -> None:
        self.ids = (self.prompt + list(generated))[: self.cache.length]


def chat_loop(model, tokenizer, sampling: Sampling, out: Out, read_line, system: list, reuse_cache: bool = True,
              ) -> None:
    """Read a line, answer it, repeat. The history keeps the user's messages and the final answers (harmony
    drops earlier analysis anyway); Ctrl-C during an answer stops it, at the prompt it quits. The KV cache
    persists across turns (TurnCache; reuse_cache=False recomputes the conversation every turn)."""
    history: list[Message] = []
    memory = TurnCache(model, min(sampling.max_new_tokens, 4096) + 64, reuse_cache)
    seeds = random.Random(sampling.seed)  # one seed per turn, all from --seed: a seeded session repeats exactly
    while True:
        try:
            line = read_line(">>> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C: the terminal left the cursor after the prompt
            out.write("\nbye\n", "dim")
            return
        if line in ("/exit", "/quit", "/bye"):
            out.write("bye\n", "dim")
            return
        if line in ("/reset", "/clear"):
            history.clear()
            memory.clear()
            out.write("(history and KV cache cleared)\n", "dim italic")
            continue
        if line in ("/help", "/?"):
            out.write(f"{CHAT_COMMANDS}.\n", "dim")
            continue
        if not line:
            continue
        if line.startswith("/") and not line.startswith("//"):
            out.write(f"unknown command {line.split()[0]!r}: {CHAT_COMMANDS} (start with // to send a line "
                      "beginning with /)\n", "yellow")
            continue
        line = line[1:] if line.startswith("//") else line
        conversation = [*history, Message("user", line)]
        prompt = render_conversation([*system, *conversation], tokenizer)
        fresh = memory.before(prompt)
        stats = Stats(len(fresh), cached_tokens=len(prompt) - len(fresh))
        try:
            tracker = run_turn(model, tokenizer, fresh, sampling, seeds.randrange(2**32), out, stats, memory.cache)
            memory.after(tracker.tokens)
        except KeyboardInterrupt:
            memory.clear()  # the pass may have stopped inside a layer: the cache is not trusted
            stats.stop = "interrupted"
            out.note("interrupted: this turn is not kept")
            out.write(stats.summary() + "\n", "dim")
            continue
        answer = final_answer(tracker)
        if answer is None:
            out.note("no final answer: the history keeps only your message")
        history = conversation + ([Message("assistant", answer, channel="final")] if answer is not None else [])
        out.write(stats.summary() + "\n", "dim")


def add_chat_parser(commands) -> None:
    """Register `minigptoss chat` on the CLI's subparsers."""
    chat = commands.add_parser(
        "chat", help="an interactive chat in the harmony format",
        description="Chat with the model in the harmony format: each turn is rendered with a system message "
                    "(reasoning effort) and your --system instructions, and generated until <|return|> or "
                    "<|call|>. The analysis channel is shown dimmed, the final answer plainly, both as they "
                    "stream. The history keeps your messages and the final answers. Commands: "
                    f"{CHAT_COMMANDS}; Ctrl-C stops an answer, and quits at the prompt. After each answer: the prefill "
                    "and decode speed in tokens/s. The KV cache persists across turns: only what it does not hold is "
                    "prefilled.")
    add_model_arguments(chat, prompt=False)
    add_sampling_flags(chat, CHAT_MAX_TOKENS)
    chat.set_defaults(handler=cmd_chat)
