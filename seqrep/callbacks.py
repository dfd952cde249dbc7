"""The event protocol of `fit`: the state every event receives (`FitState`), the events, the
`Callback` base class, `CancelFit` and the dispatcher. The built-in callbacks are in
`seqrep.builtin`; `seqrep.train.show_training_loop()` prints who runs at each event.

`fit` calls every callback at eight named events (fastai's, trimmed to what a classifier loop
needs), each with the one `FitState`:

    before_fit
      before_epoch
        before_batch -> forward, loss -> after_loss -> backward -> after_backward
        -> (clip) optimizer.step(), scheduler.step() -> after_step          (every step)
      after_epoch        (state.record holds the epoch's metrics; log and checkpoint follow)
    after_fit            (also after an error; callbacks run in reverse order here)

Callbacks run in ascending `order` (ties: the order given). To end a run cleanly, raise
`CancelFit("why")` from any event (or call `state.request_stop("why")`): `fit` stops at the
next step boundary with the partial epoch logged and checkpointed. Any other exception ends
the run with that error, after `after_fit`; the error and the run log name the callback and
the event it came from.

The protocol is strict: a method that looks like a hook but is no event (`on_epoch_end`,
`after_epochs`, `before_step`) is refused with the event it probably means, when the class is
defined (a `Callback` subclass) or given to `fit` (any object).
"""

from __future__ import annotations

import difflib
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CHECKPOINT_NAME
from .config import TrainConfig
from .data import SequenceDataset
from .errors import SeqrepError
from .imbalance import batch_order
from .model import components
from .runlog import RunLog

__all__ = ["EVENTS", "Callback", "CancelFit", "Events", "FitState"]

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_loss", "after_backward",
          "after_step", "after_epoch", "after_fit")
_HOOK_LIKE = re.compile(r"^(on|before|after)_")


class CancelFit(Exception):
    """Raise from a callback to end the run at the next step boundary, log and checkpoint kept;
    the message becomes `FitResult.stopped`."""


@dataclass
class FitState:
    """Everything a run is made of and where it is; every callback event receives it.

    config is the run's config with its epochs planned; requested the one given to fit. During
    a step: x (batch, channels, time), y (batch,), mask (batch, time) or None, logits
    (batch, n_classes), loss (a scalar tensor). After an epoch: record, the epoch's log record.
    The optimizer's groups are named (`seqrep.model.param_groups`); peak_lr holds each group's
    peak rate, which the schedule scales.
    """

    model: nn.Module
    train: SequenceDataset
    val: SequenceDataset | None
    config: TrainConfig
    requested: TrainConfig
    run_dir: Path
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    loss_fn: nn.Module
    log: RunLog
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0  # step within the epoch
    global_step: int = 0  # optimiser steps done before this one (after it, in after_step)
    start_epoch: int = 0
    steps_done: int = 0  # steps done in this epoch
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    index: torch.Tensor | None = None  # the batch's rows in the training set (CPU)
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    loss_value: float = math.nan  # the last step's loss as a number
    sums: dict = field(default_factory=dict)  # this epoch's running totals (checkpointed)
    record: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    stop_reason: str | None = None
    error: BaseException | None = None
    error_source: str | None = None  # "Callback.event" that raised `error`, if a callback did
    resumed: bool = False
    checkpointed_epoch: int | None = None
    budgeted: bool = False  # epochs planned from a time budget (once, before the first step)
    planning_seconds: float = 0.0  # time spent measuring steps for the plan
    started: float = field(default_factory=time.perf_counter)
    fitted_init: dict | None = None  # what seqrep.model.fit_init fitted before the first step
    init_eval: dict = field(default_factory=dict)  # val_* metrics before the first step (fit's start record)
    init_features: torch.Tensor | None = None  # (n, feature_dim): the training set's, at fit_init
    objective: object | None = None  # a data-fitted start's seqrep.rocket.LeaveOneOut (RidgeReadout sets it)
    plan: dict | None = None  # how a time budget was turned into epochs (seqrep.plan.plan_for_budget)
    resumable: dict = field(default_factory=dict)  # {callback name: tensors/data a resume needs}; checkpointed

    def __post_init__(self) -> None:
        self.components = components(self.model)
        self.peak_lr = {g["name"]: g["lr"] for g in self.optimizer.param_groups}
        self._x = torch.from_numpy(self.train.X)
        self._y = torch.from_numpy(self.train.y)
        self._m = None if self.train.mask is None else torch.from_numpy(self.train.mask)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def request_stop(self, reason: str = "stop requested") -> None:
        """End the run at the next step boundary, with log and checkpoint written."""
        self.stop_reason = self.stop_reason or reason

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Training samples `index` (CPU) on the run's device: x, y, mask (or None)."""
        m = None if self._m is None else self._m[index].to(self.device)
        return self._x[index].to(self.device), self._y[index].to(self.device), m

    def begin_epoch(self, epoch: int) -> torch.Tensor:
        """Enter `epoch`: its batch order (deterministic in seed and epoch), fresh running sums
        and a seeded RNG for dropout (fit runs on a fork of torch's RNG, so the caller's is
        untouched) — unless a resumed run continues this epoch where it stopped."""
        self.epoch = epoch
        if epoch == self.start_epoch and self.steps_done:  # resumed mid-epoch: sums and RNG restored
            return batch_order(self.config, self.train.y, epoch)
        self.steps_done = 0
        self.sums = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        torch.manual_seed(self.config.seed * 100_003 + epoch)
        return batch_order(self.config, self.train.y, epoch)

    def tally(self) -> None:
        """Count the step just taken into the epoch's sums."""
        self.loss_value = float(self.loss.detach())
        self.sums["loss"] += self.loss_value * len(self.y)
        self.sums["correct"] += int((self.logits.argmax(1) == self.y).sum())
        self.sums["seen"] += len(self.y)
        self.steps_done += 1
        self.global_step += 1

    def learning_rates(self) -> dict[str, float]:
        """{group name: the rate the optimizer applies to it at the next step}."""
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}

    def epoch_record(self) -> dict:
        s = self.sums
        record = {
            "epoch": self.epoch, "epochs": self.config.epochs, "time": time.time(),
            "train_loss": s["loss"] / s["seen"], "train_accuracy": s["correct"] / s["seen"],
            "lr": self.learning_rates(), "seconds": s["seconds"],
            "samples_per_s": s["seen"] / max(s["seconds"], 1e-9),
        }
        if self.steps_done < self.steps_per_epoch:
            record.update(partial=True, steps=self.steps_done)
        return record


class Callback:
    """Subclass and override the events you need (see the module docstring); each receives
    the `FitState`. `order` places it among the others (lower runs first). A method whose name
    looks like a hook but is no event is refused when the subclass is defined."""

    order = 0

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_non_events(cls, vars(cls))

    def before_fit(self, state: FitState) -> None: ...

    def before_epoch(self, state: FitState) -> None: ...

    def before_batch(self, state: FitState) -> None: ...

    def after_loss(self, state: FitState) -> None: ...

    def after_backward(self, state: FitState) -> None: ...

    def after_step(self, state: FitState) -> None: ...

    def after_epoch(self, state: FitState) -> None: ...

    def after_fit(self, state: FitState) -> None: ...


def _refuse_non_events(cls: type, names) -> None:
    """Raise SeqrepError for a public method of `cls` among `names` that looks like a hook
    (on_/before_/after_, or a near miss of an event) but is none: fit would never call it."""
    for name in names:
        if name.startswith("_") or name in EVENTS or not callable(getattr(cls, name, None)):
            continue
        meant = _meant(name)
        if _HOOK_LIKE.match(name) or meant:
            hint = f" (did you mean {meant}?)" if meant else ""
            raise SeqrepError(
                f"callback {cls.__name__} defines {name}, which is not one of fit's events{hint}; "
                f"fit would never call it. The events: {', '.join(EVENTS)}. Rename it, or make "
                "it private (a leading underscore) if it is a helper."
            )


def _meant(name: str) -> str | None:
    """The event a hook-like name probably means: its noun and its when (on_epoch_end ->
    after_epoch, on_fit_start -> before_fit, after_epochs -> after_epoch); for a name with no
    hook prefix, a near miss of an event's spelling."""
    noun, when = re.fullmatch(r"(?:on_|before_|after_)?(.*?)(?:_(end|start|begin))?", name).groups()
    prefix = ("after_" if when == "end" or name.startswith("after_") else
              "before_" if when or name.startswith("before_") else "")
    nouns = [e.split("_", 1)[1] for e in EVENTS]
    for close in difflib.get_close_matches(noun, nouns, n=1, cutoff=0.8):
        event = next((e for e in EVENTS if e.endswith("_" + close) and e.startswith(prefix)), None)
        if event:
            return event
    if _HOOK_LIKE.match(name):
        return None
    return next(iter(difflib.get_close_matches(name, EVENTS, n=1, cutoff=0.75)), None)


def training_batches(state: FitState, size: int = 256):
    """(x, mask) of the whole training set in its order, `size` series at a time, on the run's
    device (for inference passes over the training set)."""
    n = len(state.train)
    for i in range(0, n, size):
        x, _, mask = state.batch(torch.arange(i, min(n, i + size), device="cpu"))
        yield x, mask


def check_callback(cb) -> None:
    """Raise SeqrepError unless `cb` can be a callback: it has at least one of fit's events and
    nothing that looks like a hook but is none."""
    _refuse_non_events(type(cb), dir(type(cb)))
    if not any(callable(getattr(cb, e, None)) for e in EVENTS):
        raise SeqrepError(
            f"callback {type(cb).__name__} has none of fit's events ({', '.join(EVENTS)}). "
            "Subclass seqrep.Callback and override the events you need."
        )


def ranked(callbacks) -> list:
    """`callbacks` in the order fit runs them: ascending `order`, ties in the order given."""
    order = sorted(enumerate(callbacks), key=lambda ic: (getattr(ic[1], "order", 0), ic[0]))
    return [cb for _, cb in order]


class Events:
    """The one dispatcher: `events("after_step")` calls that method of every callback in
    order. A `CancelFit` becomes a stop request; another exception propagates as it is, with
    the callback and event that raised it in `state.error_source` and in a note on the
    exception. `after_fit` runs in reverse order, and only for callbacks whose `before_fit`
    ran (so a refused start tears down exactly what was set up); every one of them runs even
    when one raises (a full disk must not leave hooks or signal handlers behind), and the first
    error is raised after them, or noted on the error already ending the run."""

    def __init__(self, state: FitState, callbacks):
        for cb in callbacks:
            check_callback(cb)
        self.state, self.callbacks, self.started = state, ranked(callbacks), []

    def __call__(self, event: str) -> None:
        if event == "after_fit":
            self._tear_down()
            return
        for cb in list(self.callbacks):
            method = getattr(cb, event, None)
            if method is not None:
                try:
                    method(self.state)
                except CancelFit as stop:
                    self.state.request_stop(str(stop) or type(cb).__name__)
                except Exception as err:
                    self._name_source(err, f"{type(cb).__name__}.{event}")
                    raise
            if event == "before_fit":
                self.started.append(cb)

    def _tear_down(self) -> None:
        first = None
        for cb in reversed(self.started):
            if getattr(cb, "after_fit", None) is None:
                continue
            try:
                cb.after_fit(self.state)
            except CancelFit as stop:
                self.state.request_stop(str(stop) or type(cb).__name__)
            except Exception as err:
                self._name_source(err, f"{type(cb).__name__}.after_fit")
                if self.state.error is not None and hasattr(self.state.error, "add_note"):
                    self.state.error.add_note(f"(then {type(cb).__name__}.after_fit failed too: {err})")
                first = first or err
        if first is not None and self.state.error is None:
            raise first

    def _name_source(self, err: Exception, source: str) -> None:
        if self.state is not None and self.state.error_source is None:
            self.state.error_source = source
        if hasattr(err, "add_note"):  # Python 3.11+: shown under the traceback
            err.add_note(f"(raised by the callback {source})")
