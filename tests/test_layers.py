"""The import rule (README, "How the code is laid out"), read from the package's own source with `ast`:

    root (the model: config, mxfp4, ..., model, inspector, names)   imports NumPy, the standard library, the root, fast/
    fast/                                                           NumPy (numba: the optional extra), the stdlib, the root
    checkpoint/, text/                                              the root at most (plus their own folder)
    views/                                                          the root, checkpoint/, text/, views/
    cli/                                                            anything
and nothing imports cli/ except the entry points (__main__.py). __init__.py is the public API that joins the
folders. A second test: no import cycles between modules.
"""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minigptoss"
STDLIB = set(sys.stdlib_module_names)
THIRD_PARTY_ALLOWED = {
    "root": {"numpy"}, "fast": {"numpy", "numba"}, "checkpoint": {"numpy"}, "text": {"numpy", "tiktoken"},
    "views": {"numpy", "rich", "IPython"}, "cli": None,  # None: anything; IPython: only inside a notebook (as rich)
}
FOLDERS_ALLOWED = {
    "root": {"root", "fast"}, "fast": {"root", "fast"}, "checkpoint": {"root", "checkpoint"},
    "text": {"root", "text"}, "views": {"root", "checkpoint", "text", "views"},
    "cli": {"root", "fast", "checkpoint", "text", "views", "cli", "api"},
}
ENTRY_POINTS = {"minigptoss.__main__", "minigptoss"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def folder_of(module: str) -> str:
    parts = module.split(".")
    if module == "minigptoss":
        return "api"
    if len(parts) >= 3 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "root"


def imports_of(path: Path) -> list[str]:
    """Absolute names of everything a module imports (at any depth, in functions too)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            if prefix.startswith("minigptoss"):
                for alias in node.names:  # `from . import mxfp4` imports a module; `from .x import f` a name
                    candidate = f"{prefix}.{alias.name}"
                    exists = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() or \
                        (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                    found.append(candidate if exists else prefix)
            else:
                found.append(prefix)
    return found


def modules() -> dict[str, list[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_imports_only_what_its_folder_may():
    broken = []
    for module, imported in modules().items():
        folder = folder_of(module)
        if folder == "api" or module == "minigptoss.__main__":
            continue
        for name in imported:
            top = name.split(".")[0]
            if top == "minigptoss":
                target = folder_of(name)
                if target == "cli" and folder != "cli":
                    broken.append(f"{module} imports {name}: only the entry points import cli/")
                elif target not in FOLDERS_ALLOWED[folder]:
                    broken.append(f"{module} ({folder}) imports {name} ({target})")
            elif top not in STDLIB and THIRD_PARTY_ALLOWED[folder] is not None \
                    and top not in THIRD_PARTY_ALLOWED[folder]:
                broken.append(f"{module} ({folder}) imports the third-party {top}")
    assert not broken, "\n".join(broken)


def test_the_rule_sees_a_wrong_import():
    """The checker itself: an import from the root into the terminal code is caught."""
    assert folder_of("minigptoss.model") == "root" and folder_of("minigptoss.cli.step") == "cli"
    assert folder_of("minigptoss.checkpoint") == "checkpoint" and folder_of("minigptoss.fast.mxfp4") == "fast"
    assert "cli" not in FOLDERS_ALLOWED["root"] and "checkpoint" not in FOLDERS_ALLOWED["root"]


def test_no_import_cycles():
    imports = modules()
    graph = {module: {name for name in imported if name in imports} for module, imported in imports.items()}
    # a package's __init__ importing its own submodules is not a cycle of the code's design; drop those edges
    for module in graph:
        graph[module] = {target for target in graph[module] if not target.startswith(module + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
