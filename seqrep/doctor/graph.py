"""Gradient flow: does every trainable parameter get a gradient from the loss? Names a no-grad,
numpy or .detach() break, a module in eval mode, an unused branch, a frozen part, a parameter
missing from the optimizer. `check_gradient_flow` is this family alone; `check_training` runs
it as its first check."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import SeqrepError
from .batch import MODE_DEPENDENT, default_forward, preserved, unwrap
from .report import Finding, GradientReport, _plural
from .trace import Trace, recorded, trace_training_step

__all__ = ["check_gradient_flow"]


def matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def outermost(names: list[str]) -> list[str]:
    """Drop names that lie inside another name of the list ('a.b' inside 'a')."""
    return [n for n in names if not any(n != o and matches(n, [o]) for o in names if o)]


def parameter_rows(trace: Trace, held: set[int] | None) -> list[dict]:
    rows = []
    for name, p, grad in trace.grads:
        rows.append({
            "name": name,
            "module": name.rpartition(".")[0],
            "shape": tuple(p.shape),
            "numel": p.numel(),
            "requires_grad": p.requires_grad,
            "in_optimizer": None if held is None else id(p) in held,
            "reachable": id(p) in trace.leaves,
            "grad_norm": None if grad is None else float(grad.float().norm()),
            "finite": None if grad is None else bool(torch.isfinite(grad).all()),
            "all_zero": p.dim() >= 2 and not bool(p.detach().any()),
        })
    return rows


def module_rows(model: nn.Module, calls: dict) -> list[dict]:
    """One row per module; `called` is None for modules the trace does not record (no
    parameters, not mode-dependent)."""
    rows = []
    for name, m in model.named_modules():
        call = calls.get(name, {})
        rows.append({
            "name": name or "(model)",
            "type": type(m).__name__,
            "called": bool(call) if call or recorded(m) else None,
            "ran_in_eval": bool(call.get("eval_calls")),
            "ran_without_autograd": bool(call.get("no_grad_calls")),
            "input_without_history": bool(call.get("no_history_input")),
        })
    return rows


class _Context:
    """What the diagnosis functions share: the trainable parameters, grouped by module."""

    def __init__(self, parameters, calls, named_modules, expect_frozen, train_mode, inference=None):
        self.parameters, self.calls, self.named_modules = parameters, calls, named_modules
        self.expect_frozen, self.train_mode = tuple(expect_frozen), train_mode
        self.inference = inference  # modules an eval-mode forward calls (None: unknown)
        self.checkpointed = False  # the forward warned about torch.utils.checkpoint
        self.trainable = [p for p in parameters if p["requires_grad"] and not self.expected(p["name"])]

    def expected(self, name: str) -> bool:
        return matches(name, self.expect_frozen)

    def module_params(self, module_name: str) -> list[dict]:
        return [p for p in self.trainable if not module_name or matches(p["name"], [module_name])]


def _detached_cause(c: _Context) -> str:
    if not c.parameters:
        return ("the model has no parameters at all (model.parameters() is empty): layers kept in a "
                "Python list, or weights as plain tensors instead of nn.Parameter? Nothing can learn.")
    if not any(p["requires_grad"] for p in c.parameters):
        return ("every parameter of the model has requires_grad=False (see the frozen finding), so "
                "nothing in the loss needs a gradient. Unfreeze what should train.")
    return ("it was computed from a detached tensor (.detach(), .item(), numpy, or under "
            "torch.no_grad()), so backward cannot reach any parameter. Compute the loss from the "
            "model's output tensor directly.")


def _loss_findings(loss_value: float, loss_has_graph: bool, c: _Context) -> list[Finding]:
    found = []
    if not math.isfinite(loss_value):
        found.append(Finding("nonfinite_loss", (), f"the loss is {loss_value}: a NaN/Inf "
                             "appears in the forward pass or the loss (log of 0, division by 0, "
                             "sqrt of a negative?). Check the inputs and any log/exp/div in forward.",
                             "x = torch.nan_to_num(x)  # or add an epsilon inside log/div/sqrt"))
    if not loss_has_graph:
        found.append(Finding("detached_loss", (), f"the loss has no autograd graph: {_detached_cause(c)}",
                             "loss = loss_fn(model(x), y)  # not torch.tensor(loss_value, requires_grad=True)"))
    return found


def _mode_findings(c: _Context) -> list[Finding]:
    found = []
    no_grad = outermost([n for n, call in c.calls.items() if call["no_grad_calls"] and c.module_params(n)
                         and all(p["grad_norm"] is None for p in c.module_params(n))])
    for name in no_grad:
        label = name or "the model"
        count = _plural(len(c.module_params(name)), "parameter")
        if c.checkpointed:  # reentrant checkpointing runs its segment under no_grad
            found.append(Finding("no_grad", (name or "(model)",), f"{label} ran inside "
                                 "torch.utils.checkpoint with use_reentrant=True, whose forward runs "
                                 "under no_grad and, as none of the segment's inputs requires grad, "
                                 f"never recomputes it with autograd: its {count} get no gradient. "
                                 "Pass use_reentrant=False.",
                                 "torch.utils.checkpoint.checkpoint(block, h, use_reentrant=False)"))
            continue
        found.append(Finding("no_grad", (name or "(model)",), f"{label} ran under torch.no_grad() (or "
                             f"inference_mode) during a training forward, so its {count} cannot "
                             "learn. Run it with autograd on while training (the post-mortem's fix: "
                             "extract_features(x, training=True)) and use no_grad only for inference.",
                             "remove `with torch.no_grad():` around the training forward"))
    eval_ran = [n for n, call in c.calls.items() if call["eval_calls"] and not c.expected(n)
                and any(isinstance(m, MODE_DEPENDENT) for m in c.named_modules[n].modules())]
    for name in outermost(eval_ran):
        layers = sorted({type(m).__name__ for m in c.named_modules[name].modules() if isinstance(m, MODE_DEPENDENT)})
        label = name or "the model"
        why = ("Something calls .eval() in forward() or train() does not reach it" if c.train_mode else
               "It was already in eval() when the check ran: a validation loop left it there, or "
               "code in __init__/setup called .eval() (Lightning keeps the modes it finds; "
               "train_mode=False checks those)")
        found.append(Finding("eval_mode", (name or "(model)",), f"{label} ran in eval mode during a "
                             f"training forward: its {', '.join(layers)} layers behave as at inference "
                             f"(BatchNorm stops updating its statistics, Dropout stops dropping). {why}; "
                             "keep it in train() mode while training.", "model.train()"))
    return found


def _trainable_inside(c: _Context, name: str) -> bool:
    """The module holds a trainable parameter, tied ones included (an LM head sharing the
    embedding's weight is listed under the embedding's name only)."""
    return bool(c.module_params(name)) or any(p.requires_grad for p in c.named_modules[name].parameters())


def _break_findings(c: _Context) -> list[Finding]:
    """A module ran and its trainable parameters are unreachable from the loss (cut off); a
    later module with parameters received an input without autograd history (not the batch).
    Name the two modules on either side of the cut."""
    cut = set(outermost(sorted(
        n for n, call in c.calls.items()
        if n and (ps := c.module_params(n)) and not any(p["reachable"] for p in ps)
    )))
    found, paired = [], set()
    for name, call in sorted(c.calls.items(), key=lambda kv: kv[1]["start"]):
        if (not name or not call["no_history_input"] or call["batch_input"] or not _trainable_inside(c, name)
                or any(matches(name, [u]) for u in cut)):
            continue
        before = [u for u in cut if c.calls[u].get("end", 0) < call["start"] and u not in paired]
        if not before:
            continue
        upstream = max(before, key=lambda u: c.calls[u]["end"])
        paired.add(upstream)
        found.append(Finding("graph_break", (upstream, name), f"graph break between {upstream} "
                             f"and {name}: {name} receives an input with no autograd history although "
                             f"{upstream}'s parameters require grad. Something between them leaves "
                             "autograd: a numpy round-trip (.cpu().numpy() / torch.from_numpy), "
                             ".detach(), torch.tensor(...) or no_grad. Pass the tensor through unchanged.",
                             "h = self.encoder(x)  # no .detach() / .numpy() / torch.tensor(h)"))
    return found


def _dropped_in_training(c: _Context, module: str) -> bool:
    """The module, or a block holding it, runs in an eval-mode forward but not in this training
    one: skipped at random while training (LayerDrop, stochastic depth), a convention of audio
    and vision transformers, not an unused branch. The block counts too because a layer may use
    its children's weights without calling them (WavLM's attention passes q_proj.weight to
    F.multi_head_attention_forward), so the child itself never runs in either mode."""
    if c.inference is None:
        return False
    parts = module.split(".") if module else []
    blocks = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return any(b in c.inference and b not in c.calls for b in blocks)


def _library_code(module: nn.Module) -> bool:
    """The module's class comes from an installed package (transformers, timm, ...), not from
    the user's code: what its forward computes and discards is the library's design."""
    source = getattr(sys.modules.get(type(module).__module__), "__file__", None) or ""
    return any(part in ("site-packages", "dist-packages") for part in Path(source).parts)


def _discarded_by_library(c: _Context, groups: list[str]) -> bool:
    """The unreachable modules ran with autograd on (not cut off by no_grad) inside a library
    module that also holds reachable parameters: its forward computed them and it (or the
    library's head) dropped the result, as CANINE's sequence classifier drops the
    character-level output it computes."""
    if any(call["no_grad_calls"] for n, call in c.calls.items() if matches(n, groups)):
        return False
    reachable = {p["module"] for p in c.trainable if p["reachable"]}
    for group in groups:
        parts = group.split(".")
        owners = [".".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]
        owner = next((o for o in owners if not o or any(matches(r, [o]) for r in reachable)), "")
        if not _library_code(c.named_modules[owner]):
            return False
    return True


def _ran(c: _Context, module: str) -> bool:
    """The module ran in this training forward, or its parent did and used the module's weights
    without calling it (nn.MultiheadAttention passes out_proj.weight to its functional form)."""
    parent = module.rpartition(".")[0]
    return module in c.calls or (bool(parent) and parent in c.calls)


def _reach_findings(c: _Context, loss_has_graph: bool) -> list[Finding]:
    found = []
    unreachable = [p for p in c.trainable if not p["reachable"]]
    dead = [p for p in unreachable if not _ran(c, p["module"]) and not _dropped_in_training(c, p["module"])]
    if dead:
        groups = outermost(sorted({p["module"] for p in dead}))
        groups = [g for g in groups if all(p["module"] not in c.calls for p in c.module_params(g))] or groups
        found.append(Finding("unused", tuple(p["name"] for p in dead), f"{', '.join(g or 'the model' for g in groups)} "
                             f"{'is' if len(groups) == 1 else 'are'} defined but never called in "
                             f"forward: {_plural(len(dead), 'parameter')} ({_plural(sum(p['numel'] for p in dead), 'value')}) "
                             "can never learn. Call the branch in forward(), or delete it.",
                             f"out = out + self.{groups[0] or 'branch'}(h)  # or delete the branch"))
    live = [p for p in unreachable if _ran(c, p["module"])]  # (LayerDrop-skipped ones did not run)
    groups = outermost(sorted({p["module"] for p in live}))
    if live and loss_has_graph and not _discarded_by_library(c, groups):
        names = tuple(p["name"] for p in live)
        found.append(Finding("unreachable", names, f"{_plural(len(names), 'parameter')} of "
                             f"{', '.join(g or 'the model' for g in groups)} "
                             f"{'is' if len(names) == 1 else 'are'} not reachable from the loss "
                             f"(e.g. {names[0]}): no gradient can reach them, so the optimizer never "
                             "changes them. See the no_grad / graph_break findings for where the "
                             "graph is cut."))
    return found


def _blocked(c: _Context) -> list[str]:
    """Reachable parameters with an exactly-zero gradient, reported only when they include every
    parameter of the first module with parameters that ran (the input layer): zero gradients
    inside the network are library conventions at initialisation (zero-initialised residual
    branches and LayerScale, a bias a softmax cancels, outputs the head does not read), while
    a gradient that cannot reach the input layer at all is a cut the other checks do not name.
    Measured on the zoo (benchmarks/results/doctor.md): interior zero gradients on 2 of 28 clean
    architectures (Longformer's last-layer local projections, timm ResNet-18's zero-initialised
    residual branches), the input layer's on none. A weight matrix that is all zero and gets a
    gradient (a zero-initialised head, timm's MLP-Mixer and ViT convention) multiplies every
    gradient behind it by zero for the first step only: not reported."""
    if any(p["all_zero"] and p["reachable"] and p["grad_norm"] for p in c.trainable):
        return []
    zero = [p for p in c.trainable if p["reachable"] and p["grad_norm"] == 0]
    owners = {p["module"] for p in c.trainable if p["reachable"] and p["module"] in c.calls}
    if not zero or not owners:
        return []
    first = min(owners, key=lambda m: (m == "", c.calls[m]["start"]))  # the root only if nothing else
    inputs = [p for p in c.trainable if p["module"] == first and p["reachable"]]
    return [p["name"] for p in zero] if all(p["grad_norm"] == 0 for p in inputs) else []


def _gradient_findings(c: _Context, loss_value: float, backward_error: str | None) -> list[Finding]:
    found = []
    if backward_error:
        found.append(Finding("backward_error", (), f"backward failed: {backward_error}"))
    found += _about(("nonfinite_grad", [p["name"] for p in c.trainable if p["finite"] is False], lambda n: (
        f"non-finite (NaN/Inf) gradients in {_plural(len(n), 'parameter')} (e.g. {n[0]}): an operation in "
        "forward has an infinite derivative here (sqrt or log at 0, division by ~0). Add an epsilon "
        "or clamp its input."), "torch.sqrt(z + 1e-8)"))
    zero = _blocked(c)
    if zero and math.isfinite(loss_value):
        cause = ("the loss is exactly 0 on this batch: the model already fits it (a start fitted to "
                 "the training data, or a label the input gives away). Nothing is learned from such "
                 "batches; label smoothing keeps a signal, or check the batch for leaked labels."
                 if loss_value == 0 else
                 "every path from them to the loss multiplies by zero: a non-differentiable step "
                 "(argmax, round, a comparison) or an all-zero mask or gate in forward, or ReLUs "
                 "that are all dead. The input layer itself gets nothing, so nothing learns.")
        found.append(Finding("blocked_gradient", tuple(zero), f"{_plural(len(zero), 'parameter')} got an "
                             f"exactly-zero gradient, including every parameter of the input layer "
                             f"({zero[0]}): {cause}", "" if loss_value == 0 else
                             "use the float scores in the loss (F.cross_entropy(logits, y)); argmax only for predictions"))
    return found


_POSITIONAL = {"pos", "position", "positions", "positional"}


def _fixed_table(p: dict) -> bool:
    """A frozen positional table (Whisper's and TimeSeriesTransformer's sinusoids, PatchTST's
    normalised sin-cos encoding): the library freezes it on purpose, so it is not reported."""
    words = set(re.split(r"[._]", p["name"].lower()))
    return not p["requires_grad"] and len(p["shape"]) >= 2 and bool(words & _POSITIONAL)


def _about(*rules) -> list[Finding]:
    """A Finding for each (kind, names, message(names), fix) rule whose names are not empty."""
    return [Finding(kind, tuple(names), message(names), fix) for kind, names, message, fix in rules if names]


def _optimizer_findings(c: _Context) -> list[Finding]:
    def unexpected(p):
        """Frozen and not meant to be: not in expect_frozen, not a library's fixed table, and
        not left out of a given optimizer (an optimizer built from the trainable parameters
        only, around an embedding frozen on purpose, says the freezing is deliberate)."""
        return (not p["requires_grad"] and not c.expected(p["name"]) and not _fixed_table(p)
                and p["in_optimizer"] is not False)

    return _about(
        ("frozen", [p["name"] for p in c.parameters if unexpected(p)], lambda n: (
            f"{_plural(len(n), 'parameter')} {'has' if len(n) == 1 else 'have'} requires_grad=False "
            f"(e.g. {n[0]}) and will not train. If intended, list them in expect_frozen; if not, "
            "call .requires_grad_(True)."), "model.requires_grad_(True)"),
        ("not_in_optimizer", [p["name"] for p in c.trainable if p["in_optimizer"] is False], lambda n: (
            f"{_plural(len(n), 'trainable parameter')} {'is' if len(n) == 1 else 'are'} not in the "
            f"optimizer (e.g. {n[0]}): they get gradients but never change. Build the optimizer from "
            "model.parameters() after the model is complete."), "optimizer = torch.optim.AdamW(model.parameters())"),
        ("frozen_in_optimizer", [p["name"] for p in c.parameters if p["in_optimizer"] and unexpected(p)], lambda n: (
            f"the optimizer holds {_plural(len(n), 'frozen parameter')} (e.g. {n[0]}); they cannot "
            "change. Remove them from the optimizer or unfreeze them."), ""),
    )


def diagnose_graph(trace: Trace, parameters: list[dict], model: nn.Module, expect_frozen,
                   train_mode: bool, inference: set[str] | None = None) -> list[Finding]:
    """The gradient-flow findings of one traced training step (`inference`: the modules an
    eval-mode forward calls, when known)."""
    c = _Context(parameters, trace.recorder.calls, dict(model.named_modules()), expect_frozen, train_mode, inference)
    c.checkpointed = any("use_reentrant" in w or "None of the inputs have requires_grad" in w
                         for w in trace.forward_warnings)
    return [*_loss_findings(trace.loss_value, trace.loss_has_graph, c), *_mode_findings(c),
            *_break_findings(c), *_reach_findings(c, trace.loss_has_graph),
            *_gradient_findings(c, trace.loss_value, trace.backward_error), *_optimizer_findings(c)]


def inference_set(model: nn.Module, x, forward: Callable, trace: Trace) -> set[str] | None:
    """The modules an eval-mode forward calls, when a module with parameters did not run in
    training (LayerDrop or unused?); None when not needed or the eval forward fails."""
    from .mixing import inference_modules

    if all(name.rpartition(".")[0] in trace.recorder.calls for name, _ in model.named_parameters()):
        return None
    with preserved(model):
        try:
            return inference_modules(model, x, forward, torch.get_rng_state())
        except Exception:  # then every module that did not run is reported as unused
            return None


def held_by(optimizer: torch.optim.Optimizer | None) -> set[int] | None:
    if optimizer is None:
        return None
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


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

    Calls `model(x)` (`model(*x)` for a tuple, `model(**x)` for a dict, or `forward(model, x)`)
    with the model in train() mode (as a training loop would set it; train_mode=False keeps the
    current modes, and a model left in eval() is then reported), computes `loss_fn(output, y)`
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
    model = unwrap(model)
    trace = trace_training_step(model, x, y, loss_fn=loss_fn or nn.functional.cross_entropy,
                                forward=forward or default_forward, forward_given=forward is not None,
                                train_mode=train_mode)
    if trace.error is not None:
        raise SeqrepError(f"check_gradient_flow: the training forward or the loss raised "
                          f"{type(trace.error).__name__}: {trace.error}") from trace.error
    parameters = parameter_rows(trace, held_by(optimizer))
    findings = diagnose_graph(trace, parameters, model, expect_frozen, train_mode,
                              inference_set(model, x, forward or default_forward, trace))
    return GradientReport(trace.loss_value, parameters, module_rows(model, trace.recorder.calls), findings)
