"""`minigptoss generate`: continue a prompt, streaming the tokens, then the prefill and decode speed on stderr.

    minigptoss generate [-p TEXT] [--harmony] [sampling flags]
"""

from __future__ import annotations

from rich.console import Console

from ..text.harmony import Message, render_conversation, stop_tokens
from .common import DEFAULT_PROMPT, UsageError, add_model_arguments, get_tokenizer, load_model
from .talk import (DEFAULT_REASONING, GENERATE_MAX_TOKENS, Out, Sampling, Stats, StreamDecoder, add_sampling_flags,
                   run_turn, stop_name, system_messages, timed)


def cmd_generate(args, console: Console) -> None:
    """`minigptoss generate`: stream a continuation of the prompt; timing on stderr."""
    if not args.harmony and (args.reasoning is not None or args.system is not None):
        raise UsageError("--reasoning/--system need --harmony: a raw prompt has no system message")
    sampling = Sampling.from_args(args)
    model, _ = load_model(args.weights, console)
    tokenizer = get_tokenizer(model.config.vocab_size)
    text = args.prompt if args.prompt is not None else DEFAULT_PROMPT
    out, errors = Out(console), Console(stderr=True, highlight=False)
    if args.harmony:
        conversation = [*system_messages(args.reasoning or DEFAULT_REASONING, args.system), Message("user", text)]
        prompt = render_conversation(conversation, tokenizer)
    else:
        prompt = tokenizer.encode(text, allowed_special="all")
    stats = Stats(len(prompt), seed=sampling.seed if sampling.temperature > 0 else None)
    try:
        if args.harmony:
            run_turn(model, tokenizer, prompt, sampling, sampling.seed, out, stats)
        else:
            out.write(text, "bold")
            stream_raw(model, tokenizer, prompt, sampling, out, stats)
    except KeyboardInterrupt:
        stats.stop = "interrupted"
        out.newline()
        errors.print(stats.summary(), style="dim", markup=False, soft_wrap=True)
        raise
    out.newline()
    errors.print(stats.summary(), style="dim", markup=False, soft_wrap=True)


def stream_raw(model, tokenizer, prompt: list[int], sampling: Sampling, out: Out, stats: Stats) -> None:
    """Print the continuation as it is generated (special tokens by name, dimmed); stops at harmony's stop
    tokens (<|return|>, <|call|>, <|end|>) or max tokens."""
    decoder, tokens = StreamDecoder(tokenizer), []
    generated = model.generate(prompt, **sampling.kwargs(sampling.seed), stop_tokens=stop_tokens(tokenizer, True))
    for token in timed(generated, stats):
        tokens.append(token)
        if decoder.is_special(token):
            out.write(decoder.flush())
            out.write(decoder.feed(token), "dim")
        else:
            out.write(decoder.feed(token))
    out.write(decoder.flush())
    stats.stop = stop_name(tokenizer, tokens, stats.stop)


def add_generate_parser(commands) -> None:
    """Register `minigptoss generate` on the CLI's subparsers."""
    generate = commands.add_parser(
        "generate", help="continue a prompt, streaming the tokens, and print tokens/s",
        description="Continue a prompt, printing each token as it is generated, then the prefill and decode "
                    "speed (tokens/s) on stderr. The prompt is raw text, NOT a chat: it goes to the model as is "
                    "(names of special tokens such as <|start|> become those tokens). With --harmony it is "
                    "instead sent as a user message in the harmony chat format, as `chat` does for one turn.")
    add_model_arguments(generate, prompt=False)
    generate.add_argument("-p", "--prompt", help=f"the prompt (default: {DEFAULT_PROMPT!r})")
    generate.add_argument("--harmony", "--chat-format", dest="harmony", action="store_true",
                          help="wrap the prompt as a harmony user message (system message, --system) and show "
                               "the analysis and final channels, like one turn of `chat`")
    add_sampling_flags(generate, GENERATE_MAX_TOKENS, reasoning_default=None)
    generate.set_defaults(handler=cmd_generate)
