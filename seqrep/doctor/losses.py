"""What the loss is fed: probabilities where it expects logits, shapes that broadcast, targets
outside the output's classes (`loss_input`), and the loss at initialisation against what an
untrained model gives under the same loss (`init_loss`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .report import Finding
from .trace import Trace

# init_loss: the measured loss may exceed the loss of all-zero logits (an untrained model's
# uniform prediction) by this factor before it is reported. Measured (benchmarks/results/
# doctor.md): clean models at most 1.17; unscaled inputs 26.
INIT_LOSS_RATIO = 2.0


def _close(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))


def _value(loss_fn: Callable, out: torch.Tensor, y) -> float:
    with torch.no_grad():
        return float(loss_fn(out, y).float())


def loss_family(loss_fn: Callable, out: torch.Tensor, y) -> str:
    """What the loss does with the output, found by probing it on the (detached) output:
    "softmax" (invariant to adding a constant to every logit: cross-entropy and its variants),
    "nll" (equal to F.nll_loss: expects log-probabilities), "bce_logits" (equal to
    F.binary_cross_entropy_with_logits) or "other"."""
    out = out.float()
    try:
        base, shifted = _value(loss_fn, out, y), _value(loss_fn, out + 3.0, y)
    except (RuntimeError, ValueError, IndexError, TypeError):
        return "other"
    classes = out.dim() >= 2 and out.shape[1] >= 2
    if classes and not y.is_floating_point():
        if _close(base, shifted):
            return "softmax"
        if _close(base, float(F.nll_loss(out, y))) and _close(shifted, float(F.nll_loss(out + 3.0, y))):
            return "nll"
    if classes and y.is_floating_point() and y.shape == out.shape and _close(base, shifted):
        return "softmax"
    if y.is_floating_point() and y.numel() == out.numel():
        target = y.reshape(out.shape).float()
        with torch.no_grad():
            bce = float(F.binary_cross_entropy_with_logits(out, target))
            bce3 = float(F.binary_cross_entropy_with_logits(out + 3.0, target))
        if _close(base, bce) and _close(shifted, bce3):
            return "bce_logits"
    return "other"


def target_findings(out: torch.Tensor, y) -> list[Finding]:
    """Class targets outside 0..C-1 (C = out.shape[1]); -100 is cross-entropy's ignore_index."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or out.dim() < 2:
        return []
    n_classes = out.shape[1]
    bad = ((y >= n_classes) | ((y < 0) & (y != -100))).nonzero().flatten().tolist()
    if not bad:
        return []
    values = sorted({int(v) for v in y.flatten()[bad]})
    return [Finding("loss_input", ("target",), f"{len(bad)} target(s) lie outside the output's "
                    f"{n_classes} classes (e.g. sample {bad[0]} has target {int(y.flatten()[bad[0]])}; "
                    f"values {values[:5]}): cross-entropy indexes class y, so the labels must be "
                    f"0..{n_classes - 1}. 1-based labels, or an output layer one class short, do this.",
                    "y = y - 1  # or nn.Linear(hidden, n_classes) with n_classes = int(y.max()) + 1",
                    {"bad_samples": bad[:20], "n_classes": n_classes})]


def _probability_like(out: torch.Tensor) -> bool:
    out = out.float()
    return bool(out.dim() >= 2 and (out >= 0).all() and
                torch.allclose(out.sum(1), torch.ones_like(out.sum(1)), atol=1e-3))


def _output_findings(family: str, out: torch.Tensor, ops: list[str], y) -> list[Finding]:
    """The first (does it apply, what it names, message, fix) rule that applies, as a Finding."""
    last = ops[0] if ops else ""
    what = "probabilities (softmax)" if last == "SoftmaxBackward0" else "raw scores"
    rules = (
        (lambda: family == "softmax" and (last == "SoftmaxBackward0" or _probability_like(out)), "output",
         "the model outputs probabilities (softmax) and the loss applies log_softmax again: "
         "cross-entropy expects raw logits. The double softmax squashes the gradient, so training "
         "stalls near chance.", "return self.head(h)  # no softmax in forward; apply it only for predictions"),
        (lambda: family == "softmax" and last == "SigmoidBackward0", "output",
         "the model's outputs pass through a sigmoid before cross-entropy: logits confined to (0, 1) "
         "can never give a confident prediction, so the loss cannot fall far below ln C.",
         "return self.head(h)  # raw logits into cross_entropy"),
        (lambda: family == "nll" and not bool((out <= 1e-6).all()), "output",
         f"NLLLoss gets {what}, but it expects log-probabilities: it then rewards making the "
         "target's score large without bound instead of making it likely.",
         "loss = F.nll_loss(F.log_softmax(out, dim=1), y)  # or F.cross_entropy(out, y)"),
        (lambda: family == "bce_logits" and last == "SigmoidBackward0", "output",
         "the model applies a sigmoid and the loss (BCE with logits) applies another: outputs in "
         "(0, 1) read as logits mean probabilities between 0.5 and 0.73, so the loss cannot fall.",
         "return self.head(h)  # no sigmoid before BCEWithLogitsLoss"),
        (lambda: family == "bce_logits" and bool(((y < 0) | (y > 1)).any()), "target",
         lambda: f"binary cross-entropy targets must lie in [0, 1]; they range "
         f"{float(y.min()):g}..{float(y.max()):g} (labels in {{-1, 1}}?): the loss has no minimum there.",
         "y = (y > 0).float()"),
    )
    for applies, name, message, fix in rules:
        if applies():
            return [Finding("loss_input", (name,), message() if callable(message) else message, fix)]
    return []


def _shape_findings(out: torch.Tensor, y, family: str, warned: list[str]) -> list[Finding]:
    if not isinstance(y, torch.Tensor) or family in ("softmax", "nll") or out.shape == y.shape:
        return []
    try:
        shape = torch.broadcast_shapes(out.shape, y.shape)
    except RuntimeError:
        return []
    grows = math.prod(shape) > max(out.numel(), y.numel())
    if not grows and not any("target size" in w for w in warned):
        return []
    return [Finding("loss_input", ("output", "target"), f"the output {tuple(out.shape)} and the "
                    f"target {tuple(y.shape)} broadcast to {tuple(shape)}: every output is compared "
                    "with every target, so the model learns to predict the batch mean.",
                    f"loss = loss_fn(out.squeeze(-1), y)  # shapes {tuple(y.shape)} and {tuple(y.shape)}",
                    {"broadcast_shape": tuple(shape)})]


def check_loss_input(trace: Trace, loss_fn: Callable, y) -> tuple[list[Finding], str]:
    """loss_input findings and the loss family (for init_loss)."""
    out = trace.output
    family = loss_family(loss_fn, out, y)
    found = _output_findings(family, out, trace.output_ops, y)
    found += _shape_findings(out, y, family, trace.loss_warnings)
    return found, family


def check_init_loss(trace: Trace, loss_fn: Callable, y, family: str, last_module: str,
                    x0: torch.Tensor) -> tuple[list[Finding], dict]:
    """The loss at initialisation against the same loss on all-zero logits (≈ ln C for C
    classes under cross-entropy, ln 2 under BCE), for classification losses only: a pretrained
    model may legitimately start lower, so only a loss far above is reported."""
    if family not in ("softmax", "bce_logits") or not math.isfinite(trace.loss_value):
        return [], {}
    expected = _value(loss_fn, torch.zeros_like(trace.output.float()), y)
    measured = trace.loss_value
    spread = float(trace.output.float().std())
    numbers = {"measured": measured, "expected": expected, "ratio": measured / max(expected, 1e-12),
               "logit_std": spread}
    if measured <= INIT_LOSS_RATIO * max(expected, 1e-12):
        return [], numbers
    scale = float(x0.float().std()) if x0.is_floating_point() and x0.numel() > 1 else None
    hint = (f" The inputs have std {scale:.3g}: normalise them." if scale and scale > 10 else
            f" The last layer ({last_module}) starts with too large weights.")
    return [Finding("init_loss", (last_module,), f"the loss at initialisation is {measured:.3g}, "
                    f"{measured / expected:.1f}x what an untrained model gives ({expected:.3g}, e.g. "
                    f"ln C for C balanced classes): the logits start with std {spread:.3g}, so the "
                    f"model is confidently wrong and the first steps only undo that.{hint}",
                    "x = (x - mean) / std  # or nn.init.zeros_(model.head.weight)", numbers)], numbers
