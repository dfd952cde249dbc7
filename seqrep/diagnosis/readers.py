"""Readers: find the log in a folder, tell its format, read it into `Curves`.

Formats: seqrep's run.jsonl; Hugging Face Trainer's trainer_state.json (its log_history);
Lightning's CSVLogger metrics.csv; TensorBoard event files (TensorBoard's own loader,
`tensorboard.backend.event_processing.event_file_loader`), a run's split subfolders (Keras'
train/ and validation/, SummaryWriter.add_scalars' loss_train/ ...) read as one run; any CSV
(comma, semicolon, tab or space separated) or JSON Lines file of per-step or per-epoch
metrics, or one JSON document of them (a list of records, Keras' history of lists); a column
map names unusual columns. In a folder, logs of one kind that differ only in numbers
(checkpoint-N, version_N) are told apart by number, the highest read.

Big line-based logs (CSV, JSON Lines, run.jsonl) above `BIG` bytes are read at their head and
tail only (`EDGE` bytes each), so a 1 GB log is answered in about a second; the middle is
skipped, the report says so, and the rules that measure spans of the run (a plateau) do not
count the skipped middle as one. A trainer_state.json is one JSON document and is read whole
up to `MAX_DOCUMENT` bytes (refused above, naming the size); TensorBoard's format has no index
to start from its end, so event files are read whole. A half-written last line (a run still
writing, or killed mid-write) is left out; damaged lines are skipped and counted; bytes that
are not UTF-8 are read as Latin-1 (numbers are ASCII) with a note naming the first such line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import SeqrepError
from ..runlog import LOG_NAME
from .curves import Curves, canonical_key, from_records

__all__ = ["BIG", "EDGE", "MAX_DOCUMENT", "find_log", "read_curves"]

BIG = 64 << 20  # line logs larger than this are read at head and tail
EDGE = 2 << 20  # bytes read at each end of a big line log (tens of thousands of points each)
MAX_DOCUMENT = 512 << 20  # a JSON document (trainer_state.json) is read whole up to this
_EVENTS = "events.out.tfevents"
_SPLIT_WORDS = {"train", "training", "val", "valid", "validation", "eval", "dev", "test"}
_FORMATS = ("seqrep run.jsonl", "Hugging Face trainer_state.json", "Lightning metrics.csv",
            "TensorBoard events.out.tfevents.*", "CSV, JSON Lines or a JSON list / history of "
            "metrics (with --map for unusual column names)")


# --------------------------------------------------------------------------------------------
# Finding the log
# --------------------------------------------------------------------------------------------


def _rank(path: Path) -> int | None:
    """Which kind of log a file is by its name (lower = preferred), or None."""
    name = path.name
    if name == LOG_NAME:
        return 0
    if name == "trainer_state.json":
        return 1
    if name == "metrics.csv":
        return 2
    if name.startswith(_EVENTS):
        return 3
    if path.suffix in (".jsonl", ".csv", ".tsv"):
        return 4
    if path.suffix == ".json" and re.search(r"history|metric|log", path.stem, re.I):
        return 5  # a JSON document of metrics (Keras' history, a list of records)
    return None


def _candidates(folder: Path, depth: int = 4) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        level = len(Path(root).relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if level < depth else []
        found += [Path(root) / f for f in files if _rank(Path(root) / f) is not None]
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _split_named(folder: Path) -> bool:
    """'train', 'validation', 'loss_val': a folder name that ends in a split's name."""
    return re.split(r"[^a-z0-9]+", folder.name.lower())[-1] in _SPLIT_WORDS


def _split_folder(folder: Path) -> bool:
    """A folder of event files named after a split beside another such folder ('train' and
    'validation': Keras; 'loss_train' and 'loss_val': torch's SummaryWriter.add_scalars): one
    curve set of the run above them."""
    if not _split_named(folder):
        return False
    try:
        return any(d != folder and d.is_dir() and _split_named(d) and any(d.glob(_EVENTS + "*"))
                   for d in folder.parent.iterdir())
    except OSError:
        return False


def _event_run(folder: Path) -> Path:
    return folder.parent if _split_folder(folder) else folder


def _numbered(paths: list[Path]) -> list[tuple[int, ...]] | None:
    """The numbers that tell paths apart when they differ in numbers only (checkpoint-30 and
    checkpoint-90, version_0 and version_1: the tools number them in the order written)."""
    shapes = {re.sub(r"\d+", "#", str(p)) for p in paths}
    if len(paths) < 2 or len(shapes) != 1:
        return None
    return [tuple(int(n) for n in re.findall(r"\d+", str(p))) for p in paths]


def _newest(logs: list[Path]) -> Path:
    """The newest of logs of one kind: by their number when they differ in numbers only
    (mtimes do not survive every copy), else the most recently written."""
    numbers = _numbered(logs)
    if numbers is not None:
        return logs[max(range(len(logs)), key=lambda i: numbers[i])]
    return max(logs, key=_mtime)


# Stores of other trackers, which seqrep does not read: how to export a run from each.
_STORES = {
    "mlruns": "MLflow's store: export a run's metrics to CSV (MlflowClient().get_metric_history(run_id, key) "
              "per metric, or mlflow.search_runs) and pass that",
    "mlflow.db": "MLflow's database: export a run's metrics to CSV (MlflowClient().get_metric_history(run_id, "
                 "key) per metric) and pass that",
    "wandb": "Weights & Biases' local run files: export the run's history to CSV "
             "(wandb.Api().run(PATH).history().to_csv('log.csv')) and pass that",
}


def _foreign_hint(folder: Path) -> str | None:
    """What to do when the folder holds another tracker's store instead of a log."""
    for root, dirs, files in os.walk(folder):
        for name in list(dirs) + files:
            if name in _STORES:
                return f"{Path(root) / name} is {_STORES[name]}."
        if len(Path(root).relative_to(folder).parts) >= 2:
            dirs[:] = []
    return None


def find_log(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """(the log to read, other logs found beside it) for a file or a folder. In a folder: the
    best-known kind first (run.jsonl, trainer_state.json, metrics.csv, event files, other
    .jsonl/.csv, .json documents), the newest of that kind (`_newest`); event files stand for
    their folder, or for the run above it when the folder is named after a split."""
    path = Path(path)
    if not path.exists():
        raise SeqrepError(f"{path}: no such file or folder; pass a training log or the folder that holds it.")
    if not path.is_dir():
        return path, []
    found = _candidates(path)
    if not found:
        raise SeqrepError(
            f"{path}: no training log in this folder or the 4 levels below it (looked for "
            f"{'; '.join(_FORMATS)}). {_foreign_hint(path) or 'Pass the log file itself.'}"
        )
    logs = {(_event_run(f.parent) if f.name.startswith(_EVENTS) else f) for f in found}
    top = min(_rank(p) if p.is_file() else 3 for p in logs)
    best = _newest(sorted(p for p in logs if (_rank(p) if p.is_file() else 3) == top))
    return best, sorted(p for p in logs if p != best)


# --------------------------------------------------------------------------------------------
# Bytes to text lines
# --------------------------------------------------------------------------------------------


def _decode(raw: bytes, path: Path, notes: list[str], first_line: int = 1) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + raw[:err.start].count(b"\n")
        notes.append(f"not UTF-8 from line {line} (byte 0x{raw[err.start]:02x}); read as Latin-1")
        return raw.decode("latin-1")


def _lines(path: Path, notes: list[str]) -> list[str]:
    """The complete lines of a text log; head and tail only when it is big."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size <= BIG:
                raw = f.read()
                head_cut = None
            else:
                head = f.read(EDGE)
                f.seek(size - EDGE)
                tail = f.read(EDGE)
                head, tail = head[:head.rfind(b"\n") + 1], tail[tail.find(b"\n") + 1:]
                raw, head_cut = head + tail, len(head)
    except OSError as err:
        raise SeqrepError(f"{path}: cannot read it ({err.strerror or err}); check the path and its permissions.") from None
    if head_cut is not None:
        notes.append(f"{size / 2**30:.2f} GB: read the first and last {EDGE >> 20} MB only "
                     f"({100 * (1 - 2 * EDGE / size):.1f}% in between skipped)")
    if raw and not raw.endswith(b"\n"):
        last = raw.rfind(b"\n") + 1
        if not _whole_record(raw[last:]):
            notes.append(f"the last line is half-written ({len(raw) - last} bytes): a run still "
                         "writing, or killed mid-write; left out")
            raw = raw[:last]
    return _decode(raw, path, notes).splitlines()


def _whole_record(line: bytes) -> bool:
    """A last line without its newline that is nonetheless complete (a JSON object)."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------


def _json_records(lines: list[str], notes: list[str]) -> tuple[list[dict], list[int]]:
    """The JSON objects of a JSON Lines text, and the numbers of lines that were not one."""
    records, damaged = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            damaged.append(number)
    if damaged and records:
        shown = ", ".join(map(str, damaged[:5])) + (" ..." if len(damaged) > 5 else "")
        notes.append(f"{len(damaged)} line(s) are not JSON records and were skipped (line {shown})")
    return records, damaged


def _dialect(lines: list[str]):
    """The CSV dialect of a log by its header line: comma, semicolon or tab, else columns
    separated by spaces (np.savetxt, aligned text: the lines are then re-joined with commas)."""
    first = lines[1].split() if len(lines) > 1 else []
    if (not any(c in lines[0] for c in ",;\t") and len(lines[0].split()) == len(first) >= 2
            and all(_is_number(c) for c in first)):
        return csv.excel, [",".join(line.split()) for line in lines]
    try:
        return csv.Sniffer().sniff(lines[0], delimiters=",;\t"), lines
    except csv.Error:
        return csv.excel, lines


def _header(header: list[str] | None, path: Path) -> list[str]:
    """The header, or an error that says what is wrong with it."""
    cells = [c for c in header or [] if c.strip()]
    if cells and all(_is_number(c) for c in cells):
        raise _unknown(path, f"its first line ({', '.join(cells[:4])}) is numbers, not a header: add a first "
                       "line naming the columns, e.g. epoch,train_loss,val_loss")
    if not header or (len(header) < 2 and canonical_key(header[0]) is None):
        raise _unknown(path, "its first line is not a header of two or more columns")
    return header


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_records(lines: list[str], path: Path, notes: list[str]) -> list[dict]:
    """Rows of a CSV / TSV text with a header line, as dicts of the non-empty cells (one column
    is enough when its name is a metric's; decimal commas of semicolon CSVs are read)."""
    dialect, lines = _dialect(lines)
    reader = csv.reader(io.StringIO("\n".join(lines)), dialect)
    header = _header(next(reader, None), path)
    comma = getattr(dialect, "delimiter", ",") == ";"  # pandas to_csv(sep=";", decimal=",")
    rows, ragged = [], 0
    for row in reader:
        if len(row) != len(header):
            ragged += 1
            continue
        if comma:
            row = [re.sub(r"^([-+]?\d+),(\d+(?:[eE][-+]?\d+)?)$", r"\1.\2", v.strip()) for v in row]
        rows.append({k: v for k, v in zip(header, row) if v.strip() != ""})
    if ragged:
        notes.append(f"{ragged} row(s) with a different number of cells than the header were skipped")
    return rows


def _unknown(path: Path, why: str) -> SeqrepError:
    return SeqrepError(
        f"{path}: not a training log seqrep can read ({why}). It reads {'; '.join(_FORMATS)}. "
        "For your own CSV or JSON Lines, name the columns: seqrep diagnose LOG --map "
        "train_loss=COLUMN --map val_acc=COLUMN."
    )


def _seqrep_context(records: list[dict], curves: Curves) -> None:
    """What seqrep's run log says beyond the curves: classes, start, planned epochs, how the
    run ended, resumes and the doctor's findings."""
    epochs = [r for r in records if "epoch" in r and "event" not in r]
    for r in records:
        event = r.get("event")
        if event in ("start", "resume"):
            data, config = r.get("data") or {}, r.get("config") or {}
            curves.classes = data.get("n_classes", curves.classes)
            model = config.get("model") or {}
            curves.context.update(start=model.get("start"), dropout=model.get("dropout"),
                                  extraction=model.get("extraction"), epochs=config.get("epochs"))
            if "lr" in config:
                curves.context["optimizer"] = (f"peak lr {config['lr']:g} ({config.get('schedule')} "
                                               f"schedule), grad_clip {config.get('grad_clip')}")
            if event == "resume":
                curves.events.append({"kind": "resume", "epoch": r.get("from_epoch"),
                                      "text": f"resumed from epoch {r.get('from_epoch')}"})
        elif event == "stopped":
            curves.ended = f"stopped at epoch {r.get('at_epoch')}: {r.get('reason')}"
            curves.events.append({"kind": "stopped", "epoch": r.get("at_epoch"), "text": str(r.get("reason"))})
        elif event == "checked" and r.get("findings"):
            kinds = sorted({f.get("kind") for f in r["findings"] if isinstance(f, dict)})
            curves.events.append({"kind": "checked", "epoch": None,
                                  "text": f"the pre-flight check found: {', '.join(map(str, kinds))}"})
    planned = epochs[-1].get("epochs") if epochs else None
    if curves.ended is None and planned is not None and epochs[-1].get("epoch") == planned - 1:
        curves.ended = f"finished its {planned} planned epochs"


def _mark_gap(curves: Curves) -> None:
    """When a big log was read at head and tail only, the x where the skipped middle begins
    (the largest step between two points), so that rules do not read the gap as a plateau."""
    if not any("skipped" in n for n in curves.notes):
        return
    s = max(curves.series.values(), key=len, default=None)
    if s is not None and len(s) > 1:
        i = int(np.argmax(np.diff(s.x)))
        curves.context["gap"] = (float(s.x[i]), float(s.x[i + 1]))


def _document_records(doc) -> list[dict] | None:
    """The records of a JSON document of metrics, or None: a list of records; an object holding
    one ({"history": [...]}); or columns, one list of values per metric (Keras'
    `json.dump(history.history)`), whose position is the epoch when no step or epoch is listed."""
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)] or None
    if not isinstance(doc, dict):
        return None
    lists = {k: v for k, v in doc.items() if isinstance(v, list) and v}
    for value in lists.values():
        if all(isinstance(r, dict) for r in value):
            return value
    columns = {k: v for k, v in lists.items() if all(x is None or isinstance(x, (int, float, str)) for x in v)}
    if not columns:
        return None
    rows = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(max(map(len, columns.values())))]
    if not any(from_records([{k: 1}]).unit != "record" for k in columns):
        rows = [{"epoch": i, **row} for i, row in enumerate(rows)]
    return rows


def _json_document(path: Path, notes: list[str]) -> list[dict] | None:
    """The records of the file as one JSON document (a list, or an object over many lines),
    read whole (up to `MAX_DOCUMENT`), or None when it is not one."""
    try:
        if path.stat().st_size > MAX_DOCUMENT:
            return None
        return _document_records(json.loads(_decode(path.read_bytes(), path, notes)))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path, mapping=None) -> Curves:
    """JSON Lines (seqrep's run.jsonl, hand-written logs), or one JSON document of metrics
    (`_document_records`: a list of records, Keras' history of lists)."""
    notes: list[str] = []
    line_notes: list[str] = []
    records, damaged = _json_records(_lines(path, notes), line_notes)  # parsed once: a big log's edges are MBs
    fmt = "jsonl"
    if len(records) <= 1 and (document := _json_document(path, doc_notes := [])) is not None:
        records, damaged, notes, fmt = document, [], doc_notes, "json"
    else:
        notes += line_notes
    if not records:
        raise _unknown(path, "no line is a JSON record" if damaged else "it holds no records")
    seqrep = any(r.get("event") == "start" and "config" in r for r in records[:5]) or path.name == "run.jsonl"
    curves = from_records([r for r in records if "event" not in r], mapping, fmt="seqrep" if seqrep else fmt,
                          where=str(path))
    if seqrep:
        _seqrep_context(records, curves)
    curves.notes += notes
    _mark_gap(curves)
    return curves


def read_csv(path: Path, mapping=None) -> Curves:
    notes: list[str] = []
    lines = [line for line in _lines(path, notes) if line.strip()]
    if not lines:
        raise _unknown(path, "it is empty")
    fmt = "lightning_csv" if path.name == "metrics.csv" else "csv"
    curves = from_records(_csv_records(lines, path, notes), mapping, fmt=fmt, where=str(path))
    curves.classes = _hparams_classes(path.parent)
    curves.notes += notes
    _mark_gap(curves)
    return curves


def _hparams_classes(folder: Path) -> int | None:
    """num_classes (or n_classes, num_labels, classes) from a Lightning hparams.yaml."""
    hparams = folder / "hparams.yaml"
    try:
        text = hparams.read_text(errors="replace") if hparams.is_file() else ""
    except OSError:
        return None
    found = re.search(r"^\s*(?:num_classes|n_classes|num_labels|classes)\s*:\s*(\d+)\s*$", text, re.M)
    return int(found.group(1)) if found else None


def _json_objects(text: str, start: int, notes: list[str]) -> list[dict]:
    """The JSON objects of an array's items from `start` on, until the array ends or the text
    is cut off (json's own decoder, one item at a time)."""
    decoder, items, pos = json.JSONDecoder(), [], start
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] != "{":
            return items
        try:
            item, pos = decoder.raw_decode(text, pos)
        except ValueError:
            notes.append("the file ends inside a record (cut off or still being written); "
                         "read the complete records before it")
            return items
        if isinstance(item, dict):
            items.append(item)


def _trainer_state(path: Path, notes: list[str]) -> tuple[list[dict], dict]:
    """(log_history, the other top-level fields) of a trainer_state.json, whole or cut off."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT:
        raise SeqrepError(
            f"{path}: a {size / 2**30:.1f} GB JSON document; seqrep reads a trainer_state.json "
            f"whole and stops at {MAX_DOCUMENT >> 20} MB. Pass the trainer_state.json of an "
            "earlier checkpoint, or lower logging frequency (logging_steps)."
        )
    text = _decode(path.read_bytes(), path, notes)
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if isinstance(state, dict) and isinstance(state.get("log_history"), list):
        return [e for e in state["log_history"] if isinstance(e, dict)], state
    found = re.search(r'"log_history"\s*:\s*\[', text)
    if not found:
        raise _unknown(path, "no log_history in it")
    return _json_objects(text, found.end(), notes), {}


def read_trainer_state(path: Path, mapping=None) -> Curves:
    """Hugging Face Trainer's trainer_state.json: its log_history (training entries every
    logging_steps, evaluation entries, and the summary entry that ends a finished run)."""
    notes: list[str] = []
    history, state = _trainer_state(path, notes)
    if not history:
        raise SeqrepError(f"{path}: log_history is empty; the Trainer had not logged yet "
                          "(the first entry comes after logging_steps steps).")
    summary = [e for e in history if "train_runtime" in e]
    curves = from_records([e for e in history if "train_runtime" not in e], mapping, fmt="hf_trainer",
                          where=str(path))
    for folder in (path.parent, path.parent.parent):
        classes = _config_classes(folder / "config.json")
        if classes:
            curves.classes = classes
            break
    if summary:
        curves.ended = f"finished (the Trainer's summary record at step {summary[-1].get('step')})"
    elif state.get("max_steps") and state.get("global_step") == state.get("max_steps"):
        curves.ended = f"reached max_steps {state['max_steps']}"
    curves.context["max_steps"] = state.get("max_steps")
    _accumulation_scale(curves)
    curves.notes += notes
    return curves


def _accumulation_scale(curves: Curves) -> None:
    """Undo the Trainer's logged training loss summed over gradient-accumulation steps (some
    transformers versions, for models whose forward takes **kwargs but averages the loss
    itself: the loss logged is k x the real one). Seen where the model is still untrained: the
    first evaluation at ln C (within 10 %) while the first training loss is a whole multiple
    k >= 2 of it (within 5 %). The training loss is divided by k, with a note."""
    loss, val = curves.get("train_loss"), curves.get("val_loss")
    if loss is None or val is None or not curves.classes:
        return
    ln_c = float(np.log(curves.classes))
    k = round(float(loss.y[0]) / ln_c)
    if k < 2 or abs(float(val.y[0]) / ln_c - 1) > 0.1 or abs(float(loss.y[0]) / ln_c - k) > 0.05 * k:
        return
    curves.series["train_loss"] = type(loss)(loss.x, loss.y / k, loss.epoch, loss.key)
    curves.notes.append(f"the logged training loss starts at {k} x ln({curves.classes}) while the first evaluation "
                        f"is at ln({curves.classes}): the Trainer summed it over {k} gradient-accumulation steps "
                        f"(a known Trainer logging bug); read divided by {k}")


def _config_classes(config: Path) -> int | None:
    try:
        data = json.loads(config.read_text()) if config.is_file() else {}
    except (OSError, ValueError):
        return None
    if isinstance(data.get("id2label"), dict) and len(data["id2label"]) > 1:
        return len(data["id2label"])
    n = data.get("num_labels")
    if isinstance(n, int):
        return n if n > 1 else None
    # transformers does not save id2label for its default of 2 labels: a classifier's config
    # without one (its problem_type or architecture says classifier) has 2 classes
    classifier = data.get("problem_type") in ("single_label_classification", "multi_label_classification") or any(
        str(a).endswith("Classification") for a in data.get("architectures") or [])
    return 2 if classifier and "id2label" not in data else None


def _scalar(value) -> float | None:
    """A TensorBoard summary value as a number, or None when it is not a scalar (a histogram,
    an image, text): simple_value (torch's SummaryWriter), or a one-element tensor (TF 2)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor" or value.tensor.tensor_shape.dim:
        return None
    for field_name in ("float_val", "double_val", "int_val", "int64_val"):
        numbers = getattr(value.tensor, field_name)
        if len(numbers) == 1:
            return float(numbers[0])
    if value.tensor.tensor_content:  # packed bytes
        from tensorboard.util import tensor_util

        array = tensor_util.make_ndarray(value.tensor)
        return float(array) if array.size == 1 and array.dtype.kind in "fiu" else None
    return None


def _event_records(file: Path, prefix: str = "") -> list[dict]:
    """{"step": s, tag: value} per event of one file, read with TensorBoard's raw record
    loader and its Event message (its data-compat migration, which rebuilds every scalar as a
    tensor, is skipped: it took two thirds of the time); tags get `prefix` (a split folder)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    records = []
    for raw in RawEventFileLoader(str(file)).Load():
        event = event_pb2.Event.FromString(raw)
        if event.HasField("summary"):
            record = {prefix + v.tag: x for v in event.summary.value if (x := _scalar(v)) is not None}
            if record:
                records.append({"step": event.step, **record})
    return records


def _event_files(folder: Path) -> list[tuple[str, Path]]:
    """(tag prefix, file) of a run's event files in the order written: the folder's own, then
    those of its subfolders named after a split, whose tags get the folder's name ('train/',
    'loss_val/'): Keras writes train/ and validation/, SummaryWriter.add_scalars one folder
    per curve, each with the same tag."""
    if not folder.is_dir():
        return [("", folder)]
    files = [("", f) for f in sorted(folder.glob(_EVENTS + "*"))]
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and _split_folder(d)):
        files += [(sub.name + "/", f) for f in sorted(sub.glob(_EVENTS + "*"))]
    return files


def read_events(folder: Path, mapping=None) -> Curves:
    """TensorBoard event files of one run (a folder, with its split subfolders: `_event_files`),
    in name order — the order they were written — through TensorBoard's own record loader."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise SeqrepError(
            f"{folder}: reading TensorBoard event files needs the tensorboard package; "
            "pip install tensorboard (or seqrep[diagnose])."
        ) from None
    files = _event_files(folder)
    records, notes = [], []
    for prefix, file in files:
        try:
            records += _event_records(file, prefix)
        except Exception as err:  # the loader's and protobuf's errors on damaged files vary
            raise SeqrepError(f"{file}: TensorBoard could not read it ({type(err).__name__}: {err}); "
                              "is it a complete event file?") from None
    if not records:
        raise SeqrepError(f"{folder}: the event file(s) hold no scalars yet; nothing was logged.")
    if len(files) > 1:
        split = sorted({prefix.rstrip("/") for prefix, _ in files if prefix})
        notes.append(f"{len(files)} event files read in the order written"
                     + (f", with the curves of the subfolders {', '.join(split)}" if split else " (one folder)"))
    curves = from_records(records, mapping, fmt="tensorboard", where=str(folder))
    run = folder if folder.is_dir() else folder.parent
    # Lightning's hparams.yaml beside the events; HF's config.json in output_dir, two folders
    # above its runs/<date>/ events (report_to="tensorboard")
    curves.classes = _hparams_classes(run) or next(
        (c for up in (run, run.parent, run.parent.parent) if (c := _config_classes(up / "config.json"))), None)
    curves.notes += notes
    return curves


def _sniff(path: Path) -> str:
    """The format of a file by its name, then its first bytes."""
    if path.name == "trainer_state.json":
        return "hf"
    if path.name.startswith(_EVENTS):
        return "tensorboard"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as err:
        raise SeqrepError(f"{path}: cannot read it ({err.strerror or err}); check its permissions.") from None
    if not head.strip():
        raise SeqrepError(f"{path}: the file is empty; nothing has been logged yet (a run that "
                          "has not finished its first logging interval?).")
    if head.count(b"\x00") > len(head) // 10 and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _unknown(path, "it is a binary file")  # (a few NUL bytes: a crash; those lines are skipped)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if b'"log_history"' in head:
        return "hf"
    if text.startswith((b"{", b"[")):
        return "jsonl"  # JSON Lines, or one JSON document of metrics
    return "csv"


def read_curves(path: str | os.PathLike, mapping: dict[str, str] | None = None) -> tuple[Curves, list[Path]]:
    """(the curves of the log at `path`, other logs found beside it): `path` is a log file or
    a folder holding one (see `find_log`)."""
    log, others = find_log(path)
    kind = "tensorboard" if log.is_dir() else _sniff(log)
    reader = {"hf": read_trainer_state, "tensorboard": read_events, "jsonl": read_jsonl, "csv": read_csv}[kind]
    curves = reader(log, mapping)
    curves.path = str(log)
    return curves, others
