"""How long a run is: the epochs `fit` plans, the learning-rate schedule that follows the plan,
and the `TimeBudget` callback that re-plans when the machine's speed changes.

Explicit `TrainConfig.epochs` are kept as given. With epochs=0 (automatic) and a time budget
(`TrainConfig.budget` seconds), `fit` times a few training steps on copies of the model and an
evaluation pass, and plans as many epochs as fit in the budget; at every epoch's end
`TimeBudget` compares the time spent with the plan and, when the rest of the run would end
more than 5 % off the budget, re-plans the remaining epochs and stretches or shrinks the
schedule to match; a run still going 5 % past the budget (epochs too long to re-plan in time)
ends at that step. With budget=0, automatic epochs follow a step count (`plan_epochs`).
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

__all__ = ["AUTO_EPOCHS", "MIN_STEPS", "TimeBudget", "make_scheduler", "plan_epochs", "plan_for_budget",
           "replan"]

AUTO_EPOCHS, MIN_STEPS = 30, 500
REPLAN_TOLERANCE = 0.05  # re-plan when the projected end is further than this from the budget


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


def _seconds_per_step(state: FitState, steps: int = 4) -> float:
    """Median wall time of a training step, measured on copies of the model and optimizer
    (the first step warms up and is not counted); the run's own state and RNG are untouched."""
    rng = torch.get_rng_state()
    model = copy.deepcopy(state.model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=state.config.lr)
    index = torch.arange(min(state.config.batch_size, len(state.train)), device="cpu")
    x, y, mask = state.batch(index)
    times = []
    try:
        with modes(model, True):
            for _ in range(steps):
                start = time.perf_counter()
                loss = state.loss_fn(model(x, training=True, mask=mask), y)
                optimizer.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - start)
    finally:
        torch.set_rng_state(rng)
    return sorted(times[1:])[len(times[1:]) // 2]


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
    """Epochs that fit in what is left of config.budget, from a measured step and evaluation
    time (at least one)."""
    per_epoch = state.steps_per_epoch * _seconds_per_step(state) + _seconds_per_evaluation(state)
    left = state.config.budget - (time.perf_counter() - state.started)
    return max(1, int(left // per_epoch))


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int, done: int = 0,
                   peaks: list[float] | None = None):
    """The learning-rate schedule over `total_steps` optimiser steps, positioned after `done`
    of them (a re-plan builds a new one mid-run). Each group's rate follows the same curve
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
    """Built in for runs planned by a time budget: after each epoch, project the run's end
    from the wall time of its recent epochs (the median of the last three: the first one also
    pays for warm-ups, and a machine's speed drifts); if it would end more than
    REPLAN_TOLERANCE off the budget, re-plan the remaining epochs (none, at the least) and
    rebuild the schedule for the new total, continuing from the current step."""

    order = 80  # after the epoch's other work, before it is logged: the record shows the new plan

    def before_fit(self, state: FitState) -> None:
        self.last, self.durations = time.perf_counter(), []

    def after_step(self, state: FitState) -> None:
        """An epoch longer than the tolerance cannot be re-planned in time: past the budget
        (plus REPLAN_TOLERANCE), the run ends at this step, its last epoch partial."""
        if time.perf_counter() - state.started > state.config.budget * (1 + REPLAN_TOLERANCE):
            state.request_stop("time budget reached")

    def after_epoch(self, state: FitState) -> None:
        now = time.perf_counter()
        self.durations.append(now - self.last)
        self.last = now
        recent = sorted(self.durations[-3:])
        per_epoch = recent[len(recent) // 2]
        elapsed, budget, planned = now - state.started, state.config.budget, state.config.epochs
        projected = elapsed + (planned - state.epoch - 1) * per_epoch
        if abs(projected - budget) <= REPLAN_TOLERANCE * budget:
            return
        epochs = state.epoch + 1 + max(0, round((budget - elapsed) / per_epoch))
        if epochs != planned:
            replan(state, epochs)
            state.record["epochs"] = epochs
