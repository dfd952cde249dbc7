"""The rules: each reads the curves of one run and either names a pathology, with the evidence
and the points it comes from, or stays silent. `RULES` lists them in the order the verdict is
chosen (`ORDER`): a cause before its symptoms (a zero learning rate before the flat loss it
causes).

Every rule computes its statistics (`Finding.measured`, and `Report.measured` for rules that
stay silent) and compares them with thresholds measured on real logs (`tests/logs/make_logs.py`:
seqrep, Hugging Face Trainer, Lightning CSV and TensorBoard, a plain PyTorch loop; healthy and
with each pathology planted; 9 seeds of data, sizes and class counts). Each threshold was set
at the geometric middle of seed 0's worst healthy value and mildest planted value as measured
when it was set (some plants were repaired since, so today's seed-0 values below have moved a
little); seeds 1-8 check it (`benchmarks/diagnose.py` -> `benchmarks/results/diagnose.md`, which
lists every log and the history of the rules):

| rule | statistic | threshold | healthy, worst: seed 0 / all | planted, mildest: seed 0 / all |
|---|---|---|---|---|
| nonfinite | non-finite points | any | 0 / 0 | 1 / 1 |
| lr_zero | run at <= 1 % of the peak lr | 0.19 | 0.042 / 0.065 | 0.875 / 0.87 |
| noisy | trend / scatter | < 3.0 | 13.1 / 10.1 | 0.97 / 1.68 |
| init_far | first loss / ln C | 1.9 | 1.00 / 1.03 | 3.58 / 2.10 |
| no_learning | loss progress below ln C | < 0.3 | 0.72 / 0.41 | 0.13 / 0.25 |
| stuck_accuracy | loss / lowest label entropy | 1.29 | (other conditions) | 1.52 / 1.35 |
| diverge | climb / ln C | 0.32 | 0.17 / 0.17 | 1.04 / 0.33 |
| plateau_drop | run spent at the start | 0.35 | 0.23 / 0.30 | 0.45 / 0.25 |
| overfit | val rise / its lowest; / ln C | 0.18; 0.04 | 0.03; 0.008 / 0.033 | 0.75; 0.14 / 0.001 |
| val_better | end gap / ln C | 0.064 | 0.059 / 0.059 | 0.080 / 0.078 |
| grad_zero, glued | exact zero; steps back | any | 0 / 0 | 1 / 1 |

Over all 522 logs no healthy one gets a pathology verdict (0 of 81); 15 planted ones miss
(mild overfitting, a late dropout gap, a plateau shorter than the threshold: listed with their
numbers in tests/test_diagnose.py). Shapes: every series is 1-D, one value per logged point;
"smoothed" is the median of ten equal runs of consecutive points (20 points or fewer: the
points themselves).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .curves import Curves, Series

__all__ = ["RULES", "Finding", "Run"]


@dataclass
class Finding:
    """One pathology: `kind` (stable name), `title` (one line), `evidence` (lines naming the
    steps / epochs), `next_check` (what to run next), `measured` (the rule's statistics and
    thresholds), `at` (the step / epoch the finding points to, when there is one)."""

    kind: str
    title: str
    evidence: list[str]
    next_check: str
    measured: dict = field(default_factory=dict)
    at: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title, "evidence": self.evidence,
                "next_check": self.next_check, "measured": self.measured, "at": self.at}


# --------------------------------------------------------------------------------------------
# The run as the rules see it
# --------------------------------------------------------------------------------------------


def _smooth(series: Series, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the medians of k equal runs of consecutive points; the points themselves
    when there are at most 2k (per-epoch logs: each point is already a mean)."""
    if len(series) <= 2 * k:
        return series.x.copy(), series.y.copy()
    parts = np.array_split(np.arange(len(series)), k)
    return (np.array([series.x[p[len(p) // 2]] for p in parts]),  # a logged x, for messages
            np.array([np.median(series.y[p]) for p in parts]))


def _fmt(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


class Run:
    """The curves of a log cut to its last run (a log glued from several runs, or a resume
    that re-logged steps, is diagnosed on the run that wrote last) and, for the rules that
    read trends, cut before the first non-finite value."""

    def __init__(self, curves: Curves):
        self.curves = curves
        self.raw = curves.series
        self.series = {k: _last_run(s) for k, s in curves.series.items()}
        self.classes = curves.classes

    def get(self, name: str, finite: bool = True) -> Series | None:
        s = self.series.get(name)
        if s is None or not len(s):
            return None
        if finite:
            bad = np.flatnonzero(~np.isfinite(s.y))
            s = s if not len(bad) else Series(s.x[:bad[0]], s.y[:bad[0]], s.epoch[:bad[0]], s.key)
        return s if len(s) else None

    @property
    def loss(self) -> Series | None:
        return self.get("train_loss")

    @property
    def ln_c(self) -> float | None:
        return math.log(self.classes) if self.classes and self.classes > 1 else None

    def where(self, x: float, name: str = "train_loss") -> str:
        return self.curves.where(x, name)

    def lr_at(self, x: float) -> float | None:
        lr = self.series.get("lr")
        if lr is None or not len(lr):
            return None
        before = np.flatnonzero(lr.x <= x)
        return float(lr.y[before[-1]] if len(before) else lr.y[0])

    def chance(self) -> float | None:
        return 1.0 / self.classes if self.classes else None


def _last_run(s: Series) -> Series:
    back = np.flatnonzero(np.diff(s.x) < 0)
    return s.cut(int(back[-1]) + 1) if len(back) else s


Rule = Callable[[Run], tuple[dict, Finding | None]]
RULES: list[tuple[str, Rule]] = []


def rule(kind: str):
    def register(fn: Rule) -> Rule:
        RULES.append((kind, fn))
        return fn
    return register


def _first_bad(s: Series) -> int | None:
    bad = np.flatnonzero(~np.isfinite(s.y))
    return int(bad[0]) if len(bad) else None


# --------------------------------------------------------------------------------------------
# Non-finite values
# --------------------------------------------------------------------------------------------


@rule("nonfinite")
def nonfinite(run: Run) -> tuple[dict, Finding | None]:
    """Any NaN / inf in a loss or gradient norm (or seqrep's guard stopping on one). No
    threshold: one non-finite value is one too many (clean logs: 0)."""
    firsts = []
    for name, s in run.series.items():
        i = None if name.startswith("lr") else _first_bad(s)
        if i is not None:
            firsts.append((float(s.x[i]), name, float(s.y[i])))
    stopped = [e["text"] for e in run.curves.events if e["kind"] == "stopped" and "non-finite" in e["text"]]
    stats = {"nonfinite_series": len(firsts) + len(stopped)}
    if not firsts and not stopped:
        return stats, None
    evidence = [f"{e}" for e in stopped]
    config = run.curves.context.get("optimizer")
    if stopped and config:
        evidence.append(f"the run's settings: {config}")
    at: dict = {}
    if firsts:
        x, name, value = min(firsts)
        lr = run.lr_at(x)
        at = {run.curves.unit: x}
        evidence.append(f"{name.replace('_', ' ')} is {value} from {run.where(x, name)} on"
                        + (f"; the learning rate then: {_fmt(lr)}" if lr is not None else ""))
        evidence += [f"{n.replace('_', ' ')} non-finite from {run.where(fx, n)}" for fx, n, _ in sorted(firsts)[1:4]]
        evidence += _before_nan(run, x)
    return stats, Finding(
        "nonfinite", "the loss or the gradients became NaN / inf", evidence,
        "seqrep.watch(model, optimizer) in your loop (w.after_loss(loss)) stops at the first "
        "non-finite loss or gradient and names it. If the loss was rising before (shown above), "
        "lower the learning rate or clip gradients; if it jumped from a normal value, look at "
        "that step's batch (inf/NaN inputs, log(0) in a hand-written loss: use "
        "F.cross_entropy / log_softmax).", stats, at)


def _before_nan(run: Run, x: float) -> list[str]:
    """What the training loss did before x, and whether the log hides the NaN after it."""
    loss = run.series.get("train_loss")
    out = []
    if loss is None or not len(loss):
        return out
    before = np.flatnonzero((loss.x < x) & np.isfinite(loss.y))
    if len(before):
        i0, i1 = before[0], before[-1]
        out.append(f"training loss before it: {_fmt(loss.y[i0])} at {run.where(loss.x[i0])}, "
                   f"{_fmt(loss.y[i1])} at {run.where(loss.x[i1])}")
    after = loss.y[loss.x > x]
    if len(after) and np.isfinite(after).all() and run.curves.fmt == "hf_trainer":
        out.append(f"the logged training loss stays finite after it ({_fmt(after[-1])} at the end): "
                   "the Trainer's logging_nan_inf_filter hides non-finite losses")
    return out


# --------------------------------------------------------------------------------------------
# The learning rate
# --------------------------------------------------------------------------------------------

LR_FLOOR = 0.01  # "at zero": at most this fraction of the run's peak learning rate
LR_DEAD = 0.19  # flagged when the lr sits at zero for this fraction of the run after its peak


@rule("lr_zero")
def lr_zero(run: Run) -> tuple[dict, Finding | None]:
    """The learning rate at zero, or at <= 1 % of its peak for a large part of the run after
    the peak (a schedule built for fewer steps than the run). The last logged point does not
    count: every decaying schedule ends near zero there."""
    lr = run.get("lr")
    loss = run.loss
    if lr is None or len(lr) < 3:
        return {}, None
    peak = float(np.max(lr.y))
    span = float(lr.x[-1] - lr.x[0]) or 1.0
    if peak <= 0:
        stats = {"lr_dead_fraction": 1.0, "threshold": LR_DEAD}
        return stats, Finding("lr_zero", "the learning rate is 0 at every logged step",
                              [f"lr = 0 from {run.where(lr.x[0])} to {run.where(lr.x[-1])}"],
                              "set the optimizer's lr (and check what the scheduler multiplies it by "
                              "at step 0: a warm-up factor of 0 never leaves 0 with LambdaLR).", stats)
    ipk = int(np.argmax(lr.y))
    low = lr.y[:-1] <= LR_FLOOR * peak
    low[:ipk] = False
    dead = float(np.sum(np.diff(lr.x)[low])) / span
    stats = {"lr_dead_fraction": round(dead, 3), "threshold": LR_DEAD}
    if dead < LR_DEAD:
        return stats, None
    first = float(lr.x[np.flatnonzero(low)[0]])
    evidence = [f"the learning rate fell to <= {LR_FLOOR:.0%} of its peak {_fmt(peak)} at {run.where(first, 'lr')} "
                f"and sat there for {dead:.0%} of the run (to {run.where(lr.x[-1], 'lr')})"]
    if loss is not None:
        after = loss.y[loss.x >= first]
        if len(after) > 1:
            evidence.append(f"training loss from then on: {_fmt(after[0])} -> {_fmt(after[-1])}")
    return stats, Finding(
        "lr_zero", "the learning-rate schedule ended long before the run", evidence,
        "compare the scheduler's total steps with the run's optimizer steps (steps per epoch x "
        "epochs, divided by gradient accumulation): a schedule built for one epoch, or for "
        "len(dataset) instead of len(loader), reaches 0 early.", stats, {run.curves.unit: first})


# --------------------------------------------------------------------------------------------
# Learning at all
# --------------------------------------------------------------------------------------------

NOISY_SNR = 3.0  # trend over the run / per-point scatter below this ...
NOISY_REL = 0.066  # ... with a scatter above this fraction of the loss level (a flat, quiet
# loss is no learning, not noise): too noisy


def _scatter(y: np.ndarray) -> float:
    """The scatter of one point of `y`: median absolute successive difference / 0.954 (the
    standard deviation, for Gaussian noise)."""
    return float(np.median(np.abs(np.diff(y)))) / 0.954


@rule("noisy")
def noisy(run: Run) -> tuple[dict, Finding | None]:
    """Per-step losses whose scatter hides any trend: neither the change from the first to the
    last fifth of the run nor the range of the smoothed loss (a fall, or a fall and a climb)
    exceeds the point-to-point scatter (robust: median absolute successive difference / 0.954,
    the scatter of one point for Gaussian noise)."""
    loss = run.loss
    if loss is None or len(loss) < 30 or run.curves.unit != "step":
        return {}, None
    y, fifth = loss.y, max(len(loss) // 5, 1)
    scatter = _scatter(y)
    smooth = _smooth(loss)[1]
    trend = max(abs(float(np.median(y[:fifth]) - np.median(y[-fifth:]))), float(np.ptp(smooth)))
    level = float(np.median(y))
    snr = trend / max(scatter, 1e-12)
    rel = scatter / max(level, 1e-12)
    stats = {"trend_to_scatter": round(snr, 3), "scatter_to_level": round(rel, 3),
             "thresholds": [NOISY_SNR, NOISY_REL]}
    if snr >= NOISY_SNR or rel <= NOISY_REL or stuck_accuracy(run)[1] is not None:
        return stats, None  # (an accuracy stuck at one class is the story, not the noise)
    return stats, Finding(
        "noisy", "the loss is too noisy to show a trend",
        [f"the per-step training loss scatters by about {_fmt(scatter)} ({rel:.0%} of its level {_fmt(level)}) "
         f"while its trend from {run.where(loss.x[0])} to {run.where(loss.x[-1])} moves {_fmt(trend)}"],
        "lower the learning rate (x0.1) or raise the batch size; then log a running mean (HF "
        "logging_steps, Lightning on_epoch=True) to see the trend.", stats)


NL_PROGRESS = 0.3  # no learning: the best smoothed loss is within this fraction of its start
NL_PRIOR = 0.03  # ... unless the loss came this far below ln C to settle where accuracy is
# stuck at one class (the class prior learned; a cut graph, logged as None, still counts as no
# learning); or unless validation is better than training all along (the training loss is then
# measured with dropout or augmentation on, and says little about learning)
NL_ACC = 10.0  # ... and validation accuracy stays below this multiple of 1/C (when C is known:
# a model that predicts the majority class of imbalanced data scores 2.5-4x 1/C, and the
# post-mortem's broken run touched 5.1x 1/60 once by chance; a slow but real learner on many
# classes sits at 10-100x)


def _progress(s: Series | None, ref: float | None) -> float | None:
    """1 - (lowest smoothed value) / ref: how far the loss came down from ref (its start, or
    ln C), 0 when it never went below."""
    if s is None or len(s) < 2:
        return None
    _, y = _smooth(s)
    start = ref if ref else float(y[0])
    return max(0.0, 1.0 - float(np.min(y)) / start) if start > 0 else None


@rule("no_learning")
def no_learning(run: Run) -> tuple[dict, Finding | None]:
    """The loss flat at its starting level (ln C when the number of classes is known, the
    post-mortem's case) from the first logged point, validation too, accuracy at chance."""
    loss, val = run.loss, run.get("val_loss")
    if loss is None or len(loss) < 3:
        return {}, None
    ref = run.ln_c
    start = ref if ref else float(_smooth(loss)[1][0])
    train_p, val_p = _progress(loss, ref), _progress(val, ref)
    acc = run.get("val_acc")
    best_acc = float(np.max(acc.y)) if acc is not None else None
    stats = {"train_progress": _round(train_p), "val_progress": _round(val_p),
             "best_val_acc_over_chance": _round(best_acc / run.chance() if best_acc is not None and run.chance() else None),
             "thresholds": [NL_PROGRESS, NL_ACC]}
    if start < 0.05 or train_p >= NL_PROGRESS or (val_p is not None and val_p >= NL_PROGRESS):
        return stats, None
    blew_up = bool(ref and loss.y[0] >= INIT_HIGH * ref)
    if blew_up and (init_far(run)[1] is not None or diverge(run)[1] is not None):
        return stats, None  # it started far above ln C and came down (init_far) or climbed (diverge)
    if best_acc is not None and run.chance() and best_acc >= NL_ACC * run.chance():
        return stats, None
    if ref and train_p >= NL_PRIOR and not run.curves.no_gradient and stuck_accuracy(run)[1] is not None:
        return stats, None  # it learned the class frequencies: stuck_accuracy says so
    if val_better(run)[1] is not None:
        return stats, None  # the training loss is measured under dropout / augmentation
    if _falling_in_first_epoch(loss):
        return stats, None  # too early to compare with ln C: it has not seen the data once
    evidence = [f"training loss {_fmt(loss.y[0])} at {run.where(loss.x[0])}, lowest {_fmt(float(np.min(_smooth(loss)[1])))}, "
                f"{_fmt(loss.y[-1])} at {run.where(loss.x[-1])}: {train_p:.0%} below "
                + (f"ln({run.classes}) = {ref:.3g}, what guessing evenly scores" if ref else "where it started")]
    rate = run.get("lr")
    if rate is not None and not blew_up:
        evidence.append(f"learning rate: peak {_fmt(float(np.max(rate.y)))}, {_fmt(float(rate.y[-1]))} at the end "
                        "(a rate too low to move the weights leaves the loss flat too)")
    if blew_up:
        lr = run.lr_at(float(loss.x[0]))
        evidence.append(f"the first logged loss is {float(loss.y[0]) / ref:.3g}x ln({run.classes}) and it never came "
                        "below ln C: the first steps blew up (a learning rate far too high"
                        + (f": {_fmt(lr)} then" if lr is not None else "") + "), then the model stopped learning")
    if val is not None:
        evidence.append(f"validation loss {_fmt(val.y[0])} -> {_fmt(val.y[-1])} ({run.where(val.x[0], 'val_loss')} -> "
                        f"{run.where(val.x[-1], 'val_loss')})")
    if best_acc is not None:
        evidence.append(f"validation accuracy at most {best_acc:.3g}" + (f" (chance 1/{run.classes} = {run.chance():.3g})" if run.chance() else ""))
    evidence += _gradient_evidence(run)
    next_check = ("seqrep.check_training(model, (x, y), optimizer=opt) on one batch names what stops it "
                  "before a step is wasted: a cut graph (no_grad, .detach(), numpy), a frozen or eval-mode "
                  "part, parameters missing from the optimizer, a loss fed probabilities (notebooks 03, 06).")
    if blew_up:
        next_check = ("lower the learning rate (x0.1, or more) and clip gradients, then log from the first "
                      "step: the loss must start near ln C and fall. If it still starts far above, " + next_check)
    return stats, Finding(
        "no_learning", "the model is not learning at all: the loss sits where it started", evidence,
        next_check, stats)


def _falling_in_first_epoch(loss: Series) -> bool:
    """A log that ends inside its first epoch (epoch < 1 at every point) with a loss that
    visibly falls: the change from its first to its last fifth at least NOISY_SNR x the
    point-to-point scatter (the noisy rule's measure of a trend)."""
    epochs = loss.epoch[np.isfinite(loss.epoch)]
    if len(loss) < 5 or not len(epochs) or float(np.max(epochs)) >= 1:
        return False
    fifth = max(len(loss) // 5, 1)
    fall = float(np.median(loss.y[:fifth]) - np.median(loss.y[-fifth:]))
    return fall >= NOISY_SNR * _scatter(loss.y)


def _round(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(float(v), digits)


def _gradient_evidence(run: Run) -> list[str]:
    """Lines about components whose gradient norm is zero or missing (None) throughout."""
    out = []
    for name, s in run.curves.groups("grad_norm").items():
        label = name.split("/", 1)[1] if "/" in name else "total"
        if name in run.curves.no_gradient and np.all(s.y == 0):
            out.append(f"gradient norm of {label}: None (no gradient reached it) at every logged point")
        elif len(s) and np.all(s.y == 0):
            out.append(f"gradient norm of {label}: exactly 0 at every logged point")
    return out[:6]


SA_SPREAD = 0.005  # accuracy stuck: it moves less than this over the second half of the run ...
SA_ENTROPY = 1.29  # ... with a loss at least this multiple of the lowest label entropy a class
# distribution with that majority share can have (a model that predicts one class and the class
# frequencies scores the label entropy; one that discriminates at that accuracy scores less) ...
SA_MAX = 0.9  # ... and an accuracy below this (a one-class model above it needs 90 % of the data
# in one class; converged healthy models sit still up there)


def _min_entropy(share: float) -> float:
    """The lowest label entropy (nats) a class distribution whose largest class has `share`
    can have: what a model predicting class frequencies only must score at least."""
    if not 0 < share < 1:
        return 0.0
    k = int(1 / share)
    rest = 1 - k * share
    return -k * share * math.log(share) - (rest * math.log(rest) if rest > 0 else 0.0)


@rule("stuck_accuracy")
def stuck_accuracy(run: Run) -> tuple[dict, Finding | None]:
    """Accuracy the same at every evaluation of the second half, with a loss only a model that
    predicts one class would have: at least SA_ENTROPY x the lowest label entropy compatible
    with that accuracy as the majority share (`_min_entropy`), and a training loss not below
    that entropy either and, when logged, a training accuracy as still as the validation one (a
    model that fits its training set, or still improves on it, is not predicting one class). A
    model that learned the class frequencies and nothing from the inputs: the majority share,
    or 1/C on balanced data."""
    name = acc_name(run)
    acc = run.get(name)
    if acc is None or len(acc) < 4:
        return {}, None
    half = acc.y[len(acc) // 2:]
    level, spread = float(half[-1]), float(np.max(half) - np.min(half))
    val = run.get("val_loss") if name == "val_acc" else None
    loss = val if val is not None else run.loss
    ratio = None
    if loss is not None and 0 < level < 1:
        ratio = float(np.median(loss.y[-max(len(loss) // 5, 1):])) / max(_min_entropy(level), 1e-12)
    train, train_acc = run.loss, run.get("train_acc") if name == "val_acc" else None
    fits = train is not None and float(np.median(train.y[-max(len(train) // 5, 1):])) < _min_entropy(level)
    if train_acc is not None and len(train_acc) >= 4:  # one class scores a constant share there too
        tail = train_acc.y[len(train_acc) // 2:]
        fits = fits or float(np.max(tail) - np.min(tail)) > SA_SPREAD
    stats = {"acc_spread": round(spread, 4), "loss_over_min_entropy": _round(ratio), "acc": round(level, 4),
             "thresholds": [SA_SPREAD, SA_ENTROPY, SA_MAX]}
    if spread > SA_SPREAD or not 0 < level < SA_MAX or ratio is None or ratio < SA_ENTROPY or fits:
        return stats, None
    chance = run.chance()
    what = (f"1/{run.classes} = {chance:.3g}, chance" if chance and abs(level - chance) <= 0.02
            else "the share of one class")
    label = "validation" if name == "val_acc" else "training"
    evidence = [f"{label} accuracy {level:.3g} at every evaluation from {run.where(float(acc.x[len(acc) // 2]), name)} "
                f"to {run.where(acc.x[-1], name)}: {what} — the model predicts the same class for every sample",
                f"{label} loss {_fmt(float(loss.y[-1]))}, {ratio:.2f}x the lowest label entropy a {level:.3g} "
                f"majority allows ({_min_entropy(level):.3g}): what predicting the class frequencies scores"]
    if val is not None and run.ln_c and val.y[-1] < 0.95 * run.ln_c:
        evidence.append(f"below ln({run.classes}) = {run.ln_c:.3g}: it learned the class frequencies, nothing from the inputs")
    evidence += _gradient_evidence(run)
    return stats, Finding(
        "stuck_accuracy", f"accuracy stuck at {level:.3g}: {what}", evidence,
        "predict a validation batch: one class every time? Then the inputs do not reach the "
        "output: look at a batch as the model receives it (after preprocessing). "
        "seqrep.class_stats(y) gives the majority share and seqrep.per_class_report the recall "
        "per class (notebook 04).", stats)


def acc_name(run: Run) -> str:
    return "val_acc" if run.get("val_acc") is not None else "train_acc"


DIV_RISE = 0.32  # divergence: the smoothed loss climbs this fraction of ln C (or of its start)
# above the lowest value it had reached before


@rule("diverge")
def diverge(run: Run) -> tuple[dict, Finding | None]:
    """The training loss fell, then climbed back (typically once warm-up brings the learning
    rate to a peak that is too high), whether or not it recovered later. Measured on the
    smoothed loss: its largest climb above the lowest value reached before, as a fraction of
    ln C (or of the starting loss)."""
    loss = run.loss
    if loss is None or len(loss) < 4:
        return {}, None
    x, y = _smooth(loss)
    low = np.minimum.accumulate(y)
    scale = run.ln_c or float(y[0])
    j = int(np.argmax(y - low))
    rise = float(y[j] - low[j]) / scale if scale > 0 else 0.0
    stats = {"rise": round(rise, 3), "threshold": DIV_RISE}
    if rise < DIV_RISE:
        return stats, None
    i = int(np.argmin(y[:j]))
    evidence = [f"training loss fell from {_fmt(y[0])} ({run.where(x[0])}) to {_fmt(y[i])} ({run.where(x[i])}), "
                f"then rose to {_fmt(y[j])} ({run.where(x[j])})"
                + (f" and recovered to {_fmt(y[-1])} by the end" if y[-1] < y[i] + 0.25 * (y[j] - y[i])
                   else f" and ended at {_fmt(y[-1])}")]
    evidence += _lr_story(run, x[i], x[j])
    acc = run.get("val_acc")
    if acc is not None and len(acc) > 2:
        evidence.append(f"validation accuracy best {float(np.max(acc.y)):.3g}, last {float(acc.y[-1]):.3g}")
    return stats, Finding(
        "diverge", "training diverged: the loss fell, then climbed back", evidence,
        "lower the peak learning rate (x0.3) or lengthen the warm-up, and clip gradients "
        "(grad_clip / max_grad_norm 1.0); seqrep.check_training's step_size finding measures the "
        "update/weight ratio of one optimizer step.", stats, {run.curves.unit: float(x[i])})


def _lr_story(run: Run, x_low: float, x_high: float) -> list[str]:
    """The learning rate at the loss's low point and at its climb, and where it peaked."""
    lr = run.get("lr")
    lr_low, lr_high = run.lr_at(x_low), run.lr_at(x_high)
    if lr is None or lr_low is None or lr_high is None:
        return []
    peak_at = float(lr.x[int(np.argmax(lr.y))])
    return [f"learning rate {_fmt(lr_low)} at the lowest loss, {_fmt(lr_high)} at the climb; peak "
            f"{_fmt(float(np.max(lr.y)))} reached at {run.where(peak_at, 'lr')}"
            + (": the climb follows the warm-up" if lr_high >= lr_low and peak_at <= x_high else "")]


# --------------------------------------------------------------------------------------------
# Training against validation
# --------------------------------------------------------------------------------------------

VF_TRAIN = 0.3  # validation flat: training loss came down at least this fraction ...
VF_VAL = 0.05  # ... while validation never went this fraction below its first value
VF_ACC = 0.1  # ... and validation accuracy never rose this much above its first value


@rule("val_flat")
def val_flat(run: Run) -> tuple[dict, Finding | None]:
    """Training loss falls while validation never improves on its first evaluation: the
    validation pipeline differs from training (labels encoded differently, other
    preprocessing), or the model memorises labels that do not follow from the inputs."""
    loss, val = run.loss, run.get("val_loss")
    if loss is None or val is None or len(val) < 3 or len(loss) < 3:
        return {}, None
    train_p = _progress(loss, None)
    val_p = max(0.0, 1.0 - float(np.min(val.y)) / float(val.y[0])) if val.y[0] > 0 else 0.0
    stats = {"train_progress": _round(train_p), "val_progress": round(val_p, 3), "thresholds": [VF_TRAIN, VF_VAL]}
    if run.ln_c and float(val.y[0]) < (1 - NL_PROGRESS) * run.ln_c:
        return stats, None  # validation had learned before its first evaluation (a resumed or
        # fine-tuned model): no better from there is convergence, not a validation that never learns
    acc = run.get("val_acc")
    acc_gain = float(np.max(acc.y) - acc.y[0]) if acc is not None and len(acc) > 1 else None
    stats["val_acc_gain"] = _round(acc_gain)
    if train_p is None or train_p < VF_TRAIN or val_p > VF_VAL or (acc_gain is not None and acc_gain > VF_ACC):
        return stats, None
    evidence = [f"training loss {_fmt(loss.y[0])} -> {_fmt(loss.y[-1])} ({run.where(loss.x[0])} -> {run.where(loss.x[-1])}, "
                f"{train_p:.0%} lower)",
                f"validation loss never below its first value {_fmt(val.y[0])} ({run.where(val.x[0], 'val_loss')}); "
                f"{_fmt(val.y[-1])} at {run.where(val.x[-1], 'val_loss')}"]
    if acc is not None:
        evidence.append(f"validation accuracy at most {float(np.max(acc.y)):.3g}"
                        + (f" (chance 1/{run.classes} = {run.chance():.3g})" if run.chance() else ""))
    return stats, Finding(
        "val_flat", "validation does not improve while training does", evidence,
        "evaluate a slice of the training set through the validation code path: at chance there "
        "too means that path differs (label encoding, preprocessing, eval-mode handling); fine "
        "there means the model memorises — are the training labels shuffled against the inputs? "
        "Compare with a baseline that has nothing to get wrong (notebook 02: MiniRocket).", stats)


OF_RISE = 0.18  # overfitting: validation loss ends this fraction above its lowest point ...
OF_SCALED = 0.04  # ... and by this fraction of ln C (or of its first value): a rise from 0.019
# to 0.025 is noise on a converged model, not overfitting
OF_AFTER = 2  # ... with at least this many evaluations after the lowest one


@rule("overfit")
def overfit(run: Run) -> tuple[dict, Finding | None]:
    """Validation loss went down, then up while training loss kept falling (or rose from the
    first evaluation while validation accuracy still improved: confident mistakes); the epoch of
    the lowest validation loss is where to stop."""
    loss, val = run.loss, run.get("val_loss")
    if loss is None or val is None or len(val) < 4:
        return {}, None
    i = int(np.argmin(val.y))
    vmin, vend = float(val.y[i]), float(np.median(val.y[-2:]))
    rise = (vend - vmin) / max(vmin, 1e-12)
    scaled = (vend - vmin) / (run.ln_c or float(val.y[0]) or 1.0)
    stats = {"val_rise": round(rise, 3), "val_rise_scaled": round(scaled, 3), "evals_after_best": len(val) - 1 - i,
             "thresholds": [OF_RISE, OF_SCALED, OF_AFTER]}
    train_then = loss.y[loss.x <= val.x[i]]
    falling = len(train_then) and float(np.median(loss.y[-max(len(loss) // 10, 1):])) < float(train_then[-1])
    acc = run.get("val_acc")
    acc_gain = float(np.max(acc.y) - acc.y[0]) if acc is not None and len(acc) > 1 else 0.0
    first_is_best_but_learning = i == 0 and acc_gain > VF_ACC  # loss up from the start, accuracy up
    if (rise < OF_RISE or scaled < OF_SCALED or len(val) - 1 - i < OF_AFTER or not falling
            or (i == 0 and not first_is_best_but_learning)):
        return stats, None
    ep = val.epoch[i]
    stop = f"epoch {ep:g}" if np.isfinite(ep) else run.where(val.x[i], "val_loss")
    evidence = [f"validation loss lowest at {run.where(val.x[i], 'val_loss')} ({_fmt(vmin)}), then up {rise:.0%} "
                f"to {_fmt(val.y[-1])} at {run.where(val.x[-1], 'val_loss')}",
                f"training loss meanwhile {_fmt(float(train_then[-1]))} -> {_fmt(loss.y[-1])}"]
    if acc is not None and len(acc) == len(val):
        best = int(np.argmax(acc.y))
        evidence.append(f"validation accuracy {float(acc.y[i]):.3g} there, {float(acc.y[-1]):.3g} at the end"
                        + (f"; highest {float(acc.y[best]):.3g} at {run.where(acc.x[best], 'val_acc')}" if best != i else ""))
    return stats, Finding(
        "overfit", f"overfitting from {stop}: stop there", evidence,
        f"keep the checkpoint of {stop} (early stopping on validation loss); then more data, "
        "augmentation, weight decay or a smaller model. seqrep.class_stats tells scarcity from "
        "imbalance (notebook 04).", stats, {"epoch": float(ep)} if np.isfinite(ep) else {run.curves.unit: float(val.x[i])})


VB_FRAC = 0.8  # validation better than training: at this fraction of evaluations or more ...
VB_EVALS = 5  # "all along" needs this many evaluations: over the first few, any fast learner's
# epoch-mean training loss lags its end-of-epoch validation loss (notebook 07's running verdict
# on the fixed run showed it after 4 epochs)
VB_GAP = 0.064  # ... and still lower by this fraction of ln C (or of the first training loss)
# over the last third of the run


def _train_at_evals(loss: Series, val: Series) -> np.ndarray:
    """(n_val,) mean training loss over the points since the previous evaluation."""
    out, prev = [], -np.inf
    for x in val.x:
        window = loss.y[(loss.x > prev) & (loss.x <= x)]
        out.append(float(np.mean(window)) if len(window) else np.nan)
        prev = x
    return np.array(out)


@rule("val_better")
def val_better(run: Run) -> tuple[dict, Finding | None]:
    """Validation loss below the training loss at (nearly) every evaluation, and still well
    below at the end — not the usual lag early on, when the training loss is a mean over an
    epoch in which the model improved."""
    loss, val = run.loss, run.get("val_loss")
    if loss is None or val is None or len(val) < VB_EVALS:
        return {}, None
    train = _train_at_evals(loss, val)
    ok = np.isfinite(train) & (train > 0)
    scale = (run.ln_c or float(train[ok][0])) if ok.any() else 0.0
    if ok.sum() < 3 or scale <= 0:
        return {}, None
    gap = (train[ok] - val.y[ok]) / scale
    frac, end = float(np.mean(gap > 0)), float(np.median(gap[-max(len(gap) // 3, 1):]))
    stats = {"val_lower_fraction": round(frac, 3), "end_gap": round(end, 3), "thresholds": [VB_FRAC, VB_GAP]}
    if frac < VB_FRAC or end < VB_GAP:
        return stats, None
    evidence = [f"validation loss below the training loss at {int(np.sum(gap > 0))} of {len(gap)} evaluations; "
                f"at the end {_fmt(val.y[-1])} vs {_fmt(float(train[ok][-1]))}"]
    evidence += _dropout_or_leak(run)
    return stats, Finding(
        "val_better", "validation better than training all along", evidence,
        "evaluate the training set in eval mode (model.eval(), no augmentation): if its loss "
        "matches validation, the gap is dropout or augmentation in the training metric "
        "(harmless); if validation stays better, look for overlap between the sets (seqrep "
        "warns when a validation set copies training series). No check can see leakage from "
        "curves alone.", stats)


def _dropout_or_leak(run: Run) -> list[str]:
    """Which evidence points to dropout / augmentation and which to leakage."""
    out = []
    dropout = run.curves.context.get("dropout")
    tacc, vacc = run.get("train_acc"), run.get("val_acc")
    if dropout:
        out.append(f"points to dropout: the model has dropout {dropout:g}, on while the training loss is measured")
    if tacc is not None and vacc is not None and float(vacc.y[-1]) > float(tacc.y[-1]):
        out.append(f"accuracy too: training {float(tacc.y[-1]):.3g} vs validation {float(vacc.y[-1]):.3g} — "
                   "both point to the training metric being measured on harder inputs (dropout, augmentation)")
    if vacc is not None and float(np.max(vacc.y)) >= 0.99:
        out.append(f"points to leakage: validation accuracy reaches {float(np.max(vacc.y)):.3g}, near perfect")
    return out


# --------------------------------------------------------------------------------------------
# Gradients, initial loss, plateaus, glued logs
# --------------------------------------------------------------------------------------------

GZ_LOSS = 1e-3  # a zero gradient counts only where the training loss is above this (a loss of
# exactly 0 has zero gradients too: a data-fitted or converged start)


@rule("grad_zero")
def grad_zero(run: Run) -> tuple[dict, Finding | None]:
    """A logged component whose gradient norm is exactly 0 (or None: no gradient reached it)
    at every point of the second half of the run while the loss is not ~0. No threshold
    beyond exact zero: clean runs never log one (smallest clean value in the results file)."""
    loss = run.loss
    dead, smallest = [], math.inf
    for name, s in run.curves.groups("grad_norm").items():
        s = run.series[name]
        if loss is not None and len(loss) and name not in run.curves.no_gradient:
            at = np.clip(np.searchsorted(loss.x, s.x), 0, len(loss) - 1)
            s = Series(s.x[loss.y[at] > GZ_LOSS], s.y[loss.y[at] > GZ_LOSS], s.epoch[loss.y[at] > GZ_LOSS], s.key)
        if len(s) < 2:
            continue
        half = s.y[len(s) // 2:]
        if np.all(half == 0):
            dead.append(name.split("/", 1)[1] if "/" in name else "total")
        elif np.isfinite(half).any():
            smallest = min(smallest, float(np.min(np.abs(half[np.isfinite(half)]))))
    stats = {"zero_components": len(dead), "smallest_nonzero": None if smallest == math.inf else float(f"{smallest:.3g}")}
    if not dead:
        return stats, None
    return stats, Finding(
        "grad_zero", f"no gradient reaches {', '.join(dead[:3])}" + (" ..." if len(dead) > 3 else ""),
        _gradient_evidence(run) or [f"gradient norm exactly 0 in the second half of the run for: {', '.join(dead)}"],
        "seqrep.check_gradient_flow(model, (x, y), optimizer=opt) names every parameter with no or "
        "zero gradient and why (a cut graph, a frozen part, dead ReLUs, an unused branch) "
        "(notebook 03).", stats)


INIT_HIGH = 1.9  # the first logged training loss above this multiple of ln C


@rule("init_far")
def init_far(run: Run) -> tuple[dict, Finding | None]:
    """The first logged training loss far above ln C, what an untrained model that spreads
    its guesses evenly scores (needs the number of classes), and training then undid it: the
    loss later came below ln C and never climbed back above its start. (A loss that climbs
    above its first logged value, or never comes below ln C, blew up in the steps before the
    first log: a learning rate far too high, which diverge and no_learning name.) A loss far
    below ln C at the start is not flagged: a pretrained or data-fitted start does that."""
    loss, ln_c = run.loss, run.ln_c
    if loss is None or not ln_c:
        return {}, None
    ratio = float(loss.y[0]) / ln_c
    _, smooth = _smooth(loss)
    undone = float(np.min(smooth)) < ln_c and float(np.max(smooth[1:], initial=-np.inf)) <= float(loss.y[0])
    stats = {"first_over_ln_c": round(ratio, 3), "threshold": INIT_HIGH, "undone_by_training": undone}
    if ratio < INIT_HIGH or not undone:
        return stats, None
    return stats, Finding(
        "init_far", f"the loss starts {ratio:.1f}x above ln({run.classes}): a bad initialisation",
        [f"first logged training loss {_fmt(loss.y[0])} at {run.where(loss.x[0])}; ln({run.classes}) = {ln_c:.3g}",
         f"it reached {_fmt(float(np.min(loss.y)))} later: the first steps were spent undoing the start"],
        "seqrep.check_training(model, batch) reports init_loss and the layer behind it: a readout "
        "initialised too large (zero it or scale it down), logits multiplied by a temperature, "
        "a bias that favours one class.", stats)


PL_FRAC = 0.35  # plateau then drop: the loss stays at its start for this fraction of the run ...
PL_DROP = 0.25  # ... then falls by at least this fraction of its starting level


@rule("plateau_drop")
def plateau_drop(run: Run) -> tuple[dict, Finding | None]:
    """The loss sat at its starting level for a large part of the run, then dropped: a saddle
    at the start (initialisation too small, or a learning rate too low to leave it). The
    plateau ends where the smoothed loss (20 runs) has covered a tenth of its total fall."""
    loss = run.loss
    if loss is None or len(loss) < 8:
        return {}, None
    x, y = _smooth(loss, 20)
    drop = float(y[0] - np.min(y))
    if y[0] <= 0 or drop / y[0] < PL_DROP:
        return {"plateau_fraction": 0.0, "thresholds": [PL_FRAC, PL_DROP]}, None
    end = int(np.flatnonzero(y < y[0] - 0.1 * drop)[0])
    frac = float((x[end] - x[0]) / max(x[-1] - x[0], 1e-12))
    stats = {"plateau_fraction": round(frac, 3), "thresholds": [PL_FRAC, PL_DROP]}
    gap = run.curves.context.get("gap")  # the middle of a big log, not read: the drop is in there
    if frac < PL_FRAC or (gap is not None and x[end - 1] <= gap[0] < x[end]):
        return stats, None
    return stats, Finding(
        "plateau_drop", f"the loss sat at its start for {frac:.0%} of the run, then dropped",
        [f"training loss about {_fmt(y[0])} from {run.where(x[0])} to {run.where(x[end])}, then down to "
         f"{_fmt(float(np.min(y)))} by {run.where(x[int(np.argmin(y))])}"],
        "a plateau at the starting loss is a saddle: the initialisation is too small for the depth "
        "(use the framework's default init) or the learning rate too low to leave it; "
        "seqrep.check_training's vanishing_gradient finding measures the gradient by depth.",
        stats, {run.curves.unit: float(x[end])})


@rule("glued")
def glued(run: Run) -> tuple[dict, Finding | None]:
    """Steps that go backwards: several runs written into one log (a script re-run into the
    same folder or logger version), or a resume that logged again from an earlier step. No
    threshold: one step back is one too many (clean logs: 0). The other rules read the last run."""
    s = max(run.raw.values(), key=len, default=None)
    if s is None or len(s) < 2:
        return {}, None
    back = np.flatnonzero(np.diff(s.x) < 0)
    stats = {"steps_back": len(back)}
    if not len(back):
        return stats, None
    evidence = []
    for i in back[:3]:
        seen = int(np.sum(s.x[:i + 1] >= s.x[i + 1]))
        evidence.append(f"at point {i + 2} of {len(s)} the {run.curves.unit} goes back from {s.x[i]:g} to {s.x[i + 1]:g} "
                        f"({s.key}); {seen} earlier point(s) are logged again")
    evidence.append(f"the rest of this report reads the last run only (from {run.curves.unit} {s.x[back[-1] + 1]:g})")
    return stats, Finding(
        "glued", f"the log holds {len(back) + 1} runs glued together (or a resume that logged steps again)",
        evidence,
        "give each run its own place (Lightning: a new logger version; HF: a new output_dir; "
        "seqrep does this for you) or, after a resume, drop the steps the resumed run repeats.", stats)


# The verdict is the first finding in this order: causes before the symptoms they produce (a
# zero learning rate or a bad start flattens the loss; NaN ends every trend; a loss too noisy to
# trend makes its first point, and so the initial loss, one noisy sample), what happened first
# before what happened later (a plateau at the start before overfitting at the end), the
# learning curve before gradients, and a glued log last (the other rules read its last run).
ORDER = ("nonfinite", "lr_zero", "noisy", "init_far", "no_learning", "stuck_accuracy", "diverge",
         "val_flat", "plateau_drop", "overfit", "grad_zero", "val_better", "glued")
RULES.sort(key=lambda kr: ORDER.index(kr[0]))
