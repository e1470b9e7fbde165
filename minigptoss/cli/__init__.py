"""The `minigptoss` command: the entry point, and one module per command.

    minigptoss run        one forward pass, summarised                     cli/run.py
    minigptoss step       the step-through debugger                        cli/step.py
    minigptoss generate   continue a prompt, streaming                     cli/generate.py
    minigptoss chat       an interactive harmony chat                      cli/chat.py

Shared plumbing (arguments, loading, the one-line error) is in cli/common.py, what generate and chat share
in cli/talk.py; what is drawn is in views/.
Bad input (a missing folder, a malformed checkpoint, an id outside the vocabulary) is one line on stderr
and exit status 2; anything else is a bug and keeps its traceback.
"""

import sys

from rich.console import Console

from .. import __version__
from ..checkpoint import CheckpointError
from ..config import ConfigError
from .chat import add_chat_parser
from .common import DEFAULT_PROMPT, OneLineParser, UsageError
from .generate import add_generate_parser
from .run import add_run_parser
from .step import add_step_parser

__all__ = ["DEFAULT_PROMPT", "UsageError", "build_parser", "main"]


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="minigptoss", description="Run and inspect gpt-oss in pure NumPy.")
    parser.add_argument("--version", action="version", version=f"minigptoss {__version__}")
    parser.set_defaults(handler=lambda args, console: parser.print_help())  # `minigptoss` alone: the help
    commands = parser.add_subparsers(dest="command")
    add_run_parser(commands)
    add_step_parser(commands)
    add_generate_parser(commands)
    add_chat_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        args.handler(args, console)
    except (UsageError, ConfigError, CheckpointError, ValueError) as error:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
