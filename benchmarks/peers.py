"""Learned peers for the accuracy benchmark, written from their papers, with the call signature
of seqrep's models: `model(x, training=None, mask=None) -> logits (batch, n_classes)`,
x: (batch, channels, time), mask: (batch, time) bool (True = real step) or None.

- FCN and ResNet: Z. Wang, W. Yan, T. Oates, "Time series classification from scratch with deep
  neural networks: a strong baseline", IJCNN 2017, Section III.B-C and Fig. 1(b), 1(c).
- InceptionTime: H. Ismail Fawaz et al., "InceptionTime: Finding AlexNet for time series
  classification", Data Mining and Knowledge Discovery 34, 2020, Section 3.1-3.3 and Fig. 1-2.
  The paper's classifier is an ensemble of 5 such networks; `InceptionTime` here is ONE network
  (the ensemble does not fit a 60 s budget on 2 cores: one network already gets only ~100
  optimiser steps at length 512); `InceptionTimeEnsemble` averages the softmax of several.

Every network ends in global average pooling over time (over real steps when a mask is given)
and a linear layer, as in the papers; softmax lives in the loss. No stem or downsampling is
added: the networks see the series at full length, as published.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FCN", "PEERS", "InceptionTime", "InceptionTimeEnsemble", "ResNet"]


def _gap(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Global average pooling over time, over real steps only: (B, C, T) -> (B, C)."""
    if mask is None:
        return h.mean(-1)
    m = mask[:, None, : h.shape[-1]].to(h.dtype)
    return (h * m).sum(-1) / m.sum(-1).clamp(min=1)


class _Peer(nn.Module):
    """The shared calling convention: explicit train/eval mode, no autograd at inference,
    padded steps zeroed."""

    def forward(self, x: torch.Tensor, training: bool | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        training = self.training if training is None else training
        self.train(training)
        if mask is not None:
            x = x.masked_fill(~mask[:, None], 0.0)
        if training:
            return self.logits(x, mask)
        with torch.no_grad():
            return self.logits(x, mask)

    def logits(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


def _conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    # Keras "same" padding; the papers' BatchNorm (Keras defaults: momentum 0.99, eps 1e-3).
    return nn.Sequential(nn.Conv1d(cin, cout, k, padding="same"), nn.BatchNorm1d(cout, eps=1e-3, momentum=0.01))


class FCN(_Peer):
    """Wang et al. 2017, Sec. III.B, Fig. 1(b): three convolutional blocks (Conv1D + BN + ReLU)
    with 128, 256, 128 filters of length 8, 5, 3 (stride 1, no pooling), then global average
    pooling and a softmax layer."""

    def __init__(self, in_channels: int, n_classes: int, length: int | None = None):
        super().__init__()
        self.blocks = nn.Sequential(
            _conv_bn(in_channels, 128, 8), nn.ReLU(),
            _conv_bn(128, 256, 5), nn.ReLU(),
            _conv_bn(256, 128, 3), nn.ReLU(),
        )
        self.fc = nn.Linear(128, n_classes)

    def logits(self, x, mask):
        return self.fc(_gap(self.blocks(x), mask))


class _ResidualBlock(nn.Module):
    """Three Conv-BN(-ReLU) layers of lengths 8, 5, 3; the shortcut (a 1x1 convolution + BN when
    the channel count changes, else BN alone, as in the authors' code) is added before the last
    ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, 8), nn.ReLU(),
            _conv_bn(cout, cout, 5), nn.ReLU(),
            _conv_bn(cout, cout, 3),
        )
        self.shortcut = _conv_bn(cin, cout, 1) if cin != cout else nn.BatchNorm1d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet(_Peer):
    """Wang et al. 2017, Sec. III.C, Fig. 1(c): three residual blocks of 64, 128, 128 filters,
    each block the FCN's three convolutions (8, 5, 3) with a shortcut, then global average
    pooling and a softmax layer."""

    def __init__(self, in_channels: int, n_classes: int, length: int | None = None):
        super().__init__()
        self.blocks = nn.Sequential(
            _ResidualBlock(in_channels, 64), _ResidualBlock(64, 128), _ResidualBlock(128, 128)
        )
        self.fc = nn.Linear(128, n_classes)

    def logits(self, x, mask):
        return self.fc(_gap(self.blocks(x), mask))


class _InceptionModule(nn.Module):
    """Ismail Fawaz et al. 2020, Sec. 3.2, Fig. 2: a bottleneck (32 filters of length 1, used when
    the input has more than one channel), three convolutions of lengths 10, 20, 40 with 32
    filters each on the bottleneck's output, and a max-pooling (size 3) branch followed by a
    32-filter length-1 convolution; the four outputs concatenated (128 channels), BN, ReLU."""

    def __init__(self, cin: int, filters: int = 32, bottleneck: int = 32, kernels=(10, 20, 40)):
        super().__init__()
        self.bottleneck = nn.Conv1d(cin, bottleneck, 1, bias=False) if cin > 1 else nn.Identity()
        mid = bottleneck if cin > 1 else cin
        self.convs = nn.ModuleList(nn.Conv1d(mid, filters, k, padding="same", bias=False) for k in kernels)
        self.pool_conv = nn.Conv1d(cin, filters, 1, bias=False)
        self.bn = nn.BatchNorm1d(filters * (len(kernels) + 1), eps=1e-3, momentum=0.01)

    def forward(self, x):
        z = self.bottleneck(x)
        pooled = F.max_pool1d(x, 3, stride=1, padding=1)
        out = torch.cat([conv(z) for conv in self.convs] + [self.pool_conv(pooled)], 1)
        return F.relu(self.bn(out))


class InceptionTime(_Peer):
    """Ismail Fawaz et al. 2020, Sec. 3.1, Fig. 1: six Inception modules (depth 6) with a
    residual connection every three modules (shortcut: 1x1 convolution + BN, added, ReLU), then
    global average pooling and a softmax layer. One network of the paper's ensemble of five."""

    def __init__(self, in_channels: int, n_classes: int, length: int | None = None, depth: int = 6):
        super().__init__()
        self.modules_ = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        cin, res_in = in_channels, in_channels
        for d in range(depth):
            self.modules_.append(_InceptionModule(cin))
            cin = 128
            if d % 3 == 2:
                self.shortcuts.append(nn.Sequential(nn.Conv1d(res_in, cin, 1, bias=False),
                                                    nn.BatchNorm1d(cin, eps=1e-3, momentum=0.01)))
                res_in = cin
        self.fc = nn.Linear(128, n_classes)

    def logits(self, x, mask):
        h, res = x, x
        for d, module in enumerate(self.modules_):
            h = module(h)
            if d % 3 == 2:
                h = F.relu(h + self.shortcuts[d // 3](res))
                res = h
        return self.fc(_gap(h, mask))


class InceptionTimeEnsemble(_Peer):
    """The paper's ensemble (Sec. 3.3): the average of the networks' softmax outputs; returned
    as log-probabilities so that argmax and cross-entropy behave as with logits."""

    def __init__(self, in_channels: int, n_classes: int, length: int | None = None, members: int = 5):
        super().__init__()
        self.members = nn.ModuleList(InceptionTime(in_channels, n_classes) for _ in range(members))

    def logits(self, x, mask):
        probs = torch.stack([torch.softmax(m.logits(x, mask), -1) for m in self.members]).mean(0)
        return probs.clamp(min=1e-12).log()


PEERS = {"fcn": FCN, "resnet": ResNet, "inceptiontime": InceptionTime}
