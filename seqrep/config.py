"""What a run is, as plain data: `ModelSpec` (the model) nested in `TrainConfig` (everything
else), both frozen dataclasses that validate themselves and round-trip to JSON, so run logs and
checkpoints carry them whole (as nanoGPT's `GPTConfig`).

Every field documents itself (`field(metadata={"help": ...})`): `seqrep train --help` and the
panel read the same text. The option names of every choice live here (the class-imbalance
remedies' too: `seqrep.imbalance` implements them).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import SeqrepError

__all__ = ["INITS", "LOSSES", "RENAMED", "SAMPLERS", "SCHEDULES", "WEIGHTING", "WEIGHT_SCHEMES", "ModelSpec",
           "TrainConfig"]

SCHEDULES = ("onecycle", "cosine", "constant")
WEIGHT_SCHEMES = ("inverse", "sqrt_inverse", "effective")  # seqrep.imbalance.class_weights
WEIGHTING = ("none", *WEIGHT_SCHEMES)  # TrainConfig.class_weights
LOSSES = ("cross_entropy", "focal", "logit_adjusted")  # TrainConfig.loss
SAMPLERS = ("shuffle", "balanced")  # TrainConfig.sampler
EXTRACTIONS = ("fixed", "broken")
INITS = ("data", "random")
# Fields that only the post-mortem's representation (init="random") has: the data-fitted start
# has MiniRocket's fixed kernel shapes and a readout solved by ridge regression (no dropout before
# it), so it refuses them when they differ from the defaults.
RANDOM_INIT_ONLY = ("width", "kernel_sizes", "blocks", "bottleneck", "dropout")
# Training fields of a loss on the readout's logits: init="data" trains on its ridge readout's
# leave-one-out error instead (seqrep.rocket.LeaveOneOut), so it refuses them when changed.
LOGIT_LOSS_ONLY = ("loss", "label_smoothing", "class_weights", "focal_gamma", "logit_tau", "effective_beta")
# Names a field had in an earlier version of seqrep: from_dict and the CLI say the new one.
RENAMED = {"start": "init"}
# What other libraries call a field: the "did you mean" for TrainConfig(learning_rate=...).
ALIASES = {"learning_rate": "lr", "lrate": "lr", "wd": "weight_decay", "bs": "batch_size", "batch": "batch_size",
           "n_epochs": "epochs", "max_epochs": "epochs", "num_epochs": "epochs", "clip": "grad_clip",
           "gradient_clip_val": "grad_clip", "clip_grad_norm": "grad_clip", "random_state": "seed",
           "time_budget": "budget"}
# Seeds seed numpy's and torch's generators after seqrep's own arithmetic (seed * 100_003 +
# epoch must stay below torch's 2**64); 2**32 is numpy's classic range and leaves room.
SEED_LIMIT = 2**32
# torch computes in float32: a float field beyond its range becomes inf inside an optimizer
# or a loss (lr=1e300 raised "value cannot be converted to type float without overflow").
FLOAT32_MAX = 3.4028234663852886e38


def _doc(help_text: str, **extra) -> Any:
    return {"help": help_text, **extra}


@dataclass(frozen=True)
class ModelSpec:
    """The classifier's shape: representation and readout. init="data" (the default): MiniRocket's
    multi-scale kernels with thresholds and readout fitted to the training data
    (`seqrep.rocket`); init="random": the post-mortem's representation (stem -> multi-scale
    blocks -> attention pooling) from PyTorch's initialisation. width, kernel_sizes, blocks and
    bottleneck shape only that one: with init="data" they must keep their defaults (a changed
    one is refused rather than silently ignored). `extraction="broken"` builds the
    post-mortem's LegacyClassifier instead.

    Zero / empty values are automatic and resolved per dataset by `resolved(length)`.
    """

    extraction: str = field(default="fixed", metadata=_doc(
        "'fixed' (SequenceClassifier) or 'broken' (the post-mortem's no-grad extraction)",
        choices=EXTRACTIONS))
    init: str = field(default="data", metadata=_doc(
        "how the model starts: 'data': MiniRocket's multi-scale kernels with thresholds and "
        "readout fitted to the training data before the first step (seqrep.rocket); 'random': "
        "the post-mortem's representation (stem, multi-scale blocks, attention), PyTorch's "
        "initialisation", choices=INITS))
    width: int = field(default=64, metadata=_doc(
        "init='random' only: channels of each multi-scale block, split evenly over its branches "
        "(kernels + max-pool)"))
    kernel_sizes: tuple[int, ...] = field(default=(), metadata=_doc(
        "init='random' only: kernel sizes of the branches; () = auto: 9, 19, 39 capped to the "
        "(pooled) length"))
    blocks: int = field(default=2, metadata=_doc("init='random' only: number of multi-scale blocks"))
    bottleneck: int = field(default=32, metadata=_doc(
        "init='random' only: 1x1 bottleneck channels before the branches (0 = none)"))
    attention: bool = field(default=True, metadata=_doc("attention pooling over time (else average pooling)"))
    pool: int = field(default=0, metadata=_doc("stem downsampling factor; 0 = auto, ceil(length / 512)"))
    dropout: float = field(default=0.1, metadata=_doc("dropout before the readout"))

    def __new__(cls, *args, **kwargs):
        _no_unknown(cls, kwargs)  # else the dataclass __init__ raises a bare TypeError
        return super().__new__(cls)

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        checks = [
            (self.width >= 4, "width", "must be >= 4"),
            (all(k >= 1 for k in self.kernel_sizes), "kernel_sizes", "must all be >= 1"),
            (self.blocks >= 1, "blocks", "must be >= 1"),
            (self.bottleneck >= 0, "bottleneck", "must be >= 0 (0 = none)"),
            (self.pool >= 0, "pool", "must be >= 0 (0 = automatic)"),
            (0 <= self.dropout < 1, "dropout", "must be in [0, 1)"),
        ]
        _raise_first(self, checks)
        _refuse_ignored(self)
        if self.kernel_sizes and self.width % (len(self.kernel_sizes) + 1):
            n = len(self.kernel_sizes) + 1
            lower, upper = max(n, self.width // n * n), n * math.ceil(self.width / n)
            raise SeqrepError(
                f"ModelSpec: width {self.width} does not divide over {n} branches "
                f"({len(self.kernel_sizes)} kernel sizes + max-pool); use {lower} or {upper}."
            )

    def resolved(self, length: int) -> ModelSpec:
        """The spec with its automatic values decided for series of `length` steps: pool =
        ceil(length / 512) when 0; kernel sizes 9, 19, 39 capped to the pooled length (odd);
        width rounded up to a multiple of the branch count when the automatic kernels change
        it (init="random"; init="data" resolves only the pool). Raises when explicit kernels
        span more steps than the series has."""
        pool = self.pool or max(1, math.ceil(length / 512))
        if self.init == "data":
            return dataclasses.replace(self, pool=pool)
        pooled = math.ceil(length / pool)
        if self.kernel_sizes:
            too_long = [k for k in self.kernel_sizes if k > pooled]
            if too_long:
                after = f" after the stem pools by {pool}" if pool > 1 else ""
                raise SeqrepError(
                    f"kernels of {too_long} steps are longer than the series ({pooled} steps{after}); "
                    f"use kernel_sizes <= {pooled}, or kernel_sizes=() to derive them from the length."
                )
            kernels = self.kernel_sizes
        else:
            cap = pooled if pooled % 2 else pooled - 1
            kernels = tuple(sorted({min(k, max(cap, 1)) for k in (9, 19, 39)}))
        n = len(kernels) + 1
        width = n * math.ceil(self.width / n)
        return dataclasses.replace(self, pool=pool, kernel_sizes=kernels, width=width)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> ModelSpec:
        return ModelSpec.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, values: dict) -> ModelSpec:
        _no_unknown(cls, values)
        return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides data: the model spec, optimisation, class-imbalance
    remedies (see `seqrep.imbalance`) and the pre-flight check.

    epochs=0 is automatic (`seqrep.plan`): as many as fit in `budget` seconds, or a step-count
    rule when budget is 0; an explicit number is kept as given.
    `replace(model={"width": 32})` changes fields of the nested spec.

    Example:
        >>> TrainConfig().replace(lr=3e-3, model={"width": 32}).model.width
        32
    """

    model: ModelSpec = field(default_factory=ModelSpec, metadata=_doc("the model (see ModelSpec)"))
    epochs: int = field(default=0, metadata=_doc(
        "epochs to train; 0 = automatic: as many as fit in `budget`, or with budget 0 at least "
        "30 epochs and 500 optimiser steps"))
    budget: float = field(default=60.0, metadata=_doc(
        "seconds of training that automatic epochs plan for, the data-fitted start included: "
        "planned once from a timed step, the plan recorded as `epochs` in the logged config "
        "(re-running that config repeats the run bitwise); 0 = plan by step count"))
    batch_size: int = field(default=16, metadata=_doc("samples per optimiser step"))
    lr: float = field(default=1e-2, metadata=_doc(
        "peak learning rate of AdamW; with init='data' the kernels and thresholds peak at lr "
        "times their RMS (steps relative to their size) and the attention scorers at lr "
        "(seqrep.model.param_groups); the run log records every group's rate"))
    weight_decay: float = field(default=1e-2, metadata=_doc("AdamW weight decay"))
    schedule: str = field(default="onecycle", metadata=_doc(
        "learning-rate schedule, stepped every batch", choices=SCHEDULES))
    label_smoothing: float = field(default=0.0, metadata=_doc("label smoothing of the loss"))
    grad_clip: float = field(default=1.0, metadata=_doc("clip the gradient norm to this (0 = off)"))
    seed: int = field(default=0, metadata=_doc(
        "random seed of initialisation, the data-fitted start's picks, batch order and dropout"))
    class_weights: str = field(default="none", metadata=_doc(
        "weight the loss per class", choices=WEIGHTING))
    effective_beta: float = field(default=0.999, metadata=_doc("beta of class_weights='effective'"))
    loss: str = field(default="cross_entropy", metadata=_doc("training loss", choices=LOSSES))
    focal_gamma: float = field(default=2.0, metadata=_doc("gamma of loss='focal'"))
    logit_tau: float = field(default=1.0, metadata=_doc("tau of loss='logit_adjusted'"))
    sampler: str = field(default="shuffle", metadata=_doc("batch order", choices=SAMPLERS))
    check_gradients: bool = field(default=True, metadata=_doc(
        "run seqrep.check_training on one batch before training and refuse to start on a "
        "blocking finding"))

    def __new__(cls, *args, **kwargs):
        _no_unknown(cls, kwargs)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelSpec.from_dict(self.model))
        if not isinstance(self.model, ModelSpec):
            raise SeqrepError(
                f"TrainConfig: model must be a ModelSpec (or a dict of its fields), got "
                f"{type(self.model).__name__}."
            )
        _coerce_and_check(self)
        checks = [
            (self.epochs >= 0, "epochs", "must be >= 1, or 0 for automatic"),
            (self.budget >= 0, "budget", "must be >= 0 seconds (0 = plan by step count)"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (self.lr > 0, "lr", "must be > 0"),
            (self.weight_decay >= 0, "weight_decay", "must be >= 0"),
            (self.lr * self.weight_decay < 1, "weight_decay",
             f"times lr ({self.lr:g}) must be below 1: AdamW multiplies every weight by "
             "(1 - lr * weight_decay) at each step, which at 1 or more zeroes or flips them "
             "(typical: 1e-4 to 1e-1)"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)"),
            (self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = off)"),
            (0 <= self.seed < SEED_LIMIT, "seed", f"must be a whole number from 0 to {SEED_LIMIT - 1} (2**32 - 1)"),
            (0 <= self.effective_beta < 1, "effective_beta", "must be in [0, 1)"),
            (self.focal_gamma >= 0, "focal_gamma", "must be >= 0"),
            (self.logit_tau >= 0, "logit_tau", "must be >= 0"),
            (not (self.loss == "focal" and self.label_smoothing), "label_smoothing",
             "is not defined for loss='focal'; set it to 0"),
        ]
        _raise_first(self, checks)
        _refuse_logit_loss(self)

    def to_dict(self) -> dict:
        """Plain data: the nested spec as a dict too."""
        return {f.name: getattr(self, f.name).to_dict() if f.name == "model" else getattr(self, f.name)
                for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        _no_unknown(cls, values)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The config `to_json` wrote; SeqrepError for text that is not a JSON object of its fields."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise SeqrepError(f"TrainConfig.from_json needs the text TrainConfig.to_json() wrote, got {type(text).__name__}.")
        try:
            values = json.loads(text)
        except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
            raise SeqrepError(
                f"TrainConfig.from_json: not JSON ({err}); pass the text TrainConfig.to_json() "
                "wrote, e.g. the \"config\" of a run log's start record."
            ) from None
        return cls.from_dict(values)

    def replace(self, **changes) -> TrainConfig:
        """A copy with `changes`; `model` may be a ModelSpec or a dict of changes to this one's."""
        if isinstance(changes.get("model"), dict):
            changes["model"] = self.model.replace(**changes["model"])
        return TrainConfig.from_dict({**self.to_dict(), "model": self.model, **changes})

    def diff(self, other: TrainConfig) -> dict:
        """{field: (self's value, other's value)} where they differ; model fields as 'model.width'."""
        a, b = flatten(self.to_dict()), flatten(other.to_dict())
        return {k: (a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)}


def flatten(config: dict) -> dict:
    """{'model': {'width': 8}, 'lr': 0.1} -> {'model.width': 8, 'lr': 0.1}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# Validation shared by both dataclasses
# --------------------------------------------------------------------------------------------


def _changed(obj, names: tuple[str, ...]) -> list[str]:
    """'name=value' of each field of `obj` in `names` that is not at its default."""
    return [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj)
            if f.name in names and getattr(obj, f.name) != f.default]


def _refuse_ignored(spec: ModelSpec) -> None:
    """init='data' has no width, kernel sizes, blocks or bottleneck to shape: a changed one is
    refused, naming it and what to do."""
    if spec.init == "data" and (changed := _changed(spec, RANDOM_INIT_ONLY)):
        raise SeqrepError(
            f"ModelSpec: {', '.join(changed)} would be ignored: init='data' (the default) uses "
            "MiniRocket's fixed kernels and a ridge readout, which have no width, kernel sizes, "
            f"blocks, bottleneck or dropout to set. Use init='random' (--init random) for the post-mortem's representation, "
            f"which they shape, or leave {', '.join(RANDOM_INIT_ONLY)} at their defaults."
        )


def _refuse_logit_loss(config: TrainConfig) -> None:
    """init='data' trains on its ridge readout's leave-one-out error, not on a loss of logits:
    a changed loss field is refused, naming it and what to do."""
    if config.model.init == "data" and (changed := _changed(config, LOGIT_LOSS_ONLY)):
        raise SeqrepError(
            f"TrainConfig: {', '.join(changed)} would be ignored: init='data' (the default) solves its "
            "readout by ridge regression and trains the representation on that readout's "
            "leave-one-out error (seqrep.rocket.LeaveOneOut), not on a loss of the logits. Use "
            "init='random' (--init random), whose readout trains on the loss these fields shape, or "
            f"leave {', '.join(LOGIT_LOSS_ONLY)} at their defaults."
        )


def _no_unknown(cls, values: dict) -> None:
    if not isinstance(values, dict):
        raise SeqrepError(
            f"{cls.__name__} needs a dict of its fields ({{'field': value, ...}}), got "
            f"{type(values).__name__} {str(values)[:60]}."
        )
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        hints = [h for h in (_did_you_mean(cls, str(u), known) for u in unknown) if h]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise SeqrepError(f"{cls.__name__} has no field(s) {unknown}{hint}; known fields: {sorted(known)}.")


def _did_you_mean(cls, name: str, known: set[str]) -> str:
    """The field an unknown name probably means: a renamed field, another library's name for
    it, a ModelSpec field given to TrainConfig, or the closest spelling ('' when none)."""
    for table in (RENAMED, ALIASES):
        if table.get(name) in known:
            return table[name]
    if cls is TrainConfig and name in {f.name for f in dataclasses.fields(ModelSpec)}:
        return f"model={{{name!r}: ...}} (a ModelSpec field)"
    return next(iter(difflib.get_close_matches(name, known, n=1)), "")


def _coerce_and_check(obj) -> None:
    """Check each field against its annotated type and choices; integral floats for int
    fields and ints for float fields are accepted, lists become tuples. The message names the
    field, the value and what it should be."""
    name = type(obj).__name__
    for f in dataclasses.fields(obj):
        value, kind = getattr(obj, f.name), f.type
        bad = None
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                bad = "a whole number"
            else:
                value = int(value)
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad = "a finite number"
            elif abs(value) > FLOAT32_MAX:
                bad = f"within float32's range (+-{FLOAT32_MAX:.3g}), which torch computes in"
            else:
                value = float(value)
        elif kind == "bool":
            if not isinstance(value, bool):
                bad = "True or False"
        elif kind == "str":
            choices = f.metadata.get("choices")
            if not isinstance(value, str) or (choices and value not in choices):
                bad = f"one of {', '.join(map(repr, choices))}" if choices else "a string"
        elif kind.startswith("tuple"):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                bad = "a tuple of whole numbers, e.g. (9, 19, 39)"
            else:
                value = tuple(value)
        if bad:
            raise SeqrepError(f"{name}.{f.name} must be {bad}; got {value!r} ({type(value).__name__}).")
        object.__setattr__(obj, f.name, value)


def _raise_first(obj, checks) -> None:
    for ok, field_name, rule in checks:
        if not ok:
            raise SeqrepError(
                f"{type(obj).__name__}.{field_name} {rule}; got {getattr(obj, field_name)!r}."
            )
