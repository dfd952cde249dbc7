"""Execute the notebooks headless into executed/ (.ipynb with outputs and widget state, .html),
write an index, and let notebooks report their key numbers.

`seqrep run-notebooks` (and `make notebooks`) call `run_notebooks`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import time
from pathlib import Path

from .errors import SeqrepError

SUMMARY_MIME = "application/vnd.seqrep.key-numbers+json"
ROOT = Path(__file__).resolve().parent.parent


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
    """Changes when the notebook, its parameters or any seqrep source file changes."""
    h = hashlib.sha256(notebook.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    for source in sorted((ROOT / "seqrep").rglob("*.py")):
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
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = {"True": True, "False": False, "None": None}.get(value, value)
    return params


def _export_html(nb, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


def _write_index(out_dir: Path, records: list[dict]) -> Path:
    import torch

    from . import __version__

    rows = []
    for r in records:
        numbers = "<br>".join(
            f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in r["key_numbers"].items()
        )
        rows.append(
            f"<tr><td><a href='{html.escape(r['html'])}'>{html.escape(r['notebook'])}</a>"
            f" (<a href='{html.escape(r['ipynb'])}'>ipynb</a>)</td><td>{r['status']}</td>"
            f"<td>{html.escape(r['ran_at'])}</td><td>{r['seconds']:.1f}</td><td>{numbers}</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>seqrep notebooks</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.4em .8em;vertical-align:top;text-align:left}}</style>
</head><body><h1>seqrep: executed notebooks</h1>
<p>seqrep {__version__}, torch {torch.__version__}, built {dt.datetime.now():%Y-%m-%d %H:%M}.</p>
<table><tr><th>notebook</th><th>status</th><th>run at</th><th>seconds</th><th>key numbers</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    (out_dir / "index.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def run_notebooks(
    names: list[str] | None = None,
    params: dict | None = None,
    *,
    notebooks_dir: str | os.PathLike = ROOT / "notebooks",
    out_dir: str | os.PathLike = ROOT / "executed",
    force: bool = False,
    timeout: int = 1800,
    log=print,
) -> list[dict]:
    """Execute notebooks in order, each on a fresh kernel, into out_dir as .ipynb and .html.

    names: notebook file names or stems (default: every NN_*.ipynb). params: papermill
    parameters given to every notebook, injected after its `parameters` cell. A notebook whose source, parameters and seqrep
    sources are unchanged since its last successful run is skipped unless `force`. A failing
    notebook stops the run with a SeqrepError naming it, the cell and the error; its partial
    output is kept as NAME.failed.ipynb and earlier results stay in place.
    Returns one record per notebook (also written to out_dir/index.json and index.html).
    """
    import nbformat
    import papermill

    notebooks_dir, out_dir = Path(notebooks_dir), Path(out_dir)
    params = dict(params or {})
    every = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if names:
        wanted = {Path(n).stem for n in names}
        unknown = wanted - {p.stem for p in every}
        if unknown:
            raise SeqrepError(
                f"no notebook named {sorted(unknown)} in {notebooks_dir}; "
                f"known: {[p.stem for p in every]}."
            )
        every = [p for p in every if p.stem in wanted]
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    previous = {}
    if index_path.exists():
        previous = {r["notebook"]: r for r in json.loads(index_path.read_text(encoding="utf-8"))}
    records = dict(previous)
    for nb_path in every:
        target = out_dir / nb_path.name
        fingerprint = _fingerprint(nb_path, params)
        old = previous.get(nb_path.stem)
        if not force and old and old.get("fingerprint") == fingerprint and target.exists():
            log(f"{nb_path.name}: unchanged since {old['ran_at']}, skipped (--force re-runs it)")
            continue
        log(f"{nb_path.name}: executing ...")
        partial = out_dir / f"{nb_path.stem}.partial.ipynb"
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb_path), str(partial), parameters=params, cwd=str(notebooks_dir),
                progress_bar=False, execution_timeout=timeout, kernel_name="python3",
            )
        except papermill.PapermillExecutionError as err:
            failed = out_dir / f"{nb_path.stem}.failed.ipynb"
            if partial.exists():
                partial.replace(failed)
            raise SeqrepError(
                f"{nb_path.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}). "
                f"The executed copy with the traceback is {failed}; notebooks before it are in "
                f"{out_dir}."
            ) from None
        seconds = time.perf_counter() - start
        partial.replace(target)
        nb = nbformat.read(target, as_version=4)
        html_path = target.with_suffix(".html")
        _export_html(nb, html_path)
        (out_dir / f"{nb_path.stem}.failed.ipynb").unlink(missing_ok=True)
        records[nb_path.stem] = {
            "notebook": nb_path.stem,
            "ipynb": target.name,
            "html": html_path.name,
            "status": "ok",
            "seconds": round(seconds, 1),
            "ran_at": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}",
            "parameters": params,
            "key_numbers": _read_key_numbers(nb),
            "fingerprint": fingerprint,
        }
        log(f"{nb_path.name}: ok in {seconds:.1f} s -> {target}, {html_path.name}")
        _write_index(out_dir, sorted(records.values(), key=lambda r: r["notebook"]))
    ordered = sorted(records.values(), key=lambda r: r["notebook"])
    log(f"index: {_write_index(out_dir, ordered)}")
    return ordered
