"""Notebook execution: the runner behind `make notebooks`, and every notebook with quick settings."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import seqrep
from seqrep.notebooks import parse_params, run_notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("quick = False\nvalue = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# toy"),
        params,
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_runner_executes_exports_skips_and_names_failures(tmp_path):
    src, out = tmp_path / "nb", tmp_path / "executed"
    src.mkdir()
    _notebook(src / "01_ok.ipynb", "from seqrep.notebooks import key_numbers\nkey_numbers(double=value * 2)")
    _notebook(src / "02_bad.ipynb", "raise RuntimeError('planted failure')")
    logs: list[str] = []

    with pytest.raises(seqrep.SeqrepError, match=r"02_bad.ipynb failed in cell \d+ \(RuntimeError: planted failure\)"):
        run_notebooks(None, {"value": 21}, notebooks_dir=src, out_dir=out, log=logs.append)
    assert (out / "01_ok.ipynb").exists() and (out / "01_ok.html").exists()
    assert (out / "02_bad.failed.ipynb").exists() and not (out / "02_bad.ipynb").exists()
    index = json.loads((out / "index.json").read_text())
    assert index[0]["key_numbers"] == {"double": 42}
    assert "double = 42" in (out / "index.html").read_text()
    executed = nbformat.read(out / "01_ok.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")

    (src / "02_bad.ipynb").unlink()
    logs.clear()
    run_notebooks(None, {"value": 21}, notebooks_dir=src, out_dir=out, log=logs.append)
    assert any("unchanged" in line and "skipped" in line for line in logs)
    logs.clear()
    run_notebooks(None, {"value": 5}, notebooks_dir=src, out_dir=out, log=logs.append)
    assert any("01_ok.ipynb: ok" in line for line in logs)  # new parameters re-execute
    assert json.loads((out / "index.json").read_text())[0]["key_numbers"] == {"double": 10}


def test_parse_params():
    assert parse_params(["epochs=30", "lr=1e-3", "name=GunPoint", "full=True", "seeds=[1,2]"]) == {
        "epochs": 30, "lr": 0.001, "name": "GunPoint", "full": True, "seeds": [1, 2]
    }
    with pytest.raises(seqrep.SeqrepError, match="is not name=value"):
        parse_params(["epochs"])


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_with_quick_parameters(path, tmp_path):
    import papermill

    papermill.execute_notebook(
        str(path), str(tmp_path / path.name), parameters={"quick": True},
        cwd=str(path.parent), progress_bar=False, kernel_name="python3",
    )
