"""Shared helpers of the benchmark scripts: summaries, machine description, result files."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def summary(values: list[float]) -> dict:
    """Median with min and max (and the raw values) of repeated measurements."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def fmt(s: dict, digits: int = 3) -> str:
    """'0.954 (0.950-0.960)' from a summary."""
    if len(s["values"]) == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def write(name: str, data: dict, markdown: str, out_dir: Path = RESULTS) -> Path:
    """Write results/<name>.json and results/<name>.md; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), **data}
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    m = data["machine"]
    footer = (f"\n\nMachine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
              f"({m['torch_threads']} threads), {m['date']}.\n")
    path = out_dir / f"{name}.md"
    path.write_text(markdown.rstrip() + footer, encoding="utf-8")
    return path


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cli(name: str, doc: str, run, markdown, argv=None) -> int:
    """The command line shared by the benchmark scripts: [--quick] [--out DIR]; runs
    `run(quick)` and writes results/<name>.{json,md}."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None, help="results folder")
    args = parser.parse_args(argv)
    results = run(args.quick)
    kwargs = {"out_dir": Path(args.out)} if args.out else {}
    print(write(name, results, markdown(results), **kwargs).read_text())
    return 0
