"""The `minigptoss` command: the entry point, and one module per command.

    minigptoss run        one forward pass, summarised                     cli/run.py
    minigptoss step       the step-through debugger                        cli/step.py
    minigptoss generate   continue a prompt, streaming                     cli/generate.py
    minigptoss chat       an interactive harmony chat                      cli/chat.py

Shared plumbing (arguments, loading, the one-line error) is in cli/common.py, what generate and chat share
in cli/talk.py; what is drawn is in views/.
Exit status: 0 done (also when the reader of stdout went away, as in `minigptoss run | head -1`); 2 bad
input, printed as one line on stderr (only the project's own `MinigptossError`s: a missing folder, a
malformed checkpoint, an id outside the vocabulary, a bad flag or environment variable); 1 stdout cannot be
written (a full disk, /dev/full), one line on stderr; 130 Ctrl-C, at any moment. Anything else is a bug and
keeps its traceback. `minigptoss/__main__.py` is the entry point that also covers Ctrl-C during start-up.
"""

import errno
import os
import sys

from rich.console import Console

from .. import __version__, environment
from ..errors import MinigptossError
from .chat import add_chat_parser
from .common import DEFAULT_PROMPT, OneLineParser, UsageError
from .generate import add_generate_parser
from .run import add_run_parser
from .step import add_step_parser

__all__ = ["DEFAULT_PROMPT", "UsageError", "build_parser", "main"]


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="minigptoss", description="Run and inspect gpt-oss in pure NumPy.",
                           epilog="output: drawn for the terminal's width; piped, 80 columns unless COLUMNS=N, and "
                                  "without colours unless FORCE_COLOR=1 (FORCE_COLOR=1 minigptoss step --no-pause | "
                                  "less -R pages it in colour); NO_COLOR=1 turns colours off")
    parser.add_argument("--version", action="version", version=f"minigptoss {__version__}")
    parser.set_defaults(handler=lambda args, console: parser.print_help())  # `minigptoss` alone: the help
    commands = parser.add_subparsers(dest="command")
    add_run_parser(commands)
    add_step_parser(commands)
    add_generate_parser(commands)
    add_chat_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run one command: -> its exit status (0, 1, 2 or 130, as in this module's docstring)."""
    try:
        args = build_parser().parse_args(argv)
        environment.check()
        stdout = Stdout(sys.stdout)
        args.handler(args, Console(file=stdout))
        stdout.flush()
    except MinigptossError as error:
        _say(f"[red]error:[/] {error}")
        return 2
    except KeyboardInterrupt:
        return 130
    except StdoutError as error:
        _silence_stdout()
        if error.errno == errno.EPIPE:  # the reader went away (`| head -1`): nothing more to say
            return 0
        _say(f"[red]error:[/] cannot write to standard output ({error.strerror})")
        return 1
    return 0


class StdoutError(OSError):
    """Writing to standard output failed (a closed pipe, a full disk): told apart from every other OSError."""


class Stdout:
    """The commands' stdout: the stream itself, except that a failed write raises StdoutError."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self._check_open()
        try:
            return self.stream.write(text)
        except OSError as error:
            raise StdoutError(error.errno, error.strerror) from None

    def flush(self) -> None:
        if self.stream is None:  # nothing was written (else write said so)
            return
        try:
            self.stream.flush()
        except OSError as error:
            raise StdoutError(error.errno, error.strerror) from None

    def _check_open(self) -> None:
        """`minigptoss run >&-`: Python starts with sys.stdout None when file descriptor 1 is closed."""
        if self.stream is None:
            raise StdoutError(errno.EBADF, "it is closed")

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the stream's own
        if self.stream is None:
            if name == "isatty":
                return lambda: False
            self._check_open()
        return getattr(self.stream, name)


def _say(line: str) -> None:
    """One line on stderr; nothing if stderr itself cannot be written."""
    try:
        Console(stderr=True, soft_wrap=True).print(line, highlight=False)
    except OSError:
        pass


def _silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null, so the interpreter's final flush of text that could not be
    written ends quietly (the advice of Python's `signal` documentation on SIGPIPE). Only on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):  # no real file descriptor behind sys.stdout (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
