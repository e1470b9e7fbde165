"""`python -m minigptoss` and the `minigptoss` console script: the command line, with Ctrl-C during start-up
(while NumPy, rich and the package's modules are imported) ending as quietly as at any other moment, with exit
status 130. Nothing process-wide is changed; the interrupt is caught where it surfaces."""

import sys


def main() -> int:
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:
        return 130
    return run_command()


if __name__ == "__main__":
    sys.exit(main())
