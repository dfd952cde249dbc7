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

from .build import DataShape, build_model
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
from .checkpoint import CHECKPOINT_NAME, check_data, check_fits, read_checkpoint
from .config import ModelSpec, TrainConfig, flatten
from .data import SequenceDataset, channel_spread, check_train_val, scale_problem
from .errors import SeqrepError, as_path, warn
from .imbalance import make_loss
from .inference import check_device, evaluate, modes
from .model import fit_init, param_groups, parameter_counts
from .plan import TimeBudget, plan_epochs, plan_for_budget, replan
from .runlog import LOG_NAME, RunLog, read_log

__all__ = ["BUILTINS", "FitResult", "check_fit_inputs", "check_model", "fit", "new_run_dir", "show_training_loop"]

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
    root, name = as_path(root, "new_run_dir: root", "'runs'"), as_path(name, "new_run_dir: name", "'GunPoint'")
    path = root / f"{stamp}-{name.name}"
    if create:
        try:
            path.mkdir(parents=True, exist_ok=False)
        except OSError as err:
            raise SeqrepError(f"cannot create the run directory {path} ({err.strerror}); choose a "
                              "writable root folder.") from None
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
    problem = scale_problem(train.X, train.mask, name or train.name)
    if problem:
        raise SeqrepError(problem)
    return [str(w.message) for w in caught] + _small_scale(config, train, name or train.name)


# init="random" normalises the input with BatchNorm: its running variance starts at 1, so
# evaluation reads small inputs wrongly scaled until it has caught up, and its eps (1e-5)
# swamps a variance far below it. Measured on synthetic data (6 classes, 192 x 96, std 1)
# scaled down: validation accuracy 0.958 at x0.1 but 0.042 at x0.01 after 48 steps (1.000 at
# x1); after 480 steps 1.000 down to x1e-6, a constant model (0.417) at x1e-8. init="data"
# trained to 0.979 at every scale from x1 down to x1e-40. Warned below 0.03, between the two
# short-run cases; the smallest channel std of the 23 shipped and shared UCR/UEA sets is 0.096.
SMALL_STD = 0.03


def _small_scale(config: TrainConfig, train: SequenceDataset, name: str) -> list[str]:
    """A warning when init="random" meets a channel whose std is below SMALL_STD."""
    stds = channel_spread(train.X, train.mask)[1]
    if config.model.init != "random" or stds.min() >= SMALL_STD:
        return []
    c = int(stds.argmin())
    return [f"{name}: channel {c} varies little (std {stds[c]:.2g}): init='random' normalises the input "
            "with BatchNorm, whose running variance starts at 1 (evaluation misreads such data for "
            "the first few hundred steps: std 0.01 scored 0.042 after 48 steps, 1.000 after 480) and "
            "whose eps 1e-5 swamps a smaller variance (std 1e-8: a constant model). Z-normalise "
            "each series, or use init='data' (the default), which is scale-free."]


def check_model(model: nn.Module, config: TrainConfig, train: SequenceDataset) -> None:
    """Raise SeqrepError when `model` is a seqrep model (it has a ModelSpec) built from another
    config or for other data than `config` and `train` describe: the run log would record a
    config the weights do not follow, and load_model could not rebuild the model. A model of
    your own (no `spec`) is not compared."""
    if not isinstance(model, nn.Module):
        raise SeqrepError(f"fit: model must be a torch.nn.Module, got {type(model).__name__}; build one with "
                          "seqrep.build_model(config, train).")
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        return
    has, wanted = flatten({"model": spec.to_dict()}), flatten({"model": config.model.resolved(train.length).to_dict()})
    differ = [f"{k}: {has[k]!r} in the model vs {wanted[k]!r} in the config" for k in wanted if has.get(k) != wanted[k]]
    reference = build_model(config, DataShape(train.channels, train.n_classes, train.length))
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differ += [f"{k}: {own.get(k, 'missing')} in the model vs {tuple(v.shape)} for this config and data"
               for k, v in reference.state_dict().items() if own.get(k) != tuple(v.shape)][:3]
    if differ:
        raise SeqrepError(
            f"fit: the model does not match its config and data ({'; '.join(differ)}). The run "
            "records the config, and load_model rebuilds the model from it and the data's shape: "
            "build the model from this config and training set (seqrep.build_model(config, train)), "
            "or pass the config the model was built with."
        )


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
    if run_dir.is_file():
        inside = f"; pass the folder that holds it, {run_dir.parent}" if run_dir.name in (LOG_NAME, CHECKPOINT_NAME) else ""
        raise SeqrepError(f"{run_dir} is a file, not a run directory{inside}.")
    _refuse_to_overwrite(run_dir, resume)
    if resume and ckpt.exists() and not log.exists():
        raise SeqrepError(
            f"cannot resume {run_dir}: its {CHECKPOINT_NAME} (epoch {read_checkpoint(ckpt)['epoch']}) is "
            f"here but its log {LOG_NAME} is gone (deleted or moved). Put the log back and resume; or, "
            f"to continue without the earlier epochs' records, create an empty log (touch {log}) and "
            "resume: the log restarts from the checkpoint's own record of its epoch. "
            f"seqrep.load_model({str(run_dir)!r}) loads the trained model either way."
        )
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
    if ckpt is not None and ckpt["complete"] and ckpt["epoch"] + 1 >= ckpt["epochs"]:
        raise SeqrepError(
            f"nothing to resume in {run_dir}: the run finished all {ckpt['epochs']} epochs (its "
            f"checkpoint holds epoch {ckpt['epoch']}); nothing was trained or logged. To train "
            "longer, start a new run with more epochs (--epochs N, --run-dir NEW); to use the "
            f"model, seqrep.load_model({str(run_dir)!r})."
        )
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
    check_data(ckpt, state.checkpoint_path, state.train, state.val)
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


def _init_eval(state: FitState) -> dict:
    """The validation metrics of the model as it starts, before the first step (the point at
    epoch 0 of live curves): measured for a new run, read back from the log for a resumed one."""
    if state.resumed:
        return next((r.get("init_eval", {}) for r in read_log(state.log.path) if r.get("event") == "start"), {})
    if state.val is None:
        return {}
    return {f"val_{k}": v for k, v in evaluate(state.model, state.val, device=state.device).items()}


def _announce(state: FitState, verbose: bool) -> dict:
    counts = parameter_counts(state.model, state.optimizer)
    spec = getattr(state.model, "spec", None)
    state.init_eval = _init_eval(state)
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
                 "length": state.train.length, "name": state.train.name,
                 "fingerprints": {"train": state.train.fingerprint(),
                                  "val": state.val.fingerprint() if state.val is not None else None}},
        "from_epoch": state.start_epoch,
        "init_eval": state.init_eval,
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
    while epoch < state.config.epochs:  # TimeBudget may end a run far past its budget early
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


def _check_without(without: Iterable[str], callbacks=()) -> set[str]:
    """The names of built-ins to leave out, or SeqrepError for a name that is none or that has
    its own switch. One name alone (without="WatchTraining") is that name, not its letters.
    `callbacks` must be a list (one callback alone is refused, naming the fix)."""
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Iterable):
        raise SeqrepError(f"fit: callbacks must be a list of callbacks, got one {type(callbacks).__name__}; "
                          "pass [it] (e.g. callbacks=[seqrep.LivePlot()]).")
    without = {without} if isinstance(without, str) else set(without)
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
    (`without`), the solved readout (init="data"), the pre-flight check
    (config.check_gradients), the time budget and the progress bar each by their own switch."""
    wanted = {"StopSignals": True, "RidgeReadout": config.model.init == "data",
              "GradientGuard": config.check_gradients, "TimeBudget": budgeted, "ProgressBar": progress}
    return [stops if name == "StopSignals" else cls() for name, cls in BUILTINS.items()
            if name not in without and wanted.get(name, True)]


def show_training_loop(callbacks=(), config: TrainConfig | None = None, *, without: Iterable[str] = (),
                       progress: bool = True) -> str:
    """Print (and return) the loop `fit` would run with these arguments: each event in turn and
    the callbacks it calls, in the order they run (built-ins and yours, with their `order`).
    config: the run's config (default TrainConfig(); it decides the pre-flight check and the
    time budget)."""
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise SeqrepError(f"show_training_loop: config must be a seqrep.TrainConfig, got {type(config).__name__}.")
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
    continues from the checkpoint and ends with the same metrics as an uninterrupted run (it is
    refused when the model, config or data differ from the run's, or the run has finished).
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
        warn(message)
    check_model(model, config, train)
    without = _check_without(without, callbacks)
    run_dir, device = as_path(run_dir, "fit: run_dir", "seqrep.new_run_dir() or 'runs/my-run'"), check_device(device)
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
            f"{run_dir}. Resume with fit(..., resume=True) and the same model, data and config, or "
            f"with the same seqrep train command plus --resume --run-dir {run_dir}."
        )
    return FitResult(run_dir, state.history, counts, state.stop_reason, time.perf_counter() - state.started,
                     state.config, state.config.epochs * state.steps_per_epoch, state.plan)
