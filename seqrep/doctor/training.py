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
from .graph import diagnose_graph, held_by, inference_set, module_rows, parameter_rows
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
    """Forward or loss raised: a target outside the classes is a finding, anything else an error
    that names what the check needs."""
    if trace.output is not None:
        report.findings = target_findings(trace.output, y)
        if report.findings:
            report.skipped["others"] = "the loss cannot be computed on these targets"
            return report
    err = trace.error
    if isinstance(err, SeqrepError):
        raise SeqrepError(f"check_training: {err}") from None
    raise SeqrepError(f"check_training: the training forward or the loss raised "
                      f"{type(err).__name__}: {err}. Fix that first; the model must run on the batch "
                      "(forward(model, x), then loss_fn(output, y)) before its training can be checked."
                      ) from err


def _refuse_inputs(model: nn.Module, x) -> None:
    """Inputs no check can run on, refused with what to do instead of a library traceback."""
    if not isinstance(model, nn.Module):
        raise SeqrepError(f"check_training: model must be a torch.nn.Module, got {type(model).__name__}.")
    first_input(x)  # x must hold a tensor
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise SeqrepError(f"check_training: {len(meta)} parameter(s) of the model are on the meta device "
                          f"(e.g. {meta[0]}): they have no values, so the model cannot run. Materialise "
                          "them first: model.to_empty(device='cpu'), then initialise or load the weights.")


class _Skip(Exception):
    """A check that does not apply: its message is the reason."""


def _guarded(report: TrainingReport, timer: _Timer, name: str, check: Callable, key: str | None = "") -> None:
    """Run one check; any exception other than a SeqrepError about the user's arguments
    becomes a `skipped` entry with its reason, so one check never stops the others (or a run).
    What it measured goes to report.measured[key or name] (key=None: a dict of several)."""
    with timer(name):
        try:
            found, measured = check()
        except _Skip as why:
            report.skipped[name] = str(why)
            return
        except SeqrepError:
            raise
        except Exception as err:
            report.skipped[name] = f"the check raised {type(err).__name__}: {str(err)[:300]}"
            return
    report.findings += found
    if measured is not None and key is None:
        report.measured.update(measured)
    elif measured is not None:
        report.measured[key or name] = measured


def _step_size(optimizer, trace: Trace):
    if optimizer is None:
        raise _Skip("no optimizer given")
    return check_step_size(optimizer, trace)


def _losses(trace: Trace, loss_fn: Callable, y, model: nn.Module, x):
    found, family = check_loss_input(trace, loss_fn, y)
    more, measured = check_init_loss(trace, loss_fn, y, family, _last_module(trace, model), first_input(x))
    return found + more, measured


def _gradients(trace: Trace):
    found, span = check_gradient_span(trace)
    dead, shares = check_dead_units(trace)
    return found + dead, {"gradient_span": span, "dead_units": shares}


def _isolation(report, model, x, forward, mask, time_dim, timer: _Timer, base) -> None:
    """batch_mixing and padding_leak: eval-mode forwards on changed copies of the input,
    against one shared unchanged forward (`base`, None when that forward failed)."""
    generator = torch.Generator().manual_seed(0)

    def mixing():
        if base is None:
            raise _Skip("the eval-mode forward failed")
        if first_input(x).shape[0] < 3:
            raise _Skip("fewer than 3 samples")
        return check_batch_mixing(model, x, forward, generator, base)

    def padding():
        if mask is None:
            raise _Skip("no mask given")
        if base is None:
            raise _Skip("the eval-mode forward failed")
        return check_padding_leak(model, x, forward, mask, time_dim, generator, base)

    with preserved(model):
        _guarded(report, timer, "batch_mixing", mixing)
        _guarded(report, timer, "padding_leak", padding)


def _eval_base(report: TrainingReport, model, x, forward, timer: _Timer):
    """The unchanged eval-mode forward the isolation checks compare against; also tells which
    modules run at inference (a module skipped only in training is LayerDrop, not unused)."""
    with timer("batch_mixing"), preserved(model):
        try:
            return run_captured(model, x, forward)
        except Exception as err:
            report.skipped["eval_forward"] = f"the eval-mode forward raised {type(err).__name__}: {str(err)[:300]}"
            return None


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
    (x, y), model, loss_fn = batch, unwrap(model), loss_fn or nn.functional.cross_entropy
    _refuse_inputs(model, x)
    call, timer = forward or default_forward, _Timer()
    report = TrainingReport(float("nan"), [], [], seconds=timer.seconds)
    with timer("gradient_flow"):
        hidden = hidden_tensors(model)
        trace = trace_training_step(model, x, y, loss_fn=loss_fn, forward=call, forward_given=forward is not None,
                                    train_mode=train_mode, extra=[t for _, _, t in hidden.values()])
        if trace.error is not None:
            return _failed_forward(trace, y, report)
    base = _eval_base(report, model, x, call, timer)
    report.loss, report.parameters = trace.loss_value, parameter_rows(trace, held_by(optimizer))
    report.modules = module_rows(model, trace.recorder.calls)

    def graph():
        inference = None if base is None else inference_set(model, x, call, trace)
        return diagnose_graph(trace, report.parameters, model, expect_frozen, train_mode, inference), None

    _guarded(report, timer, "gradient_flow", graph)
    _guarded(report, timer, "unregistered", lambda: (check_unregistered(model, trace, x, hidden), None))
    _guarded(report, timer, "loss", lambda: _losses(trace, loss_fn, y, model, x), "init_loss")
    _isolation(report, model, x, call, mask, time_dim, timer, base)
    _guarded(report, timer, "gradients", lambda: _gradients(trace), None)
    _guarded(report, timer, "step_size", lambda: _step_size(optimizer, trace))  # last: it may change grads
    return report
