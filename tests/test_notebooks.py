"""Notebook execution: the runner behind `make notebooks`, and every notebook with quick settings."""

from __future__ import annotations

import io
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


# ------------------------------------------------------------------ sharing (issue 18)


def _panel_outputs(nb) -> list[dict]:
    return [o for c in nb.cells for o in c.get("outputs", [])
            if str(o.get("data", {}).get("text/plain", "")).startswith("seqrep panel: ")]


@pytest.mark.slow
def test_executed_panel_output_is_its_static_snapshot(executed_05):
    """Issue 28: the shared .ipynb carried the widget state, which JupyterLab draws with no
    kernel behind it under a red "disconnected" icon per widget (tests/test_browser.py
    measures what it shows). It keeps the static snapshot; the HTML page keeps the widgets."""
    import base64

    nb = nbformat.read(executed_05 / "05_live_training.ipynb", as_version=4)
    outputs = _panel_outputs(nb)
    assert len(outputs) == 1, f"expected one panel output (the fallback beside the widget), got {len(outputs)}"
    data = outputs[0]["data"]
    assert set(data) == {"text/html", "image/png", "text/plain"}
    assert "widgets" not in nb.metadata
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    # The last frame and status line of the run the notebook starts in the panel, not of its
    # empty start: the display was updated when the run ended.
    assert data["text/plain"].startswith("seqrep panel: finished #1: epoch 2/2")
    assert "chance: acc" in data["text/plain"] and "\n" not in data["text/plain"]
    assert f"data:image/png;base64,{data['image/png']}" in data["text/html"] and "seqrep-runs" in data["text/html"]
    page = (executed_05 / "05_live_training.html").read_text(encoding="utf-8")
    assert page.count('type="application/vnd.jupyter.widget-view+json"') == 1
    assert 'type="application/vnd.jupyter.widget-state+json"' in page


@pytest.mark.slow
def test_html_pages_are_titled_and_say_their_widgets_are_inert(executed_05):
    """Issue 28: every page was titled "Notebook"; the panel's controls looked live."""
    page = (executed_05 / "05_live_training.html").read_text(encoding="utf-8")
    assert "<title>05_live_training</title>" in page
    note = page.index("class=\"seqrep-inert\"")
    assert "no kernel runs behind this page" in page[note:note + 400]
    assert note < page.index('type="application/vnd.jupyter.widget-view+json"')


@pytest.mark.slow
def test_html_export_loads_nothing_from_the_network(executed_05):
    import re

    from seqrep import offline

    page = (executed_05 / "05_live_training.html").read_text(encoding="utf-8")
    external = re.findall(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["']?(https?:)?//""", page)
    assert external == [], "the page loads something from the network"
    for cdn in ("unpkg.com", "cdn.jsdelivr.net/npm/@jupyter-widgets", "require.min.js", "MathJax", "mermaid.esm"):
        assert cdn not in page.split("@jupyter-widgets/html-manager")[0], cdn
    assert f"@jupyter-widgets/html-manager {offline.VERSION} (BSD-3-Clause" in page
    assert 'type="application/vnd.jupyter.widget-state+json"' in page
    assert (offline.bundle_dir() / "LICENSE").read_text().count("BSD-3-Clause") == 1


@pytest.mark.slow
def test_a_quick_build_says_so_in_its_index(executed_05):
    """Issue 28: a --quick build's index looked like the notebooks' results."""
    index = (executed_05 / "index.html").read_text(encoding="utf-8")
    assert "<b>Quick build</b> (every notebook: <code>quick=True</code>)" in index
    assert index.index("Quick build") < index.index("<table")
    assert "quick=True" in next(line for line in index.split("<tr>") if "05_live_training" in line)


def test_a_full_build_has_no_quick_note():
    from seqrep.notebooks import _quick_note

    assert _quick_note([{"notebook": "01", "parameters": {}}, {"notebook": "02", "parameters": {"epochs": 30}}]) == ""
    assert "(02: " in _quick_note([{"notebook": "01", "parameters": {}},
                                    {"notebook": "02", "parameters": {"quick": True}}])


@pytest.mark.slow
def test_index_shows_each_notebooks_headline_figure_beside_its_key_numbers(executed_05):
    from PIL import Image

    index = (executed_05 / "index.html").read_text(encoding="utf-8")
    record = json.loads((executed_05 / "index.json").read_text())[0]
    thumb = executed_05 / record["thumbnail"]
    assert record["thumbnail"] == "thumbs/05_live_training.png" and thumb.exists()
    assert max(Image.open(thumb).size) <= 400
    row = next(line for line in index.split("<tr>") if "05_live_training" in line)
    assert row.index("<img src='thumbs/05_live_training.png'") < row.index("fixed_val_accuracy = ")
    # The headline figure is the tagged one (broken vs fixed from the init, one panel), drawn
    # at a size the 400 px thumbnail shrinks by less than half (issue 28: 05's was unreadable).
    from seqrep.notebooks import _headline_png

    nb = nbformat.read(executed_05 / "05_live_training.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "headline" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "accuracy_from_init" in tagged[0].source
    full = Image.open(io.BytesIO(_headline_png(nb)))
    assert full.size[0] <= 2 * Image.open(thumb).size[0], (full.size, Image.open(thumb).size)


def test_headline_figure_prefers_a_tagged_cell():
    import base64

    from seqrep.notebooks import _headline_png

    def image_cell(payload: bytes, tags=()):
        cell = nbformat.v4.new_code_cell("", metadata={"tags": list(tags)})
        cell.outputs = [nbformat.v4.new_output("display_data", {"image/png": base64.b64encode(payload).decode()})]
        return cell

    nb = nbformat.v4.new_notebook(cells=[image_cell(b"first", ["headline"]), image_cell(b"last")])
    assert _headline_png(nb) == b"first"
    nb.cells[0].metadata["tags"] = []
    assert _headline_png(nb) == b"last"
    assert _headline_png(nbformat.v4.new_notebook()) is None


def test_fetching_the_widget_manager_without_npm_says_how_to_get_it(monkeypatch, tmp_path):
    from seqrep import offline

    monkeypatch.setattr(offline, "bundle_dir", lambda: tmp_path / "bundle")
    monkeypatch.setattr(offline.shutil, "which", lambda name: None)
    with pytest.raises(seqrep.SeqrepError, match=r"needs npm; install Node.js with npm .* make setup"):
        offline.fetch()


@pytest.mark.slow
def test_fetching_refuses_a_tarball_that_is_not_the_pinned_one(monkeypatch, tmp_path):
    from seqrep import offline

    monkeypatch.setattr(offline, "bundle_dir", lambda: tmp_path / "bundle")
    monkeypatch.setattr(offline, "INTEGRITY", "sha512-" + "A" * 86 + "==")
    with pytest.raises(seqrep.SeqrepError, match=r"is not the pinned @jupyter-widgets/html-manager 1\.0\.15"):
        offline.fetch()
    assert not (tmp_path / "bundle").exists()


def test_without_the_widget_manager_the_html_shows_the_static_fallback(tmp_path, monkeypatch):
    import base64

    from seqrep import offline
    from seqrep.notebooks import export_html

    def unavailable():
        raise seqrep.SeqrepError("fetching it needs npm")

    monkeypatch.setattr(offline, "inline_html", unavailable)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nplanted frame").decode()
    cell = nbformat.v4.new_code_cell("panel")
    cell.outputs = [nbformat.v4.new_output("display_data", {
        "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0, "model_id": "m1"},
        "image/png": png, "text/plain": "seqrep panel: finished #1"})]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "version_major": 2, "version_minor": 0, "state": {"m1": {"model_name": "VBoxModel", "state": {}}}}}
    said: list[str] = []
    page = export_html(nb, tmp_path / "nb.html", log=said.append).read_text()
    assert f"data:image/png;base64,{png}" in page and "widget-view+json" not in page
    assert said == ["nb.html: widgets exported as their static images and text (fetching it needs npm)"]
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[0].outputs[0]["data"]  # left as it was


# ---------------------------------------------------------------------- hostile round two (issue 29)


def test_an_unknown_parameter_is_refused_naming_the_known_ones(tmp_path):
    """`run-notebooks -p nn=5` passed (papermill only warns), and index.json recorded nn=5 as applied."""
    src = tmp_path / "nb"
    src.mkdir()
    _notebook(src / "01_a.ipynb", "pass")
    with pytest.raises(seqrep.SeqrepError, match=r"unknown notebook parameter\(s\) \['valeu'\] \(did you mean "
                       r"value\?\): no selected notebook sets it in its parameters cell.*Known: quick, value\."):
        run_notebooks(None, {"valeu": 5}, notebooks_dir=src, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_each_notebook_gets_and_records_only_the_parameters_it_has(tmp_path, monkeypatch):
    import papermill

    src, out = tmp_path / "nb", tmp_path / "out"
    src.mkdir()
    _notebook(src / "01_a.ipynb", "pass")
    nb = nbformat.read(src / "01_a.ipynb", as_version=4)
    nb.cells[1].source = "quick = False\nepochs, lr = 3, 0.1  # a tuple assignment\nsteps: int = 5"
    nbformat.write(nb, src / "02_b.ipynb")
    given = {}

    def fake_execute(source, output, parameters, **kwargs):
        given[Path(source).stem] = parameters
        Path(output).write_text(Path(source).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(seqrep.notebooks, "export_html", lambda nb, path, log: Path(path).write_text("html"))
    records = run_notebooks(None, {"value": 2, "lr": 0.5, "steps": 9}, notebooks_dir=src, out_dir=out, log=lambda *_: None)
    assert given == {"01_a": {"value": 2}, "02_b": {"lr": 0.5, "steps": 9}}
    assert [r["parameters"] for r in records] == [{"value": 2}, {"lr": 0.5, "steps": 9}]
    assert json.loads((out / "index.json").read_text())[1]["parameters"] == {"lr": 0.5, "steps": 9}


def test_two_runs_at_once_write_their_partial_output_to_files_of_their_own(tmp_path, monkeypatch):
    """Two concurrent runs shared NAME.partial.ipynb (one's output overwrote the other's)."""
    import papermill

    from seqrep.notebooks import _execute

    src, out = tmp_path / "nb", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    _notebook(src / "01_a.ipynb", "pass")
    partials = []

    def fake_execute(source, output, parameters, **kwargs):
        partials.append(Path(output))
        if len(partials) == 1:  # the first run is still writing when the second starts
            _execute(src / "01_a.ipynb", out, {}, 60)
        Path(output).write_text(Path(source).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    _execute(src / "01_a.ipynb", out, {}, 60)
    assert len(partials) == 2 and partials[0] != partials[1]
    assert all(p.name.startswith("01_a.") and p.name.endswith(".partial.ipynb") for p in partials)
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb"]  # no partial file left behind

    def interrupted(source, output, parameters, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _execute(src / "01_a.ipynb", out, {}, 60)
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb"]


def test_an_unreadable_index_is_rebuilt_not_a_raw_error(tmp_path, monkeypatch):
    import papermill

    src, out = tmp_path / "nb", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    _notebook(src / "01_a.ipynb", "pass")
    (out / "index.json").write_text("{not json")
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda source, output, parameters, **kw: Path(output).write_text(Path(source).read_text()))
    monkeypatch.setattr(seqrep.notebooks, "export_html", lambda nb, path, log: Path(path).write_text("html"))
    logs = []
    records = run_notebooks(None, {}, notebooks_dir=src, out_dir=out, log=logs.append)
    assert [r["notebook"] for r in records] == ["01_a"]
    assert any("index.json: unreadable (JSONDecodeError" in line for line in logs)


def test_a_parameter_given_twice_is_refused():
    with pytest.raises(seqrep.SeqrepError, match=r"parameter 'epochs' is given twice \(epochs=30 and 'epochs=40'\)"):
        parse_params(["epochs=30", "epochs=40"])
