#!/usr/bin/env bash
# Create tools/train/.venv: PyTorch (CPU) for training the tiny models, next to this tree's minigptoss.
# Dev-only: minigptoss never imports torch, and the normal test suite never needs this venv
# (the trained models are committed in tiny_weights/sort and tiny_weights/chat).
#
#   bash tools/train/setup.sh                               # PYTHON=python3.12 to choose the interpreter
#   tools/train/.venv/bin/python tools/train/train.py sort  # retrain tiny_weights/sort (see README.md)
#
# torch==2.13.0: pip takes a CPU build (2.13.0+cpu) when a local wheel folder offers one (PIP_FIND_LINKS);
# otherwise PyPI's default wheel, which also pulls CUDA libraries (several GB) but runs on CPU all the same.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

"$python" -m venv "$here/.venv"
pip=("$here/.venv/bin/python" -m pip install --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0" numpy safetensors
"${pip[@]}" -e "$repo"
"$here/.venv/bin/python" - <<'PY'
import torch, numpy, safetensors, minigptoss
print(f"train venv ready: torch {torch.__version__}, numpy {numpy.__version__}, "
      f"minigptoss from {minigptoss.__file__}")
PY
