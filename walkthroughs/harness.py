"""Run the code of a walkthrough and compare what it prints with what the page shows.

The convention (also in walkthroughs/README.md):

- Every ```python block of a walkthrough runs, in order, in ONE namespace per file, with the current directory
  set to the repository root. NumPy's print options are restored after each file, so a file's
  `np.set_printoptions(...)` does not leak into the next.
- A ```text block that follows a ```python block (only blank lines between) is that block's exact expected
  stdout. Outputs are compared after stripping trailing whitespace from every line and blank lines at both ends.
- A ```python block with no ```text block after it must print nothing: every printed number is on the page.
- A bare ``` fence (no language) is a diagram or formula: shown, never run. Any other fence language, a ```text
  block that follows no ```python block, or an indented fence is an error, so no code can hide from the check.
- An exception is a mismatch like any other: the traceback becomes the block's actual output.
- A decimal number in the prose must appear in the block it quotes: the nearest ```python block before the
  paragraph (its code or its ```text output), or the blocks a `<!-- numbers from blocks 2, 5 -->` comment right
  before the paragraph names, or a page the paragraph links to. `unchecked_numbers(path)` lists the ones that
  do not. Solutions live in walkthroughs/solutions/NN-*.md.

- A picture is saved by the page's code (`cache.picture(...).save("walkthroughs/img/x.svg")`, or
  `minigptoss.views.svg.save(svg_text, path)`) and shown with ![alt](img/x.svg). While a page is checked, saving
  only collects the SVG: it must be the file on disk byte for byte (a stale picture fails), every saved picture
  must be shown and every shown picture saved.

    check_file(path)        -> [Mismatch | PictureProblem]   (empty when the page is right)
    updated_markdown(path)  -> the page with every ```text block rewritten from a fresh run (for authors)

The test suite (tests/test_walkthroughs.py) only checks; tools/update_walkthroughs.py rewrites.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGHS = Path(__file__).resolve().parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


class WalkthroughFormatError(ValueError):
    """A walkthrough whose fences break the convention (the message names the file and line)."""


@dataclass
class Block:
    """One ```python block and the ```text block that shows its output (if any). Lines are 1-based."""

    number: int  # 1, 2, ... among the python blocks of the file
    line: int  # the line of the opening ```python fence
    code: str
    expected: str | None = None  # the text block's content; None when there is no text block
    text_lines: tuple[int, int] | None = None  # (first, last) content lines of the text block, 0-based, end excl.
    text_fence_line: int | None = None  # 0-based line of the text block's closing fence (for inserting)
    code_end: int = 0  # 0-based line of the python block's closing fence


@dataclass
class Mismatch:
    path: str
    block: Block
    expected: str
    actual: str

    def report(self) -> str:
        where = f"{self.path}, python block {self.block.number} (line {self.block.line})"
        shown = "(no ```text block: this block must print nothing)" if self.block.expected is None else self.expected
        return (f"{where}: the output shown on the page is not what the code prints.\n"
                f"--- code ---\n{self.block.code.rstrip()}\n"
                f"--- expected (the page) ---\n{shown}\n"
                f"--- actual (a fresh run) ---\n{self.actual}\n"
                f"--- first differing line ---\n{first_difference(self.expected, self.actual)}\n"
                f"(if the new output is right, run: python tools/update_walkthroughs.py {Path(self.path).name})")


def normalize(output: str) -> str:
    """Trailing whitespace stripped from every line, blank lines dropped at both ends."""
    return "\n".join(line.rstrip() for line in output.splitlines()).strip("\n")


def first_difference(expected: str, actual: str) -> str:
    old, new = expected.splitlines(), actual.splitlines()
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else "<no line>"
        b = new[i] if i < len(new) else "<no line>"
        if a != b:
            return f"output line {i + 1}:\n  expected: {a}\n  actual:   {b}"
    return "(none)"


# -- parsing --------------------------------------------------------------------------------------------------

def parse(markdown: str, path: str = "<walkthrough>") -> list[Block]:
    """The python blocks of a page, each with its expected output; raises WalkthroughFormatError."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    previous_python: Block | None = None  # a python block that may still receive a text block
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous_python = None  # prose between a python block and a text block breaks the pair
            i += 1
            continue
        if match["indent"]:
            raise WalkthroughFormatError(f"{path}:{i + 1}: indented code fence; fences must start at column 0 "
                                         f"so that every block is checked")
        fence, info = match["fence"], match["info"].strip()
        end = i + 1
        while end < len(lines) and not re.fullmatch(re.escape(fence[0]) + "{%d,}[ \t]*" % len(fence), lines[end]):
            end += 1
        if end == len(lines):
            raise WalkthroughFormatError(f"{path}:{i + 1}: code fence is never closed")
        content = "\n".join(lines[i + 1:end])
        if info == "python":
            previous_python = Block(number=len(blocks) + 1, line=i + 1, code=content + "\n", code_end=end)
            blocks.append(previous_python)
        elif info == "text":
            if previous_python is None or previous_python.expected is not None:
                raise WalkthroughFormatError(f"{path}:{i + 1}: a ```text block must come right after the "
                                             f"```python block whose output it shows (use a bare ``` fence "
                                             f"for diagrams)")
            previous_python.expected = content
            previous_python.text_lines = (i + 1, end)
            previous_python.text_fence_line = end
            previous_python = None
        elif info == "":
            previous_python = None
        else:
            raise WalkthroughFormatError(f"{path}:{i + 1}: fence language {info!r} is not checked; use python "
                                         f"(run), text (its output) or a bare ``` fence (not code)")
        i = end + 1
    return blocks


# -- running --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def walkthrough_environment():
    """cwd = repository root, NumPy print options restored afterwards."""
    old_cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        with np.printoptions():
            yield
    finally:
        os.chdir(old_cwd)


@contextlib.contextmanager
def collecting_pictures(pictures: dict):
    """While a page runs, `minigptoss.views.svg.save` (what `Picture.save` calls) keeps each picture in
    `pictures` {absolute path: SVG text} instead of writing it: the checker compares, only the author rewrites."""
    from minigptoss.views import svg

    def keep(svg_text, path):
        pictures[(REPO_ROOT / path).resolve()] = svg_text

    original, svg.save = svg.save, keep
    try:
        yield pictures
    finally:
        svg.save = original


def run(blocks: list[Block], path: str = "<walkthrough>", pictures: dict | None = None) -> list[str]:
    """Execute the blocks in order in one namespace; -> each block's stdout (a traceback if it raised). The
    pictures the page saves go into `pictures` ({absolute path: SVG}), not to disk."""
    namespace: dict = {"__name__": "__walkthrough__"}
    outputs = []
    pictures = {} if pictures is None else pictures
    with walkthrough_environment(), collecting_pictures(pictures):
        for block in blocks:
            stdout = io.StringIO()
            filename = f"{path}:block{block.number}(line {block.line})"
            try:
                code = compile(block.code, filename, "exec")
                with contextlib.redirect_stdout(stdout):
                    exec(code, namespace)
            except Exception:  # noqa: BLE001 - any failure is reported as the block's output
                stdout.write("".join(traceback.format_exc()))
            outputs.append(stdout.getvalue())
    return outputs


@dataclass
class PictureProblem:
    """A picture the page shows (![...](img/x.svg)) that its code does not draw as it is on disk, or vice versa."""
    path: str
    message: str

    def report(self) -> str:
        return (f"{self.path}: {self.message}\n(if the new picture is right, run: python tools/update_walkthroughs.py "
                f"{Path(self.path).name})")


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.svg)\)")


def shown_pictures(markdown: str, page: Path) -> list[Path]:
    """The SVG files a page shows with ![alt](relative/path.svg), resolved."""
    return [(page.parent / target).resolve() for target in IMAGE.findall(markdown)]


def picture_problems(markdown: str, page: Path, pictures: dict) -> list[PictureProblem]:
    """Each picture the page's code saved must be shown on the page and be, byte for byte, the file on disk; each
    picture the page shows must be saved by its code (so none is drawn by hand or left stale)."""
    where, problems = display_path(page), []
    shown = shown_pictures(markdown, page)
    for file, svg_text in pictures.items():
        name = display_path(file)
        if file not in shown:
            problems.append(PictureProblem(where, f"the code saves {name}, but the page does not show it "
                                                  f"(![...]({os.path.relpath(file, page.parent)}))"))
        elif not file.exists():
            problems.append(PictureProblem(where, f"the picture {name} does not exist yet"))
        elif file.read_text(encoding="utf-8") != svg_text:
            problems.append(PictureProblem(where, f"the picture {name} is stale: the code now draws a different "
                                                  f"SVG"))
    for file in shown:
        if file not in pictures:
            problems.append(PictureProblem(where, f"the page shows {display_path(file)}, which its code never "
                                                  f"saves"))
    return problems


def check_markdown(markdown: str, path: str = "<walkthrough>", page: Path | None = None) -> list:
    """Every block whose (normalized) output differs from the page (Mismatch), then every picture that is not
    what the code draws (PictureProblem; `page` is the file the markdown is, for its relative image paths)."""
    blocks = parse(markdown, path)
    mismatches, pictures = [], {}
    for block, output in zip(blocks, run(blocks, path, pictures)):
        expected, actual = normalize(block.expected or ""), normalize(output)
        if expected != actual:
            mismatches.append(Mismatch(path, block, expected, actual))
    return mismatches + picture_problems(markdown, page or REPO_ROOT / "walkthroughs" / "page.md", pictures)


def check_file(path) -> list[Mismatch]:
    path = Path(path)
    return check_markdown(path.read_text(encoding="utf-8"), display_path(path), path.resolve())


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# -- rewriting (authors only) ---------------------------------------------------------------------------------

def updated_markdown(markdown: str, path: str = "<walkthrough>", pictures: dict | None = None) -> str:
    """The page with each ```text block replaced by the fresh output; a text block is added after a python
    block that prints but has none, and removed from one that now prints nothing. The pictures the page saves
    are put in `pictures` ({absolute path: SVG}) for the caller to write."""
    blocks = parse(markdown, path)
    outputs = [normalize(output) for output in run(blocks, path, pictures)]
    lines = markdown.splitlines()
    # edit from the bottom up so earlier line numbers stay valid
    for block, output in reversed(list(zip(blocks, outputs))):
        new = output.splitlines()
        if block.text_lines is not None:
            first, last = block.text_lines
            if new:
                lines[first:last] = new
            else:  # drop the whole text block, its fences and the blank lines before it
                start = first - 1
                while start - 1 > block.code_end and not lines[start - 1].strip():
                    start -= 1
                del lines[start:last + 1]
        elif new:
            lines[block.code_end + 1:block.code_end + 1] = ["", "```text", *new, "```"]
    return "\n".join(lines) + "\n"


def walkthrough_files() -> list[Path]:
    """The walkthroughs in reading order: walkthroughs/NN-*.md."""
    return sorted(WALKTHROUGHS.glob("[0-9][0-9]-*.md"))


def solution_files() -> list[Path]:
    """The solutions to the exercises, one page per walkthrough: walkthroughs/solutions/NN-*.md."""
    return sorted((WALKTHROUGHS / "solutions").glob("[0-9][0-9]-*.md"))


# -- numbers in the prose -------------------------------------------------------------------------------------

DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
PAGE_LINK = re.compile(r"\]\(((?:\.\./)?(?:solutions/)?[0-9]{2}-[^)#]+\.md)")
NAMED_BLOCKS = re.compile(r"<!--\s*numbers from blocks?\s+([\d,\s]+?)\s*-->")


def blocks_text(markdown: str) -> str:
    """Everything inside the ```python and ```text blocks of a page, joined."""
    out, fence = [], None
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if fence is not None:
            if match:
                fence = None
            elif fence in ("python", "text"):
                out.append(line)
            continue
        if match:
            fence = match["info"].strip()
    return "\n".join(out)


@dataclass
class Paragraph:
    text: str  # the prose, `inline code` removed
    line: int  # 1-based line of its first line
    after: int  # how many ```python blocks come before it (0: none)
    named: tuple[int, ...] = ()  # python blocks named by a <!-- numbers from block N --> comment before it


def prose_paragraphs(markdown: str) -> list[Paragraph]:
    """The checked prose of a page: paragraphs outside fences, tables, HTML comments and the Exercises section."""
    paragraphs, current, fence, comment, exercises = [], [], None, False, False
    pythons, named, start = 0, (), 0

    def close():
        nonlocal current, named
        if current:
            paragraphs.append(Paragraph(" ".join(current), start, pythons, named))
            current, named = [], ()

    for number, line in enumerate(markdown.splitlines(), 1):
        match = FENCE.match(line)
        if fence is not None:
            fence = None if match else fence
            continue
        if match:
            close()
            fence = match["info"].strip()
            pythons += fence == "python"
            continue
        if line.startswith("#"):
            exercises = line.startswith("## Exercises")
        names = NAMED_BLOCKS.search(line)
        if "<!--" in line:
            comment = True
        if comment or exercises or line.startswith("|") or not line.strip():
            comment = comment and "-->" not in line
            close()
            if names:  # applies to the paragraph that follows the comment
                named = tuple(int(n) for n in re.findall(r"\d+", names[1]))
            continue
        if not current:
            start = number
        current.append(re.sub(r"`[^`]*`", "", line))
    close()
    return paragraphs


def block_texts(markdown: str, path: str = "<walkthrough>") -> dict[int, str]:
    """Python block number -> its code and its ```text output, joined."""
    return {block.number: block.code + "\n" + (block.expected or "") for block in parse(markdown, path)}


def unchecked_numbers_in(markdown: str, path: Path | str = "<walkthrough>") -> list[str]:
    """The decimal numbers of a page's prose that the block they refer to does not show; see unchecked_numbers."""
    path = Path(path)
    blocks = block_texts(markdown, str(path))
    problems = []
    for paragraph in prose_paragraphs(markdown):
        backing = [blocks[n] for n in paragraph.named if n in blocks]
        missing = [n for n in paragraph.named if n not in blocks]
        if missing:
            problems.append(f"{display_path(path)}:{paragraph.line}: the comment names python block(s) {missing}, "
                            f"which the page does not have")
        if paragraph.after and not paragraph.named:
            backing.append(blocks[paragraph.after])
        for target in PAGE_LINK.findall(paragraph.text):
            linked = (path.parent / target).resolve()
            if linked.exists():
                backing.append(blocks_text(linked.read_text(encoding="utf-8")))
        shown = "\n".join(backing)
        for number in dict.fromkeys(DECIMAL.findall(paragraph.text)):
            if re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", shown) is None:
                at = paragraph.text.index(number)
                source = (f"python block {paragraph.after} (the nearest before it)" if paragraph.after and
                          not paragraph.named else f"block(s) {list(paragraph.named)}" if paragraph.named
                          else "no block (none comes before it; name one)")
                problems.append(f"{display_path(path)}:{paragraph.line}: {number!r} in the prose is not in "
                                f"{source}: ...{paragraph.text[max(0, at - 60):at + 30]}...")
    return problems


def unchecked_numbers(path) -> list[str]:
    """Decimal numbers written in the prose of a page that the output they quote does not show.

    A decimal number (12.8, 0.118) in a prose paragraph must appear, as written, in the ```python block it refers
    to or that block's ```text output: the nearest python block before the paragraph, or the blocks an HTML
    comment right before the paragraph names (`<!-- numbers from blocks 2, 5 -->`, python blocks counted from 1
    on the page), or any block of a page the paragraph links to. So a number restated from an output cannot
    drift from it, nor be "backed" by the same digits printed somewhere else on the page. Not checked: tables
    (sourced figures), HTML comments, `inline code`, the Exercises section (its numbers are inputs), integers.
    """
    path = Path(path)
    return unchecked_numbers_in(path.read_text(encoding="utf-8"), path)
