"""The sequence classifier, fixed: a representation (multi-scale 1-D convolutions + attention
pooling over time) feeding a linear readout, with the seed's fix built in.

The fix, in one place (`SequenceClassifier.extract_features`): while training, features stay
tensors with autograd on and the representation in train() mode, so gradients reach it; only
inference uses eval() and torch.no_grad().
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SeqrepError

__all__ = [
    "AttentionPooling",
    "MultiScaleBlock",
    "Representation",
    "SequenceClassifier",
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
        if self.pool <= 1:
            return x
        p = self.pool
        return torch.cat(
            [
                F.avg_pool1d(x, p, p, ceil_mode=True),
                F.max_pool1d(x, p, p, ceil_mode=True),
                -F.max_pool1d(-x, p, p, ceil_mode=True),
            ],
            dim=1,
        )


class MultiScaleBlock(nn.Module):
    """Parallel convolutions at several time scales plus a max-pool branch (Inception-style),
    after a 1x1 bottleneck; BatchNorm, ReLU and a residual connection.

    x: (batch, in_channels, time) -> (batch, out_channels, time).
    Branch i convolves with kernel_sizes[i] taps spaced dilations[i] apart (default 1), so it
    spans (kernel_sizes[i] - 1) * dilations[i] + 1 steps. `out_channels` is split evenly over
    len(kernel_sizes) + 1 branches.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes=(9, 19, 39),
        bottleneck: int = 32,
        dilations=None,
    ):
        super().__init__()
        n_branches = len(kernel_sizes) + 1
        if out_channels % n_branches:
            raise SeqrepError(
                f"width {out_channels} must divide evenly over {n_branches} branches "
                f"({len(kernel_sizes)} kernel sizes + max-pool); use a multiple of {n_branches}."
            )
        dilations = tuple(dilations or (1,) * len(kernel_sizes))
        if any(k < 1 for k in kernel_sizes) or len(dilations) != len(kernel_sizes) or min(dilations) < 1:
            raise SeqrepError(
                f"kernel sizes must be >= 1 with one dilation >= 1 each, got kernel_sizes="
                f"{tuple(kernel_sizes)}, dilations={dilations}."
            )
        branch = out_channels // n_branches
        use_bottleneck = bottleneck > 0 and in_channels > bottleneck
        mid = bottleneck if use_bottleneck else in_channels
        self.bottleneck = nn.Conv1d(in_channels, mid, 1, bias=False) if use_bottleneck else nn.Identity()
        self.branches = nn.ModuleList(
            nn.Conv1d(mid, branch, k, padding="same", dilation=d, bias=False)
            for k, d in zip(kernel_sizes, dilations)
        )
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

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output before its ReLU: (batch, out_channels, time)."""
        z = self.bottleneck(x)
        out = torch.cat([conv(z) for conv in self.branches] + [self.pool_branch(x)], dim=1)
        return self.norm(out) + self.shortcut(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.preactivation(x))


class AttentionPooling(nn.Module):
    """Attention over time steps: a learned score per step, a softmax that ignores padding,
    a weighted sum; concatenated with the masked global average and, with ppv=True, the soft
    proportion of positive values of the pre-activation (mean of sigmoid(4 z), after ROCKET's
    PPV feature).

    h: (batch, channels, time), mask: (batch, time) bool or None, z: pre-activation like h
    (needed when ppv) -> features (batch, (3 if ppv else 2) * channels), weights (batch, time)
    summing to 1 over real steps. With `attention=False` the weights are uniform over real
    steps (global average pooling).
    """

    def __init__(self, channels: int, attention: bool = True, hidden: int = 32, ppv: bool = False):
        super().__init__()
        self.ppv = ppv
        self.score = (
            # No bias on the last layer: softmax ignores a constant shift, so it could not learn.
            nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, 1, 1, bias=False))
            if attention
            else None
        )

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor | None = None, z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
        parts = [attended, avg]
        if self.ppv:
            parts.append((torch.sigmoid(4 * z) * real[:, None]).sum(-1) / count)
        return torch.cat(parts, dim=1), weights


class Representation(nn.Module):
    """Stem -> multi-scale blocks -> attention pooling (+ average, + optional PPV).

    x: (batch, channels, time), mask: (batch, time) bool or None
    -> (batch, (3 if ppv else 2) * width).
    """

    def __init__(
        self,
        in_channels: int,
        width: int = 64,
        kernel_sizes=(9, 19, 39),
        blocks: int = 2,
        bottleneck: int = 32,
        attention: bool = True,
        pool: int = 1,
        dilations=None,
        ppv: bool = False,
    ):
        super().__init__()
        self.stem = Stem(in_channels, pool)
        channels = [self.stem.out_channels] + [width] * blocks
        self.blocks = nn.Sequential(*(
            MultiScaleBlock(channels[i], width, kernel_sizes, bottleneck, dilations)
            for i in range(blocks)
        ))
        self.pooling = AttentionPooling(width, attention, ppv=ppv)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False
    ):
        if mask is not None:  # padded steps hold zeros, whatever the caller put there
            x = x.masked_fill(~mask[:, None, :], 0.0)
        h = self.stem(x)
        for block in self.blocks[:-1]:
            h = block(h)
        z = self.blocks[-1].preactivation(h)
        h = self.blocks[-1].act(z)
        features, weights = self.pooling(h, _pool_mask(mask, self.stem.pool, h.shape[-1]), z)
        return (features, weights) if return_attention else features

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights mapped back to input time steps, in eval mode: (batch, time), each
        row sums to 1 (a pooled step's weight is spread evenly over the input steps it covers)."""
        self.eval()
        with torch.no_grad():
            _, weights = self(x, mask, return_attention=True)
        window = torch.arange(x.shape[-1], device=weights.device) // self.stem.pool
        return weights[:, window] / torch.bincount(window)[window]


class SequenceClassifier(nn.Module):
    """representation (multi-scale convolutions + attention over time) -> dropout -> readout.

    in_channels, n_classes: data shape; length: a typical series length, used for the probe
    forward that measures the readout's input size. readout_hidden > 0 makes the readout a
    small MLP. pool: stem downsampling factor (1 = none).

    x: (batch, in_channels, time) float, mask: (batch, time) bool or None
    -> logits (batch, n_classes).
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        length: int,
        *,
        width: int = 64,
        kernel_sizes=(9, 19, 39),
        blocks: int = 2,
        bottleneck: int = 32,
        attention: bool = True,
        pool: int = 1,
        dilations=None,
        ppv: bool = False,
        dropout: float = 0.1,
        readout_hidden: int = 0,
    ):
        super().__init__()
        if in_channels < 1 or n_classes < 2 or length < 1:
            raise SeqrepError(
                f"need in_channels >= 1, n_classes >= 2 and length >= 1, got {in_channels}, "
                f"{n_classes}, {length}."
            )
        self.representation = Representation(
            in_channels, width, kernel_sizes, blocks, bottleneck, attention, pool, dilations, ppv
        )
        self.feature_dim = self._probe_feature_dim(in_channels, length)
        self.dropout = nn.Dropout(dropout)
        self.readout = (
            nn.Linear(self.feature_dim, n_classes)
            if readout_hidden <= 0
            else nn.Sequential(
                nn.Linear(self.feature_dim, readout_hidden), nn.ReLU(), nn.Linear(readout_hidden, n_classes)
            )
        )

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
    for name, child in [*model.named_children(), ("all", model)]:
        params = list(child.parameters())
        if not params:
            continue
        row = {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        }
        if optimizer is not None:
            row["in_optimizer"] = sum(p.numel() for p in params if id(p) in held)
        rows[name] = row
    return rows


def stem_pool(length: int, target: int = 512) -> int:
    """The stem's downsampling factor that brings `length` to at most about `target` steps."""
    return max(1, math.ceil(length / target))
