"""fit(): the training loop of the seed's `train_with_logging`, done properly.

The loop is the fix in action: `model(x, training=True)` while training, so autograd reaches
every parameter and modules are in train() mode; `evaluate` runs `model(x, training=False)`
under no_grad. Everything else is a callback at one of the loop's named events (see
`seqrep.callbacks`): the pre-flight check, the non-finite guard, gradient statistics, the run
log (JSON Lines, one flushed line per epoch), a checkpoint every epoch, the progress bar,
live curves. A run holds its directory (a lock), resumes bitwise exactly, and stops cleanly on
Ctrl-C, a stop request or `CancelFit`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch import nn

from .callbacks import (
    Callback,
    CancelFit,
    Checkpointer,
    Events,
    GradientGuard,
    GradientStats,
    NonFiniteGuard,
    NonFiniteLossError,
    ProgressBar,
    RunLogger,
    StopSignals,
    WatchTraining,
)
from .checkpoint import CHECKPOINT_NAME, check_fits, read_checkpoint
from .config import ModelSpec, TrainConfig
from .data import SequenceDataset, check_train_val
from .errors import SeqrepError
from .imbalance import batch_order, make_loss
from .model import build_model, components, fit_start, param_groups, parameter_counts
from .plan import TimeBudget, make_scheduler, plan_epochs, plan_for_budget
from .runlog import LOG_NAME, RunLog, read_log

__all__ = [
    "Callback",
    "CancelFit",
    "FitResult",
    "FitState",
    "ModelSpec",
    "NonFiniteLossError",
    "TrainConfig",
    "build_model",
    "check_fit_inputs",
    "evaluate",
    "fit",
    "new_run_dir",
    "predict_logits",
]

def new_run_dir(root: str | os.PathLike = "runs", name: str = "run", create: bool = True) -> Path:
    """A fresh, timestamped run directory under `root` (created unless create=False: `fit`
    creates it once the inputs passed its checks)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = Path(root) / f"{stamp}-{Path(name).name}"
    if create:
        path.mkdir(parents=True, exist_ok=False)
    return path


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def predict_logits(model: nn.Module, ds: SequenceDataset, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """(n, n_classes) logits of the whole dataset, in inference mode (training=False)."""
    model.eval()
    x_all, m_all = torch.from_numpy(ds.X), None if ds.mask is None else torch.from_numpy(ds.mask)
    out = []
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            x = x_all[start:start + batch_size].to(device)
            m = None if m_all is None else m_all[start:start + batch_size].to(device)
            out.append(model(x, training=False, mask=m).float().cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, ds: SequenceDataset, batch_size: int = 256, device="cpu") -> dict:
    """{"loss", "accuracy", "balanced_accuracy", "macro_f1"} of `model` on `ds`
    (inference mode; macro-F1 over the classes present in ds)."""
    logits = predict_logits(model, ds, batch_size, device)
    pred = logits.argmax(1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        bal = balanced_accuracy_score(ds.y, pred)
    return {
        "loss": float(nn.functional.cross_entropy(logits, torch.from_numpy(ds.y))),
        "accuracy": float((pred == ds.y).mean()),
        "balanced_accuracy": float(bal),
        "macro_f1": float(f1_score(ds.y, pred, labels=np.unique(ds.y), average="macro", zero_division=0)),
    }


# --------------------------------------------------------------------------------------------
# The state callbacks see, and the result
# --------------------------------------------------------------------------------------------


@dataclass
class FitState:
    """Everything a run is made of and where it is; every callback event receives it.

    config is the run's config with its epochs planned; requested the one given to fit. During
    a step: x (batch, channels, time), y (batch,), mask (batch, time) or None, logits
    (batch, n_classes), loss (a scalar tensor). After an epoch: record, the epoch's log record.
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
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    loss_value: float = math.nan  # the last step's loss as a number
    sums: dict = field(default_factory=dict)  # this epoch's running totals (checkpointed)
    record: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    stop_reason: str | None = None
    error: BaseException | None = None
    resumed: bool = False
    checkpointed_epoch: int | None = None
    budgeted: bool = False  # epochs planned from a time budget (and re-planned by TimeBudget)
    planning_seconds: float = 0.0  # time spent measuring steps for the plan
    started: float = field(default_factory=time.perf_counter)
    start: dict | None = None  # what seqrep.model.fit_start fitted before the first step

    def __post_init__(self) -> None:
        self.components = components(self.model)
        self._x = torch.from_numpy(self.train.X)
        self._y = torch.from_numpy(self.train.y)
        self._m = None if self.train.mask is None else torch.from_numpy(self.train.mask)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def replan(self, epochs: int) -> None:
        """Train for `epochs` epochs in all: the config and the schedule follow, continuing
        from the current step."""
        self.config = self.config.replace(epochs=epochs)
        self.scheduler = make_scheduler(self.optimizer, self.config, self.steps_per_epoch * epochs,
                                        done=self.global_step)

    def request_stop(self, reason: str = "stop requested") -> None:
        """End the run at the next step boundary, with log and checkpoint written."""
        self.stop_reason = self.stop_reason or reason

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Training samples `index` on the run's device: x, y, mask (or None)."""
        m = None if self._m is None else self._m[index].to(self.device)
        return self._x[index].to(self.device), self._y[index].to(self.device), m

    def begin_epoch(self, epoch: int) -> torch.Tensor:
        """Enter `epoch`: its batch order (deterministic in seed and epoch), fresh running sums
        and a seeded RNG — unless a resumed run continues this epoch where it stopped."""
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

    def epoch_record(self) -> dict:
        s = self.sums
        record = {
            "epoch": self.epoch, "epochs": self.config.epochs, "time": time.time(),
            "train_loss": s["loss"] / s["seen"], "train_accuracy": s["correct"] / s["seen"],
            "lr": self.optimizer.param_groups[0]["lr"], "seconds": s["seconds"],
            "samples_per_s": s["seen"] / max(s["seconds"], 1e-9),
        }
        if self.steps_done < self.steps_per_epoch:
            record.update(partial=True, steps=self.steps_done)
        return record


@dataclass
class FitResult:
    """history: the epoch records (as in the run log); final: the last one. config: the
    config that ran, with its epochs planned (automatic epochs resolved)."""

    run_dir: Path
    history: list[dict]
    parameter_counts: dict
    stopped: str | None
    seconds: float
    config: TrainConfig

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


# --------------------------------------------------------------------------------------------
# Checks and set-up
# --------------------------------------------------------------------------------------------


def check_fit_inputs(
    config: TrainConfig, train: SequenceDataset, val: SequenceDataset | None, name: str | None = None
) -> list[str]:
    """Raise SeqrepError if `fit` could not train on this combination; return warnings about
    what would train but mislead (classes with no training series, a validation set copying
    the training set; see `seqrep.data.check_train_val`). `name`: what to call the data in
    messages (default: train.name). `fit` and the panel both call it, so a bad setting is
    refused with the same words everywhere."""
    if not isinstance(config, TrainConfig):
        raise SeqrepError(f"fit: config must be a seqrep.TrainConfig, got {type(config).__name__}.")
    for role, ds in (("train", train), ("val", val)):
        if ds is not None and not isinstance(ds, SequenceDataset):
            raise SeqrepError(
                f"fit: {role} must be a seqrep.SequenceDataset, got {type(ds).__name__}; wrap "
                "arrays with SequenceDataset(X, y, class_names)."
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_train_val(train, val)
    if config.batch_size > len(train):
        raise SeqrepError(
            f"batch size {config.batch_size} is larger than the training set of {name or train.name} "
            f"({len(train)} samples); use batch_size <= {len(train)}."
        )
    config.model.resolved(train.length)  # raises if kernels are longer than the series
    make_loss(config, train.y, train.n_classes)  # raises for a remedy this data cannot use
    return [str(w.message) for w in caught]


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path):
    """Hold run_dir for this run: a second run in the same directory is refused while this one
    lives (an OS lock, released even on kill -9)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        yield
        return
    path = run_dir / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise SeqrepError(
                f"{run_dir} is in use by another run ({holder}); two runs in one directory would "
                "mix their logs and checkpoints. Wait for it to end, stop it, or use another run "
                "directory."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {dt.datetime.now():%Y-%m-%d %H:%M:%S}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _refuse_to_overwrite(run_dir: Path, resume: bool) -> None:
    """A new run must not write into a directory that holds one (checked under the lock, so a
    run that just ended in it counts too)."""
    if not resume and ((run_dir / CHECKPOINT_NAME).exists() or (run_dir / LOG_NAME).exists()):
        raise SeqrepError(
            f"{run_dir} already holds a run; pass resume=True (seqrep train --resume) to continue "
            "it, or use a new directory (seqrep.new_run_dir())."
        )


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Create run_dir, or refuse: a new run must not overwrite one; resume needs a checkpoint."""
    log, ckpt = run_dir / LOG_NAME, run_dir / CHECKPOINT_NAME
    _refuse_to_overwrite(run_dir, resume)
    if resume and not ckpt.exists():
        epochs = [r for r in read_log(log) if "epoch" in r] if log.exists() else []
        if not log.exists():
            raise SeqrepError(
                f"nothing to resume in {run_dir}: no {CHECKPOINT_NAME} and no {LOG_NAME}. Check the "
                "path, or start a new run without resume."
            )
        if epochs:
            raise SeqrepError(
                f"cannot resume {run_dir}: its log has {len(epochs)} epoch(s) but there is no "
                f"{CHECKPOINT_NAME} to continue from. The log is left as it is; restore the "
                "checkpoint, or start a new run in another directory."
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / ".write-test", "w"):
            pass
        os.remove(run_dir / ".write-test")
    except OSError as err:
        raise SeqrepError(
            f"cannot write to the run directory {run_dir} ({err.strerror}); choose a writable "
            "one (run_dir=..., seqrep train --run-dir ...)."
        ) from None


def _start(model, train, val, requested: TrainConfig, run_dir: Path, device, resume: bool) -> FitState:
    """Optimizer, schedule, loss and log for a new run (its epochs planned), or all of them
    restored from the checkpoint of the run being resumed (whose planned epochs it keeps)."""
    ckpt = read_checkpoint(run_dir / CHECKPOINT_NAME) if resume and (run_dir / CHECKPOINT_NAME).exists() else None
    budgeted = ckpt is None and not requested.epochs and requested.budget > 0
    config = (requested.replace(epochs=ckpt["epochs"]) if ckpt else
              requested.replace(epochs=1) if budgeted else plan_epochs(requested, len(train)))
    device = torch.device(device)
    model.to(device)
    started = time.perf_counter()  # a time budget includes the data-fitted start
    start = fit_start(model, train) if ckpt is None else None
    optimizer = torch.optim.AdamW(param_groups(model), lr=config.lr, weight_decay=config.weight_decay)
    state = FitState(
        model, train, val, config, requested, run_dir, device, optimizer, None,
        make_loss(config, train.y, train.n_classes).to(device), RunLog(run_dir / LOG_NAME),
        math.ceil(len(train) / config.batch_size), budgeted=budgeted, started=started, start=start,
    )
    if budgeted:
        state.replan(plan_for_budget(state))
        state.planning_seconds = time.perf_counter() - state.started
    else:
        state.replan(config.epochs)
    if ckpt is not None:
        _restore(state, ckpt)
    state.history = [r for r in read_log(state.log.path) if "epoch" in r] if state.log.path.exists() else []
    return state


def _restore(state: FitState, ckpt: dict) -> None:
    """Continue from `ckpt`: weights, optimizer, schedule; the epoch after it, or (stopped
    mid-epoch) the same epoch from its next step with its sums and RNG. The log is cut back to
    the checkpoint; a record the log lost (a cut last line) is restored from the checkpoint."""
    check_fits(ckpt, state.checkpoint_path, state.model, state.requested)
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.resumed, state.checkpointed_epoch = True, ckpt["epoch"]
    if ckpt["complete"]:
        state.start_epoch = ckpt["epoch"] + 1
        state.log.truncate_after(ckpt["epoch"], last_record=ckpt["record"])
    else:
        state.start_epoch, state.steps_done, state.sums = ckpt["epoch"], ckpt["next_step"], ckpt["progress"]
        state.global_step = ckpt["epoch"] * state.steps_per_epoch + ckpt["next_step"]
        torch.set_rng_state(ckpt["torch_rng"])
        state.log.truncate_after(ckpt["epoch"] - 1)
    state.global_step = max(state.global_step, state.start_epoch * state.steps_per_epoch)


def _announce(state: FitState, verbose: bool) -> dict:
    counts = parameter_counts(state.model, state.optimizer)
    spec = getattr(state.model, "spec", None)
    state.log.append({
        "event": "resume" if state.resumed else "start",
        "time": time.time(),
        "config": state.config.to_dict(),
        "model_spec": spec.to_dict() if isinstance(spec, ModelSpec) else None,
        "model_class": type(state.model).__name__,
        "parameter_counts": counts,
        "data": {"train": len(state.train), "val": len(state.val) if state.val is not None else 0,
                 "n_classes": state.train.n_classes, "channels": state.train.channels,
                 "length": state.train.length, "name": state.train.name},
        "from_epoch": state.start_epoch,
        **({"data_fitted_start": state.start} if state.start else {}),
    })
    if verbose:
        print("parameters (total / trainable / in optimizer): " + "; ".join(
            f"{k} {v['total']:,} / {v['trainable']:,} / {v['in_optimizer']:,}" for k, v in counts.items()))
    return counts


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _train_epochs(state: FitState, events: Events) -> None:
    """The training loop: every epoch, every step, the fix's forward, then evaluation."""
    model, config, size = state.model, state.config, state.config.batch_size
    epoch = state.start_epoch
    while epoch < state.config.epochs:  # a time budget may re-plan the epochs as the run goes
        order = state.begin_epoch(epoch)
        events("before_epoch")
        model.train()
        tick = time.perf_counter()
        for step in range(state.steps_done, state.steps_per_epoch):
            state.step = step
            state.x, state.y, state.mask = state.batch(order[step * size:(step + 1) * size])
            events("before_batch")
            if state.stop_reason:
                break
            state.logits = model(state.x, training=True, mask=state.mask)  # the fix: train() + autograd
            state.loss = state.loss_fn(state.logits, state.y)
            events("after_loss")
            state.optimizer.zero_grad(set_to_none=True)
            if state.loss.requires_grad:
                state.loss.backward()
            events("after_backward")
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            state.optimizer.step()
            state.scheduler.step()
            state.tally()
            events("after_step")
            if state.stop_reason:
                break
        state.sums["seconds"] += time.perf_counter() - tick
        if state.sums["seen"] == 0:  # stopped before this epoch's first step
            break
        state.record = state.epoch_record()
        if state.val is not None:  # inference mode: model(x, training=False) under no_grad
            state.record.update({f"val_{k}": v for k, v in evaluate(model, state.val, device=state.device).items()})
        events("after_epoch")
        state.history.append(state.record)
        if state.stop_reason or state.steps_done < state.steps_per_epoch:
            break
        epoch += 1


def fit(
    model: nn.Module,
    train: SequenceDataset,
    val: SequenceDataset | None,
    config: TrainConfig,
    run_dir: str | os.PathLike,
    callbacks=(),
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    stop_event: threading.Event | None = None,
    verbose: bool = True,
) -> FitResult:
    """Train `model` on `train`, evaluating on `val` after every epoch.

    Every epoch appends a record to run_dir/run.jsonl (losses, accuracy, balanced accuracy,
    macro-F1, learning rate, per-component gradient norm and update/weight ratio, seconds,
    samples/s) and rewrites run_dir/checkpoint.pt. resume=True continues from the checkpoint and
    ends with the same metrics as an uninterrupted run. Ctrl-C, `stop_event.set()`, a callback's
    `CancelFit` or `state.request_stop()` end the run at the next step boundary with log and
    checkpoint written (Ctrl-C then re-raises KeyboardInterrupt). A NaN/Inf loss, weight or
    validation loss raises NonFiniteLossError naming where, before that epoch is saved.
    `callbacks`: `seqrep.Callback`s (see `seqrep.callbacks` for the events).
    """
    for message in check_fit_inputs(config, train, val):
        warnings.warn(message, stacklevel=2)
    run_dir = Path(run_dir)
    _prepare_run_dir(run_dir, resume)
    stops = StopSignals(stop_event)
    with _run_dir_lock(run_dir):
        _refuse_to_overwrite(run_dir, resume)
        state = _start(model, train, val, config, run_dir, device, resume)
        counts = _announce(state, verbose)
        builtin = [stops, GradientGuard(), WatchTraining(), NonFiniteGuard(), GradientStats(), RunLogger(), Checkpointer(),
                   *([TimeBudget()] if state.budgeted else []), *([ProgressBar()] if progress else [])]
        events = Events(state, [*builtin, *callbacks])
        try:
            events("before_fit")
            _train_epochs(state, events)
        except BaseException as err:
            state.error = err
            raise
        finally:
            events("after_fit")
    if stops.interrupted:
        raise KeyboardInterrupt(
            f"training interrupted at epoch {state.epoch}, step {state.step}; log and checkpoint in "
            f"{run_dir}. Resume with fit(..., resume=True) or seqrep train --resume --run-dir {run_dir}."
        )
    return FitResult(run_dir, state.history, counts, state.stop_reason,
                     time.perf_counter() - state.started, state.config)
