"""The house is layered: every import inside seqrep points to a lower layer (imports inside
functions and under TYPE_CHECKING count), so the package has no import cycle. The layers are
drawn in CONTRIBUTING.md; a new module must be placed in one here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "seqrep"

# Bottom to top. A room is a module, or a subpackage as a whole (its files import each other
# freely); a room may import only rooms of lower layers.
LAYERS = [
    ["errors"],
    ["config", "data", "offline"],
    ["rocket", "runlog", "notebooks"],
    ["model"],
    ["legacy"],
    ["build"],
    ["imbalance", "checkpoint", "doctor", "diagnosis"],
    ["plots", "inference"],
    ["callbacks"],
    ["plan"],
    ["builtin"],
    ["train"],
    ["experiments", "live"],
    ["cli", "__init__"],
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room_of(module: str) -> str:
    """seqrep.data.archives -> data; seqrep -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def seqrep_imports(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """(imported seqrep module, line) for every import in the file, wherever it stands."""
    module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "seqrep"]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] != "seqrep":
                continue
            # `from . import x` names a module x when there is one
            subs = [f"{target}.{a.name}" for a in node.names
                    if (root.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                    or (root.parent / f"{target}.{a.name}".replace(".", "/")).is_dir()]
            found += [(t, node.lineno) for t in (subs or [target])]
    return found


def upward_imports(root: Path = ROOT) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        here = room_of(module)
        if here not in LAYER:
            problems.append(f"{path.relative_to(root.parent)}: room {here!r} is in no layer of LAYERS")
            continue
        for target, line in seqrep_imports(path, root):
            there = room_of(target)
            if there != here and LAYER.get(there, len(LAYERS)) >= LAYER[here]:
                problems.append(f"{path.relative_to(root.parent)}:{line}: {here} imports {there} "
                                f"(layer {LAYER.get(there)} >= {LAYER[here]})")
    return problems


def test_every_import_points_down_a_layer():
    assert upward_imports() == []


def test_the_check_sees_imports_inside_functions_and_type_checking(tmp_path):
    pkg = tmp_path / "seqrep"
    (pkg / "data").mkdir(parents=True)
    (pkg / "errors.py").write_text("def f():\n    from .train import fit\n")
    (pkg / "config.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .model import X\n")
    (pkg / "data" / "__init__.py").write_text("from . import archives\n")
    (pkg / "data" / "archives.py").write_text("from ..errors import SeqrepError\n")
    (pkg / "mystery.py").write_text("")
    problems = upward_imports(pkg)
    assert any("errors imports train" in p for p in problems)
    assert any("config imports model" in p for p in problems)
    assert any("'mystery' is in no layer" in p for p in problems)
    assert not any("data/" in p for p in problems)  # inside a room, and downward: fine


@pytest.mark.parametrize("room", [r for rooms in LAYERS for r in rooms if r != "__init__"])
def test_every_layered_room_exists(room):
    assert (ROOT / f"{room}.py").exists() or (ROOT / room).is_dir()


MAX_FUNCTION_LINES = 60  # CONTRIBUTING: a function that needs more is two functions


def long_functions(root: Path) -> list[str]:
    """'path:line name (n lines)' of every function or method in `root`'s .py files longer
    than MAX_FUNCTION_LINES: signature, docstring and body counted, decorators not."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_is_longer_than_sixty_lines():
    assert long_functions(ROOT) == []


def test_the_length_check_sees_a_long_function(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES + "\n\ndef g():\n    pass\n")
    assert long_functions(tmp_path / "pkg") == [f"pkg/m.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
