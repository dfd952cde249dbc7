"""Execute the notebooks headless into executed/ (.ipynb with outputs and widget state; .html
that renders those widgets with no network, see `seqrep.offline`), write an index with each
notebook's headline figure and key numbers, and let notebooks report those numbers.

`seqrep run-notebooks` (and `make notebooks`) call `run_notebooks`.
"""

from __future__ import annotations

import base64
import datetime as dt
import difflib
import hashlib
import html
import io
import json
import os
import time
from pathlib import Path

from .errors import SeqrepError

SUMMARY_MIME = "application/vnd.seqrep.key-numbers+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PACKAGE = Path(__file__).resolve().parent  # installed or in a checkout
TEMPLATES = PACKAGE / "templates"  # nbconvert templates (seqrep-offline)


def key_numbers(**numbers: float | int | str) -> None:
    """Show a notebook's headline numbers; `run_notebooks` copies them into executed/index.html.

    Example: `key_numbers(broken_accuracy=0.02, fixed_accuracy=0.81)` as a notebook's last cell.
    """
    from IPython.display import display

    text = "\n".join(f"{k}: {v}" for k, v in numbers.items())
    display({SUMMARY_MIME: numbers, "text/plain": text}, raw=True)


def _read_key_numbers(nb) -> dict:
    out = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            out.update(output.get("data", {}).get(SUMMARY_MIME, {}))
    return out


def _fingerprint(notebook: Path, params: dict) -> str:
    """Changes when the notebook, its parameters, any seqrep source file or the HTML template
    changes."""
    h = hashlib.sha256(notebook.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    for source in sorted([*PACKAGE.rglob("*.py"), *TEMPLATES.rglob("*.j2")]):
        h.update(source.read_bytes())
    return h.hexdigest()


def parse_params(pairs: list[str]) -> dict:
    """['epochs=30', 'lr=1e-3', 'dataset=GunPoint'] -> {'epochs': 30, 'lr': 0.001, ...}.
    Values are read as JSON (numbers, true/false, lists) and fall back to strings."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise SeqrepError(f"parameter {pair!r} is not name=value (e.g. -p epochs=30).")
        if name in params:
            raise SeqrepError(f"parameter {name!r} is given twice ({name}={params[name]!r} and {pair!r}); keep one.")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = {"True": True, "False": False, "None": None}.get(value, value)
    return params


def export_html(nb, path: str | os.PathLike, log=print) -> Path:
    """Write an executed notebook (an nbformat node) as one self-contained HTML page that
    opens with no network, titled with the notebook's name (the file's stem): JupyterLab's
    look, figures embedded, and widgets rendered from the saved widget state by the inlined
    widget manager (`seqrep.offline`), each under a note that its controls are inert (no
    kernel is behind the page); nothing comes from a CDN. Where the manager cannot be had (no npm at set-up), widgets are exported as their
    static fallback (the panel's last frame and status line) and `log` says so. Returns the
    path."""
    from nbconvert import HTMLExporter

    from .offline import inline_html

    path = Path(path)
    widgets = ""
    if nb.metadata.get("widgets"):
        try:
            widgets = inline_html()
        except SeqrepError as err:
            log(f"{path.name}: widgets exported as their static images and text ({err})")
            nb = _static_widgets(nb)
    exporter = HTMLExporter(template_name="seqrep-offline", extra_template_basedirs=[str(TEMPLATES)])
    # The page's title is the notebook's name (without one nbconvert titles every page "Notebook").
    body, _ = exporter.from_notebook_node(nb, resources={"seqrep_widgets": widgets,
                                                         "metadata": {"name": path.stem}})
    path.write_text(body, encoding="utf-8")
    return path


def _static_widgets(nb):
    """A copy of `nb` without widget state, whose widget outputs show their static fallback
    (the panel's: status line, last frame and runs table) instead. The executed .ipynb is
    saved so: JupyterLab draws saved widgets that no kernel backs under a red "disconnected"
    icon each (26 on notebook 05's panel, measured by tests/test_browser.py), and their
    controls would look live; the HTML page keeps the widgets, under a note that they are
    inert."""
    import copy

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    return nb


def _headline_png(nb) -> bytes | None:
    """The notebook's headline figure: the last image in a cell tagged "headline", or else
    the last image the notebook shows (where the notebooks put their summary figure)."""
    tagged = [c for c in nb.cells if "headline" in c.get("metadata", {}).get("tags", [])]
    for cell in reversed(tagged or nb.cells):
        for output in reversed(cell.get("outputs", [])):
            png = output.get("data", {}).get("image/png")
            if png:
                return base64.b64decode(png)
    return None


def _write_thumbnail(nb, out_dir: Path, stem: str) -> str | None:
    """A small copy of the headline figure as out_dir/thumbs/STEM.png; its path relative to
    out_dir, or None for a notebook without figures."""
    from PIL import Image

    png = _headline_png(nb)
    if png is None:
        return None
    image = Image.open(io.BytesIO(png))
    image.thumbnail((400, 260))
    path = out_dir / "thumbs" / f"{stem}.png"
    path.parent.mkdir(exist_ok=True)
    image.save(path, optimize=True)
    return path.relative_to(out_dir).as_posix()


def _quick_note(records: list[dict]) -> str:
    """A banner for an index some of whose notebooks ran with quick=True (the tests' tiny
    settings): their numbers are no results, and the page must say so before any of them."""
    quick = [r["notebook"] for r in records if r.get("parameters", {}).get("quick")]
    if not quick:
        return ""
    which = "every notebook" if len(quick) == len(records) else ", ".join(quick)
    return (f"<p class='quick' style='background:#fff3cd;border:1px solid #b08800;padding:.6em'><b>Quick "
            f"build</b> ({html.escape(which)}: <code>quick=True</code>): the tiny settings the tests use, so "
            "these figures and numbers are not the notebooks' results. <code>make notebooks</code> builds "
            "those.</p>")


def _write_index(out_dir: Path, records: list[dict]) -> Path:
    from importlib.metadata import version

    import torch

    __version__ = version("seqrep")

    rows = []
    for r in records:
        numbers = "<br>".join(
            f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in r["key_numbers"].items()
        )
        thumb = r.get("thumbnail")
        figure = (f"<a href='{html.escape(r['html'])}'><img src='{html.escape(thumb)}' "
                  f"alt='headline figure of {html.escape(r['notebook'])}'></a>" if thumb else "")
        params = ", ".join(f"{k}={v!r}" for k, v in r.get("parameters", {}).items()) or "defaults"
        rows.append(
            f"<tr><td><a href='{html.escape(r['html'])}'>{html.escape(r['notebook'])}</a>"
            f" (<a href='{html.escape(r['ipynb'])}'>ipynb</a>)</td><td>{r['status']}</td>"
            f"<td>{html.escape(params)}</td>"
            f"<td>{html.escape(r['ran_at'])}</td><td>{r['seconds']:.1f}</td>"
            f"<td class='figure'>{figure}</td><td>{numbers}</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>seqrep notebooks</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.4em .8em;vertical-align:top;text-align:left}}
td.figure img{{display:block;max-width:400px;border:0}}</style>
</head><body><h1>seqrep: executed notebooks</h1>
{_quick_note(records)}
<p>seqrep {__version__}, torch {torch.__version__}, built {dt.datetime.now():%Y-%m-%d %H:%M}.</p>
<table><tr><th>notebook</th><th>status</th><th>parameters</th><th>run at</th><th>seconds</th><th>headline figure</th>
<th>key numbers</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    (out_dir / "index.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def _ipc_kernel_manager(directory: str):
    """A kernel manager whose kernels talk over local sockets in `directory` (IPC) instead of
    TCP ports: nothing listens on the network, and ipykernel no longer warns that it is
    "running over TCP without encryption" for every notebook."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            return os.path.join(directory, "kernel")

    return IPCKernelManager


def _select(notebooks_dir: Path, names: list[str] | None) -> list[Path]:
    every = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not every:
        raise SeqrepError(
            f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}; run from the project folder "
            "(the one holding notebooks/), or pass notebooks_dir."
        )
    if not names:
        return every
    wanted = {Path(n).stem for n in names}
    unknown = wanted - {p.stem for p in every}
    if unknown:
        raise SeqrepError(
            f"no notebook named {sorted(unknown)} in {notebooks_dir}; known: {[p.stem for p in every]}."
        )
    return [p for p in every if p.stem in wanted]


def _parameter_names(nb_path: Path) -> set[str]:
    """The names a notebook's cell tagged `parameters` assigns: what papermill can set."""
    import ast

    import nbformat

    for cell in nbformat.read(nb_path, as_version=4).cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError as err:
                raise SeqrepError(f"{nb_path.name}: its parameters cell is not valid Python ({err.msg}, "
                                  f"line {err.lineno}); fix it in the notebook.") from None
            return {node.id for stmt in tree.body if isinstance(stmt, (ast.Assign, ast.AnnAssign))
                    for target in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
                    for node in ast.walk(target) if isinstance(node, ast.Name)}
    return set()


def _applied(selected: list[Path], params: dict) -> dict[str, dict]:
    """Per notebook, the parameters its `parameters` cell has (papermill would inject the
    others too, where they change nothing). A parameter no selected notebook has is a typo:
    refused, naming the known ones."""
    known = {p.stem: _parameter_names(p) for p in selected}
    every = set().union(*known.values())
    unknown = sorted(set(params) - every)
    if unknown:
        close = [c for u in unknown for c in difflib.get_close_matches(u, every, n=1)]
        raise SeqrepError(
            f"unknown notebook parameter(s) {unknown}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f": no selected notebook sets {'it' if len(unknown) == 1 else 'them'} in its parameters "
            f"cell, so it would change nothing. Known: {', '.join(sorted(every))}."
        )
    return {stem: {k: v for k, v in params.items() if k in names} for stem, names in known.items()}


def _execute(nb_path: Path, out_dir: Path, params: dict, timeout: int) -> tuple[Path, float]:
    """Run one notebook on a fresh kernel into out_dir; (the executed copy, seconds). A failure
    keeps its partial output as NAME.failed.ipynb and raises naming the cell. The partial
    output goes to a file of this run's own (two runs at once never write into one)."""
    import tempfile

    import papermill

    fd, name = tempfile.mkstemp(prefix=f"{nb_path.stem}.", suffix=".partial.ipynb", dir=out_dir)
    os.close(fd)
    partial = Path(name)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="seqrep-kernel-") as sockets:
            papermill.execute_notebook(
                str(nb_path), str(partial), parameters=params, cwd=str(nb_path.parent),
                progress_bar=False, execution_timeout=timeout, kernel_name="python3",
                kernel_manager_class=_ipc_kernel_manager(sockets),
            )
    except BaseException as err:
        failed = out_dir / f"{nb_path.stem}.failed.ipynb"
        if partial.exists() and partial.stat().st_size:
            partial.replace(failed)
        partial.unlink(missing_ok=True)
        if not isinstance(err, papermill.PapermillExecutionError):
            raise
        raise SeqrepError(
            f"{nb_path.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}). The "
            f"executed copy with the traceback is {failed}; notebooks before it are in {out_dir}."
        ) from None
    target = out_dir / nb_path.name
    partial.replace(target)
    (out_dir / f"{nb_path.stem}.failed.ipynb").unlink(missing_ok=True)
    return target, time.perf_counter() - start


def run_notebooks(
    names: list[str] | None = None,
    params: dict | None = None,
    *,
    notebooks_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    timeout: int = 1800,
    log=print,
) -> list[dict]:
    """Execute notebooks in order, each on a fresh kernel, into out_dir as .ipynb and .html.

    names: notebook file names or stems (default: every NN_*.ipynb in notebooks_dir, default
    ./notebooks; out_dir defaults to ./executed). params: papermill parameters, injected after
    the `parameters` cell of every notebook that sets them there (and recorded in the index as
    applied only there); one that no selected notebook sets is refused as a typo. A notebook
    whose source, parameters and seqrep sources are unchanged since its last successful run is
    skipped unless `force`. A
    failing notebook stops the run with a SeqrepError naming it, the cell and the error; its
    partial output is kept as NAME.failed.ipynb and earlier results stay in place.
    Returns one record per notebook (also written to out_dir/index.json and index.html).
    """
    import nbformat

    notebooks_dir = Path(notebooks_dir or Path.cwd() / "notebooks")
    out_dir = Path(out_dir or Path.cwd() / "executed")
    params = dict(params or {})
    selected = _select(notebooks_dir, names)
    applied = _applied(selected, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous, ours = _read_index(out_dir, log), {}
    for nb_path in selected:
        given = applied[nb_path.stem]
        fingerprint = _fingerprint(nb_path, given)
        old = previous.get(nb_path.stem)
        if not force and old and old.get("fingerprint") == fingerprint and (out_dir / nb_path.name).exists():
            log(f"{nb_path.name}: unchanged since {old['ran_at']}, skipped (--force re-runs it)")
            continue
        log(f"{nb_path.name}: executing ...")
        target, seconds = _execute(nb_path, out_dir, given, timeout)
        nb = nbformat.read(target, as_version=4)
        html_path = target.with_suffix(".html")
        export_html(nb, html_path, log)
        nbformat.write(_static_widgets(nb), target)  # the .ipynb to share: its widgets' static fallback
        ours[nb_path.stem] = {
            "notebook": nb_path.stem, "ipynb": target.name, "html": html_path.name, "status": "ok",
            "seconds": round(seconds, 1), "ran_at": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}",
            "parameters": given, "key_numbers": _read_key_numbers(nb), "fingerprint": fingerprint,
            "thumbnail": _write_thumbnail(nb, out_dir, nb_path.stem),
        }
        log(f"{nb_path.name}: ok in {seconds:.1f} s -> {target}, {html_path.name}")
        _write_index(out_dir, _merged(out_dir, ours, log))
    ordered = _merged(out_dir, ours, log)
    log(f"index: {_write_index(out_dir, ordered)}")
    return ordered


def _read_index(out_dir: Path, log) -> dict[str, dict]:
    """{notebook: record} of out_dir/index.json; empty (said in the log) when it is missing or
    unreadable: it only lists results, and the notebooks are executed again."""
    path = out_dir / "index.json"
    if not path.exists():
        return {}
    try:
        return {r["notebook"]: r for r in json.loads(path.read_text(encoding="utf-8"))}
    except (ValueError, TypeError, KeyError, OSError) as err:
        log(f"{path}: unreadable ({type(err).__name__}: {err}); it is rebuilt from this run's notebooks")
        return {}


def _merged(out_dir: Path, ours: dict[str, dict], log) -> list[dict]:
    """The index as it is on disk now (another run may have added to it meanwhile) with this
    run's records over it, in notebook order."""
    records = {**_read_index(out_dir, log), **ours}
    return sorted(records.values(), key=lambda r: r["notebook"])
