"""Gradient-flow checks: a doctor that names a disconnected, frozen or eval-mode part of a model
before the first epoch (the monitor of gradient norms and update ratios during training is
`seqrep.callbacks.GradientMonitor`).

`check_gradient_flow(model, (x, y))` runs one forward and backward without side effects and
reports, for every named parameter and module: reachable from the loss (walking the autograd
graph before backward), gradient after backward (None, exactly zero, non-finite, its norm),
frozen, in the optimizer, ran in eval mode or with autograd disabled during the training
forward, graph breaks between modules, and modules never called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .errors import SeqrepError

__all__ = ["Finding", "GradientFlowError", "GradientReport", "check_gradient_flow"]

# Layers whose forward depends on train()/eval(): running them in eval mode while training
# silently changes what is learned (BatchNorm stops adapting, Dropout stops regularising).
_MODE_DEPENDENT = (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)

# Finding kinds that stop `fit` before the first epoch: the optimizer holds a parameter that
# cannot learn, or a module would train in eval mode.
BLOCKING = frozenset({
    "no_grad", "graph_break", "unreachable", "eval_mode", "detached_loss", "nonfinite_loss",
    "unused", "backward_error",
})


class GradientFlowError(SeqrepError):
    """Raised by `GradientReport.raise_if_broken()` and by `fit`'s guard; the message is the
    report."""


@dataclass(frozen=True)
class Finding:
    """One problem: `kind` (e.g. "graph_break"), the parameter/module `names` involved, and a
    plain-words `message` naming the culprit and the likely fix."""

    kind: str
    names: tuple[str, ...]
    message: str


@dataclass
class GradientReport:
    """The result of `check_gradient_flow`. `parameters` and `modules` hold one dict per named
    parameter / module; `findings` what is wrong (empty = ok)."""

    loss: float
    parameters: list[dict]
    modules: list[dict]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def verdict(self) -> str:
        if self.ok:
            n = sum(1 for p in self.parameters if p["requires_grad"])
            return f"ok: gradients reach all {n} trainable parameters; no module ran in eval mode or without autograd."
        head = f"{len(self.findings)} finding{'s' if len(self.findings) > 1 else ''}:"
        return "\n".join([head, *(f"  [{f.kind}] {f.message}" for f in self.findings)])

    def raise_if_broken(self) -> None:
        """Raise GradientFlowError with the report when there is any finding."""
        if not self.ok:
            raise GradientFlowError(str(self))

    def to_frame(self):
        """One row per parameter (a pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.parameters)

    def table(self) -> str:
        rows = [("parameter", "shape", "trainable", "optimizer", "reachable", "grad norm")]
        for p in self.parameters:
            norm = p["grad_norm"]
            rows.append((
                p["name"],
                "x".join(map(str, p["shape"])) or "scalar",
                "yes" if p["requires_grad"] else "FROZEN",
                {True: "yes", False: "NO", None: "-"}[p["in_optimizer"]],
                "yes" if p["reachable"] else "NO",
                "None" if norm is None else ("0 (exactly)" if norm == 0 else f"{norm:.3g}"),
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def __str__(self) -> str:
        return f"{self.verdict()}\n\nloss {self.loss:.4g}\n{self.table()}"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))

    def plot(self, ax=None):
        """Per-parameter gradient norm on a log axis. Parameters with no gradient (None) and
        exactly-zero gradients get their own marks at the bottom instead of being dropped."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(max(6, 0.18 * len(self.parameters)), 3.6))
        names = [p["name"] for p in self.parameters]
        norms = [p["grad_norm"] for p in self.parameters]
        positive = [n for n in norms if n]
        floor = (min(positive) if positive else 1.0) / 100
        xs = np.arange(len(names))
        ok = [i for i, n in enumerate(norms) if n]
        ax.bar([xs[i] for i in ok], [norms[i] for i in ok], color="tab:blue", label="gradient norm")
        none = [i for i, n in enumerate(norms) if n is None]
        zero = [i for i, n in enumerate(norms) if n == 0]
        ax.scatter([xs[i] for i in none], [floor] * len(none), marker="x", color="tab:red", s=40,
                   label=f"no gradient (None): {len(none)}", zorder=3)
        ax.scatter([xs[i] for i in zero], [floor] * len(zero), marker="o", facecolors="none",
                   edgecolors="tab:orange", s=40, label=f"exactly zero: {len(zero)}", zorder=3)
        ax.set_yscale("log")
        ax.set_ylim(floor / 3, None)
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_ylabel("gradient L2 norm (log)")
        ax.set_title(self.verdict().splitlines()[0])
        ax.legend(fontsize=8, loc="best")
        ax.figure.tight_layout()
        return ax.figure


def _reachable_parameters(loss: torch.Tensor) -> set[int]:
    """ids of the leaf tensors the loss depends on: walk grad_fn.next_functions down to the
    AccumulateGrad nodes, before any backward."""
    seen, found = set(), set()
    stack = [loss.grad_fn] if loss.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()



def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _outermost(names: list[str]) -> list[str]:
    """Drop names that lie inside another name of the list ('a.b' inside 'a')."""
    return [n for n in names if not any(n != o and _matches(n, [o]) for o in names if o)]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


class _Recorder:
    """Forward pre-hooks and hooks on every module: mode, autograd state, input history, order."""

    def __init__(self, model: nn.Module, batch_storages: set[int]):
        self.model = model
        self.batch_storages = batch_storages
        self.calls: dict[str, dict] = {}
        self.order = 0
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._pre(name)))
            self.handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, args):
            inputs = _tensors(args)
            float_inputs = [t for t in inputs if t.is_floating_point()]
            self.order += 1
            record = self.calls.setdefault(name, {"start": self.order, "calls": 0, "eval_calls": 0,
                                                  "no_grad_calls": 0, "no_history_input": False,
                                                  "batch_input": False})
            record["calls"] += 1
            record["eval_calls"] += not module.training
            record["no_grad_calls"] += not torch.is_grad_enabled() or torch.is_inference_mode_enabled()
            if float_inputs and not any(t.requires_grad for t in float_inputs):
                record["no_history_input"] = True
                record["batch_input"] |= any(_storage(t) in self.batch_storages for t in float_inputs)
        return hook

    def _post(self, name):
        def hook(module, args, output):
            self.order += 1
            self.calls[name]["end"] = self.order
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def check_gradient_flow(
    model: nn.Module,
    batch,
    loss_fn: Callable | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    forward: Callable | None = None,
    expect_frozen: Iterable[str] = (),
    train_mode: bool = True,
) -> GradientReport:
    """One forward and backward on `batch` = (x, y), without side effects, and a report of
    where gradients do and do not flow.

    Calls `model(x)` (or `forward(model, x)`) with the model in train() mode (as a training
    loop would set it; train_mode=False keeps the current modes), computes `loss_fn(output, y)`
    (default cross-entropy), walks the autograd graph from the loss to find the reachable
    parameters, then runs backward. Afterwards parameters, buffers (BatchNorm statistics),
    stored gradients, RNG state and train/eval modes are exactly as before; the optimizer is
    only read. `expect_frozen`: parameter/module names (or prefixes) that are meant to be frozen
    (e.g. ("encoder",)); findings about them are not reported.

    Example:
        >>> report = check_gradient_flow(model, (x, y), optimizer=opt)
        >>> print(report)            # verdict first, then one row per parameter
        >>> report.raise_if_broken() # in a test or CI
    """
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise SeqrepError("check_gradient_flow: batch must be (x, y), e.g. (x[:16], y[:16]).")
    x, y = batch
    loss_fn = loss_fn or nn.functional.cross_entropy
    forward = forward or (lambda m, inputs: m(inputs))
    expect_frozen = tuple(expect_frozen)
    named_params = list(model.named_parameters())
    named_modules = dict(model.named_modules())
    held = None
    if optimizer is not None:
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}

    # What we must restore: modes, buffers, stored gradients, RNG state.
    modes = {name: m.training for name, m in named_modules.items()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    grads = {name: p.grad for name, p in named_params}
    rng = torch.get_rng_state()
    for _, p in named_params:
        p.grad = None
    batch_storages = {_storage(t) for t in _tensors(x)}
    recorder = _Recorder(model, batch_storages)
    loss_value, reachable, backward_error, loss_has_graph = float("nan"), set(), None, False
    try:
        if train_mode:
            model.train()
        with torch.enable_grad():
            output = forward(model, x)
            loss = loss_fn(output, y)
            loss_value = float(loss.detach()) if loss.numel() == 1 else float("nan")
            reachable = _reachable_parameters(loss)
            loss_has_graph = loss.grad_fn is not None
            if loss.requires_grad:
                try:
                    loss.backward()
                except RuntimeError as err:
                    backward_error = str(err)
        result = [(name, p, None if p.grad is None else p.grad.detach().clone()) for name, p in named_params]
    finally:
        recorder.remove()
        for name, p in named_params:
            p.grad = grads[name]
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for name, m in named_modules.items():
            m.training = modes[name]
        torch.set_rng_state(rng)

    parameters = []
    for name, p, grad in result:
        norm = None if grad is None else float(grad.float().norm())
        parameters.append({
            "name": name,
            "module": name.rpartition(".")[0],
            "shape": tuple(p.shape),
            "numel": p.numel(),
            "requires_grad": p.requires_grad,
            "in_optimizer": None if held is None else id(p) in held,
            "reachable": id(p) in reachable,
            "grad_norm": norm,
            "finite": None if grad is None else bool(torch.isfinite(grad).all()),
        })
    modules = []
    for name, m in named_modules.items():
        call = recorder.calls.get(name, {})
        modules.append({
            "name": name or "(model)",
            "type": type(m).__name__,
            "called": bool(call),
            "ran_in_eval": bool(call.get("eval_calls")),
            "ran_without_autograd": bool(call.get("no_grad_calls")),
            "input_without_history": bool(call.get("no_history_input")),
        })
    findings = _diagnose(parameters, recorder.calls, named_modules, loss_value, loss_has_graph,
                         backward_error, expect_frozen, train_mode)
    return GradientReport(loss_value, parameters, modules, findings)


def _diagnose(parameters, calls, named_modules, loss_value, loss_has_graph,
              backward_error, expect_frozen, train_mode) -> list[Finding]:
    findings: list[Finding] = []
    def expected(name: str) -> bool:
        return _matches(name, expect_frozen)

    trainable = [p for p in parameters if p["requires_grad"] and not expected(p["name"])]

    def module_params(module_name: str) -> list[dict]:
        return [p for p in trainable if not module_name or _matches(p["name"], [module_name])]

    if not math.isfinite(loss_value):
        findings.append(Finding("nonfinite_loss", (), f"the loss is {loss_value}: a NaN/Inf "
                                "appears in the forward pass or the loss (log of 0, division by 0, "
                                "sqrt of a negative?). Check the inputs and any log/exp/div in forward."))
    if not loss_has_graph:
        findings.append(Finding("detached_loss", (), "the loss has no autograd graph: it was "
                                "computed from a detached tensor (.detach(), .item(), numpy, or under "
                                "torch.no_grad()), so backward cannot reach any parameter. Compute "
                                "the loss from the model's output tensor directly."))

    # Modules that ran without autograd / in eval mode: report the outermost ones whose subtree
    # holds trainable parameters (or, for eval mode, mode-dependent layers).
    no_grad = _outermost([n for n, c in calls.items() if c["no_grad_calls"] and module_params(n)])
    for name in no_grad:
        label = name or "the model"
        n = len(module_params(name))
        findings.append(Finding("no_grad", (name,), f"{label} ran under torch.no_grad() (or "
                                f"inference_mode) during a training forward, so its {_plural(n, 'parameter')} "
                                "cannot learn. Run it with autograd on while training (the seed's fix: "
                                "extract_features(x, training=True)) and use no_grad only for inference."))
    if train_mode:
        eval_ran = []
        for name, c in calls.items():
            module = named_modules[name]
            if not c["eval_calls"] or expected(name):
                continue
            if any(isinstance(m, _MODE_DEPENDENT) for m in module.modules()):
                eval_ran.append(name)
        for name in _outermost(eval_ran):
            layers = sorted({type(m).__name__ for m in named_modules[name].modules()
                             if isinstance(m, _MODE_DEPENDENT)})
            label = name or "the model"
            findings.append(Finding("eval_mode", (name,), f"{label} ran in eval mode during a "
                                    f"training forward: its {', '.join(layers)} layers behave as at inference "
                                    "(BatchNorm stops updating its statistics, Dropout stops dropping). "
                                    "Something calls .eval() in forward() or train() does not reach it; "
                                    "keep it in train() mode while training."))

    # Graph breaks: a module ran and its trainable parameters are unreachable from the loss
    # (it was cut off); a later module with parameters received an input without autograd
    # history (not the batch itself). Name the two modules on either side of the cut.
    cut = set(_outermost(sorted(
        n for n, c in calls.items()
        if n and (ps := module_params(n)) and not any(p["reachable"] for p in ps)
    )))
    paired = set()
    for name, c in sorted(calls.items(), key=lambda kv: kv[1]["start"]):
        if (not name or not c["no_history_input"] or c["batch_input"] or not module_params(name)
                or any(_matches(name, [u]) for u in cut)):
            continue
        before = [u for u in cut if calls[u].get("end", 0) < c["start"] and u not in paired]
        if not before:
            continue
        upstream = max(before, key=lambda u: calls[u]["end"])
        paired.add(upstream)
        findings.append(Finding("graph_break", (upstream, name), f"graph break between {upstream} "
                                f"and {name}: {name} receives an input with no autograd history although "
                                f"{upstream}'s parameters require grad. Something between them leaves "
                                "autograd: a numpy round-trip (.cpu().numpy() / torch.from_numpy), "
                                ".detach(), torch.tensor(...) or no_grad. Pass the tensor through unchanged."))

    # Unreachable parameters, grouped by outermost module.
    unreachable = [p for p in trainable if not p["reachable"]]
    called = {n for n in calls}
    dead = [p for p in unreachable if p["module"] not in called]
    if dead:
        groups = _outermost(sorted({p["module"] for p in dead}))
        groups = [g for g in groups if all(p["module"] not in called for p in module_params(g))] or groups
        names = tuple(p["name"] for p in dead)
        findings.append(Finding("unused", names, f"{', '.join(g or 'the model' for g in groups)} "
                                f"{'is' if len(groups) == 1 else 'are'} defined but never called in "
                                f"forward: {_plural(len(dead), 'parameter')} ({_plural(sum(p['numel'] for p in dead), 'value')}) "
                                "can never learn. Call the branch in forward(), or delete it."))
    live_unreachable = [p for p in unreachable if p["module"] in called]
    if live_unreachable and loss_has_graph:
        groups = _outermost(sorted({p["module"] for p in live_unreachable}))
        names = tuple(p["name"] for p in live_unreachable)
        findings.append(Finding("unreachable", names, f"{_plural(len(names), 'parameter')} of "
                                f"{', '.join(g or 'the model' for g in groups)} "
                                f"{'is' if len(names) == 1 else 'are'} not reachable from the loss "
                                f"(e.g. {names[0]}): no gradient can reach them, so the optimizer never "
                                "changes them. See the no_grad / graph_break findings for where the "
                                "graph is cut."))

    # Gradients after backward.
    if backward_error:
        findings.append(Finding("backward_error", (), f"backward failed: {backward_error}"))
    nonfinite = [p["name"] for p in trainable if p["finite"] is False]
    if nonfinite:
        findings.append(Finding("nonfinite_grad", tuple(nonfinite), f"non-finite (NaN/Inf) "
                                f"gradients in {_plural(len(nonfinite), 'parameter')} (e.g. {nonfinite[0]}): "
                                "an operation in forward has an infinite derivative here (sqrt or log "
                                "at 0, division by ~0). Add an epsilon or clamp its input."))
    zero = [p["name"] for p in trainable if p["reachable"] and p["grad_norm"] == 0]
    if zero and math.isfinite(loss_value):
        findings.append(Finding("zero_grad", tuple(zero), f"{_plural(len(zero), 'parameter')} got an "
                                f"exactly-zero gradient (e.g. {zero[0]}): reachable, but every path "
                                "multiplies by zero (dead ReLUs, a zero-initialised layer, a mask). "
                                "Fine at initialisation for zero-init layers; otherwise check activations."))

    # Frozen parameters and the optimizer.
    frozen = [p["name"] for p in parameters if not p["requires_grad"] and not expected(p["name"])]
    if frozen:
        findings.append(Finding("frozen", tuple(frozen), f"{_plural(len(frozen), 'parameter')} "
                                f"{'has' if len(frozen) == 1 else 'have'} requires_grad=False (e.g. "
                                f"{frozen[0]}) and will not train. If intended, list them in "
                                "expect_frozen; if not, call .requires_grad_(True)."))
    missing = [p["name"] for p in trainable if p["in_optimizer"] is False]
    if missing:
        findings.append(Finding("not_in_optimizer", tuple(missing), f"{_plural(len(missing), 'trainable parameter')} "
                                f"{'is' if len(missing) == 1 else 'are'} not in the optimizer (e.g. {missing[0]}): "
                                "they get gradients but never change. Build the optimizer from "
                                "model.parameters() after the model is complete."))
    held_frozen = [p["name"] for p in parameters
                   if p["in_optimizer"] and not p["requires_grad"] and not expected(p["name"])]
    if held_frozen:
        findings.append(Finding("frozen_in_optimizer", tuple(held_frozen), f"the optimizer holds "
                                f"{_plural(len(held_frozen), 'frozen parameter')} (e.g. {held_frozen[0]}); "
                                "they cannot change. Remove them from the optimizer or unfreeze them."))
    return findings
