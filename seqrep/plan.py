"""How long a run is: the epochs `fit` plans, the learning-rate schedule that follows the plan,
and the `TimeBudget` callback that ends a run far past its budget.

Explicit `TrainConfig.epochs` are kept as given. With epochs=0 (automatic) and a time budget
(`TrainConfig.budget` seconds), `fit` times a few training steps on copies of the model (with
the run's objective and, for a data-fitted start, its per-epoch readout solve) and an
evaluation pass, and plans once, before the first step, as many epochs as fit in what is left
of the budget. The plan is the run's `config.epochs` — in the run log, the checkpoint and
`FitResult.config` — so re-running that config trains the same steps on the same schedule and
gives bitwise the same weights, whatever the machine's load (a plan that changed with the
load as the run went could not be repeated). A machine that slows down mid-run makes the run
late: `TimeBudget` ends it at the first step past `OVERRUN` times the budget, and says so in
the log (such a run is the one case its config does not repeat). With budget=0, automatic
epochs follow a step count (`plan_epochs`).
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from .callbacks import Callback, FitState
from .config import TrainConfig
from .inference import modes, predict_logits
from .model import param_groups
from .rocket import LeaveOneOut

__all__ = ["AUTO_EPOCHS", "MIN_STEPS", "TimeBudget", "make_scheduler", "plan_epochs", "plan_for_budget",
           "replan"]

AUTO_EPOCHS, MIN_STEPS = 30, 500
OVERRUN = 1.5  # a budget-planned run still going at this multiple of its budget ends there


def plan_epochs(
    config: TrainConfig, n_train: int, min_steps: int | None = None, floor: int = AUTO_EPOCHS
) -> TrainConfig:
    """The config with epochs=0 (auto) replaced by a step-count plan: `floor` epochs
    (AUTO_EPOCHS), or more when the training set is so small that they would make fewer than
    min_steps (default MIN_STEPS) optimiser steps (ArrowHead, 36 series: 167 epochs of 3 steps).
    Measured on the hard UCR sets: 90-210 steps left PigCVP, ACSF1 and ArrowHead under-trained
    (benchmarks/results/accuracy_seed_representation.md). Explicit epochs are kept."""
    if config.epochs:
        return config
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    return config.replace(epochs=max(floor, math.ceil((min_steps or MIN_STEPS) / steps_per_epoch)))


def _seconds_per_step(state: FitState, steps: int = 5) -> float:
    """Median wall time of a training step, measured on copies of the model and optimizer with
    the run's objective (the first step warms up and is not counted); the run's own state and
    RNG are untouched."""
    rng = torch.get_rng_state()
    model = copy.deepcopy(state.model)
    optimizer = torch.optim.AdamW(param_groups(model, state.config.lr), lr=state.config.lr)
    index = torch.arange(min(state.config.batch_size, len(state.train)), device="cpu")
    x, y, mask = state.batch(index)
    objective, times = None, []
    try:
        if state.init_features is not None:  # a data-fitted start trains on LeaveOneOut
            objective = LeaveOneOut(torch.Generator().manual_seed(state.config.seed),
                                    model.representation.learned_columns())
            objective.attach(model.readout)
            model.representation.skip_fixed = True
            objective.refit(model.readout, state.init_features, torch.from_numpy(state.train.y).long().to(x.device))
        with modes(model, True):
            for _ in range(steps):
                start = time.perf_counter()
                logits = model(x, training=True, mask=mask)
                loss = (state.loss_fn(logits, y) if objective is None else
                        objective.loss(objective.captured, index.to(x.device))[0])
                optimizer.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - start)
    finally:
        torch.set_rng_state(rng)
        if objective is not None:
            objective.detach()
    return sorted(times[1:])[len(times[1:]) // 2]


def _seconds_per_solve(state: FitState) -> float:
    """A data-fitted start solves its readout every epoch (`seqrep.builtin.RidgeReadout`): the
    learned groups' features of the training set, then the ridge solve. Estimated from what
    fit_init took for all groups (a pass over the training set and the same solve), scaled by
    the share of features the learned groups produce; 0 for other models."""
    if not state.fitted_init:
        return 0.0
    representation = state.model.representation
    return state.fitted_init["seconds"] * max(len(representation.learned_columns()) / representation.feature_dim, 0.25)


def _seconds_per_evaluation(state: FitState, probe: int = 256) -> float:
    """Wall time of one evaluation of the validation set, from inference on up to `probe` of
    its series (0 without a validation set)."""
    if state.val is None:
        return 0.0
    part = state.val.subset(np.arange(min(probe, len(state.val))))
    start = time.perf_counter()
    predict_logits(state.model, part, device=state.device)  # restores the model's modes
    return (time.perf_counter() - start) * len(state.val) / len(part)


def replan(state: FitState, epochs: int) -> None:
    """Train for `epochs` epochs in all: the config and the schedule follow, continuing from
    the current step, every group towards its own peak (state.peak_lr)."""
    state.config = state.config.replace(epochs=epochs)
    state.scheduler = make_scheduler(state.optimizer, state.config, state.steps_per_epoch * epochs,
                                     done=state.global_step, peaks=list(state.peak_lr.values()))


def plan_for_budget(state: FitState) -> int:
    """Epochs that fit in what is left of config.budget, from a measured step, per-epoch work
    and evaluation time (at least one)."""
    step = _seconds_per_step(state)
    extra = _seconds_per_solve(state)
    evaluation = _seconds_per_evaluation(state)
    per_epoch = state.steps_per_epoch * step + extra + evaluation
    left = state.config.budget - (time.perf_counter() - state.started)
    epochs = max(1, int(left // per_epoch))
    state.plan = {"epochs": epochs, "steps": epochs * state.steps_per_epoch, "seconds_left": round(left, 2),
                  "seconds_per_step": round(step, 4), "seconds_per_epoch": round(per_epoch, 3),
                  "of_which_readout_solve": round(extra, 3), "of_which_evaluation": round(evaluation, 3)}
    return epochs


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int, done: int = 0,
                   peaks: list[float] | None = None):
    """The learning-rate schedule over `total_steps` optimiser steps, positioned after `done`
    of them (as a resumed run needs). Each group's rate follows the same curve
    scaled to its own peak: `peaks`, one per group (default: the groups' "lr" now, which
    `seqrep.model.param_groups` sets to their peaks before any schedule). "onecycle" is
    torch's OneCycleLR (warm-up over 30 % of the steps, cosine annealing, momentum cycled
    inversely); "cosine" anneals from the peak to 0; "constant" keeps the peak."""
    total_steps = max(total_steps, done + 1)
    peaks = [g["lr"] for g in optimizer.param_groups] if peaks is None else peaks
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total_steps, pct_start=0.3
        )
    else:
        cosine = config.schedule == "cosine"
        for group, peak in zip(optimizer.param_groups, peaks):
            group.setdefault("initial_lr", peak)

        def factor(step: int) -> float:
            return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)) if cosine else 1.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if done:
        scheduler.last_epoch = done - 1
        scheduler.step()
    return scheduler


class TimeBudget(Callback):
    """Built in for runs planned by a time budget: a run still going at OVERRUN times its
    budget (the machine slowed down after the plan was made) ends at that step, its last
    epoch partial, with the reason in the log."""

    order = 80

    def after_step(self, state: FitState) -> None:
        elapsed = time.perf_counter() - state.started
        if elapsed > state.config.budget * OVERRUN:
            state.request_stop(f"time budget: {elapsed:.0f} s, past {OVERRUN:g} x the {state.config.budget:g} s "
                               f"planned for (the machine slowed down after the plan was made)")
