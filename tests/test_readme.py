"""README's Python API example runs as written (in a temporary directory: it saves a checkpoint there)."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"^```python\n(.*?)^```$", text, re.S | re.M).group(1)
    monkeypatch.chdir(tmp_path)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        exec(compile(code, "README.md", "exec"), {})
    assert "b'02233679'" in shown.getvalue()  # the sort model's answer to 26023397=
    assert (tmp_path / "my_checkpoint" / "model.safetensors").is_file()
