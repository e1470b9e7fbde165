"""The walkthroughs cannot drift: every ```python block runs and must print exactly the ```text block after it.

Convention: walkthroughs/README.md (and walkthroughs/harness.py, which implements it). To refresh the shown
outputs after an intended change: python tools/update_walkthroughs.py, then read the diff.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("walkthrough_harness", ROOT / "walkthroughs" / "harness.py")
harness = sys.modules.setdefault("walkthrough_harness", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(harness)

FILES = harness.walkthrough_files()
SOLUTIONS = harness.solution_files()
PAGES = FILES + SOLUTIONS
EXPECTED = ["00-overview", "01-rmsnorm", "02-rope", "03-attention", "04-swiglu", "05-router-moe", "06-mxfp4",
            "07-forward-kv-cache", "08-tokenizer-harmony", "09-gpt-oss-20b-in-16gb",
            "10-trained-tiny-model", "11-experiments", "12-induction-circuit",
            "13-numerics"]


def test_the_walkthroughs_are_all_there_and_listed_in_the_readme():
    names = [path.stem for path in FILES]
    assert names == EXPECTED, f"walkthroughs/ holds {names}, expected {EXPECTED}"
    readme = (ROOT / "walkthroughs" / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"\]\(([0-9]{2}-[^)]+)\.md\)", readme)
    assert listed == EXPECTED, f"walkthroughs/README.md lists {listed}, expected {EXPECTED} in reading order"


def test_every_exercise_has_a_solution_page_that_the_harness_runs():
    """walkthroughs/solutions/NN-name.md answers exercise N of NN-name.md under '## Exercise N'."""
    assert [s.stem for s in SOLUTIONS] == EXPECTED, f"solutions/ holds {[s.stem for s in SOLUTIONS]}"
    for page, solution in zip(FILES, SOLUTIONS):
        text = page.read_text(encoding="utf-8")
        exercises = text[text.index("## Exercises"):]
        numbers = re.findall(r"^(\d+)\. ", exercises, re.M)
        answered = re.findall(r"^## Exercise (\d+)\b", solution.read_text(encoding="utf-8"), re.M)
        assert answered == numbers, f"{solution.name} answers exercises {answered}, {page.name} asks {numbers}"
        assert f"](solutions/{page.name})" in text, f"{page.name} does not link to solutions/{page.name}"


@pytest.mark.parametrize("path", PAGES, ids=[f"{path.parent.name}/{path.stem}" for path in PAGES])
def test_numbers_in_the_prose_come_from_an_output(path):
    problems = harness.unchecked_numbers(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", PAGES, ids=[f"{path.parent.name}/{path.stem}" for path in PAGES])
def test_walkthrough_outputs_match_the_page(path):
    mismatches = harness.check_file(path)
    if mismatches:
        more = f"\n\n({len(mismatches) - 1} more block(s) differ after this one)" if len(mismatches) > 1 else ""
        pytest.fail(mismatches[0].report() + more, pytrace=False)


@pytest.mark.parametrize("path", PAGES, ids=[f"{path.parent.name}/{path.stem}" for path in PAGES])
def test_walkthrough_links_point_at_real_files_and_functions(path):
    """A link like [`sink_softmax`](../minigptoss/attention.py) names a file that exists and defines it."""
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"\[`?([\w.]+)(?:\(\))?`?\]\((\.\./[^)#]+|[0-9]{2}-[^)#]+\.md)(?:#[^)]*)?\)", text)
    assert links, f"{path.name} links to no code"
    for name, target in links:
        file = (path.parent / target).resolve()
        assert file.exists(), f"{path.name}: link to {target} ({name}): no such file"
        if file.suffix == ".py" and name != file.name:
            source = file.read_text(encoding="utf-8")
            short = name.split(".")[-1]
            defined = re.search(rf"^\s*(def|class)\s+{short}\b|^{short}\s*=", source, re.M)
            assert defined, f"{path.name}: link [{name}]({target}), but {target} defines no {short!r}"


def test_each_walkthrough_runs_minigptoss_uses_the_inspector_and_has_exercises():
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        assert "import minigptoss" in text or "from minigptoss" in text, f"{path.name} never imports minigptoss"
        assert "minigptoss.capture(" in text, f"{path.name} never shows intermediates with minigptoss.capture"
        assert re.search(r"^## Exercises", text, re.M), f"{path.name} has no '## Exercises' section"


# -- the checker itself ---------------------------------------------------------------------------------------

def test_changing_one_digit_of_a_shown_output_is_caught():
    """Mutate one digit of a real page in memory: the checker must report that block, and only that one."""
    path = ROOT / "walkthroughs" / "06-mxfp4.md"
    text = path.read_text(encoding="utf-8")
    blocks = harness.parse(text, path.name)
    assert harness.check_markdown(text, path.name) == []
    lines = text.splitlines()
    target = next(b for b in blocks if b.expected and re.search(r"\d", b.expected))
    first, last = target.text_lines
    row = next(i for i in range(first, last) if re.search(r"\d", lines[i]))
    column = re.search(r"\d", lines[row]).start()
    digit = lines[row][column]
    lines[row] = lines[row][:column] + str((int(digit) + 1) % 10) + lines[row][column + 1:]
    mismatches = harness.check_markdown("\n".join(lines) + "\n", path.name)
    assert [m.block.number for m in mismatches] == [target.number]
    report = mismatches[0].report()
    assert "expected (the page)" in report and "actual (a fresh run)" in report and target.code.strip() in report


SAMPLE = """# A page

```python
x = 6 * 7
print(f"x = {x}")
```

```text
x = 42
```

A diagram, never run:

```
x -> y
```

```python
y = x + 1
```
"""


def test_a_correct_page_passes_and_trailing_whitespace_is_ignored():
    assert harness.check_markdown(SAMPLE) == []
    assert harness.check_markdown(SAMPLE.replace("x = 42\n", "x = 42   \n\n")) == []


def test_a_wrong_number_a_silent_block_that_prints_and_an_exception_are_mismatches():
    wrong = harness.check_markdown(SAMPLE.replace("x = 42", "x = 43"))
    assert len(wrong) == 1 and wrong[0].expected == "x = 43" and wrong[0].actual == "x = 42"
    assert "output line 1" in wrong[0].report()
    loud = harness.check_markdown(SAMPLE.replace("y = x + 1", "print(x + 1)"))
    assert len(loud) == 1 and loud[0].actual == "43" and "must print nothing" in loud[0].report()
    raising = harness.check_markdown(SAMPLE.replace("y = x + 1", "1 / 0"))
    assert len(raising) == 1 and "ZeroDivisionError" in raising[0].actual


@pytest.mark.parametrize("bad, message", [
    ("```text\norphan\n```\n", "must come right after"),
    ("```python\nprint(1)\n```\nprose\n```text\n1\n```\n", "must come right after"),
    ("```bash\nls\n```\n", "not checked"),
    ("  ```python\nprint(1)\n  ```\n", "indented"),
    ("```python\nprint(1)\n", "never closed"),
])
def test_fences_that_would_hide_code_from_the_check_are_errors(bad, message):
    with pytest.raises(harness.WalkthroughFormatError, match=message):
        harness.parse(bad)


def test_blocks_share_one_namespace_and_run_from_the_repository_root():
    page = "```python\nimport os\nhere = os.getcwd()\n```\n\n```python\nprint(here == os.getcwd(), os.path.isdir('minigptoss'))\n```\n\n```text\nTrue True\n```\n"
    assert harness.check_markdown(page) == []


def test_print_options_set_by_a_page_do_not_leak():
    import numpy as np

    before = np.get_printoptions()
    harness.check_markdown("```python\nimport numpy as np\nnp.set_printoptions(precision=1)\n```\n")
    assert np.get_printoptions() == before


def test_the_update_tool_rewrites_outputs_and_is_idempotent():
    stale = SAMPLE.replace("x = 42", "x = 41").replace("y = x + 1", "print('new')")
    fresh = harness.updated_markdown(stale)
    assert "x = 42" in fresh and "```text\nnew\n```" in fresh
    assert harness.check_markdown(fresh) == []
    assert harness.updated_markdown(fresh) == fresh
    silent = harness.updated_markdown(SAMPLE.replace('print(f"x = {x}")', "pass"))
    assert "x = 42" not in silent and harness.check_markdown(silent) == []


# -- numbers in the prose quote the output they refer to ------------------------------------------------------

QUOTING = """# A page

```python
print("sink mass 0.53")
```

```text
sink mass 0.53
```

{comment}The head parks {number} of its attention on the sink.

```python
print("elsewhere 0.57")
```

```text
elsewhere 0.57
```
"""


def test_a_number_in_the_prose_must_be_in_the_block_it_follows_not_anywhere_on_the_page():
    """'0.53' quoted as '0.57' is caught although 0.57 is printed by another block of the page."""
    assert harness.unchecked_numbers_in(QUOTING.format(comment="", number="0.53")) == []
    wrong = harness.unchecked_numbers_in(QUOTING.format(comment="", number="0.57"))
    assert len(wrong) == 1 and "'0.57'" in wrong[0] and "python block 1" in wrong[0]
    assert harness.unchecked_numbers_in(QUOTING.format(comment="", number="0.5")) != []  # not a prefix match
    named = "<!-- numbers from block 2 -->\n"
    assert harness.unchecked_numbers_in(QUOTING.format(comment=named, number="0.57")) == []
    assert harness.unchecked_numbers_in(QUOTING.format(comment=named, number="0.53")) != []
    missing = harness.unchecked_numbers_in(QUOTING.format(comment="<!-- numbers from block 7 -->\n", number="0.53"))
    assert any("block(s) [7]" in problem for problem in missing)


def test_a_real_page_with_a_number_swapped_for_one_printed_by_another_block_is_caught():
    """On page 10 (then 11), change a quoted decimal into one that only a different block prints."""
    for name in ["10-trained-tiny-model.md", "11-experiments.md"]:
        path = ROOT / "walkthroughs" / name
        text = path.read_text(encoding="utf-8")
        assert harness.unchecked_numbers_in(text, path) == []
        blocks = harness.block_texts(text)
        for paragraph in harness.prose_paragraphs(text):
            own = "\n".join(blocks[n] for n in (paragraph.named or (paragraph.after,)) if n in blocks)
            quoted = [n for n in harness.DECIMAL.findall(paragraph.text) if n in own]
            others = [n for b, t in blocks.items() if b not in (paragraph.named or (paragraph.after,))
                      for n in harness.DECIMAL.findall(t) if n not in own]
            if quoted and others and paragraph.text.count(quoted[0]) == 1:
                break
        else:
            pytest.fail(f"{name}: no paragraph quoting a block's number found")
        lines = text.splitlines()
        row = next(i for i in range(paragraph.line - 1, len(lines)) if re.search(
            rf"(?<![\d.]){re.escape(quoted[0])}(?!\d)", lines[i]))
        lines[row] = re.sub(rf"(?<![\d.]){re.escape(quoted[0])}(?!\d)", others[0], lines[row], count=1)
        problems = harness.unchecked_numbers_in("\n".join(lines) + "\n", path)
        assert any(repr(others[0]) in problem for problem in problems), (name, quoted[0], others[0])


# -- pictures -------------------------------------------------------------------------------------------------

def test_a_missing_stale_unshown_or_undrawn_picture_is_caught_and_the_update_tool_draws_it(tmp_path):
    from minigptoss.views import svg

    page, target = tmp_path / "page.md", tmp_path / "img" / "x.svg"
    code = f"from minigptoss.views import svg\nsvg.save(svg.bars_svg(['a'], [VALUE]), {str(target)!r})\n"
    markdown = "```python\n" + code + "```\n\nThe bars:\n\n![bars](img/x.svg)\n"
    problems = harness.check_markdown(markdown.replace("VALUE", "1.0"), "page.md", page)
    assert [p.message for p in problems] == [f"the picture {target} does not exist yet"]
    assert not target.exists(), "checking must not write the picture"
    pictures = {}
    harness.updated_markdown(markdown.replace("VALUE", "1.0"), "page.md", pictures)
    assert pictures == {target: svg.bars_svg(["a"], [1.0])} and not target.exists()
    target.parent.mkdir()
    target.write_text(pictures[target], encoding="utf-8")
    assert harness.check_markdown(markdown.replace("VALUE", "1.0"), "page.md", page) == []
    stale = harness.check_markdown(markdown.replace("VALUE", "2.0"), "page.md", page)
    assert len(stale) == 1 and "stale" in stale[0].message and "update_walkthroughs" in stale[0].report()
    unshown = harness.check_markdown(markdown.replace("VALUE", "1.0").replace("![bars](img/x.svg)", ""),
                                     "page.md", page)
    assert len(unshown) == 1 and "does not show it" in unshown[0].message
    undrawn = harness.check_markdown(markdown.replace("VALUE", "1.0") + "\n![more](img/y.svg)\n", "page.md", page)
    assert len(undrawn) == 1 and "never saves" in undrawn[0].message


def test_every_picture_in_walkthroughs_img_is_shown_by_a_page():
    shown = {file for page in PAGES for file in harness.shown_pictures(page.read_text(encoding="utf-8"), page)}
    folder = ROOT / "walkthroughs" / "img"
    files = set(folder.glob("*.svg")) if folder.is_dir() else set()
    assert files <= shown, f"pictures no page shows: {sorted(f.name for f in files - shown)}"
    assert shown <= files, f"pictures shown but missing: {sorted(f.name for f in shown - files)}"
