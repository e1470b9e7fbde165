"""The bundled weights travel with the package: short names, any directory, editable or not.

pyproject.toml installs the top-level tiny_weights/ folder as minigptoss/tiny_weights/ (subfolders too);
`minigptoss.bundled(name)` finds it either there (a wheel, `pip install .`) or beside the package (a source
checkout, `pip install -e .`). CI (.ci/run) also builds the real wheel and runs it from outside the repository.
"""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import minigptoss
from minigptoss.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [72, 105, 33]


@pytest.fixture(scope="module")
def tiny_logits():
    return minigptoss.load(minigptoss.TINY_WEIGHTS).forward(PROMPT)


@pytest.fixture
def bundle_with_sort(tmp_path, monkeypatch):
    """A temporary bundle: the tiny model's files plus one placeholder subfolder sort/ (a different random model)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for path in minigptoss.TINY_WEIGHTS.iterdir():
        if path.is_file():
            shutil.copy(path, bundle / path.name)
    minigptoss.save(minigptoss.random_model(minigptoss.TINY, seed=1), bundle / "sort")
    monkeypatch.setattr(minigptoss, "TINY_WEIGHTS", bundle)
    return bundle


def test_short_names_find_the_bundled_model_from_any_directory(tmp_path, monkeypatch, tiny_logits):
    monkeypatch.chdir(tmp_path)
    assert minigptoss.bundled() == minigptoss.bundled("tiny_weights") == minigptoss.TINY_WEIGHTS
    assert (minigptoss.bundled("tiny") / "config.json").is_file()
    for name in ("tiny_weights", "tiny"):
        np.testing.assert_array_equal(minigptoss.load(name).forward(PROMPT), tiny_logits)


def test_a_name_not_bundled_is_one_line_listing_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listed = ", ".join(minigptoss.bundled_names())
    for name in ("nonesuch", "gpt-oss-20b"):
        with pytest.raises(CheckpointError) as caught:
            minigptoss.load(name)
        message = str(caught.value)
        assert message.startswith(f"{name}: no such folder") and f"bundled: {listed}" in message
        assert "\n" not in message


def test_subfolders_of_the_bundle_are_short_names(bundle_with_sort, tmp_path, monkeypatch, tiny_logits):
    monkeypatch.chdir(tmp_path)
    assert minigptoss.bundled_names() == ["tiny", "tiny_weights", "sort"]
    assert minigptoss.bundled("sort") == bundle_with_sort / "sort"
    sort = minigptoss.load("sort").forward(PROMPT)
    assert not np.array_equal(sort, tiny_logits)
    np.testing.assert_array_equal(sort, minigptoss.random_model(minigptoss.TINY, seed=1).forward(PROMPT))


def test_a_real_path_wins_over_a_short_name(tmp_path, monkeypatch, tiny_logits):
    minigptoss.save(minigptoss.random_model(minigptoss.TINY, seed=2), tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    mine = minigptoss.load("tiny")
    assert mine.checkpoint.folder.resolve() == (tmp_path / "tiny").resolve()
    assert not np.array_equal(mine.forward(PROMPT), tiny_logits)


def test_every_package_folder_is_listed_in_pyproject():
    """A subpackage missing from [tool.setuptools] packages would be absent from the wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "minigptoss").rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {"minigptoss.tiny_weights"}
    assert setuptools["package-dir"] == {"minigptoss.tiny_weights": "tiny_weights"}


def test_a_non_editable_build_holds_the_weights_and_their_subfolders(tmp_path):
    """setuptools' build_py (what a wheel is made of) on a temporary copy of the project with an extra placeholder
    subfolder tiny_weights/placeholder/; the built package, imported from elsewhere, finds every bundled model
    by its short name."""
    pytest.importorskip("setuptools.config.pyprojecttoml")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "minigptoss", project / "minigptoss", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tiny_weights", project / "tiny_weights")
    for name in ("config.json", "model.safetensors"):
        (project / "tiny_weights" / "placeholder").mkdir(exist_ok=True)
        shutil.copy(ROOT / "tiny_weights" / name, project / "tiny_weights" / "placeholder" / name)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    build = ("import warnings; warnings.simplefilter('ignore')\n"
             "from setuptools.dist import Distribution\n"
             "from setuptools.config.pyprojecttoml import apply_configuration\n"
             "dist = apply_configuration(Distribution({'script_name': 'setup.py'}), 'pyproject.toml')\n"
             "dist.script_args = ['-q', 'build_py', '--build-lib', 'built']\n"
             "dist.parse_command_line(); dist.run_commands()\n")
    subprocess.run([sys.executable, "-c", build], cwd=project, check=True, capture_output=True)
    data = sorted(str(path.relative_to(project / "built")) for path in (project / "built").rglob("*")
                  if path.is_file() and path.suffix != ".py")
    shipped = sorted(str(Path("minigptoss") / path.relative_to(project))
                     for path in (project / "tiny_weights").rglob("*") if path.is_file())
    assert data == shipped and "minigptoss/tiny_weights/placeholder/model.safetensors" in data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = ("import minigptoss; print(minigptoss.TINY_WEIGHTS); print(minigptoss.bundled_names()); "
             "[minigptoss.load(name) for name in minigptoss.bundled_names()]")
    env = {**os.environ, "PYTHONPATH": str(project / "built")}
    shown = subprocess.run([sys.executable, "-c", check], cwd=elsewhere, env=env, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    subfolders = sorted(path.name for path in (project / "tiny_weights").iterdir() if path.is_dir())
    assert shown[0] == str(project / "built" / "minigptoss" / "tiny_weights")
    assert shown[1] == str(["tiny", "tiny_weights", *subfolders]) and "placeholder" in shown[1]
