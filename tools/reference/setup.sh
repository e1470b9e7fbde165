#!/usr/bin/env bash
# Create tools/reference/.venv: OpenAI's official gpt-oss reference (PyTorch, CPU) next to this tree's minigptoss.
# Dev-only: the normal test suite never needs it (tests/golden/ holds what the reference computed).
#
#   bash tools/reference/setup.sh                                         # PYTHON=python3.12 to choose
#   tools/reference/.venv/bin/python tools/reference/make_goldens.py      # rewrite tests/golden/
#   tools/reference/.venv/bin/python -m pytest tests/test_parity_live.py -s   # fresh random configs vs reference
#
# torch==2.13.0: pip takes a CPU build (2.13.0+cpu) when a local wheel folder offers one (PIP_FIND_LINKS);
# otherwise PyPI's default wheel, which also pulls CUDA libraries (several GB) but runs on CPU all the same.
# gpt-oss 0.0.9 declares Python >= 3.12 and many serving dependencies; its torch reference needs only torch and
# safetensors, hence --no-deps --ignore-requires-python (it runs on Python 3.11).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

"$python" -m venv "$here/.venv"
pip=("$here/.venv/bin/python" -m pip install --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0" safetensors numpy
"${pip[@]}" --no-deps --ignore-requires-python "gpt-oss==0.0.9"
"${pip[@]}" -e "$repo[test]"
"$here/.venv/bin/python" - <<'PY'
import torch, gpt_oss.torch.model, safetensors, numpy, minigptoss
print(f"reference venv ready: torch {torch.__version__}, numpy {numpy.__version__}, "
      f"minigptoss from {minigptoss.__file__}")
PY
