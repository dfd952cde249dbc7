"""fit(): the training loop of the seed's `train_with_logging`, done properly.

Explicit modes every epoch: `model(x, training=True)` while training, `model(x,
training=False)` under no_grad for evaluation. A JSON Lines run log (one flushed line per
epoch), a checkpoint every epoch (written to a temp file, then renamed), resume, a clean stop on
Ctrl-C or a stop request, a stop with a named epoch and step on a non-finite loss, callbacks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import SequenceDataset
from .errors import SeqrepError
from .imbalance import batch_order, make_loss
from .legacy import LegacyClassifier
from .model import SequenceClassifier, parameter_counts, stem_pool
from .runlog import LOG_NAME, RunLog, read_log

__all__ = [
    "Callback",
    "FitResult",
    "FitState",
    "NonFiniteLossError",
    "TrainConfig",
    "build_model",
    "evaluate",
    "fit",
    "load_model",
    "new_run_dir",
]

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = "seqrep-checkpoint-1"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides data, as plain data that round-trips to JSON.

    Model: extraction "fixed" (SequenceClassifier) or "broken" (LegacyClassifier, the bug);
    width, kernel_sizes (() = auto: (9, 19, 39) capped to the series length after the stem) and
    their dilations (() = all 1), blocks, bottleneck, attention, ppv (add soft
    proportion-of-positive-values pooling), pool (stem downsampling; 0 = auto,
    ceil(length / 512)), dropout, readout_hidden.
    Optimisation: AdamW(lr, weight_decay) with a "onecycle", "cosine" or "constant" schedule
    stepped every batch, batch_size, epochs (0 = auto: 30, or more on a small training set so
    that training makes at least 500 optimiser steps; see `resolve_epochs`), label_smoothing,
    grad_clip (0 = off), seed.
    Class imbalance (see seqrep.imbalance): class_weights "none", "inverse", "sqrt_inverse" or
    "effective" (with effective_beta) weight the loss; loss "cross_entropy", "focal" (with
    focal_gamma) or "logit_adjusted" (with logit_tau); sampler "shuffle" or "balanced".
    Checks: check_gradients runs `check_gradient_flow` on the first batch_size training series
    (not on resume) and refuses to train on a blocking finding (`gradients.BLOCKING`: e.g. a
    parameter gets no gradient, a module ran without autograd or in eval mode); other findings,
    such as exactly-zero gradients, only warn.
    """

    extraction: str = "fixed"
    width: int = 64
    kernel_sizes: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    blocks: int = 2
    bottleneck: int = 32
    attention: bool = True
    ppv: bool = False
    pool: int = 0
    dropout: float = 0.1
    readout_hidden: int = 0
    epochs: int = 0
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 1e-2
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    class_weights: str = "none"
    effective_beta: float = 0.999
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0
    logit_tau: float = 1.0
    sampler: str = "shuffle"
    check_gradients: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        checks = [
            (self.extraction in ("fixed", "broken"), "extraction must be 'fixed' or 'broken'"),
            (self.width >= 4, "width must be >= 4"),
            (all(k >= 1 for k in self.kernel_sizes), "kernel_sizes must be >= 1"),
            (all(d >= 1 for d in self.dilations), "dilations must be >= 1"),
            (not self.dilations or len(self.dilations) == len(self.kernel_sizes),
             "dilations need one entry per kernel size (and explicit kernel_sizes)"),
            (self.blocks >= 1, "blocks must be >= 1"),
            (self.bottleneck >= 0 and self.pool >= 0, "bottleneck and pool must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.epochs >= 0, "epochs must be >= 1, or 0 for automatic"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0"),
            (self.schedule in ("onecycle", "cosine", "constant"),
             "schedule must be 'onecycle', 'cosine' or 'constant'"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 = off)"),
            (self.class_weights in ("none", "inverse", "sqrt_inverse", "effective"),
             "class_weights must be 'none', 'inverse', 'sqrt_inverse' or 'effective'"),
            (0 <= self.effective_beta < 1, "effective_beta must be in [0, 1)"),
            (self.loss in ("cross_entropy", "focal", "logit_adjusted"),
             "loss must be 'cross_entropy', 'focal' or 'logit_adjusted'"),
            (self.focal_gamma >= 0 and self.logit_tau >= 0, "focal_gamma and logit_tau must be >= 0"),
            (self.sampler in ("shuffle", "balanced"), "sampler must be 'shuffle' or 'balanced'"),
            (not (self.loss == "focal" and self.label_smoothing),
             "label_smoothing is not defined for loss='focal'; set it to 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise SeqrepError(f"TrainConfig: {message}; got {self.to_dict()}.")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SeqrepError(
                f"TrainConfig has no field(s) {unknown}; known fields: {sorted(known)}."
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def diff(self, other: TrainConfig) -> dict:
        """{field: (self's value, other's value)} where they differ."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def model_kwargs(config: TrainConfig, length: int) -> dict:
    """The model's constructor arguments for series of `length` steps, with the automatic
    rules applied: pool = ceil(length / 512) when 0, kernel sizes capped to the pooled length."""
    pool = config.pool or stem_pool(length)
    pooled = math.ceil(length / pool)
    dilations = config.dilations or None
    if config.kernel_sizes:
        kernels = config.kernel_sizes
        spans = [(k - 1) * d + 1 for k, d in zip(kernels, dilations or [1] * len(kernels))]
        too_long = [s for s in spans if s > pooled]
        if too_long:
            raise SeqrepError(
                f"kernels spanning {too_long} steps are longer than the series ({pooled} steps"
                f"{f' after the stem pools by {pool}' if pool > 1 else ''}); use kernel_sizes "
                f"<= {pooled}, or kernel_sizes=() to derive them from the length."
            )
    else:  # 9, 19 and 39 taps, capped to the (pooled) series length
        cap = pooled if pooled % 2 else pooled - 1
        kernels = tuple(sorted({min(k, cap) for k in (9, 19, 39)}))
    width = config.width
    n_branches = len(kernels) + 1
    if width % n_branches:
        width = n_branches * math.ceil(width / n_branches)
    return dict(
        width=width, kernel_sizes=kernels, dilations=dilations, blocks=config.blocks,
        bottleneck=config.bottleneck,
        attention=config.attention, ppv=config.ppv, pool=pool, dropout=config.dropout,
        readout_hidden=config.readout_hidden,
    )


def build_model(config: TrainConfig, in_channels: int, n_classes: int, length: int) -> nn.Module:
    """The model `config` describes, seeded by config.seed: SequenceClassifier, or the broken
    LegacyClassifier when config.extraction == "broken"."""
    torch.manual_seed(config.seed)
    cls = SequenceClassifier if config.extraction == "fixed" else LegacyClassifier
    return cls(in_channels, n_classes, length, **model_kwargs(config, length))


def new_run_dir(root: str | os.PathLike = "runs", name: str = "run") -> Path:
    """A fresh, timestamped run directory under `root` (created)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = Path(root) / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=False)
    return path


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _batches(ds: SequenceDataset, index: torch.Tensor, device) -> tuple:
    x = torch.from_numpy(ds.X[index.numpy()]).to(device)
    y = torch.from_numpy(ds.y[index.numpy()]).to(device)
    m = None if ds.mask is None else torch.from_numpy(ds.mask[index.numpy()]).to(device)
    return x, y, m


def predict_logits(model: nn.Module, ds: SequenceDataset, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """(n, n_classes) logits of the whole dataset, in inference mode (training=False)."""
    model.eval()
    out = []
    for start in range(0, len(ds), batch_size):
        x, _, m = _batches(ds, torch.arange(start, min(start + batch_size, len(ds))), device)
        with torch.no_grad():
            out.append(model(x, training=False, mask=m).float().cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, ds: SequenceDataset, batch_size: int = 256, device="cpu") -> dict:
    """{"loss", "accuracy", "balanced_accuracy", "macro_f1"} of `model` on `ds`
    (inference mode; macro-F1 over the classes present in ds)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    logits = predict_logits(model, ds, batch_size, device)
    y = torch.from_numpy(ds.y)
    pred = logits.argmax(1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        bal = balanced_accuracy_score(ds.y, pred)
    return {
        "loss": float(nn.functional.cross_entropy(logits, y)),
        "accuracy": float((pred == ds.y).mean()),
        "balanced_accuracy": float(bal),
        "macro_f1": float(f1_score(ds.y, pred, labels=np.unique(ds.y), average="macro", zero_division=0)),
    }


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


class NonFiniteLossError(SeqrepError):
    """The loss became NaN or Inf; training stopped, the last good checkpoint is kept."""


class Callback:
    """Hooks into `fit`. Subclass and override what you need; `state` is a `FitState`."""

    def on_fit_start(self, state: FitState) -> None: ...

    def on_step_end(self, state: FitState) -> None: ...

    def on_epoch_end(self, state: FitState, record: dict) -> None: ...

    def on_fit_end(self, state: FitState, result: FitResult) -> None: ...

    def epoch_metrics(self, state: FitState) -> dict:
        """Extra fields for this epoch's run-log record (called before it is written)."""
        return {}


@dataclass
class FitState:
    """What callbacks see: the live objects of a run and where it is."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    run_dir: Path
    epoch: int = 0
    step: int = 0  # step within the epoch
    global_step: int = 0
    steps_per_epoch: int = 0
    loss: float = float("nan")  # loss of the last step
    history: list[dict] = field(default_factory=list)
    stop_reason: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def request_stop(self, reason: str = "stop requested") -> None:
        """End the run at the next step boundary, with log and checkpoint written."""
        self.stop_reason = self.stop_reason or reason


@dataclass
class FitResult:
    """history: the epoch records (as in the run log); final: the last one."""

    run_dir: Path
    history: list[dict]
    parameter_counts: dict
    stopped: str | None
    seconds: float

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def _components(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    return {name: list(child.parameters()) for name, child in model.named_children()
            if any(True for _ in child.parameters())}


def _grad_norms(components: dict[str, list[nn.Parameter]]) -> dict[str, float | None]:
    """Per component: L2 norm of all its gradients; None when none of them got a gradient."""
    out = {}
    for name, params in components.items():
        grads = [p.grad for p in params if p.grad is not None]
        out[name] = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else None
    return out


def _update_ratios(components, before: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Per component: log10(std of the last update / std of the weights). -inf = no update."""
    out = {}
    for name, params in components.items():
        delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before[name])])
        weights = torch.cat([p.detach().flatten() for p in params])
        ratio = float(delta.std() / weights.std().clamp(min=1e-12)) if delta.numel() > 1 else 0.0
        out[name] = math.log10(ratio) if ratio > 0 else float("-inf")
    return out


def _scheduler(optimizer, config: TrainConfig, total_steps: int):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.3
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


AUTO_EPOCHS, MIN_STEPS = 30, 500


def resolve_epochs(config: TrainConfig, n_train: int, min_steps: int | None = None) -> TrainConfig:
    """The config with epochs=0 (auto) replaced by the number of epochs `fit` will run:
    AUTO_EPOCHS, or more when the training set is so small that AUTO_EPOCHS epochs would make
    fewer than min_steps (default MIN_STEPS) optimiser steps (ArrowHead, 36 series: 167
    epochs of 3 steps).
    Measured on the hard UCR sets: 90-210 steps left PigCVP, ACSF1 and ArrowHead under-trained
    (benchmarks/results/accuracy.md). An explicit epochs is kept as given."""
    if config.epochs:
        return config
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    return config.replace(epochs=max(AUTO_EPOCHS, math.ceil((min_steps or MIN_STEPS) / steps_per_epoch)))


def _check_data(train: SequenceDataset, val: SequenceDataset | None, config: TrainConfig) -> None:
    for name, ds in (("train", train), ("val", val)):
        if ds is not None and not isinstance(ds, SequenceDataset):
            raise SeqrepError(
                f"fit: {name} must be a seqrep.SequenceDataset, got {type(ds).__name__}; wrap "
                "arrays with SequenceDataset(X, y, class_names)."
            )
    if val is not None and (val.n_classes, val.channels) != (train.n_classes, train.channels):
        raise SeqrepError(
            f"fit: val has {val.n_classes} classes x {val.channels} channels but train has "
            f"{train.n_classes} x {train.channels}; they must come from the same dataset."
        )
    if config.batch_size > len(train):
        raise SeqrepError(
            f"fit: batch_size {config.batch_size} is larger than the training set "
            f"({len(train)} samples); use batch_size <= {len(train)}."
        )
    model_kwargs(config, train.length)  # raises if kernels are longer than the series


def _save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model: nn.Module, config: TrainConfig) -> dict:
    """Load a checkpoint for `model` trained with `config`, or explain why it does not fit."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise SeqrepError(f"{path}: not a readable seqrep checkpoint ({err}).") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise SeqrepError(f"{path}: not a seqrep checkpoint (no '{_CHECKPOINT_FORMAT}' marker).")
    saved = TrainConfig.from_json(ckpt["config"])
    if ckpt["model_class"] != type(model).__name__:
        raise SeqrepError(
            f"{path} holds a {ckpt['model_class']}, not a {type(model).__name__}; resume with "
            "the same model, or start a new run directory."
        )
    changed = saved.diff(config)
    if changed:
        detail = ", ".join(f"{k}: {a!r} in the checkpoint vs {b!r} now" for k, (a, b) in changed.items())
        raise SeqrepError(
            f"{path} was made with a different config ({detail}); resume with the same config "
            "or start a new run directory."
        )
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape) if k in own else 'missing'}"
        for k, v in ckpt["model"].items()
        if k not in own or own[k].shape != v.shape
    ] + [f"{k} missing from the checkpoint" for k in own if k not in ckpt["model"]]
    if mismatched:
        raise SeqrepError(
            f"{path} does not fit this model's architecture (checkpoint vs model: "
            f"{'; '.join(mismatched[:4])}{' ...' if len(mismatched) > 4 else ''}); was the data "
            "(channels, classes, length) different? Start a new run directory."
        )
    return ckpt


def load_model(run_dir: str | os.PathLike) -> nn.Module:
    """The model of a run's latest checkpoint, rebuilt from its config, in eval() mode."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.exists():
        raise SeqrepError(f"{path}: no checkpoint; has this run finished an epoch?")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    config = TrainConfig.from_json(ckpt["config"])
    d = ckpt["data"]
    model = build_model(config, d["channels"], d["n_classes"], d["length"])
    model.load_state_dict(_load_checkpoint(path, model, config)["model"])
    return model.eval()


class _SigintToStop:
    """While active (main thread only), Ctrl-C requests a clean stop instead of raising
    mid-step; a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self, state: FitState):
        self.state, self.previous, self.hit = state, None, False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        self.state.request_stop("interrupted (Ctrl-C)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _guard(model, x_all, y_all, m_all, config, loss_fn, optimizer, device, log) -> None:
    """Run the gradient-flow check on the first batch_size training series; refuse to start on
    a blocking finding (a parameter that cannot learn, a module that would train in eval mode)."""
    from .gradients import BLOCKING, GradientFlowError, check_gradient_flow

    n = min(config.batch_size, len(y_all))
    x, y = x_all[:n].to(device), y_all[:n].to(device)
    m = None if m_all is None else m_all[:n].to(device)
    report = check_gradient_flow(
        model, (x, y), loss_fn=loss_fn, optimizer=optimizer,
        forward=lambda model_, inputs: model_(inputs, training=True, mask=m),
    )
    if any(f.kind in BLOCKING for f in report.findings):
        log.append({"event": "refused", "time": time.time(), "findings": [
            {"kind": f.kind, "names": list(f.names), "message": f.message} for f in report.findings]})
        raise GradientFlowError(
            f"fit refused to start: the gradient-flow check found problems that would waste the "
            f"run.\n{report.verdict()}\nFix them, or pass a config with check_gradients=False to "
            "train anyway."
        )
    if report.findings:
        warnings.warn(f"gradient-flow check: {report.verdict()}", stacklevel=3)


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
    samples/s) and rewrites run_dir/checkpoint.pt (model, optimizer, scheduler, RNG state,
    config). resume=True continues from the checkpoint and ends with the same metrics as an
    uninterrupted run. Ctrl-C, `stop_event.set()` or a callback's `state.request_stop()` end
    the run at the next step boundary with log and checkpoint written (Ctrl-C then re-raises
    KeyboardInterrupt). A NaN/Inf loss raises NonFiniteLossError naming epoch and step.
    """
    if not isinstance(config, TrainConfig):
        raise SeqrepError(f"fit: config must be a TrainConfig, got {type(config).__name__}.")
    _check_data(train, val, config)
    config = resolve_epochs(config, len(train))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir / LOG_NAME)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if not resume and (ckpt_path.exists() or log.path.exists()):
        raise SeqrepError(
            f"{run_dir} already holds a run; pass resume=True to continue it, or use a new "
            "directory (seqrep.new_run_dir())."
        )
    device = torch.device(device)
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    scheduler = _scheduler(optimizer, config, steps_per_epoch * config.epochs)
    loss_fn = make_loss(config, train.y, train.n_classes).to(device)
    state = FitState(model, optimizer, config, run_dir, steps_per_epoch=steps_per_epoch)
    components = _components(model)
    callbacks = list(callbacks)

    start_epoch, start_step, carried = 0, 0, None
    if resume and ckpt_path.exists():
        ckpt = _load_checkpoint(ckpt_path, model, config)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["complete"]:
            start_epoch = ckpt["epoch"] + 1
            log.truncate_after(ckpt["epoch"])
        else:  # stopped mid-epoch: continue that epoch where it stopped
            start_epoch, start_step, carried = ckpt["epoch"], ckpt["next_step"], ckpt["progress"]
            log.truncate_after(ckpt["epoch"] - 1)
            torch.set_rng_state(ckpt["torch_rng"])
    elif resume and log.path.exists():
        log.truncate_after(-1)  # died before its first checkpoint: start over
    state.history = [r for r in read_log(log.path) if "epoch" in r] if log.path.exists() else []
    counts = parameter_counts(model, optimizer)
    log.append({
        "event": "resume" if start_epoch or start_step else "start",
        "time": time.time(),
        "config": config.to_dict(),
        "model_class": type(model).__name__,
        "parameter_counts": counts,
        "data": {"train": len(train), "val": len(val) if val is not None else 0,
                 "n_classes": train.n_classes, "channels": train.channels, "length": train.length,
                 "name": train.name},
        "from_epoch": start_epoch,
    })
    if verbose:
        print("parameters (total / trainable / in optimizer): " + "; ".join(
            f"{k} {v['total']:,} / {v['trainable']:,} / {v['in_optimizer']:,}" for k, v in counts.items()))
    for cb in callbacks:
        getattr(cb, "on_fit_start", lambda s: None)(state)

    x_all = torch.from_numpy(train.X)
    y_all = torch.from_numpy(train.y)
    m_all = None if train.mask is None else torch.from_numpy(train.mask)
    if config.check_gradients and start_epoch == 0 and start_step == 0:
        _guard(model, x_all, y_all, m_all, config, loss_fn, optimizer, device, log)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start_epoch, desc="epochs", leave=False)
    interrupted = False
    try:
        with _SigintToStop(state) as sigint:
            for epoch in range(start_epoch, config.epochs):
                state.epoch = epoch
                first_step = start_step if epoch == start_epoch else 0
                if first_step == 0:
                    torch.manual_seed(config.seed * 100_003 + epoch)
                order = batch_order(config, train.y, epoch)
                sums = carried or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0,
                                   "grad": {k: 0.0 for k in components}, "grad_steps": 0}
                carried = None
                model.train()
                tick = time.perf_counter()
                ratios, steps_done = {}, first_step
                for step in range(first_step, steps_per_epoch):
                    if stop_event is not None and stop_event.is_set():
                        state.request_stop("stop requested")
                    if state.stop_reason:
                        break
                    idx = order[step * config.batch_size:(step + 1) * config.batch_size]
                    x, y = x_all[idx].to(device), y_all[idx].to(device)
                    m = None if m_all is None else m_all[idx].to(device)
                    logits = model(x, training=True, mask=m)
                    loss = loss_fn(logits, y)
                    if not torch.isfinite(loss):
                        loss = float(loss.detach())
                        log.append({"event": "stopped", "time": time.time(), "at_epoch": epoch,
                                    "at_step": step, "reason": f"non-finite loss ({loss})"})
                        raise NonFiniteLossError(
                            f"the loss became {loss} at epoch {epoch}, step {step}; training "
                            f"stopped. The last good checkpoint ({ckpt_path}) is kept. Lower lr "
                            f"(now {config.lr}), check the inputs for extreme values, or clip "
                            "gradients (grad_clip)."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    if loss.requires_grad:
                        loss.backward()
                    for k, v in _grad_norms(components).items():
                        sums["grad"][k] = None if v is None or sums["grad"][k] is None else sums["grad"][k] + v
                    sums["grad_steps"] += 1
                    if config.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    last = step == steps_per_epoch - 1
                    if last:
                        before = {k: [p.detach().clone() for p in ps] for k, ps in components.items()}
                    optimizer.step()
                    scheduler.step()
                    if last:
                        ratios = _update_ratios(components, before)
                    sums["loss"] += float(loss.detach()) * len(y)
                    sums["correct"] += int((logits.argmax(1) == y).sum())
                    sums["seen"] += len(y)
                    steps_done = step + 1
                    state.step, state.loss = step, float(loss.detach())
                    state.global_step = epoch * steps_per_epoch + step + 1
                    for cb in callbacks:
                        getattr(cb, "on_step_end", lambda s: None)(state)
                sums["seconds"] += time.perf_counter() - tick
                complete = steps_done == steps_per_epoch
                if sums["seen"] == 0:  # stopped before the first step of this epoch
                    break
                record = {
                    "epoch": epoch,
                    "epochs": config.epochs,
                    "time": time.time(),
                    "train_loss": sums["loss"] / sums["seen"],
                    "train_accuracy": sums["correct"] / sums["seen"],
                    "lr": optimizer.param_groups[0]["lr"],
                    "grad_norm": {k: (None if v is None else v / max(sums["grad_steps"], 1))
                                  for k, v in sums["grad"].items()},
                    "update_ratio": ratios,
                    "seconds": sums["seconds"],
                    "samples_per_s": sums["seen"] / max(sums["seconds"], 1e-9),
                }
                if val is not None:
                    metrics = evaluate(model, val, device=device)
                    record.update({f"val_{k}": v for k, v in metrics.items()})
                if not complete:
                    record.update(partial=True, steps=steps_done)
                for cb in callbacks:
                    record.update(getattr(cb, "epoch_metrics", lambda s: {})(state))
                log.append(record)
                _save_checkpoint(ckpt_path, {
                    "format": _CHECKPOINT_FORMAT,
                    "config": config.to_json(),
                    "model_class": type(model).__name__,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch,
                    "complete": complete,
                    "next_step": steps_done,
                    "progress": sums,
                    "data": {"channels": train.channels, "n_classes": train.n_classes,
                             "length": train.length},
                })
                state.history.append(record)
                for cb in callbacks:
                    getattr(cb, "on_epoch_end", lambda s, r: None)(state, record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['train_loss']:.3f}",
                                    val_acc=f"{record.get('val_accuracy', float('nan')):.3f}")
                if not complete or state.stop_reason:
                    break
            interrupted = sigint.hit
    finally:
        if bar is not None:
            bar.close()
    if state.stop_reason:
        log.append({"event": "stopped", "time": time.time(), "at_epoch": state.epoch,
                    "at_step": state.step, "reason": state.stop_reason})
    result = FitResult(run_dir, state.history, counts, state.stop_reason,
                       time.perf_counter() - state.started)
    for cb in callbacks:
        getattr(cb, "on_fit_end", lambda s, r: None)(state, result)
    if interrupted:
        raise KeyboardInterrupt(f"training interrupted; log and checkpoint in {run_dir}")
    return result
