"""`minigptoss generate`: continue a prompt, streaming the tokens, then the prefill and decode speed on stderr.

    minigptoss generate [-p TEXT] [--harmony] [sampling flags] [--numerics NAME]

--numerics (cli/numerics.py): after the answer, the same generation under another engine's roundings, and
where the two answers first differ.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

import numpy as np
from rich.console import Console

from ..views.capture import capture
from ..views.summary import probability_text, token_text

from ..text.harmony import Message, render_conversation, stop_tokens
from .numerics import add_numerics_argument, answers_report
from .common import (CHAT_WEIGHTS, DEFAULT_PROMPT, DEFAULT_WEIGHTS, UsageError, add_model_arguments, get_tokenizer,
                     load_model, model_banner, model_defaults, noise_warning, nonempty_prompt, parse_token_ids,
                     positive_int, say_cost, say_ids_only)
from .talk import (GENERATE_MAX_TOKENS, Out, Sampling, Stats, StreamDecoder, add_sampling_flags,
                   run_turn, stop_name, system_messages, timed)


def cmd_generate(args, console: Console) -> None:
    """`minigptoss generate`: stream a continuation of the prompt; timing on stderr."""
    model, path = load_model(args.weights, console, default=CHAT_WEIGHTS if args.harmony else DEFAULT_WEIGHTS)
    tokenizer = get_tokenizer(model.config.vocab_size)
    defaults = model_defaults(model)
    sampling = Sampling.from_args(args, defaults.temperature)
    args.harmony = args.harmony or defaults.harmony  # a model trained on harmony is always spoken to in it
    if not args.harmony and (args.reasoning is not None or args.system is not None):
        raise UsageError("--reasoning/--system need --harmony: a raw prompt has no system message")
    text = prompt_text(args, defaults)
    out, errors = Out(console), Console(stderr=True, highlight=False)
    if args.tokens is not None:
        prompt = parse_token_ids(args.tokens, model.config.vocab_size)
        say_ids_only(tokenizer)
        text = tokenizer.decode(prompt)
    elif args.harmony:
        conversation = [*system_messages(args.reasoning, args.system, defaults), Message("user", text)]
        prompt = render_conversation(conversation, tokenizer)
    else:
        prompt = nonempty_prompt(tokenizer.encode(text, allowed_special="all"), text)
    for line in (model_banner(model, path), noise_warning(defaults, None if args.tokens is not None else text)):
        if line:
            errors.print(line, style="dim", markup=False, soft_wrap=True)
    say_cost(console, model, len(prompt))
    stats = Stats(len(prompt), seed=sampling.seed if sampling.temperature > 0 else None)
    try:
        if args.harmony:
            answer = run_turn(model, tokenizer, prompt, sampling, sampling.seed, out, stats).tokens
            stops = stop_tokens(tokenizer)
        else:
            if not args.no_echo:
                out.write(text, "bold")
            answer = stream_raw(model, tokenizer, prompt, sampling, out, stats, stops=args.stop or (),
                                ignore_eos=args.ignore_eos, show_probs=args.show_probs)
            stops = raw_stop_tokens(tokenizer, args.ignore_eos)
    except KeyboardInterrupt:
        stats.stop = "interrupted"
        out.newline()
        errors.print(stats.summary(), style="dim", markup=False, soft_wrap=True)
        raise
    out.newline()
    errors.print(stats.summary(), style="dim", markup=False, soft_wrap=True)
    if args.numerics is not None:
        def again():
            generated = model.generate(prompt, **sampling.kwargs(sampling.seed), stop_tokens=stops)
            return [token for token, _ in zip(generated, range(len(answer)))]  # no longer than the first
        console.print(answers_report(model, tokenizer, prompt, answer, args.numerics, again))


def prompt_text(args, defaults) -> str:
    """The prompt: -p TEXT, -p - (standard input), -f FILE, else the model's own (defaults.json), else the
    default. From standard input or a file, one trailing newline is dropped (`echo TEXT |` and editors add one;
    llama.cpp's -f does the same): a prompt that should end in a newline ends in two."""
    if args.file is not None:
        try:
            with open(args.file, encoding="utf-8") as file:
                return drop_final_newline(file.read())
        except OSError as error:
            raise UsageError(f"-f {args.file}: cannot read it ({error.strerror})") from None
        except UnicodeDecodeError:
            raise UsageError(f"-f {args.file}: not UTF-8 text") from None
    if args.prompt == "-":
        return drop_final_newline(sys.stdin.read())
    return args.prompt if args.prompt is not None else defaults.prompt or DEFAULT_PROMPT


def drop_final_newline(text: str) -> str:
    """`text` without one trailing line ending (\\n or \\r\\n), if it has one."""
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def raw_stop_tokens(tokenizer, ignore_eos: bool) -> tuple:
    """Where a raw continuation stops: harmony's stop tokens, none with ignore_eos or without a tokenizer (ids
    only)."""
    return () if ignore_eos or not tokenizer.special_tokens_set else stop_tokens(tokenizer, True)


def stream_raw(model, tokenizer, prompt: list[int], sampling: Sampling, out: Out, stats: Stats, stops=(),
               ignore_eos: bool = False, show_probs: int = 0) -> list[int]:
    """Print the continuation as it is generated (special tokens by name, dimmed); stops at harmony's stop
    tokens (<|return|>, <|call|>, <|end|>; not with ignore_eos), at any of the `stops` strings, or max tokens.
    With show_probs K, each token is followed by the K most likely candidates it was drawn from (the last
    recorded logits: generate samples from the logits of the forward pass just before it yields). Returns the
    generated tokens."""
    decoder, tokens, text = StreamDecoder(tokenizer), [], ""
    enders = raw_stop_tokens(tokenizer, ignore_eos)
    with capture("logits") if show_probs else nullcontext() as recorded:
        generated = model.generate(prompt, **sampling.kwargs(sampling.seed), stop_tokens=enders)
        for token in timed(generated, stats):
            tokens.append(token)
            if decoder.is_special(token):
                out.write(decoder.flush())
                out.write(decoder.feed(token), "dim")
            else:
                piece = decoder.feed(token)
                out.write(piece)
                text += piece
            if show_probs:
                out.write(" " + candidates(recorded["logits"][-1], tokenizer, show_probs, token) + "\n", "dim")
            if any(stop in text for stop in stops):
                stats.stop = "stop text"
                generated.close()
                break
    out.write(decoder.flush())
    stats.stop = stop_name(tokenizer, tokens, stats.stop)
    return tokens


def candidates(logits: np.ndarray, tokenizer, k: int, chosen: int) -> str:
    """`[' the' 0.412 | ' a' 0.201 | ...]`: the k most likely tokens with their probabilities (* = chosen)."""
    values = np.asarray(logits, dtype=np.float64)
    log_probs = values - values.max()
    log_probs -= np.log(np.sum(np.exp(log_probs)))
    order = np.argsort(-values, kind="stable")[:k]
    cells = [f"{'*' if t == chosen else ''}{token_text(tokenizer, int(t))!r} {probability_text(np.exp(log_probs[t]))}"
             for t in order]
    return "[" + " | ".join(cells) + "]"


def add_generate_parser(commands) -> None:
    """Register `minigptoss generate` on the CLI's subparsers."""
    generate = commands.add_parser(
        "generate", help="continue a prompt, streaming the tokens, and print tokens/s",
        description="Continue a prompt, printing each token as it is generated, then the prefill and decode "
                    "speed (tokens/s) on stderr. The prompt is raw text, NOT a chat: it goes to the model as is "
                    "(names of special tokens such as <|start|> become those tokens). With --harmony it is "
                    "instead sent as a user message in the harmony chat format, as `chat` does for one turn.")
    add_model_arguments(generate, prompt=False)
    source = generate.add_mutually_exclusive_group()
    source.add_argument("-p", "--prompt", help="the prompt; - reads standard input, dropping one trailing newline "
                                               "(default: the model's own, from its defaults.json: '26023397=' "
                                               "for sort)")
    source.add_argument("-f", "--file", help="read the prompt from this UTF-8 text file (one trailing newline is "
                                             "dropped)")
    source.add_argument("--tokens", help="the prompt as comma-separated token ids")
    generate.add_argument("--stop", action="append", metavar="TEXT",
                          help="stop once the continuation contains TEXT (repeatable)")
    generate.add_argument("--ignore-eos", action="store_true",
                          help="do not stop at <|return|>, <|call|> or <|end|>: generate the full -n tokens")
    generate.add_argument("--no-echo", "--no-display-prompt", dest="no_echo", action="store_true",
                          help="print only the continuation, not the prompt")
    generate.add_argument("--show-probs", type=positive_int, default=0, metavar="K",
                          help="after each generated token, its K most likely candidates and their probabilities")
    generate.add_argument("--harmony", "--chat-format", dest="harmony", action="store_true",
                          help="wrap the prompt as a harmony user message (system message, --system) and show "
                               "the analysis and final channels, like one turn of `chat`")
    add_sampling_flags(generate, GENERATE_MAX_TOKENS, harmony_only=True)
    add_numerics_argument(generate)
    generate.set_defaults(handler=cmd_generate)
