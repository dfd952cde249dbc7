"""The sequence classifier, fixed: a representation (multi-scale 1-D convolutions + attention
pooling over time) feeding a linear readout, with the seed's fix built in.

The fix, in one place (`SequenceClassifier.extract_features`): while training, features stay
tensors with autograd on and the representation in train() mode, so gradients reach it; only
inference uses eval() and torch.no_grad().
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelSpec
from .errors import SeqrepError

if TYPE_CHECKING:
    from .config import TrainConfig
    from .data import SequenceDataset

__all__ = [
    "AttentionPooling",
    "DataShape",
    "MultiScaleBlock",
    "Representation",
    "SequenceClassifier",
    "build_model",
    "components",
    "fit_start",
    "make_representation",
    "param_groups",
    "parameter_counts",
]


def _pool_mask(mask: torch.Tensor | None, factor: int, length: int) -> torch.Tensor | None:
    """Downsample a (batch, time) bool mask by `factor`: a window is real if any step is."""
    if mask is None:
        return None
    if factor > 1:
        mask = F.max_pool1d(mask[:, None].float(), factor, factor, ceil_mode=True)[:, 0] > 0
    return mask[:, :length]


class Stem(nn.Module):
    """Input BatchNorm, then (for long series) windowed average, max and min as 3x channels.

    x: (batch, channels, time) -> (batch, channels * (3 if pool > 1 else 1), ceil(time / pool)).
    The max/min keep spikes that plain average pooling would blur away.
    """

    def __init__(self, in_channels: int, pool: int = 1):
        super().__init__()
        self.pool = int(pool)
        self.norm = nn.BatchNorm1d(in_channels)
        self.out_channels = in_channels * (3 if self.pool > 1 else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return amm_pool(x, self.pool) if self.pool > 1 else x


def amm_pool(x: torch.Tensor, pool: int) -> torch.Tensor:
    """Windowed average, max and min: (batch, channels, time) -> (batch, 3 * channels,
    ceil(time / pool))."""
    return torch.cat([
        F.avg_pool1d(x, pool, pool, ceil_mode=True),
        F.max_pool1d(x, pool, pool, ceil_mode=True),
        -F.max_pool1d(-x, pool, pool, ceil_mode=True),
    ], dim=1)


class MultiScaleBlock(nn.Module):
    """Parallel convolutions at several time scales plus a max-pool branch (Inception-style),
    after a 1x1 bottleneck; BatchNorm, ReLU and a residual connection.

    x: (batch, in_channels, time) -> (batch, out_channels, time). `out_channels` is split
    evenly over len(kernel_sizes) + 1 branches.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes=(9, 19, 39), bottleneck: int = 32):
        super().__init__()
        n_branches = len(kernel_sizes) + 1
        if out_channels % n_branches:
            raise SeqrepError(
                f"width {out_channels} must divide evenly over {n_branches} branches "
                f"({len(kernel_sizes)} kernel sizes + max-pool); use a multiple of {n_branches}."
            )
        if any(k < 1 for k in kernel_sizes):
            raise SeqrepError(f"kernel sizes must be >= 1, got {tuple(kernel_sizes)}.")
        branch = out_channels // n_branches
        use_bottleneck = bottleneck > 0 and in_channels > bottleneck
        mid = bottleneck if use_bottleneck else in_channels
        self.bottleneck = nn.Conv1d(in_channels, mid, 1, bias=False) if use_bottleneck else nn.Identity()
        self.branches = nn.ModuleList(nn.Conv1d(mid, branch, k, padding="same", bias=False) for k in kernel_sizes)
        self.pool_branch = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(in_channels, branch, 1, bias=False)
        )
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.ReLU()
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False), nn.BatchNorm1d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        out = torch.cat([conv(z) for conv in self.branches] + [self.pool_branch(x)], dim=1)
        return self.act(self.norm(out) + self.shortcut(x))


class AttentionPooling(nn.Module):
    """Attention over time steps: a learned score per step, a softmax that ignores padding, a
    weighted sum; concatenated with the masked global average.

    h: (batch, channels, time), mask: (batch, time) bool or None -> features
    (batch, 2 * channels), weights (batch, time) summing to 1 over real steps. With
    `attention=False` the weights are uniform over real steps (global average pooling).
    """

    def __init__(self, channels: int, attention: bool = True, hidden: int = 32):
        super().__init__()
        self.score = (
            # No bias on the last layer: softmax ignores a constant shift, so it could not learn.
            nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1, bias=False))
            if attention
            else None
        )

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        real = torch.ones(h.shape[0], h.shape[2], dtype=torch.bool, device=h.device) if mask is None else mask
        count = real.sum(-1, keepdim=True).clamp(min=1)
        avg = (h * real[:, None]).sum(-1) / count
        if self.score is None:
            weights = real.float() / count
            attended = avg
        else:
            scores = self.score(h)[:, 0].masked_fill(~real, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            attended = torch.einsum("bct,bt->bc", h, weights)
        return torch.cat([attended, avg], dim=1), weights


class Representation(nn.Module):
    """Stem -> multi-scale blocks -> attention pooling (+ average).

    x: (batch, channels, time), mask: (batch, time) bool or None -> (batch, 2 * width).
    `spec` must be resolved for the data (`ModelSpec.resolved(length)`).
    """

    def __init__(self, in_channels: int, spec: ModelSpec):
        super().__init__()
        self.stem = Stem(in_channels, spec.pool)
        channels = [self.stem.out_channels] + [spec.width] * spec.blocks
        self.blocks = nn.Sequential(*(
            MultiScaleBlock(channels[i], spec.width, spec.kernel_sizes, spec.bottleneck)
            for i in range(spec.blocks)
        ))
        self.pooling = AttentionPooling(spec.width, spec.attention)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False):
        if mask is not None:  # padded steps hold zeros, whatever the caller put there
            x = x.masked_fill(~mask[:, None, :], 0.0)
        h = self.blocks(self.stem(x))
        features, weights = self.pooling(h, _pool_mask(mask, self.stem.pool, h.shape[-1]))
        return (features, weights) if return_attention else features

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights mapped back to input time steps: (batch, time), each row sums to 1
        (a pooled step's weight is spread evenly over the input steps it covers).

        Like any forward, it runs in the module's current mode and never switches it: for the
        weights the model uses at inference, call `model.eval()` and wrap in `torch.no_grad()`
        at the call site."""
        _, weights = self(x, mask, return_attention=True)
        window = torch.arange(x.shape[-1], device=weights.device) // self.stem.pool
        return weights[:, window] / torch.bincount(window)[window]


class SequenceClassifier(nn.Module):
    """representation (multi-scale convolutions + attention over time) -> dropout -> readout.

    in_channels, n_classes: data shape; length: a typical series length, used to resolve the
    spec's automatic values and for the probe forward that measures the readout's input size.

    x: (batch, in_channels, time) float, mask: (batch, time) bool or None
    -> logits (batch, n_classes).
    """

    def __init__(self, in_channels: int, n_classes: int, length: int, spec: ModelSpec | None = None):
        super().__init__()
        _check_shape(in_channels, n_classes, length)
        self.spec = (spec or ModelSpec()).resolved(length)
        self.representation = make_representation(in_channels, self.spec, length)
        self.feature_dim = self._probe_feature_dim(in_channels, length)
        self.dropout = nn.Dropout(self.spec.dropout)
        self.readout = nn.Linear(self.feature_dim, n_classes)

    def _probe_feature_dim(self, in_channels: int, length: int) -> int:
        """The readout's input size, measured by one forward pass of a dummy sample."""
        was_training = self.representation.training
        self.representation.eval()
        with torch.no_grad():
            dim = self.representation(torch.zeros(1, in_channels, length)).shape[-1]
        self.representation.train(was_training)
        return int(dim)

    def extract_features(
        self, x: torch.Tensor, training: bool, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (batch, channels, time) -> features (batch, feature_dim), always a tensor.

        training=True: representation in train() mode, autograd on, so the loss reaches its
        parameters. training=False: eval() mode and torch.no_grad(), for inference only.
        """
        if training:
            self.representation.train()
            return self.representation(x, mask)
        self.representation.eval()
        with torch.no_grad():
            return self.representation(x, mask)

    def forward(
        self, x: torch.Tensor, training: bool | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (batch, channels, time) -> logits (batch, n_classes).

        training=None follows self.training, so a plain model(x) after model.train() trains.
        """
        training = self.training if training is None else training
        if training:
            self.dropout.train()
            self.readout.train()
            return self.readout(self.dropout(self.extract_features(x, True, mask)))
        self.dropout.eval()
        self.readout.eval()
        with torch.no_grad():
            return self.readout(self.extract_features(x, False, mask))

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights over input time steps, (batch, time); see Representation.attention."""
        return self.representation.attention(x, mask)

    def parameter_counts(self, optimizer: torch.optim.Optimizer | None = None) -> dict:
        return parameter_counts(self, optimizer)


def make_representation(in_channels: int, spec: ModelSpec, length: int) -> nn.Module:
    """The representation `spec.start` names (spec resolved for `length`): the seed's
    `Representation` (random start) or the data-fitted `seqrep.rocket.RocketRepresentation`."""
    if spec.start == "data":
        from .rocket import RocketRepresentation

        return RocketRepresentation(in_channels, spec, length)
    return Representation(in_channels, spec)


@torch.no_grad()
def fit_start(model: nn.Module, train: SequenceDataset) -> dict | None:
    """Fit a data-fitted start (`ModelSpec(start="data")`) to the training set: the
    representation's thresholds and statistics, then the readout by ridge regression on its
    features. `fit` calls it before the first step. Returns what was fitted ({"alpha",
    "temperature", "loo_accuracy", "seconds"}), or None when the model has no data-fitted start
    or it is fitted already."""
    import time

    from .rocket import ridge_readout

    representation = getattr(model, "representation", None)
    if not hasattr(representation, "fit_start") or bool(representation.fitted):
        return None
    started = time.perf_counter()
    device = next(model.parameters()).device
    x = torch.from_numpy(train.X).to(device)
    mask = None if train.mask is None else torch.from_numpy(train.mask).to(device)
    features = representation.fit_start(x, mask)
    weight, bias, info = ridge_readout(features.cpu(), torch.from_numpy(train.y).long(), model.readout.out_features)
    model.readout.weight.copy_(weight.to(device))
    model.readout.bias.copy_(bias.to(device))
    return {**info, "seconds": time.perf_counter() - started}


def param_groups(model: nn.Module) -> list[dict]:
    """The optimizer's parameter groups: one of every trainable parameter, or for a
    data-fitted start its tensors (and the readout) with an "lr_scale" that multiplies the
    run's lr (see `seqrep.rocket.STEP` and `seqrep.plan.make_scheduler`), the rest at lr."""
    representation = getattr(model, "representation", None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not hasattr(representation, "param_groups"):
        return [{"params": trainable}]
    from .rocket import STEP, _rms

    groups = [*representation.param_groups(),
              {"params": [model.readout.weight, model.readout.bias], "lr_scale": STEP * _rms([model.readout.weight])}]
    grouped = {id(p) for g in groups for p in g["params"]}
    rest = [p for p in trainable if id(p) not in grouped]
    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    return [g for g in [*groups, {"params": rest}] if g["params"]]


def _check_shape(in_channels: int, n_classes: int, length: int) -> None:
    if in_channels < 1 or n_classes < 2 or length < 1:
        raise SeqrepError(
            f"a classifier needs in_channels >= 1, n_classes >= 2 and length >= 1, got "
            f"{in_channels}, {n_classes}, {length}"
            + ("; a dataset with one class has nothing to tell apart." if n_classes < 2 else ".")
        )


def parameter_counts(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """{component: {"total", "trainable"[, "in_optimizer"]}} for each top-level child module
    with parameters, plus "all". Counts elements, not tensors.

    A trainable parameter missing from the optimizer, or an optimised one that cannot learn,
    shows up as a gap between "trainable" and "in_optimizer".
    """
    held = set()
    if optimizer is not None:
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    rows: dict[str, dict] = {}
    for name, params in [*components(model).items(), ("all", list(model.parameters()))]:
        row = {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        }
        if optimizer is not None:
            row["in_optimizer"] = sum(p.numel() for p in params if id(p) in held)
        rows[name] = row
    return rows


def components(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """{name: parameters} of each top-level child module that has parameters (e.g.
    "representation", "readout"): the unit fit logs gradient norms and update ratios by."""
    return {name: params for name, child in model.named_children() if (params := list(child.parameters()))}


class DataShape(NamedTuple):
    """What a model needs to know of its data (a SequenceDataset has the same attributes)."""

    channels: int
    n_classes: int
    length: int


def build_model(config: TrainConfig | ModelSpec, data: SequenceDataset | DataShape, seed: int | None = None) -> nn.Module:
    """The model `config` describes for `data` (anything with .channels, .n_classes, .length),
    initialised from `seed` (default: config.seed, or 0 for a bare ModelSpec):
    SequenceClassifier, or the broken LegacyClassifier when spec.extraction == "broken".

    Example:
        >>> model = build_model(TrainConfig(), train)   # train: a SequenceDataset
    """
    from .legacy import LegacyClassifier  # legacy builds on this module's Representation

    spec = config if isinstance(config, ModelSpec) else config.model
    if seed is None:
        seed = 0 if isinstance(config, ModelSpec) else config.seed
    torch.manual_seed(seed)
    cls = SequenceClassifier if spec.extraction == "fixed" else LegacyClassifier
    return cls(data.channels, data.n_classes, data.length, spec)
