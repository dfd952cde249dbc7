"""The diagnosis of one log: a verdict first, then its evidence with the steps / epochs it
comes from, then the next check to run; the other findings after it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .curves import Curves
from .rules import RULES, Finding, Run

__all__ = ["Report", "diagnose_curves"]

_HEALTHY_NEXT = (
    "nothing in this log says the model is not learning. What no log can show: labels "
    "shuffled against their inputs in both sets, leakage between training and validation, or "
    "a model that is merely weak; compare with a baseline that has nothing to get wrong "
    "(notebook 02: MiniRocket) and check per-class recall (seqrep.per_class_report)."
)


@dataclass
class Report:
    """What `seqrep.diagnose` found. kind: 'healthy', 'too_early' or the verdict finding's
    kind; findings: every rule that fired, the verdict's first; measured: every rule's
    statistics, fired or not; source: the log (path, format, x unit, points, classes, how
    the run ended, reading notes)."""

    verdict: str
    kind: str
    findings: list[Finding]
    next_check: str
    source: dict
    measured: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.kind in ("healthy", "too_early")

    def to_dict(self) -> dict:
        return _plain({"verdict": self.verdict, "kind": self.kind, "next_check": self.next_check,
                       "findings": [f.to_dict() for f in self.findings], "source": self.source,
                       "measured": self.measured})

    def __str__(self) -> str:
        src = self.source
        points = f"{src['points']} training points over {src['span']}" if src["points"] else "no training point"
        head = [f"{src.get('path') or 'records'} ({src['format']}, {points}"
                + (f"; {src['ended']}" if src.get("ended") else "") + ")",
                f"VERDICT: {self.verdict}"]
        lead = self.findings[0] if self.findings and self.findings[0].kind == self.kind else None
        if lead:
            head += [f"  - {line}" for line in lead.evidence]
        head.append(f"NEXT: {self.next_check}")
        for f in self.findings[1 if lead else 0:]:
            head.append(f"also: {f.title}")
            head += [f"  - {line}" for line in f.evidence]
        head += [f"note: {n}" for n in src.get("notes", [])]
        return "\n".join(head)


def _plain(value):
    """JSON-safe: numpy scalars to numbers, non-finite floats to strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _source(curves: Curves, others) -> dict:
    loss = curves.get("train_loss")
    span = "nothing yet"
    if loss is not None:
        span = f"{curves.unit}s {loss.x.min():g}-{loss.x.max():g}"
    notes = list(curves.notes) + [e["text"] for e in curves.events if e["kind"] in ("resume", "checked")]
    if others:
        notes.append("also found here: " + ", ".join(map(str, others[:5])) + (" ..." if len(others) > 5 else "")
                     + " (pass one to diagnose it)")
    if not curves.classes:
        notes.append("number of classes unknown (pass classes=C / --classes C): the rules that compare "
                     "with ln(C) and 1/C are off")
    return {"path": curves.path, "format": curves.fmt, "unit": curves.unit, "span": span,
            "points": 0 if loss is None else len(loss), "classes": curves.classes, "ended": curves.ended,
            "metrics": sorted(curves.series), "notes": notes}


def diagnose_curves(curves: Curves, others=()) -> Report:
    """Run every rule on `curves`; the verdict is the first finding in `rules.ORDER`."""
    source = _source(curves, list(others))
    loss = curves.get("train_loss")
    run = Run(curves)
    findings, measured = [], {}
    for kind, rule_fn in RULES:
        stats, finding = rule_fn(run)
        measured[kind] = stats
        if finding is not None:
            findings.append(finding)
    if findings:
        lead = findings[0]
        return Report(lead.title, lead.kind, findings, lead.next_check, source, measured)
    if loss is None:
        return Report("no training loss in this log; nothing to diagnose", "too_early", [],
                      f"the log holds {', '.join(sorted(curves.series)) or 'no metrics'}; if one of them "
                      "is the training loss, name it: --map train_loss=COLUMN.", source, measured)
    if len(loss) < 3:
        return Report(f"too early to tell: {len(loss)} training point(s) logged", "too_early", [],
                      "wait for more points (seqrep diagnose PATH --follow re-reads as the log grows).",
                      source, measured)
    return Report(_healthy_line(run), "healthy", [], _HEALTHY_NEXT, source, measured)


def _healthy_line(run: Run) -> str:
    loss = run.loss
    line = f"learning: training loss {loss.y[0]:.3g} -> {loss.y[-1]:.3g} ({run.where(loss.x[-1])})"
    acc = run.get("val_acc")
    if acc is not None:
        line += f", validation accuracy {acc.y[-1]:.3g}" + (f" (chance {run.chance():.3g})" if run.chance() else "")
    return line + "; no pathology in the log"
