"""Helpers shared by several test modules (pytest puts tests/ on sys.path, so `from helpers import ...` works)."""

import importlib.util
import re
import json
from html.parser import HTMLParser
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


# -- HTML pages (views/report.py) -------------------------------------------------------------------------------

class Checker(HTMLParser):
    """Collects ids and fails on a closing tag that does not close the innermost open element."""

    VOID = {"meta", "br", "img", "hr", "input", "link"}  # (SVG elements here are closed or self-closing)

    def __init__(self):
        super().__init__()
        self.open, self.ids, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.ids += [value for key, value in attrs if key == "id"]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


def check_html(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.open == [], checker.open[-3:]
    return checker


def top_level_svgs(page: str) -> list[str]:
    """The outermost <svg>...</svg> elements of a page (pictures may nest <svg>s)."""
    found, depth, start = [], 0, 0
    for match in re.finditer(r"<svg[ >]|</svg>", page):
        if match.group().startswith("</"):
            depth -= 1
            if depth == 0:
                found.append(page[start:match.end()])
        else:
            start, depth = (match.start(), 1) if depth == 0 else (start, depth + 1)
    return found
