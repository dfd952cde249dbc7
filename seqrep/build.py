"""The model a config describes: `build_model(config, data)` builds the fixed
`SequenceClassifier` (seqrep.model) or, for extraction="broken", the post-mortem's
`LegacyClassifier` (seqrep.legacy); `build_ablated` builds the broken one with any subset of
its three bug lines. Every model is initialised from a fork of torch's RNG seeded by the
config's seed, so building one leaves the caller's RNG as it was.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from .config import ModelSpec, TrainConfig
from .errors import SeqrepError
from .legacy import BUG_LINES, AblatedClassifier, LegacyClassifier
from .model import SequenceClassifier

if TYPE_CHECKING:
    from .data import SequenceDataset

__all__ = ["DataShape", "build_ablated", "build_model", "seeded"]


class DataShape(NamedTuple):
    """What a model needs to know of its data (a SequenceDataset has the same attributes)."""

    channels: int
    n_classes: int
    length: int


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block on a fork of torch's CPU RNG seeded with `seed`: layer initialisations
    inside it draw the same numbers as after `torch.manual_seed(seed)`, and the caller's RNG
    state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(config: TrainConfig | ModelSpec, data: SequenceDataset | DataShape, seed: int | None = None) -> nn.Module:
    """The model `config` describes for `data` (anything with .channels, .n_classes, .length),
    initialised from `seed` (default: config.seed, or 0 for a bare ModelSpec):
    SequenceClassifier, or the broken LegacyClassifier when spec.extraction == "broken".
    torch's global RNG is left as it was (see `seeded`).

    Example:
        >>> model = build_model(TrainConfig(), train)   # train: a SequenceDataset
    """
    if not isinstance(config, (TrainConfig, ModelSpec)):
        raise SeqrepError(f"build_model: config must be a TrainConfig or a ModelSpec, got {type(config).__name__}.")
    if not all(hasattr(data, k) for k in DataShape._fields):
        raise SeqrepError(f"build_model: data must be a SequenceDataset or a DataShape(channels, n_classes, length), "
                          f"got {type(data).__name__}.")
    spec = config if isinstance(config, ModelSpec) else config.model
    if seed is None:
        seed = 0 if isinstance(config, ModelSpec) else config.seed
    cls = SequenceClassifier if spec.extraction == "fixed" else LegacyClassifier
    try:
        with seeded(seed):
            return cls(data.channels, data.n_classes, data.length, spec)
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        tried = re.search(r"allocate (\d+) bytes", str(err))
        raise SeqrepError(
            f"the model {spec} for {data.channels} channel(s), {data.n_classes} classes and length "
            f"{data.length} does not fit in memory"
            + (f" (one of its tensors alone needs {int(tried[1]) / 2**30:.1f} GiB)" if tried else "")
            + "; use a smaller width, fewer blocks or a smaller bottleneck."
        ) from None


def build_ablated(config: TrainConfig, data: SequenceDataset | DataShape, bugs=BUG_LINES) -> AblatedClassifier:
    """`AblatedClassifier` with `bugs` (a subset of `seqrep.legacy.BUG_LINES`) for `data`,
    built as `build_model` builds every model: from `config.model`, initialised from
    `config.seed`, so an ablation and its reference start from the same weights."""
    with seeded(config.seed):
        return AblatedClassifier(data.channels, data.n_classes, data.length, config.model, bugs=bugs)
