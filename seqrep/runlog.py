"""The run log: JSON Lines, one record per epoch, appended and flushed line by line; and the
post-mortem's `show_latest_epoch`, reading only the tail of the log.

Records with an "epoch" key are epochs; records with an "event" key (start, resume, stopped)
are events. A half-written last line (a run still writing, or killed mid-write) is ignored by
the readers; the next `append` removes it rather than gluing a record onto it, and
`truncate_after` (used on resume) can put back the checkpoint's own record when its line was
cut off. Damaged lines elsewhere are skipped with a warning naming them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import SeqrepError, as_path

LOG_NAME = "run.jsonl"
_TAIL_CHUNK = 1 << 16


def _open(path: Path, mode: str):
    """open(path, mode), turning an OSError (unreadable, read-only, a folder) into a
    SeqrepError that names the file and the fix."""
    try:
        return open(path, mode)
    except FileNotFoundError:
        raise SeqrepError(
            f"{path}: no run log here; is this a run directory made by seqrep.fit?"
        ) from None
    except IsADirectoryError:
        raise SeqrepError(
            f"{path}: a folder, not a run log file; pass the run directory that holds run.jsonl."
        ) from None
    except OSError as err:
        doing = "read" if mode in ("rb", "r") else "write"
        raise SeqrepError(
            f"{path}: cannot {doing} the run log ({err.strerror or err}). Check that it is a "
            f"file you may {doing} (ls -l {path}; chmod u+rw fixes permissions) and that the "
            "disk has space."
        ) from None


def _parse_line(line: bytes) -> dict | None:
    """The record on one line of the log, or None if the line is not a JSON object."""
    try:
        record = json.loads(line)
    except ValueError:  # malformed JSON, or bytes that are not UTF-8
        return None
    return record if isinstance(record, dict) else None


def _last_newline(f, end: int) -> int:
    """Offset of the last b'\n' before `end` in the binary file f, or -1."""
    pos = end
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        f.seek(pos)
        found = f.read(step).rfind(b"\n")
        if found >= 0:
            return pos + found
    return -1


class RunLog:
    """Append-only JSON Lines writer. Each `append` is one flushed (and fsynced) line."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict) -> None:
        """Write `record` as the log's last line. A half-written last line left by a killed
        run is removed first (with a warning) so the record is never glued onto it; a last
        line that is a whole record missing only its newline is kept."""
        line = json.dumps(record, default=_jsonable, allow_nan=True)
        with _open(self.path, "a+b") as f:
            self._end_half_line(f)
            try:
                f.write(line.encode("utf-8") + b"\n")
                f.flush()
                os.fsync(f.fileno())
            except OSError as err:
                raise SeqrepError(
                    f"{self.path}: cannot write the run log ({err.strerror or err}); free disk "
                    "space or move the run directory, then resume."
                ) from None

    def _end_half_line(self, f) -> None:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = _last_newline(f, size) + 1
        f.seek(start)
        tail = f.read()
        if _parse_line(tail) is not None:
            f.write(b"\n")
            return
        f.truncate(start)
        warnings.warn(
            f"{self.path}: removed a half-written last line ({len(tail)} bytes: "
            f"{tail[:60]!r}); a run was killed while writing it. Its record is written again "
            "when that epoch is re-run from the checkpoint.",
            stacklevel=3,
        )

    def truncate_after(self, epoch: int, last_record: dict | None = None) -> None:
        """Drop epoch records after `epoch` (and events after them): used when resuming from
        a checkpoint older than the log's end. Kept lines stay byte for byte; the file is
        rewritten atomically.

        If the log then lacks the record of `epoch` itself (its line was cut off: the disk
        filled up, or the file was truncated), `last_record` (the record the checkpoint
        holds for that epoch) is written in its place; without it a warning names the lost
        epoch. Damaged lines before the cut are dropped with a warning naming them.
        """
        keep, damaged, present = [], [], set()
        with _open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = _parse_line(line)
                if record is None:
                    if line.endswith(b"\n"):  # else a half-written last line
                        damaged.append(number)
                    continue
                if "epoch" in record and _after(record["epoch"], epoch):
                    break
                present.add(record.get("epoch"))
                keep.append(line.rstrip(b"\n") + b"\n")
        if damaged:
            warnings.warn(
                f"{self.path}: lines {damaged} are not JSON records (damaged) and were dropped.",
                stacklevel=2,
            )
        if epoch >= 0 and epoch not in present:
            if last_record is not None and last_record.get("epoch") == epoch:
                line = json.dumps(last_record, default=_jsonable, allow_nan=True)
                keep.append(line.encode("utf-8") + b"\n")
            else:
                warnings.warn(
                    f"{self.path}: the record of epoch {epoch} is missing (its line was cut off) "
                    "and no copy was given to restore it; the log goes on without it.",
                    stacklevel=2,
                )
        tmp = self.path.with_suffix(".jsonl.tmp")
        try:
            with _open(tmp, "wb") as f:
                f.write(b"".join(keep))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as err:  # a full disk: the log stays as it was, no temp file behind
            tmp.unlink(missing_ok=True)
            raise SeqrepError(
                f"{self.path}: cannot rewrite the run log ({err.strerror or err}); it is left as it "
                "was. Free disk space, then resume again."
            ) from None


def _after(value, epoch: int) -> bool:
    """value > epoch for a numeric epoch; a record with a non-numeric epoch is not an epoch."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > epoch


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _log_path(run: str | os.PathLike) -> Path:
    path = Path(run)
    return path / LOG_NAME if path.is_dir() else path


def _not_a_log(path: Path) -> SeqrepError:
    return SeqrepError(
        f"{path}: not a seqrep run log (no line is a JSON record); pass a run directory made "
        "by seqrep.fit or its run.jsonl."
    )


def read_log(run: str | os.PathLike) -> list[dict]:
    """Every complete record of a run log (a run directory or the .jsonl file), in order.

    A half-written last line is ignored (a run may be writing it); a damaged line elsewhere
    is skipped with a warning naming it. Raises SeqrepError when the file cannot be read or
    holds lines but no record at all.
    """
    path = _log_path(as_path(run, "read_log: run", "'runs/my-run' or 'runs/my-run/run.jsonl'"))
    records, damaged = [], []
    with _open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break  # half-written last line
            if not line.strip():
                continue
            record = _parse_line(line)
            if record is None:
                damaged.append(number)
            else:
                records.append(record)
    if damaged and not records:
        raise _not_a_log(path)
    if damaged:
        warnings.warn(
            f"{path}: lines {damaged[:10]}{' ...' if len(damaged) > 10 else ''} are not JSON "
            "records (damaged) and were skipped.",
            stacklevel=2,
        )
    return records


def latest_epoch(run: str | os.PathLike) -> dict | None:
    """The last complete epoch record, reading only the tail of the log (constant time in its
    size). None if no epoch has finished yet."""
    return _tail(run)[0]


# The records a run writes last: it ended (a resume appends a "resume" record after them).
END_EVENTS = ("finished", "stopped")


def _tail(run: str | os.PathLike) -> tuple[dict | None, dict | None]:
    """(the last complete epoch record, the last complete record of any kind), reading only
    the tail of the log."""
    path = _log_path(run)
    last = None
    seen, parsed = False, False  # complete lines read; lines that were JSON records
    with _open(path, "rb") as f:
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
                if not line.strip():
                    continue
                seen = True
                record = _parse_line(line)
                parsed |= record is not None
                last = last or record
                if record is not None and "epoch" in record:
                    return record, last
    if seen and not parsed:
        raise _not_a_log(path)
    return None, last


def _shown(value, fmt: str) -> str:
    """value in `fmt` if it is a number, else as written (a log may hold anything)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:{fmt}}"
    return str(value)


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
        ("seconds", "s", ".1f"),
        ("samples_per_s", "samples/s", ".0f"),
    ):
        if record.get(key) is not None:
            parts.append(f"{label} {_shown(record[key], fmt)}")
    if record.get("lr") is not None and not isinstance(record["lr"], dict):  # a log of seqrep 0.1
        parts.append(f"lr {_shown(record['lr'], '.2e')}")
    lines = [" | ".join(parts)]
    for key, label in (("lr", "lr per group"), ("grad_norm", "grad norm"), ("update_ratio", "log10 update/weight")):
        if record.get(key) and isinstance(record[key], dict):
            values = ", ".join(f"{k} {_shown(v, '.3g')}" if v is not None else f"{k} None (no gradient)"
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
    """Print the latest epoch of a run; with follow=True keep printing each new one until the
    run writes its end record ("finished" or "stopped", said in a last line), until
    interrupted, or `max_updates` prints. Returns the last epoch record printed."""
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not (
        math.isfinite(interval) and interval > 0
    ):
        raise SeqrepError(
            f"interval must be a positive number of seconds, got {interval!r}; e.g. --interval 1."
        )
    out = out or sys.stdout
    shown, last = 0, None
    while True:
        record, final = _tail(as_path(run, "show_latest_epoch: run", "'runs/my-run'"))
        key = None if record is None else (record.get("epoch"), record.get("time"))
        if key != (None if last is None else (last.get("epoch"), last.get("time"))):
            if record is not None:
                print(format_record(record), file=out, flush=True)
                shown += 1
            last = record
        elif not follow and record is None:
            print("no epoch finished yet", file=out, flush=True)
        if follow and final is not None and final.get("event") in END_EVENTS:
            why = f": {final.get('reason')}" if final.get("event") == "stopped" else ""
            print(f"run {final['event']}{why}; nothing more to follow", file=out, flush=True)
            return last
        if not follow or (max_updates is not None and shown >= max_updates):
            return last
        time.sleep(interval)
