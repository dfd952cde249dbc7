"""`seqrep diagnose`: read a training log — seqrep's, Hugging Face Trainer's, Lightning's CSV,
TensorBoard's, or any CSV / JSON Lines of metrics — and say why the model is not learning.

    report = seqrep.diagnose("runs/my-run")          # a log file or the folder holding one
    print(report)                                     # verdict, evidence, next check
    report.kind, report.to_dict()                     # the same as data

`diagnose_records(records)` diagnoses records already in memory (a running fit's history: the
live panel's running verdict); `follow(path)` re-reads a growing log until its run ends.
Readers: `readers.py`; the rules and their measured thresholds: `rules.py`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable

from ..errors import SeqrepError
from .curves import METRICS, from_records
from .readers import _seqrep_context, read_curves
from .report import Report, diagnose_curves
from .rules import ORDER, Finding

__all__ = ["METRICS", "ORDER", "Finding", "Report", "diagnose", "diagnose_records", "follow"]


def _check_classes(classes) -> None:
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 2):
        raise SeqrepError(f"classes must be a whole number >= 2 (the number of classes), got {classes!r}.")


def diagnose(path: str | os.PathLike, *, map: dict[str, str] | None = None,
             classes: int | None = None) -> Report:
    """Diagnose the training log at `path` (a file, or a folder: its log is found).

    map: {metric: column} for columns with unusual names, e.g. {"val_acc": "top1"} (metrics:
    `METRICS`). classes: the number of classes when the log does not say (seqrep's and HF's
    logs do; Lightning's hparams.yaml does when it has num_classes).
    """
    _check_classes(classes)
    curves, others = read_curves(path, map)
    curves.classes = classes or curves.classes
    return diagnose_curves(curves, others)


def diagnose_records(records: Iterable[dict], *, classes: int | None = None,
                     map: dict[str, str] | None = None) -> Report:
    """Diagnose records already in memory: seqrep epoch records (`FitResult.history`, the run
    log's lines, with or without its events) or any dicts of metrics with 'step' / 'epoch'."""
    _check_classes(classes)
    records = [r for r in records if isinstance(r, dict)]
    curves = from_records([r for r in records if "event" not in r], map)
    if any("event" in r for r in records):
        curves.fmt = "seqrep"
        _seqrep_context(records, curves)
    curves.classes = classes or curves.classes
    return diagnose_curves(curves)


def follow(path: str | os.PathLike, *, interval: float = 2.0, map: dict[str, str] | None = None,
           classes: int | None = None, out=None, max_updates: int | None = None) -> Report | None:
    """Re-read the log every `interval` seconds, printing a line whenever it grows or the
    verdict changes, until the log records the end of its run (seqrep's last epoch or stop
    event, the Trainer's summary) or Ctrl-C; returns the last report."""
    out = out or sys.stdout
    report, seen, updates = None, None, 0
    try:
        while max_updates is None or updates < max_updates:
            try:
                report = diagnose(path, map=map, classes=classes)
            except SeqrepError as err:
                if seen != str(err):
                    print(f"waiting: {err}", file=out, flush=True)
                seen = str(err)
            else:
                key = (report.source["points"], report.kind)
                if key != seen:
                    print(f"[{report.source['span']}] {report.verdict}", file=out, flush=True)
                    seen, updates = key, updates + 1
                if report.source.get("ended"):
                    break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return report
