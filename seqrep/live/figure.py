"""Live training curves: `LivePlot`, a `fit` callback that redraws one figure in place.

In Jupyter it draws through a single display handle (the executed notebook keeps the final
frame as a static PNG), in a plain script into `live.png` next to the run log, in the panel
into an `ipywidgets.Image`.
"""

from __future__ import annotations

import io
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from ..callbacks import Callback, FitState
from ..diagnosis import diagnose_records
from ..errors import SeqrepError
from ..plots import chance_label, chance_levels

__all__ = ["LIVE_PNG", "LivePlot", "duration"]

LIVE_PNG = "live.png"
_MAX_STEP_POINTS = 2000  # per-step curves are thinned to this many points when drawn


# --------------------------------------------------------------------------------------------
# Where frames go
# --------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """Seconds as people read them, the one format of every duration the live displays show:
    '12 s', '3.5 min', '2.1 h', '41 days', '66.7 years'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / (365.25 * 86400):,.1f} years"


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

_SERIES = (  # (panel, epoch-record key, legend label, style)
    ("loss", "train_loss", "train (epoch mean)", {"marker": "o", "ms": 3}),
    ("loss", "val_loss", "validation", {"marker": "o", "ms": 3}),
    ("accuracy", "train_accuracy", "train", {"marker": "o", "ms": 3}),
    ("accuracy", "val_accuracy", "validation", {"marker": "o", "ms": 4}),
    # Dashed, with crosses, drawn over plain accuracy: on a balanced validation set the two are
    # equal and one line would hide the other.
    ("accuracy", "val_balanced_accuracy", "validation, balanced",
     {"marker": "x", "ms": 6, "ls": "--", "zorder": 3}),
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


def _legend_above(ax, columns: int, right: bool = False) -> None:
    """The panel's legend above it (right of a title on the left, if `right`): outside the
    axes it covers no curve; a fixed place, too (loc="best" would search for a spot on every
    full redraw)."""
    ax.legend(loc="lower right" if right else "lower left", bbox_to_anchor=(1.0 if right else 0.0, 1.0),
              ncols=columns, fontsize=8,
              frameon=False, borderaxespad=0.2, handlelength=2.2, columnspacing=1.0,
              handletextpad=0.4, labelspacing=0.25)


def _x_limits(epochs: int) -> tuple[float, float]:
    """The whole run, with room left of epoch 0 for the point before the first step."""
    return (-0.02 * epochs, float(epochs))


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

    def __init__(self, epochs: int, peak_lr: dict[str, float], figsize: tuple[float, float], dpi: int,
                 components: Sequence[str] = (), chance: dict | None = None):
        self.fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.fig)  # the object-oriented API: no pyplot state, safe off the main thread
        grid = self.fig.subplots(2, 2)
        axes = dict(zip(("loss", "accuracy", "lr", "grad"), grid.flat))
        # Limits known from the start need no redraw of the background later: the whole run
        # on the x axis (as d2l's Animator), and every group's schedule peaks at its peak_lr.
        # Fixed title and label positions: placing them automatically measures every tick
        # label on every full redraw, a third of its cost.
        for ax in axes.values():
            ax.grid(alpha=0.3)
            ax.set_xlim(*_x_limits(epochs))
            ax.yaxis.set_label_coords(-0.09, 0.5)
        for ax in grid[0]:
            ax.tick_params(labelbottom=False)  # the bottom row's epoch axis serves both
        for ax in grid[1]:
            ax.set_xlabel("epoch")
            ax.xaxis.set_label_coords(0.5, -0.16)
        # The loss and accuracy panels are named by their y labels: the space above them
        # holds their legends.
        axes["grad"].set_title("gradient norm (epoch mean)", y=1.0, loc="left")
        axes["loss"].set(ylabel="loss (nats)")
        axes["accuracy"].set(ylim=(0, 1), ylabel="accuracy (fraction)")
        # Gradient norms of these models sit between 0.01 and 10: starting there, and growing
        # by a factor 10 when they leave it, keeps full redraws to about one a run.
        axes["grad"].set(ylabel="gradient L2 norm", ylim=(1e-2, 1e1))
        _log_y(axes["grad"])
        self.lr = self._lr_lines(axes["lr"], peak_lr)
        self.axes = axes
        self.step_loss = axes["loss"].plot([], [], color="C0", lw=0.8, alpha=0.35,
                                           label="train (per step)")[0]
        self.lines = {key: axes[panel].plot([], [], label=label, **style)[0]
                      for panel, key, label, style in _SERIES}
        for kind, style in (("accuracy", ":"), ("balanced_accuracy", "--")):
            if chance:  # what always predicting one class scores: the level "not learning" sits at
                axes["accuracy"].axhline(chance[kind], color="0.3", ls=style, lw=1.1,
                                         label=chance_label(kind, chance[kind]))
        self.grad: dict = {}
        # An epoch whose gradient norm is None has no value on a log axis: it is marked by an x
        # on the panel's bottom edge in the component's colour, never left out (notebook 03).
        self.grad_none: dict = {}
        # Low in the panel: the factor-2 headroom of the limits keeps the curves above it.
        self.no_grad = axes["grad"].text(0.5, 0.24, "", transform=axes["grad"].transAxes,
                                         ha="center", va="center", color="C3", fontsize=10,
                                         bbox={"facecolor": "white", "edgecolor": "C3"})
        _legend_above(axes["loss"], columns=2)
        _legend_above(axes["accuracy"], columns=2)
        self.title = self.fig.suptitle("", fontsize=11, y=0.995, va="top")
        # At the foot: the running verdict of seqrep.diagnose's rules on the epochs so far.
        self.verdict = self.fig.text(0.01, 0.008, "", fontsize=9, ha="left", va="bottom", color="0.15")
        self._verdict_of = -1  # the number of epoch records the verdict was drawn from
        self.fig.subplots_adjust(left=0.08, right=0.98, top=0.80, bottom=0.12, hspace=0.42, wspace=0.22)
        self.dynamic = [self.step_loss, *self.lines.values(), *self.lr]  # then the grad lines
        for artist in [*self.dynamic, self.no_grad, self.title, self.verdict]:
            artist.set_animated(True)  # left out of the background, drawn on every frame
        self.background = None
        self.full_redraws = 0
        for name in components:  # lines and legend now, not at the first epoch (a full redraw)
            self._grad_line(name)

    @staticmethod
    def _lr_lines(ax, peak_lr: dict[str, float]) -> list:
        """One line per optimizer group. Peaks a decade or more apart (the data-fitted start's
        groups) share a log axis down to 1e-3 of the lowest peak, with a legend; otherwise a
        linear axis from 0 to the highest peak."""
        peaks = list(peak_lr.values())
        if len(peaks) > 1 and max(peaks) >= 10 * min(peaks):
            _log_y(ax)
            ax.set_title("learning rate applied (per step)", y=1.0, loc="left")
            ax.set(ylabel="learning rate", ylim=(1e-3 * min(peaks), 2 * max(peaks)))
            lines = [ax.plot([], [], label=name)[0] for name in peak_lr]
            _legend_above(ax, columns=2, right=True)
            return lines
        ax.set_title("learning rate applied (per step)", y=1.0)
        ax.set(ylabel="learning rate", ylim=(0, 1.1 * max(peaks)))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        return [ax.plot([], [], color="C3" if i == 0 else None, label=name)[0] for i, name in enumerate(peak_lr)]

    def _grad_line(self, name: str):
        if name not in self.grad:
            ax = self.axes["grad"]
            line = self.grad[name] = ax.plot([], [], marker="o", ms=3, label=name)[0]
            self.grad_none[name] = ax.plot([], [], ls="none", marker="x", ms=8, mew=2, color=line.get_color(),
                                           transform=ax.get_xaxis_transform(), clip_on=False)[0]
            for artist in (line, self.grad_none[name]):
                artist.set_animated(True)
                self.dynamic.append(artist)
            _legend_above(ax, columns=1, right=True)
            self.background = None  # the legend changed
        return self.grad[name]

    def update(self, epochs_x: list[float], records: list[dict], steps: list[tuple], title: str,
               epochs: int, initial: dict | None = None) -> None:
        """Draw the epoch records at epochs_x, the per-step (x, loss, lrs) and `initial`, the
        validation metrics before the first step (drawn at epoch 0)."""
        initial = initial or {}
        if self.axes["loss"].get_xlim() != _x_limits(epochs):  # a time budget re-planned the run
            for ax in self.axes.values():
                ax.set_xlim(*_x_limits(epochs))
            self.background = None
        for key, line in self.lines.items():
            # Validation curves start at epoch 0, the model as it starts (`FitState.init_eval`).
            start = [(0.0, _num(initial[key]))] if key in initial else []
            line.set_data([x for x, _ in start] + epochs_x, [y for _, y in start] + [_num(r.get(key)) for r in records])
        thin = steps[:: max(1, math.ceil(len(steps) / _MAX_STEP_POINTS))]
        self.step_loss.set_data([s[0] for s in thin], [s[1] for s in thin])
        for i, line in enumerate(self.lr):
            line.set_data([s[0] for s in thin], [s[2][i] for s in thin])
        self._update_grad(epochs_x, records)
        self._grow_limits()
        self.title.set_text(title)
        if len(records) != self._verdict_of:  # epochs change it; the frames between epochs do not
            self._verdict_of, verdict = len(records), running_verdict(records)
            self.verdict.set_text(verdict if len(verdict) <= 150 else verdict[:149] + "…")

    def _update_grad(self, epochs_x: list[float], records: list[dict]) -> None:
        names = list(dict.fromkeys(k for r in records for k in r.get("grad_norm") or {}))
        missing = {}
        for name in names:
            values = [(r.get("grad_norm") or {}).get(name) for r in records]
            self._grad_line(name).set_data(epochs_x, [_num(v) for v in values])
            none_x = [x for x, v in zip(epochs_x, values) if v is None]
            self.grad_none[name].set_data(none_x, [0.0] * len(none_x))  # y in axes fraction
            if none_x:
                missing[name] = len(none_x) == len(values)
        # A component with no gradient at all is the bug this project is about: say it in words.
        lines = [f"no gradient reaches: {', '.join(n for n, every in missing.items() if every)}",
                 f"no gradient in some epochs: {', '.join(n for n, every in missing.items() if not every)}"]
        lines = [line for line in lines if not line.endswith(": ")]
        self.no_grad.set_text("\n".join([*lines, "(x on the axis: an epoch without one)"]) if lines else "")

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
        for artist in [*self.dynamic, self.title, self.verdict] + ([self.no_grad] if self.no_grad.get_text() else []):
            self.fig.draw_artist(artist)
        size = canvas.get_width_height(physical=True)
        image = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="png", compress_level=1)  # fastest zlib: encoding is costly too
        return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------


def running_verdict(records: list[dict], classes: int | None = None) -> str:
    """'diagnosis: ...': what `seqrep.diagnose`'s rules say of the epoch records so far (the
    same verdict `seqrep diagnose RUN` gives the run's log); '' before the first epoch."""
    records = [r for r in records if "epoch" in r]
    return f"diagnosis: {diagnose_records(records, classes=classes).verdict}" if records else ""


class LivePlot(Callback):
    """A `fit` callback drawing the run as it trains: train/validation loss and accuracy,
    validation balanced accuracy, the learning rate the optimizer applies to each of its groups
    (per step) and per-component gradient norm, with the run, epoch, step and time since `fit`
    started (its set-up included, as `FitResult.seconds`) in the title. The validation curves
    start at epoch 0 with the model as it starts (`FitState.init_eval`), so what training adds
    is the distance from that point.

    to: "auto" (default) draws into the notebook when running in a Jupyter kernel and writes
    `run_dir/live.png` otherwise (scripts, the CLI); "display" or "file" force one of them; a
    widget with a `.value` (an `ipywidgets.Image`) receives the PNG bytes.

    Redraws are throttled: at most one per `min_interval` seconds (the final frame is always
    drawn); within that limit, a frame at the end of every epoch, and frames inside an epoch
    (the per-step loss and learning rates) only while the time spent drawing stays under half
    of `draw_share` (a fraction of the elapsed time; the first frame is left out of it). Most
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
        draw_share: float = 0.02,
        figsize: tuple[float, float] = (10.0, 6.2),
        dpi: int = 72,
    ):
        _check_target(to)
        if min_interval < 0 or draw_share < 0:
            raise SeqrepError(
                f"LivePlot: min_interval and draw_share must be >= 0, got {min_interval} and {draw_share}."
            )
        self.to, self.min_interval, self.draw_share = to, min_interval, draw_share
        self.figsize, self.dpi = figsize, dpi
        self.redraws = 0
        self.draw_seconds = 0.0  # time spent rendering frames
        self.seconds = 0.0  # time spent in this callback, rendering included
        self.png: bytes | None = None
        self.path: Path | None = None
        self.title = ""
        self.chance: dict | None = None  # chance_levels of the validation labels, once fit starts

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
        val = state.val
        self.chance = chance_levels(val.y) if val is not None and len(val) else None
        self._initial, self._fit_started = dict(state.init_eval), state.started
        self._figure = _LiveFigure(state.config.epochs, state.peak_lr, self.figsize, self.dpi,
                                   list(state.components), self.chance)
        self._records = list(state.history)  # a resumed run starts from its logged epochs
        self._steps: list[tuple[float, float, tuple[float, ...]]] = []
        # The first frame comes min_interval into the run, at a step or epoch end: drawn at
        # the start it would show empty axes, and cost a full redraw more.
        self._last = self._share_from = t
        self._share_spent = 0.0
        self.redraws, self.draw_seconds, self.seconds = 0, 0.0, 0.0
        self.seconds += time.perf_counter() - t

    def after_step(self, state: FitState) -> None:
        t = time.perf_counter()
        # Each group's lr for the next step; after the last step there is none (OneCycle would
        # extrapolate past its end), so that point is left out.
        last = state.global_step >= state.steps_per_epoch * state.config.epochs
        lrs = tuple(math.nan if last else g["lr"] for g in state.optimizer.param_groups)
        self._steps.append((state.global_step / max(state.steps_per_epoch, 1), state.loss_value, lrs))
        if self._due(t, self.draw_share / 2):
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

    def _due(self, now: float, share: float) -> bool:
        if now - self._last < self.min_interval:
            return False
        return self.redraws == 0 or self.draw_seconds - self._share_spent < share * (now - self._share_from)

    def _epoch_x(self, record: dict, steps_per_epoch: int) -> float:
        if record.get("partial"):
            return record["epoch"] + record.get("steps", 0) / max(steps_per_epoch, 1)
        return record["epoch"] + 1.0

    def _title(self, state: FitState, phase: str) -> str:
        """Two lines: the run and what it is doing; where it is, how long it took, the latest
        validation accuracy with the best complete epoch's beside it (a partial epoch, the
        steps a stop left, is no epoch), the accuracy at the start, and the chance level."""
        epochs, per_epoch = state.config.epochs, max(state.steps_per_epoch, 1)
        done, step = divmod(state.global_step, per_epoch)
        where = (f"epoch {done + 1}/{epochs}, step {step}/{per_epoch}" if step
                 else f"{done}/{epochs} epochs done")
        line = [where, duration(time.perf_counter() - self._fit_started)]
        scored = [r for r in self._records if r.get("val_accuracy") is not None]
        complete = [r["val_accuracy"] for r in scored if not r.get("partial")]
        if scored:
            line.append(f"val acc {scored[-1]['val_accuracy']:.3f}"
                        + (f" (best {max(complete):.3f})" if complete else ""))
        if self._initial.get("val_accuracy") is not None:
            line.append(f"at init {self._initial['val_accuracy']:.3f}")
        if self.chance and (scored or self._initial):
            line.append(f"chance {self.chance['accuracy']:.3f}")
        # Run directories start with a timestamp: the name after it is what tells runs apart.
        name = re.sub(r"^\d{8}-\d{6}-\d+-", "", Path(state.run_dir).name)
        return f"{name}: {phase}\n" + " | ".join(line)

    def _draw(self, state: FitState, phase: str) -> None:
        t = time.perf_counter()
        xs = [self._epoch_x(r, state.steps_per_epoch) for r in self._records]
        self.title = self._title(state, phase)
        self._figure.update(xs, self._records, self._steps, self.title, state.config.epochs, self._initial)
        self.png = self._figure.png()
        self._show(self.png)
        self.redraws += 1
        self._last = time.perf_counter()
        self.draw_seconds += self._last - t
        if self.redraws == 1:
            # The first frame also builds the background and loads fonts: a one-off cost kept
            # out of the drawing share, which would otherwise hold back the next frames a long while.
            self._share_from, self._share_spent = self._last, self.draw_seconds
