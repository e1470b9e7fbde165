"""Helpers shared by several test modules (pytest puts tests/ on sys.path, so `from helpers import ...` works)."""

import importlib.util
import json
from pathlib import Path

import pytest

import minigptoss

ROOT = Path(__file__).resolve().parent.parent


def train_tasks():
    """tools/train/tasks.py (pure Python, no torch: the trained models' tasks and held-out sets), imported by path."""
    spec = importlib.util.spec_from_file_location("train_tasks", ROOT / "tools" / "train" / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refused(kind, path, *needles) -> str:
    """load(path) raises `kind` with a one-line message holding every needle; -> the message."""
    with pytest.raises(kind) as caught:
        minigptoss.load(path)
    message = str(caught.value)
    assert "\n" not in message and all(needle in message for needle in needles), message
    return message


def rewrite_header(path: Path, edit) -> None:
    """Replace a safetensors file's header by edit(header): the edited dict, or raw bytes if edit returns bytes;
    the data section is kept (its offsets are relative to its own start, so the header may grow or shrink)."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    text = edit(header)
    text = text if isinstance(text, bytes) else json.dumps(header, separators=(",", ":")).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length:])
