"""fit(): the training loop of the post-mortem's `train_with_logging`, done properly.

The loop is the fix in action: its steps run in train() mode with `model(x,
training=True)`, so autograd reaches every parameter; `evaluate` runs `model(x,
training=False)` in eval() mode under no_grad. The loop alone sets modes
(`seqrep.inference.modes`); a finished run hands the model back in eval(), ready for inference
like `load_model`'s (a run that fails hands it back in the modes it was given). Everything
else is a callback at one of the loop's named events (`seqrep.callbacks`; the built-ins in
`seqrep.builtin`, listed by `show_training_loop()`): the pre-flight check, the non-finite
guard, gradient statistics, the run log (JSON Lines, one flushed line per epoch), a checkpoint
every epoch, the progress bar, live curves. A run holds its directory (a lock), resumes bitwise
exactly, stops cleanly on Ctrl-C, a stop request or `CancelFit`, and leaves torch's global RNG
as it found it (it runs on a fork).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import math
import os
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .builtin import (
    Checkpointer,
    GradientGuard,
    GradientStats,
    NonFiniteGuard,
    ProgressBar,
    RidgeReadout,
    RunLogger,
    StopSignals,
    WatchTraining,
)
from .callbacks import EVENTS, Callback, Events, FitState, ranked
from .checkpoint import CHECKPOINT_NAME, check_fits, read_checkpoint
from .config import ModelSpec, TrainConfig
from .data import SequenceDataset, check_train_val
from .errors import SeqrepError
from .imbalance import make_loss
from .inference import evaluate, modes
from .model import fit_init, param_groups, parameter_counts
from .plan import TimeBudget, plan_epochs, plan_for_budget, replan
from .runlog import LOG_NAME, RunLog, read_log

__all__ = ["BUILTINS", "FitResult", "check_fit_inputs", "fit", "new_run_dir", "show_training_loop"]

# fit's built-in callbacks by name (in the order they run), and the switch that governs those
# that have their own; `without` leaves out the others.
BUILTINS = {cls.__name__: cls for cls in ranked([StopSignals, RidgeReadout, NonFiniteGuard, GradientGuard, WatchTraining,
                                                 GradientStats, TimeBudget, RunLogger, Checkpointer, ProgressBar])}
_SWITCHED = {"StopSignals": "it is how Ctrl-C and stop_event end a run cleanly; it cannot be left out",
             "RidgeReadout": "it is how a data-fitted start (init='data') trains and solves its readout; "
                             "use init='random' for a readout trained by gradient",
             "GradientGuard": "leave it out with a config of check_gradients=False (recorded with the run)",
             "TimeBudget": "it runs only for epochs planned from a time budget (epochs=0, budget > 0)",
             "ProgressBar": "leave it out with progress=False"}


def new_run_dir(root: str | os.PathLike = "runs", name: str = "run", create: bool = True) -> Path:
    """A fresh, timestamped run directory under `root` (created unless create=False: `fit`
    creates it once the inputs passed its checks)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = Path(root) / f"{stamp}-{Path(name).name}"
    if create:
        path.mkdir(parents=True, exist_ok=False)
    return path


@dataclass
class FitResult:
    """history: the epoch records (as in the run log); final: the last one. config: the
    config that ran, with its epochs planned (automatic epochs resolved): `fit(..., config=
    result.config)` repeats the run bitwise on the same machine. steps: the optimizer steps
    planned (epochs x steps per epoch); plan: how a time budget became those epochs (None
    when the epochs were given)."""

    run_dir: Path
    history: list[dict]
    parameter_counts: dict
    stopped: str | None
    seconds: float
    config: TrainConfig
    steps: int = 0
    plan: dict | None = None

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


def _set_up(model, train, val, requested: TrainConfig, run_dir: Path, device, resume: bool) -> FitState:
    """Optimizer, schedule, loss and log for a new run (its epochs planned), or all of them
    restored from the checkpoint of the run being resumed (whose planned epochs it keeps)."""
    ckpt = read_checkpoint(run_dir / CHECKPOINT_NAME) if resume and (run_dir / CHECKPOINT_NAME).exists() else None
    budgeted = ckpt is None and not requested.epochs and requested.budget > 0
    config = (requested.replace(epochs=ckpt["epochs"]) if ckpt else
              requested.replace(epochs=1) if budgeted else plan_epochs(requested, len(train)))
    model.to(device)
    started = time.perf_counter()  # a time budget includes the data-fitted start
    fitted, features = fit_init(model, train, seed=config.seed, with_features=True) if ckpt is None else (None, None)
    optimizer = torch.optim.AdamW(param_groups(model, config.lr), lr=config.lr, weight_decay=config.weight_decay)
    state = FitState(
        model, train, val, config, requested, run_dir, device, optimizer, None,
        make_loss(config, train.y, train.n_classes).to(device), RunLog(run_dir / LOG_NAME),
        math.ceil(len(train) / config.batch_size), budgeted=budgeted, started=started, fitted_init=fitted,
        init_features=features,
    )
    if budgeted:
        replan(state, plan_for_budget(state))
        state.planning_seconds = time.perf_counter() - state.started
    else:
        replan(state, config.epochs)
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
    state.resumable = ckpt.get("resumable", {})
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
        "peak_lr": state.peak_lr,
        "data": {"train": len(state.train), "val": len(state.val) if state.val is not None else 0,
                 "n_classes": state.train.n_classes, "channels": state.train.channels,
                 "length": state.train.length, "name": state.train.name},
        "from_epoch": state.start_epoch,
        "steps": state.config.epochs * state.steps_per_epoch,
        **({"plan": state.plan} if state.plan else {}),
        **({"data_fitted_init": state.fitted_init} if state.fitted_init else {}),
    })
    if verbose:
        print("parameters (total / trainable / in optimizer): " + "; ".join(
            f"{k} {v['total']:,} / {v['trainable']:,} / {v['in_optimizer']:,}" for k, v in counts.items()))
    return counts


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _train_step(state: FitState, events: Events) -> None:
    """One optimizer step on state.x, y, mask: the fix's forward (autograd on), the loss,
    backward, clipping, the step and the schedule."""
    state.logits = state.model(state.x, training=True, mask=state.mask)
    state.loss = state.loss_fn(state.logits, state.y)
    events("after_loss")
    state.optimizer.zero_grad(set_to_none=True)
    if state.loss.requires_grad:
        state.loss.backward()
    events("after_backward")
    if state.config.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), state.config.grad_clip)
    state.optimizer.step()
    state.scheduler.step()
    state.tally()
    events("after_step")


def _train_epochs(state: FitState, events: Events) -> None:
    """The training loop: every epoch, every step in train() mode, then evaluation (eval()
    mode, no_grad; `evaluate` puts train() back)."""
    size = state.config.batch_size
    epoch = state.start_epoch
    while epoch < state.config.epochs:  # a time budget may re-plan the epochs as the run goes
        order = state.begin_epoch(epoch)
        events("before_epoch")
        tick = time.perf_counter()
        with modes(state.model, True):  # whatever a callback did to the modes, steps train
            for step in range(state.steps_done, state.steps_per_epoch):
                state.step = step
                state.index = order[step * size:(step + 1) * size]
                state.x, state.y, state.mask = state.batch(state.index)
                events("before_batch")
                if state.stop_reason:
                    break
                _train_step(state, events)
                if state.stop_reason:
                    break
        state.sums["seconds"] += time.perf_counter() - tick
        if state.sums["seen"] == 0:  # stopped before this epoch's first step
            break
        state.record = state.epoch_record()
        if state.val is not None:
            state.record.update({f"val_{k}": v for k, v in evaluate(state.model, state.val, device=state.device).items()})
        events("after_epoch")
        state.history.append(state.record)
        if state.stop_reason or state.steps_done < state.steps_per_epoch:
            break
        epoch += 1


def _check_without(without: Iterable[str]) -> set[str]:
    """The names of built-ins to leave out, or SeqrepError for a name that is none or that has
    its own switch."""
    without = set(without)
    for name in without:
        if name not in BUILTINS:
            close = difflib.get_close_matches(name, BUILTINS, n=1)
            raise SeqrepError(f"fit(without=...): {name!r} is not a built-in callback"
                              + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; the built-ins: {', '.join(BUILTINS)}.")
        if name in _SWITCHED:
            raise SeqrepError(f"fit(without=...): {name}: {_SWITCHED[name]}.")
    return without


def _builtins(without: set[str], stops: StopSignals, config: TrainConfig, budgeted: bool, progress: bool) -> list:
    """The built-in callbacks this run uses: all of BUILTINS but those left out by name
    (`without`), the pre-flight check (config.check_gradients), the time budget and the
    progress bar each by their own switch."""
    wanted = {"StopSignals": True, "GradientGuard": config.check_gradients, "TimeBudget": budgeted,
              "ProgressBar": progress}
    return [stops if name == "StopSignals" else cls() for name, cls in BUILTINS.items()
            if name not in without and wanted.get(name, True)]


def show_training_loop(callbacks=(), config: TrainConfig | None = None, *, without: Iterable[str] = (),
                       progress: bool = True) -> str:
    """Print (and return) the loop `fit` would run with these arguments: each event in turn and
    the callbacks it calls, in the order they run (built-ins and yours, with their `order`).
    config: the run's config (default TrainConfig(); it decides the pre-flight check and the
    time budget)."""
    config = config or TrainConfig()
    budgeted = not config.epochs and config.budget > 0
    everyone = ranked([*_builtins(_check_without(without), StopSignals(), config, budgeted, progress), *callbacks])
    lines = []
    for event in EVENTS:
        called = [cb for cb in (reversed(everyone) if event == "after_fit" else everyone) if _overrides(cb, event)]
        names = ", ".join(f"{type(cb).__name__} ({getattr(cb, 'order', 0)})" for cb in called)
        lines.append(f"{event:15s} {names or '-'}")
    text = "\n".join(lines)
    print(text)
    return text


def _overrides(cb, event: str) -> bool:
    """True if `cb` does something at `event` (not the base class's empty method)."""
    method = getattr(type(cb), event, None)
    return method is not None and method is not getattr(Callback, event, None)


def _rng_fork(device: torch.device):
    """A fork of torch's RNG for the run: the CPU's, and the accelerator's the run uses."""
    if device.type in ("cpu", "meta"):
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)


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
    without: Iterable[str] = (),
) -> FitResult:
    """Train `model` on `train`, evaluating on `val` after every epoch.

    Every epoch appends a record to run_dir/run.jsonl (losses, accuracy, balanced accuracy,
    macro-F1, the learning rate of every optimizer group, per-component gradient norm and
    update/weight ratio, seconds, samples/s) and rewrites run_dir/checkpoint.pt. resume=True
    continues from the checkpoint and ends with the same metrics as an uninterrupted run.
    Ctrl-C, `stop_event.set()`, a callback's `CancelFit` or `state.request_stop()` end the run
    at the next step boundary with log and checkpoint written (Ctrl-C then re-raises
    KeyboardInterrupt). A NaN/Inf loss, weight or validation loss raises NonFiniteLossError
    naming where, before that epoch is saved. `callbacks`: `seqrep.Callback`s (see
    `seqrep.callbacks` for the events); `without`: names of built-in callbacks to leave out
    (`seqrep.train.BUILTINS`; `show_training_loop()` prints who runs when). The model is moved
    to `device`, trains in train() mode and is handed back in eval() mode, ready for inference
    (after an error: in the modes it came in); torch's global RNG is left as it was.
    """
    for message in check_fit_inputs(config, train, val):
        warnings.warn(message, stacklevel=2)
    without = _check_without(without)
    run_dir, device = Path(run_dir), torch.device(device)
    _prepare_run_dir(run_dir, resume)
    stops = StopSignals(stop_event)
    with _run_dir_lock(run_dir), _rng_fork(device), modes(model, True):
        _refuse_to_overwrite(run_dir, resume)
        state = _set_up(model, train, val, config, run_dir, device, resume)
        counts = _announce(state, verbose)
        events = Events(state, [*_builtins(without, stops, config, state.budgeted, progress), *callbacks])
        try:
            events("before_fit")
            _train_epochs(state, events)
        except BaseException as err:
            state.error = err
            raise
        finally:
            events("after_fit")
    model.eval()  # trained: ready for inference, as load_model's
    if stops.interrupted:
        raise KeyboardInterrupt(
            f"training interrupted at epoch {state.epoch}, step {state.step}; log and checkpoint in "
            f"{run_dir}. Resume with fit(..., resume=True) or seqrep train --resume --run-dir {run_dir}."
        )
    return FitResult(run_dir, state.history, counts, state.stop_reason, time.perf_counter() - state.started,
                     state.config, state.config.epochs * state.steps_per_epoch, state.plan)
