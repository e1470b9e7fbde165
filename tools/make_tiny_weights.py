"""Regenerate tiny_weights/ byte for byte: the TINY config, random weights from seed 0, original layout.

    python tools/make_tiny_weights.py [--out tiny_weights]

tests/test_tiny_weights.py checks that the committed files equal what this writes.
"""

import argparse

import minigptoss
from minigptoss.config import TINY

SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tiny_weights", help="folder to write (default: tiny_weights)")
    args = parser.parse_args()
    minigptoss.save(minigptoss.random_model(TINY, SEED), args.out)
    print(f"wrote {args.out}/config.json and {args.out}/model.safetensors")


if __name__ == "__main__":
    main()
