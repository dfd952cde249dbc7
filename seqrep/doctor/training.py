"""`check_training`: the one call to run before training a sequence model. It runs every
family of checks on one batch, without side effects, and reports what would stop the model from
learning — with the culprit, the reason and the fix — and the seconds each check took."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..errors import SeqrepError
from .batch import default_forward, first_input, preserved, unwrap
from .dynamics import check_dead_units, check_gradient_span, check_step_size
from .graph import diagnose_graph, held_by, module_rows, parameter_rows
from .losses import check_init_loss, check_loss_input, target_findings
from .mixing import check_batch_mixing, check_padding_leak, run_captured
from .registration import check_unregistered, hidden_tensors
from .report import TrainingReport
from .trace import Trace, trace_training_step

__all__ = ["check_training"]


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _last_module(trace: Trace, model: nn.Module) -> str:
    """The module with parameters that finished last in the training forward (the readout)."""
    calls = trace.recorder.calls
    owners = {name.rpartition(".")[0] for name, _ in model.named_parameters()}
    done = [(c.get("end", 0), n) for n, c in calls.items() if n in owners]
    return max(done)[1] if done else "model"


def _failed_forward(trace: Trace, y, report: TrainingReport) -> TrainingReport:
    """Forward or loss raised: a target outside the classes is a finding, anything else an error."""
    if trace.output is not None:
        report.findings = target_findings(trace.output, y)
        if report.findings:
            report.skipped["others"] = "the loss cannot be computed on these targets"
            return report
    raise SeqrepError(f"check_training: the training forward or the loss raised "
                      f"{type(trace.error).__name__}: {trace.error}. Fix that first; the model "
                      "must run on the batch before its training can be checked.") from trace.error


def _dynamics(report: TrainingReport, trace: Trace, optimizer, timer: _Timer) -> None:
    with timer("step_size"):
        if optimizer is None:
            report.skipped["step_size"] = "no optimizer given"
        else:
            try:
                found, report.measured["step_size"] = check_step_size(optimizer, trace)
                report.findings += found
            except (TypeError, ValueError, RuntimeError, KeyError) as err:
                report.skipped["step_size"] = f"could not copy the optimizer ({type(err).__name__}: {err})"
    with timer("gradients"):
        found, report.measured["gradient_span"] = check_gradient_span(trace)
        report.findings += found
        found, report.measured["dead_units"] = check_dead_units(trace)
        report.findings += found


def _isolation(report, model, x, forward, mask, time_dim, timer: _Timer) -> None:
    """batch_mixing and padding_leak: eval-mode forwards on perturbed copies of the input,
    against one shared unperturbed forward."""
    generator = torch.Generator().manual_seed(0)
    with preserved(model):
        with timer("batch_mixing"):
            base = run_captured(model, x, forward)
            if first_input(x).shape[0] < 3:
                report.skipped["batch_mixing"] = "fewer than 3 samples"
            else:
                found, report.measured["batch_mixing"] = check_batch_mixing(model, x, forward, generator, base)
                report.findings += found
        with timer("padding_leak"):
            if mask is None:
                report.skipped["padding_leak"] = "no mask given"
            else:
                found, report.measured["padding_leak"] = check_padding_leak(model, x, forward, mask, time_dim,
                                                                            generator, base)
                report.findings += found


def check_training(
    model: nn.Module,
    batch,
    *,
    loss_fn: Callable | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    mask: torch.Tensor | None = None,
    forward: Callable | None = None,
    expect_frozen: Iterable[str] = (),
    train_mode: bool = True,
    time_dim: int | None = None,
) -> TrainingReport:
    """Check, before the first step, that `model` can learn from `batch` = (x, y).

    x: a tensor (batch, ...), a tuple of tensors (called as model(*x), e.g. (x, lengths)) or a
    dict (model(**x)); integer tokens are fine. y: targets for `loss_fn(output, y)` (default
    cross-entropy). forward(model, x) -> logits replaces the call (e.g. to pick the logits of a
    model returning a tuple or dict). mask: (batch, time) bool, True = a real step, describing
    the padding of the first input (its time axis is found by size; time_dim= when ambiguous).
    train_mode=False keeps the model's modes (a model left in eval() is then reported).

    Checks: gradient flow (as `check_gradient_flow`), unregistered tensors, loss input, loss at
    initialisation, batch mixing, padding leaks (with a mask), step size (with an optimizer),
    gradient span across depth, dead ReLU units. Parameters, buffers, stored gradients, the
    optimizer's state, modes and RNG state are exactly as before; the optimizer step is taken by
    a copy on copies. Finding kinds: `seqrep.doctor.KINDS`; those that should stop training:
    `seqrep.doctor.BLOCKING`.

    Example:
        >>> report = seqrep.check_training(model, (x, y), optimizer=opt, mask=mask)
        >>> print(report)             # verdict first, then seconds per check, then parameters
        >>> report.raise_if_broken()
    """
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise SeqrepError("check_training: batch must be (x, y), e.g. (x[:16], y[:16]).")
    x, y = batch
    model, loss_fn = unwrap(model), loss_fn or nn.functional.cross_entropy
    call = forward or default_forward
    timer = _Timer()
    report = TrainingReport(float("nan"), [], [], seconds=timer.seconds)
    with timer("gradient_flow"):
        hidden = hidden_tensors(model)
        trace = trace_training_step(model, x, y, loss_fn=loss_fn, forward=call, forward_given=forward is not None,
                                    train_mode=train_mode, extra=[t for _, _, t in hidden.values()])
        if trace.error is not None:
            return _failed_forward(trace, y, report)
        report.loss = trace.loss_value
        report.parameters = parameter_rows(trace, held_by(optimizer))
        report.modules = module_rows(model, trace.recorder.calls)
        report.findings += diagnose_graph(trace, report.parameters, model, expect_frozen, train_mode)
    with timer("unregistered"):
        report.findings += check_unregistered(model, trace, x, hidden)
    with timer("loss"):
        found, family = check_loss_input(trace, loss_fn, y)
        report.findings += found
        found, report.measured["init_loss"] = check_init_loss(trace, loss_fn, y, family, _last_module(trace, model),
                                                              first_input(x))
        report.findings += found
    _isolation(report, model, x, call, mask, time_dim, timer)
    _dynamics(report, trace, optimizer, timer)
    return report
