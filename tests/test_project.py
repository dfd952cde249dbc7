"""The project's own files: dependencies agree, notebooks are stored clean, CI runs the tests."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject_runtime_dependencies():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {CONDA_NAMES.get(_name(r), _name(r)) for r in pyproject["project"]["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"


def notebook_problems(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        f"cell {i} has outputs or an execution count"
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    assert notebook_problems(path) == [], f"{path.name}: strip outputs (jupyter nbconvert --clear-output)"


def test_the_outputs_check_can_fail(tmp_path):
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps({"cells": [
        {"cell_type": "code", "execution_count": 3, "outputs": [{"output_type": "stream"}], "source": ""}
    ]}))
    assert notebook_problems(dirty) == ["cell 0 has outputs or an execution count"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert "set -euo pipefail" in ci
    assert re.search(r"^make test\b", ci, flags=re.MULTILINE)


def test_generated_folders_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("executed/", ".venv/", "runs/", "__pycache__/"):
        assert entry in ignored


def test_torch_is_pinned_in_the_install_step():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^TORCH \?= torch==\d+\.\d+\.\d+$", makefile, flags=re.MULTILINE)


def test_every_subpackage_is_installed():
    """A non-editable install must carry seqrep.data, seqrep.doctor, seqrep.live ..."""
    from setuptools import find_packages

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = set(find_packages(str(ROOT), **pyproject["tool"]["setuptools"]["packages"]["find"]))
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "seqrep").rglob("__init__.py")}
    assert on_disk <= found, f"left out of the package: {sorted(on_disk - found)}"
