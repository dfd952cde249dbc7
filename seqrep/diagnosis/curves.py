"""A training log as curves: what every reader produces and every rule reads.

Readers turn their format into flat records (dicts: metric name -> number, plus "step" and/or
"epoch"); `from_records` recognises the metric names (`canonical_key`: `loss`, `train_loss`,
`eval_loss`, `val_acc`, `learning_rate`, `lr-AdamW`, `grad_norm/encoder`, ...) or takes them
from a column map, and builds one `Series` per metric, points kept in the order the log holds
them (a log glued from two runs goes backwards; `last_run` cuts each series to its last run).
Conventions of other tools read here: nested records and a split field ({"mode": "val", ...})
name their metrics (`_flatten`); a step counted within the epoch becomes a running count
(`_running_steps`); numbers written through their repr (str(tensor)) are read (`_number`);
accuracies in percent and perplexities are converted, with a note (`_convert`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import SeqrepError

__all__ = ["METRICS", "Curves", "Series", "canonical_key", "from_records"]

# What a column map may name, with what each means.
METRICS = {
    "step": "optimiser step (the x axis when present)",
    "epoch": "epoch (the x axis when no step is logged)",
    "train_loss": "training loss (per step or per epoch)",
    "val_loss": "validation loss",
    "train_acc": "training accuracy",
    "val_acc": "validation accuracy",
    "lr": "learning rate",
    "grad_norm": "gradient norm (total, or per component as grad_norm/NAME)",
}
_STEP = {"step", "steps", "global_step", "iteration", "iter", "it", "trainer_global_step"}
_VAL = {"val", "valid", "validation", "eval", "dev"}
_SKIP = {"test", "balanced", "bal", "macro", "micro", "weighted", "f1", "top5", "runtime", "per",
         "samples", "flos", "second", "seconds", "time", "std", "ema", "smooth", "smoothed", "aux"}
_LOSS = {"loss", "xent", "nll", "ce", "crossentropy"}
_ACC = {"acc", "accuracy", "top1"}
_PPL = {"ppl", "perplexity"}  # exp(loss): read as ln(perplexity) when no loss is logged
_SPLIT_FIELDS = ("mode", "split", "phase", "stage", "subset")  # long logs: one record per split
_SPLITS = _VAL | {"train", "training", "test"}


def canonical_key(key: str) -> str | None:
    """The metric a log column holds, or None: 'eval_loss' -> 'val_loss', 'loss' ->
    'train_loss', 'lr-AdamW/pg1' -> 'lr/pg1', 'grad_2.0_norm/enc.weight' -> 'grad_norm/enc.weight',
    'train_runtime' -> None."""
    # camelCase words apart first (torchmetrics' val_MulticlassAccuracy, trainLoss)
    low = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key.strip()).lower()
    flat = re.sub(r"[^a-z0-9]+", "_", low).strip("_")
    if flat in _STEP:
        return "step"
    if flat in ("epoch", "epochs"):
        return "epoch"
    if re.search(r"momentum|weight_decay|beta", flat):
        return None  # LearningRateMonitor(log_momentum=True, log_weight_decay=True): lr-SGD-momentum
    if flat.startswith("lr") or "learning_rate" in flat:
        group = re.sub(r"^(lr|learning_rate)[-_/ ]*", "", key.strip(), flags=re.I)
        return "lr" + (f"/{group}" if group else "")
    if "grad" in flat and "norm" in flat:
        head, _, part = key.partition("/")
        if not ("grad" in head.lower() and "norm" in head.lower()):
            part = ""  # 'train/grad_norm' (HF to TensorBoard): the split, then the total norm
        return "grad_norm" + (f"/{part}" if part and "total" not in flat else "")
    words = set(flat.split("_"))
    if words & _SKIP:
        return None
    split = "val" if words & _VAL else "train"
    if words & _LOSS:
        return f"{split}_loss"
    if words & _ACC:
        return f"{split}_acc"
    if words & _PPL:
        return f"{split}_ppl"
    return None


@dataclass
class Series:
    """One metric: x (n,) the step (or epoch) of each point in log order, y (n,) its values
    (NaN / inf kept: they are evidence), epoch (n,) the epoch of each point (NaN = unknown),
    key the name it had in the log."""

    x: np.ndarray
    y: np.ndarray
    epoch: np.ndarray
    key: str

    def __len__(self) -> int:
        return len(self.x)

    def cut(self, start: int) -> Series:
        return Series(self.x[start:], self.y[start:], self.epoch[start:], self.key)


@dataclass
class Curves:
    """A log read: series by metric ('train_loss', 'val_loss', 'train_acc', 'val_acc', 'lr',
    'lr/<group>', 'grad_norm', 'grad_norm/<component>'), x counted in `unit` ('step', 'epoch'
    or 'record'), what the log says about the run (classes, how it ended, events) and notes
    on how it was read."""

    unit: str
    series: dict[str, Series]
    fmt: str = "records"
    path: str | None = None
    classes: int | None = None
    ended: str | None = None
    events: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    context: dict = field(default_factory=dict)
    no_gradient: set[str] = field(default_factory=set)

    def get(self, name: str) -> Series | None:
        s = self.series.get(name)
        return s if s is not None and len(s) else None

    def where(self, x: float, name: str = "train_loss") -> str:
        """'step 120 (epoch 3)' / 'epoch 3': where a point of `name` at x sits."""
        s = self.series.get(name)
        ep = np.nan
        if s is not None and len(s):
            ep = s.epoch[int(np.argmin(np.abs(s.x - x)))]
        if self.unit == "epoch":
            return f"epoch {x:g}"
        head = f"{self.unit} {x:g}"
        return head + (f" (epoch {ep:.3g})" if np.isfinite(ep) and self.unit == "step" else "")

    def groups(self, prefix: str) -> dict[str, Series]:
        return {k: s for k, s in self.series.items() if (k == prefix or k.startswith(prefix + "/")) and len(s)}


# A number written through its repr: str(tensor) ('tensor(0.6931, grad_fn=<...>)'), numpy 2
# scalars ('np.float32(0.69)'), a one-element list or array ('[0.69]').
_WRAPPED = re.compile(r"^(?:(?:tensor|(?:np\.|numpy\.)?(?:float|int)\d*|array)\(\[?|\[)\s*"
                      r"([-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?))\s*\]?\s*"
                      r"(?:\)|,\s*(?:grad_fn|device|dtype|requires_grad)|$)", re.I)


def _number(value) -> float | None:
    """A log cell as a float (numbers, 'nan', 'inf', '1e-3', and numbers written through their
    repr: `_WRAPPED`), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and len(value) == 1:
        return _number(value[0])
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            found = _WRAPPED.match(value.strip())
            return float(found.group(1)) if found else None
    return None


def _flatten(record: dict, depth: int = 3) -> dict:
    """Nested dicts become 'outer/inner' (seqrep's grad_norm per component and lr per optimizer
    group; {"train": {"loss": ..}, "val": {..}} of hand-written JSON logs), `depth` levels deep.
    A record of a long log, whose split is a field ({"mode": "val", "loss": ..}: mmcv,
    hand-written loops), gets its metrics named after that split ('val/loss')."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict) and depth > 1:
            out.update({f"{k}/{inner}": value for inner, value in _flatten(v, depth - 1).items()})
        else:
            out[k] = v
    field_name = next((f for f in _SPLIT_FIELDS if isinstance(out.get(f), str)
                       and out[f].strip().lower() in _SPLITS), None)
    if field_name is None:
        return out
    split = out.pop(field_name).strip().lower()
    return {(f"{split}/{k}" if _per_split(k) else k): v for k, v in out.items()}


def _per_split(key: str) -> bool:
    """Whether a key names a metric measured on one split (a loss, an accuracy), not the
    position (step, epoch) or the optimizer's state (lr, gradient norm)."""
    name = canonical_key(key)
    return name is not None and name not in ("step", "epoch") and not name.startswith(("lr", "grad_norm"))


def _resolver(keys: Iterable[str], mapping: dict[str, str] | None):
    """key -> canonical name, the column map first."""
    chosen: dict[str, str] = {}
    for metric, column in (mapping or {}).items():
        chosen[column] = metric
    def resolve(key: str) -> str | None:
        if key in chosen:
            return chosen[key]
        if chosen and canonical_key(key) in chosen.values():
            return None  # the map named another column for this metric
        return canonical_key(key)
    return resolve


def check_mapping(mapping: dict[str, str] | None, columns: Iterable[str], where: str) -> None:
    """Raise when the map names a metric seqrep does not know or a column the log lacks."""
    columns = set(columns)
    for metric, column in (mapping or {}).items():
        base = metric.split("/", 1)[0]
        if base not in METRICS:
            raise SeqrepError(
                f"--map {metric}={column}: {metric!r} is not a metric seqrep reads; use one of "
                f"{', '.join(METRICS)} (e.g. --map val_acc={column})."
            )
        if column not in columns:
            raise SeqrepError(
                f"--map {metric}={column}: {where} has no column {column!r}; its columns are "
                f"{', '.join(sorted(columns)[:30])}."
            )


def _first_number(record: dict, keys: list[str]) -> float | None:
    for k in keys:
        if k in record and (v := _number(record[k])) is not None and math.isfinite(v):
            return v
    return None


def _collect(records: list[dict], names: dict[str, str | None], unit: str):
    """Per log key: lists of (x, value, epoch); the (step, epoch) pairs seen together; the
    grad-norm keys logged as None (no gradient reached that component)."""
    step_keys = [k for k, n in names.items() if n == "step"]
    epoch_keys = [k for k, n in names.items() if n == "epoch"]
    points: dict[str, list[tuple[float, float, float]]] = {}
    pairs, no_grad, last_step = [], set(), math.nan
    for i, record in enumerate(records):
        step, epoch = _first_number(record, step_keys), _first_number(record, epoch_keys)
        last_step = step if step is not None else last_step
        x = {"step": last_step, "epoch": epoch, "record": float(i)}[unit]
        if x is None or (isinstance(x, float) and math.isnan(x)):
            continue
        if step is not None and epoch is not None:
            pairs.append((step, epoch))
        for k, v in record.items():
            name = names.get(k)
            if name is None or name in ("step", "epoch"):
                continue
            value = _number(v)
            if value is None and v is None and name.startswith("grad_norm"):
                value = 0.0
                no_grad.add(k)
            if value is not None:
                points.setdefault(k, []).append((x, value, math.nan if epoch is None else epoch))
    return points, pairs, no_grad


def _running_steps(records: list[dict], names: dict[str, str | None], notes: list[str]) -> list[dict]:
    """Records whose step counts batches within the epoch (mmcv's 'iter' of an epoch-based
    run, hand-written loops' batch index), with the step made a running count: it restarts
    only where the epoch goes up. A step that goes back within an epoch, or with the epoch,
    is another run (glued), left as it is."""
    step_keys = [k for k, n in names.items() if n == "step"]
    epoch_keys = [k for k, n in names.items() if n == "epoch"]
    if not step_keys or not epoch_keys:
        return records
    out, offset, top, prev, restarts = [], 0.0, -math.inf, None, 0
    for record in records:
        step, epoch = _first_number(record, step_keys), _first_number(record, epoch_keys)
        if step is not None and epoch is not None and prev is not None and step < prev[0]:
            if epoch <= prev[1]:
                return records  # back within an epoch, or to an earlier epoch: not a restart
            offset, restarts = top, restarts + 1
        if step is not None and epoch is not None:
            prev, top = (step, epoch), max(top, step + offset)
            record = {**record, **{k: step + offset for k in step_keys if k in record}}
        out.append(record)
    if restarts:
        notes.append(f"the step restarts at every epoch ({restarts} times: counted within the epoch); "
                     "read as a running count")
    return out if restarts else records


def _fill_epochs(epoch: np.ndarray, x: np.ndarray, pairs: list[tuple[float, float]]) -> np.ndarray:
    """Epochs of points logged without one, from the (step, epoch) pairs of other records."""
    if not pairs or not np.isnan(epoch).any():
        return epoch
    steps, epochs = np.array(sorted(pairs)).T
    at = np.clip(np.searchsorted(steps, x, side="right") - 1, 0, len(steps) - 1)
    return np.where(np.isnan(epoch), epochs[at], epoch)


def _unread(records: list[dict], names: dict[str, str | None], points: dict, notes: list[str]) -> None:
    """A note for each column read as a metric that holds no number at all (say what it holds)."""
    for k, name in names.items():
        if name in (None, "step", "epoch") or k in points:
            continue
        sample = next((r[k] for r in records if r.get(k) not in (None, "")), None)
        if sample is not None:
            notes.append(f"column {k!r} (read as {name}) holds no number (e.g. {str(sample)[:40]!r}); "
                         "log numbers, e.g. loss.item()")


def _by_metric(points: dict, names: dict) -> dict[str, list[str]]:
    """metric -> its log keys, the preferred first. Validation: a key ending in 'epoch' first
    (Lightning's val_loss_epoch, one value per evaluation, over val_loss_step, one per
    validation batch, logged against a counter of validation batches, not the training step).
    Then the most distinct x values (train_loss_step over train_loss_epoch), then the fewest
    points (one value per x over several)."""
    by_metric: dict[str, list[str]] = {}
    rank = {k: (not (str(names[k]).startswith("val") and re.search(r"epoch$", k, re.I)),
                -len({p[0] for p in points[k]}), len(points[k])) for k in points}
    for k in sorted(points, key=lambda k: rank[k]):  # stable: log order among equals
        by_metric.setdefault(names[k], []).append(k)
    return by_metric


def _convert(series: dict[str, Series], notes: list[str]) -> None:
    """Put series in the units the rules read: accuracies logged in percent (0-100) as
    fractions, and a perplexity as its loss (ln) when no loss of that split is logged."""
    for name, s in list(series.items()):
        finite = s.y[np.isfinite(s.y)]
        if name.endswith("_acc") and len(finite) and 1.0 < float(np.max(finite)) <= 100.0 and np.min(finite) >= 0:
            series[name] = Series(s.x, s.y / 100.0, s.epoch, s.key)
            notes.append(f"{s.key} is in percent (up to {float(np.max(finite)):.4g}); read as a fraction")
        if name.endswith("_ppl"):
            del series[name]
            loss = name.replace("_ppl", "_loss")
            if loss not in series and len(finite) and np.min(finite) > 0:
                with np.errstate(invalid="ignore", divide="ignore"):
                    series[loss] = Series(s.x, np.log(s.y), s.epoch, s.key)
                notes.append(f"no {loss.replace('_', ' ')} logged: read as ln({s.key}) (the loss a perplexity is exp of)")


def from_records(records: Iterable[dict], mapping: dict[str, str] | None = None, *,
                 fmt: str = "records", where: str = "the log") -> Curves:
    """Curves from flat records (dicts of metric -> number, with 'step' and/or 'epoch').

    mapping: {metric: column} for names `canonical_key` does not recognise, e.g.
    {"val_acc": "top1_dev", "train_loss": "xent"} (metrics: `METRICS`). When several columns
    hold one metric, `_by_metric` chooses; learning-rate groups beyond the first stay as
    'lr/<group>'. Accuracies in percent and perplexities are converted (`_convert`, noted).
    """
    records = [_flatten(r) for r in records if isinstance(r, dict)]
    keys = list(dict.fromkeys(k for r in records for k in r))
    check_mapping(mapping, keys, where)
    resolve = _resolver(keys, mapping)
    names = {k: resolve(k) for k in keys}
    present = set(names.values())
    unit = "step" if "step" in present else "epoch" if "epoch" in present else "record"
    notes: list[str] = []
    records = _running_steps(records, names, notes)
    points, pairs, no_grad = _collect(records, names, unit)
    _unread(records, names, points, notes)
    by_metric = _by_metric(points, names)
    lr_keys = sorted((k for n, ks in by_metric.items() if n.startswith("lr") for k in ks),
                     key=lambda k: -len(points[k]))
    series = {}
    for name, ks in by_metric.items():
        if name.startswith("lr"):
            continue
        x, y, ep = (np.array(c, dtype=float) for c in zip(*points[ks[0]]))
        series[name] = Series(x, y, _fill_epochs(ep, x, pairs), ks[0])
    for i, k in enumerate(lr_keys):
        x, y, ep = (np.array(c, dtype=float) for c in zip(*points[k]))
        series["lr" if i == 0 else names[k] if names[k] != "lr" else f"lr/{k}"] = Series(
            x, y, _fill_epochs(ep, x, pairs), k)
    grads = {names[k] for k in no_grad if names[k] in series and series[names[k]].key == k}
    _convert(series, notes)
    return Curves(unit, series, fmt=fmt, no_gradient=grads, notes=notes)
