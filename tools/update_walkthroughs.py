"""Re-run the walkthroughs' code and rewrite their ```text output blocks (for authors; the tests never rewrite).

    python tools/update_walkthroughs.py                  # every walkthroughs/NN-*.md and solutions/NN-*.md
    python tools/update_walkthroughs.py 03-attention.md  # just these (names or paths)
    python tools/update_walkthroughs.py --check          # report mismatches, change nothing (exit 1 if any)

The pictures a page saves (walkthroughs/img/*.svg) are written too. Read the diff afterwards (`git diff walkthroughs/`): a changed number is either the fix you meant or a bug.
The convention is in walkthroughs/README.md and walkthroughs/harness.py.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "walkthroughs" / "harness.py"
sys.path.insert(0, str(ROOT))  # the pages import this checkout's minigptoss, not whichever one is installed


def load_harness():
    spec = importlib.util.spec_from_file_location("walkthrough_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    harness = load_harness()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="walkthrough names or paths (default: all)")
    parser.add_argument("--check", action="store_true", help="only report mismatches")
    args = parser.parse_args(argv)
    paths = [Path(f) if Path(f).exists() else harness.WALKTHROUGHS / f for f in args.files]
    failed = 0
    for path in paths or harness.walkthrough_files() + harness.solution_files():
        if args.check:
            mismatches = harness.check_file(path)
            failed += bool(mismatches)
            for mismatch in mismatches:
                print(mismatch.report(), end="\n\n")
            print(f"{path.name}: {'ok' if not mismatches else f'{len(mismatches)} block(s) differ'}")
            continue
        old, pictures = path.read_text(encoding="utf-8"), {}
        new = harness.updated_markdown(old, harness.display_path(path), pictures)
        if new != old:
            path.write_text(new, encoding="utf-8")
        drawn = []
        for file, svg_text in pictures.items():
            if not file.exists() or file.read_text(encoding="utf-8") != svg_text:
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(svg_text, encoding="utf-8")
                drawn.append(file.name)
        print(f"{path.name}: {'rewritten' if new != old else 'unchanged'}"
              + (f"; pictures redrawn: {', '.join(drawn)}" if drawn else ""))
        for problem in harness.picture_problems(new, path.resolve(), pictures):
            failed += 1
            print(problem.report())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
