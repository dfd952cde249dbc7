"""The sequence classifier, fixed: a representation (multi-scale 1-D convolutions + attention
pooling over time) feeding a linear readout, with the post-mortem's fix built in.

The fix, in one place (`SequenceClassifier.extract_features`): while training, features stay
tensors with autograd on, so gradients reach the representation; only inference runs under
torch.no_grad(). Train/eval modes are not the model's business: the loop sets them
(`seqrep.inference.modes`). `fit_init` fits a data-fitted start before the first step and
`param_groups` gives each group of parameters its learning rate.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from torch import nn

from .config import ModelSpec
from .errors import SeqrepError
from .rocket import (
    RocketRepresentation,
    amm_pool,
    pool_mask,
    ridge_readout,
    rms,
    spread_to_steps,
)

if TYPE_CHECKING:
    from .data import SequenceDataset

__all__ = [
    "AttentionPooling",
    "MultiScaleBlock",
    "Representation",
    "SequenceClassifier",
    "components",
    "fit_init",
    "frozen_by_design",
    "has_ridge_readout",
    "make_readout",
    "make_representation",
    "param_groups",
    "parameter_counts",
]


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
        features, weights = self.pooling(h, pool_mask(mask, self.stem.pool, h.shape[-1]))
        return (features, weights) if return_attention else features

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights mapped back to input time steps: (batch, time), each row sums to 1
        (a pooled step's weight is spread evenly over the input steps it covers).

        Like any forward, it runs in the module's current mode and never switches it: for the
        weights the model uses at inference, call `model.eval()` and wrap in `torch.no_grad()`
        at the call site."""
        _, weights = self(x, mask, return_attention=True)
        return spread_to_steps(weights, x.shape[-1], self.stem.pool)


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
        self.dropout, self.readout = make_readout(self.feature_dim, n_classes, self.spec)

    def _probe_feature_dim(self, in_channels: int, length: int) -> int:
        """The readout's input size, measured by one forward pass of a dummy sample (in eval
        mode, so BatchNorm's statistics stay untouched; the mode found is restored)."""
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

        training=True: autograd on, so the loss reaches the representation's parameters.
        training=False: under torch.no_grad(), for inference only. Neither switches a module's
        train/eval mode (BatchNorm, Dropout): the caller owns it — `fit` trains in train() and
        evaluates in eval(), each through `seqrep.inference.modes`.
        """
        if training:
            return self.representation(x, mask)
        with torch.no_grad():
            return self.representation(x, mask)

    def forward(
        self, x: torch.Tensor, training: bool | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (batch, channels, time) -> logits (batch, n_classes).

        training=True keeps autograd on; training=False runs under torch.no_grad(); None
        follows self.training. Modules run in the mode they are in (see extract_features):
        model.train() then model(x) trains, model.eval() then model(x) infers.
        """
        training = self.training if training is None else training
        features = self.extract_features(x, training, mask)
        if training:
            return self.readout(self.dropout(features))
        with torch.no_grad():
            return self.readout(self.dropout(features))

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights over input time steps, (batch, time); see Representation.attention."""
        return self.representation.attention(x, mask)


def has_ridge_readout(model: nn.Module) -> bool:
    """True for a data-fitted start (`ModelSpec(init="data")`, fixed or broken): its readout is
    solved by ridge regression and its representation trains on `seqrep.rocket.LeaveOneOut`."""
    return isinstance(getattr(model, "representation", None), RocketRepresentation)


def frozen_by_design(model: nn.Module) -> list[str]:
    """Names of the parameters a data-fitted start keeps out of training on purpose: its solved
    readout and the groups that stay as fitted (`RocketRepresentation.learned_groups`); none
    for other models. The pre-flight check is told to expect them frozen."""
    if not has_ridge_readout(model):
        return []
    return [name for name, p in model.named_parameters() if not p.requires_grad]


def make_readout(feature_dim: int, n_classes: int, spec: ModelSpec) -> tuple[nn.Module, nn.Linear]:
    """(dropout, readout) for `spec`: init="random" trains a linear readout behind dropout;
    init="data" solves its readout by ridge regression (`fit` re-solves it every epoch, see
    `seqrep.rocket.LeaveOneOut`), so it has no dropout and its parameters take no gradient."""
    readout = nn.Linear(feature_dim, n_classes)
    if spec.init == "data":
        readout.requires_grad_(False)
        return nn.Identity(), readout
    return nn.Dropout(spec.dropout), readout


def make_representation(in_channels: int, spec: ModelSpec, length: int) -> nn.Module:
    """The representation `spec.init` names (spec resolved for `length`): the post-mortem's
    `Representation` (init="random") or the data-fitted `seqrep.rocket.RocketRepresentation`."""
    if spec.init == "data":
        return RocketRepresentation(in_channels, spec, length)
    return Representation(in_channels, spec)


@torch.no_grad()
def fit_init(model: nn.Module, train: SequenceDataset, seed: int = 0, with_features: bool = False):
    """Fit a data-fitted start (`ModelSpec(init="data")`) to the training set: the
    representation's thresholds and statistics (random picks from a generator seeded by
    `seed`; the global RNG is left alone), then the readout by ridge regression on its
    features. Every tensor is made on the model's device. `fit` calls it before the first
    step. Returns what was fitted ({"alpha", "temperature", "loo_accuracy", "seconds"}), or
    None when the model has no data-fitted start or it is fitted already; with_features=True,
    also the training set's features it solved the readout on, (n, feature_dim): (info,
    features), or (None, None)."""
    representation = getattr(model, "representation", None)
    if not isinstance(representation, RocketRepresentation) or bool(representation.fitted):
        return (None, None) if with_features else None
    started = time.perf_counter()
    device = model.readout.weight.device
    x = torch.from_numpy(train.X).to(device)
    mask = None if train.mask is None else torch.from_numpy(train.mask).to(device)
    generator = torch.Generator().manual_seed(seed)
    features = representation.fit_init(x, mask, generator)
    y = torch.from_numpy(train.y).long().to(device)
    weight, bias, info = ridge_readout(features, y, model.readout.out_features)
    model.readout.weight.copy_(weight)
    model.readout.bias.copy_(bias)
    info = {**info, "seconds": time.perf_counter() - started}
    return (info, features) if with_features else info


def param_groups(model: nn.Module, lr: float) -> list[dict]:
    """The optimizer's parameter groups, each named ("name") with the peak learning rate the
    optimizer applies to it ("lr"): the one place where rates differ between groups. The
    schedule (`seqrep.plan.make_scheduler`) scales every group by the same factor at each step,
    so the proportions below hold throughout a run.

    | group | parameters | peak learning rate | weight decay |
    |---|---|---|---|
    | "all" | every trainable one: the post-mortem's representation, the broken model | lr | config's |
    | "kernels", "thresholds" | a data-fitted start's kernels and thresholds | lr * their RMS at the start | none |
    | "scorers" | its attention scorers (randomly initialised) | lr | none |
    | "rest" | any other trainable parameter | lr | config's |

    Adam's steps are about lr per element whatever the gradient's size, so the data-fitted
    tensors step by lr relative to their own size (thresholds are held in units of their
    kernel's output spread, kernels are MiniRocket's -1/+2 patterns): at lr = 1e-2, a percent
    of a threshold's scale per step. Weight decay would pull fitted thresholds towards zero, so
    those groups have none ("weight_decay": 0). A data-fitted start's readout is solved by
    ridge regression, never stepped (`seqrep.rocket.LeaveOneOut`), so it is in no group. Each
    group also carries "lr_scale" (its peak / lr) for the record. Call after `fit_init` (the
    RMS is of the fitted tensors).
    """
    representation = getattr(model, "representation", None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not isinstance(representation, RocketRepresentation):
        return [{"name": "all", "params": trainable, "lr": lr, "lr_scale": 1.0}]
    named = representation.tensor_groups()
    scales = {"kernels": rms(named["kernels"]), "thresholds": rms(named["thresholds"]), "scorers": 1.0}
    grouped = {id(p) for params in named.values() for p in params}
    named["rest"] = [p for p in trainable if id(p) not in grouped]
    groups = []
    for name, params in named.items():
        params = [p for p in params if p.requires_grad]
        scale = scales.get(name, 1.0)
        if params:
            decay = {"weight_decay": 0.0} if name in scales else {}
            groups.append({"name": name, "params": params, "lr": lr * scale, "lr_scale": scale, **decay})
    return groups


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
