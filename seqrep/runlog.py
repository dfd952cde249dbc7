"""The run log: JSON Lines, one record per epoch, appended and flushed line by line; and the
seed's `show_latest_epoch`, reading only the tail of the log.

Records with an "epoch" key are epochs; records with an "event" key (start, resume, stopped)
are events. A half-written last line (a run still writing, or killed mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .errors import SeqrepError

LOG_NAME = "run.jsonl"
_TAIL_CHUNK = 1 << 16


class RunLog:
    """Append-only JSON Lines writer. Each `append` is one flushed (and fsynced) line."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict) -> None:
        line = json.dumps(record, default=_jsonable, allow_nan=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, epoch: int) -> None:
        """Drop epoch records after `epoch` (and events after them): used when resuming from
        a checkpoint older than the log's end. Rewrites the file atomically."""
        records = read_log(self.path)
        keep = []
        for r in records:
            if "epoch" in r and r["epoch"] > epoch:
                break
            keep.append(r)
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, default=_jsonable) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, self.path)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _log_path(run: str | os.PathLike) -> Path:
    path = Path(run)
    return path / LOG_NAME if path.is_dir() else path


def read_log(run: str | os.PathLike) -> list[dict]:
    """Every complete record of a run log (a run directory or the .jsonl file)."""
    path = _log_path(run)
    if not path.exists():
        raise SeqrepError(f"{path}: no run log here; is this a run directory made by seqrep.fit?")
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # half-written last line
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def latest_epoch(run: str | os.PathLike) -> dict | None:
    """The last complete epoch record, reading only the tail of the log (constant time in its
    size). None if no epoch has finished yet."""
    path = _log_path(run)
    if not path.exists():
        raise SeqrepError(f"{path}: no run log here; is this a run directory made by seqrep.fit?")
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        carry = b""
        trailing = True  # still reading the text after the last newline: half-written
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            lines = (f.read(step) + carry).split(b"\n")
            if trailing:
                if len(lines) == 1:
                    carry = b""
                    continue
                lines, trailing = lines[:-1], False
            # Unless at the file start, lines[0] may be cut by the chunk boundary: carry it.
            carry, complete = (lines[0], lines[1:]) if pos > 0 else (b"", lines)
            for line in reversed(complete):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "epoch" in record:
                    return record
    return None


def format_record(record: dict) -> str:
    """One epoch record as a few readable lines."""
    parts = [f"epoch {record['epoch']}" + (f"/{record['epochs']}" if "epochs" in record else "")]
    for key, label, fmt in (
        ("train_loss", "train loss", ".4f"),
        ("train_accuracy", "train acc", ".3f"),
        ("val_loss", "val loss", ".4f"),
        ("val_accuracy", "val acc", ".3f"),
        ("val_balanced_accuracy", "val bal acc", ".3f"),
        ("val_macro_f1", "val macro-F1", ".3f"),
        ("lr", "lr", ".2e"),
        ("seconds", "s", ".1f"),
        ("samples_per_s", "samples/s", ".0f"),
    ):
        if record.get(key) is not None:
            parts.append(f"{label} {record[key]:{fmt}}")
    lines = [" | ".join(parts)]
    for key, label in (("grad_norm", "grad norm"), ("update_ratio", "log10 update/weight")):
        if record.get(key):
            values = ", ".join(f"{k} {v:.3g}" if v is not None else f"{k} None (no gradient)"
                               for k, v in record[key].items())
            lines.append(f"  {label}: {values}")
    if record.get("partial"):
        lines.append(f"  (partial epoch: stopped after {record.get('steps')} steps)")
    return "\n".join(lines)


def show_latest_epoch(
    run: str | os.PathLike,
    follow: bool = False,
    interval: float = 1.0,
    out=None,
    max_updates: int | None = None,
) -> dict | None:
    """Print the latest epoch of a run; with follow=True keep printing each new one until
    interrupted (or `max_updates` prints). Returns the last record printed."""
    out = out or sys.stdout
    shown, last = 0, None
    while True:
        record = latest_epoch(run)
        key = None if record is None else (record.get("epoch"), record.get("time"))
        if key != (None if last is None else (last.get("epoch"), last.get("time"))):
            if record is not None:
                print(format_record(record), file=out, flush=True)
                shown += 1
            last = record
        elif not follow and record is None:
            print("no epoch finished yet", file=out, flush=True)
        if not follow or (max_updates is not None and shown >= max_updates):
            return last
        time.sleep(interval)
