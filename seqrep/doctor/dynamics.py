"""What the first step would do: one step of the user's optimizer on copies of the weights
(`step_size`: update-to-weight ratio per component), gradient norms across depth
(`vanishing_gradient`, `exploding_gradient`) and ReLU units that never fire (`dead_units`).
Thresholds are in decades around the measured values of clean models (benchmarks/results/
doctor.md records the margins)."""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import torch

from .report import Finding, _plural
from .trace import Trace

# Update-to-weight ratio (||update|| / ||weights|| per component) of one step. Karpathy's rule
# of thumb is about 1e-3; clean models with Adam(lr=1e-3) measure at most 1.2e-2. Reported only when
# far outside: a component moved by more than STEP_HIGH of its size, or the median component
# by less than STEP_LOW.
STEP_HIGH, STEP_LOW = 0.5, 1e-6
# ... and only when the components moving by more than STEP_HIGH hold at least this share of the
# values: a tiny tensor with a tiny initial scale (ViT's cls_token starts at std 1e-6 in timm)
# moves by far more than its size under any healthy learning rate (its own ratio reaches 1e3).
# Measured (benchmarks/results/doctor.md): clean gallery and zoo models at most 0.0002 of the
# values; Adam at lr=1, in the gallery and injected into the zoo, moves all of them (1.0).
STEP_HIGH_SHARE = 0.1
STEP_TARGET = 1e-3
# Relative gradient ||g|| / ||W|| of weight matrices across depth. Vanishing: the median of the
# deepest third of the layers (by forward order) exceeds the median of the first third by more
# than GRADIENT_TREND decades (medians, because a single weight can be scale-invariant — a 1x1
# convolution of one channel followed by BatchNorm gets a gradient of exactly zero, by design;
# seqrep's own model has one on univariate data, 6.3 decades below its readout). Exploding:
# any weight above GRADIENT_HUGE, or the first third above the last by GRADIENT_TREND. Measured:
# clean models trend at most 2.3 decades with a largest 4.8; the reconstructed bugs trend 7.8
# decades (12 sigmoid layers) and reach 2e3 (recurrent gain 1.5).
GRADIENT_TREND, GRADIENT_HUGE = 4.0, 1e2
# A weight whose gradient is orthogonal to it (|cos(g, W)| below SCALE_FREE) is scale-invariant:
# a normalisation after it (BatchNorm after a convolution, LayerNorm after an embedding or a
# dense layer) cancels its scale, so ||g||/||W|| grows as 1/||W||^2 and measures how small the
# weight started, not a gradient exploding (and a step only grows its norm, which shrinks the
# next ratio). Such weights are exempt from GRADIENT_HUGE only: a random direction's cosine is
# about 1/sqrt(size), so the trends across depth keep every weight. Measured: 1e-7 on timm
# EfficientNet-b0's convolutions (ratio 6e2) and ModernBERT's embedding, 5e-3 on ModernBERT's
# head.dense (GELU, then LayerNorm; ratio 1.4e2); the gallery's recurrent_gain weights
# 0.077-0.28, its unscaled_inputs weights 0.067-0.21.
SCALE_FREE = 0.02
# A ReLU layer is reported when at least this share of its units is zero for the whole batch
# (clean models: at most 9 %; a large negative bias: 100 %).
DEAD_SHARE = 0.9


def component(name: str) -> str:
    """A parameter's component: its first two name levels ("blocks.0" of "blocks.0.conv.weight")."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def _one_step(optimizer: torch.optim.Optimizer, grads: dict[int, torch.Tensor]):
    """(originals, updated copies) after one step of a fresh optimizer of the same type, the
    same hyperparameters and a copy of the state, on copies of the parameters."""
    originals, groups = [], []
    for group in optimizer.param_groups:
        copies = []
        for p in group["params"]:
            c = p.detach().clone().requires_grad_(p.requires_grad)
            g = grads.get(id(p))
            c.grad = g  # the trace's own gradient: read by the other checks before this step
            originals.append(p)
            copies.append(c)
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": copies})
    accepted = inspect.signature(type(optimizer).__init__).parameters
    twin = type(optimizer)(groups, **{k: v for k, v in optimizer.defaults.items() if k in accepted})
    twin.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    twin.step()
    return originals, [p for g in twin.param_groups for p in g["params"]]


def check_step_size(optimizer: torch.optim.Optimizer, trace: Trace) -> tuple[list[Finding], dict]:
    grads = {id(p): g for _, p, g in trace.grads if g is not None}
    names = {id(p): n for n, p, _ in trace.grads}
    originals, updated = _one_step(optimizer, grads)
    sums: dict[str, list[float]] = {}
    for p, q in zip(originals, updated):
        if id(p) not in grads or id(p) not in names:
            continue
        row = sums.setdefault(component(names[id(p)]), [0.0, 0.0, 0, False])
        row[0] += float((q.detach().float() - p.detach().float()).pow(2).sum())
        row[1] += float(p.detach().float().pow(2).sum())
        row[2] += p.numel()
        row[3] |= bool(grads[id(p)].any())
    ratios = {k: math.sqrt(d) / math.sqrt(w) for k, (d, w, _, _) in sums.items() if w > 0}
    lr = optimizer.param_groups[0].get("lr", float("nan"))
    high = {k: r for k, r in ratios.items() if r > STEP_HIGH}
    share = sum(sums[k][2] for k in high) / max(1, sum(sums[k][2] for k in ratios))
    numbers = {"ratios": ratios, "lr": lr, "high_share": share}
    if not ratios:
        return [], numbers
    # the median of the components the gradient moves: one with an exactly-zero gradient (all
    # of them behind a zero-initialised head, as timm's MLP-Mixer starts) no learning rate moves
    moved = [r for k, r in ratios.items() if sums[k][3]]
    median = float(np.median(moved)) if moved else float("inf")
    if share >= STEP_HIGH_SHARE:
        worst = max(high.values())
        return [Finding("step_size", tuple(high), f"one step of the optimizer (lr {lr:g}) changes "
                        f"{', '.join(f'{k} by {r:.2g}' for k, r in high.items())} of its weights' "
                        f"size (a healthy step is about {STEP_TARGET:g}): the weights jump around "
                        f"instead of descending. About lr={lr * STEP_TARGET / worst:.1g} brings the "
                        "largest into range.", f"optimizer = type(optimizer)(model.parameters(), lr={lr * STEP_TARGET / worst:.1g})",
                        numbers)], numbers
    deliberate = all(g.get("lr_scale", 1.0) < 1 for g in optimizer.param_groups)
    if median < STEP_LOW and not deliberate:  # lr_scale < 1 everywhere: small steps on purpose
        suggest = lr * STEP_TARGET / median if median > 0 else None
        return [Finding("step_size", ("optimizer",), f"one step of the optimizer (lr {lr:g}) changes "
                        f"the weights by a median {median:.2g} of their size (healthy: about "
                        f"{STEP_TARGET:g}): training would not move in any reasonable time. "
                        + (f"About lr={suggest:.1g} brings it into range." if suggest else
                           "The learning rate is zero."),
                        f"lr={suggest:.1g}" if suggest else "lr=1e-3", numbers)], numbers
    return [], numbers


def _relative_gradients(trace: Trace) -> list[tuple[str, float, bool]]:
    """(parameter, ||g|| / ||W||, scale-invariant: `SCALE_FREE`) of the weight matrices (2+
    dims) of layers (leaf modules) with a nonzero gradient, in the order their modules first
    ran (depth). Free-standing
    tensors of a composite module (cls_token, pos_embed, a learned query) are not layer
    weights: their scale is set by convention, and a tiny one makes the ratio meaningless."""
    calls = trace.recorder.calls
    rows = []
    for name, p, g in trace.grads:
        module = name.rpartition(".")[0]
        if g is None or p.dim() < 2 or module not in calls or module not in trace.layers:
            continue
        g, w = g.float(), p.detach().float()
        gn, wn = float(g.norm()), float(w.norm())
        if gn > 0 and wn > 0 and math.isfinite(gn):
            free = abs(float((g * w).sum())) < SCALE_FREE * gn * wn
            rows.append((calls[module]["start"], name, gn / wn, free))
    return [(n, r, free) for _, n, r, free in sorted(rows)]


def _trend(logs: np.ndarray) -> tuple[float, int]:
    """Decades by which the last third of the layers' log ratios lie above the first third
    (medians; > 0: fading towards the input), and the size of a third."""
    third = max(1, len(logs) // 3)
    return float(np.median(logs[-third:]) - np.median(logs[:third])), third


def _exploding(rows: list[tuple[str, float, bool]], logs: np.ndarray, trend: float, numbers: dict) -> list[Finding]:
    """Exploding gradients: the first third above the last by GRADIENT_TREND, or a weight
    that is not scale-invariant above GRADIENT_HUGE."""
    huge = [v for (_, _, free), v in zip(rows, logs) if not free and v > math.log10(GRADIENT_HUGE)]
    if not (-trend > GRADIENT_TREND or huge):
        return []
    low, high = int(np.argmin(logs)), int(np.argmax(logs))
    bound = min(np.median(logs) + GRADIENT_TREND, math.log10(GRADIENT_HUGE))
    big = [n for (n, _, free), v in zip(rows, logs) if v > bound and (not free or -trend > GRADIENT_TREND)]
    return [Finding("exploding_gradient", tuple(big or [rows[high][0]]), f"gradients explode: relative "
                    f"gradient (||g||/||W||) {10 ** logs[high]:.2g} at {rows[high][0]} ({logs[high] - logs[low]:.1f} "
                    f"decades above the smallest, {10 ** logs[low]:.2g} at {rows[low][0]}): a step would "
                    "overwrite those weights (recurrent weights with gain > 1, unscaled inputs).",
                    "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)", numbers)]


def check_gradient_span(trace: Trace) -> tuple[list[Finding], dict]:
    """Vanishing and exploding gradients from every weight matrix's relative gradient in forward
    order (the absolute bound only on those that are not scale-invariant: `SCALE_FREE`)."""
    rows = _relative_gradients(trace)
    if len(rows) < 3:
        return [], {}
    logs = np.log10([r for _, r, _ in rows])
    trend, third = _trend(logs)
    numbers = {"trend_decades": trend, "span_decades": float(logs.max() - logs.min()),
               "largest": float(10 ** logs.max()), "smallest": float(10 ** logs.min())}
    low, high = int(np.argmin(logs)), int(np.argmax(logs))
    if trend > GRADIENT_TREND:
        small = [n for (n, _, _), v in zip(rows[:third], logs[:third]) if v < np.median(logs[-third:]) - GRADIENT_TREND]
        return [Finding("vanishing_gradient", tuple(small or [rows[low][0]]), f"gradients fade with depth: "
                        f"the first third of the layers gets a relative gradient (||g||/||W||) "
                        f"{trend:.1f} decades below the last third ({10 ** logs[low]:.2g} at {rows[low][0]} "
                        f"vs {10 ** logs[high]:.2g} at {rows[high][0]}), so the early layers barely learn "
                        "(saturating sigmoid/tanh stacks, no residual or normalisation).",
                        "nn.ReLU() / nn.LayerNorm(...) / a residual connection", numbers)], numbers
    return _exploding(rows, logs, trend, numbers), numbers


def check_dead_units(trace: Trace) -> tuple[list[Finding], dict]:
    shares = {name: 1 - float(d["alive"].float().mean()) for name, d in trace.recorder.dead.items()}
    dead = {n: s for n, s in shares.items() if s >= DEAD_SHARE}
    numbers = {"dead_share": shares}
    if not dead:
        return [], numbers
    first = next(iter(dead))
    units = trace.recorder.dead[first]["units"]
    return [Finding("dead_units", tuple(dead), f"{', '.join(f'{n} ({s:.0%})' for n, s in dead.items())}: "
                    f"of {first}'s {_plural(units, 'unit')}, {dead[first]:.0%} output zero for every "
                    "sample and step of the batch; a dead ReLU passes no gradient, so it never "
                    "recovers (large negative bias, too large a step, unnormalised inputs).",
                    "nn.init.zeros_(layer.bias)  # or nn.LeakyReLU(0.01), or BatchNorm before the ReLU",
                    numbers)], numbers
