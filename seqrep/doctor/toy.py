"""A small learnable sequence task for the gallery: every sequence hides one class marker
among noise, at a random real step, and is right-padded to a common length.

Float version: (batch, time, features); the class is the channel of a bump. Token version:
(batch, time) integers, pad id 0; the class is which marker token (1..C) appears."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Toy:
    """x: (batch, time, features) float, tokens: (batch, time) int64 (0 = padding),
    y: (batch,) int64 classes, lengths: (batch,) int64, mask: (batch, time) bool (True = real)."""

    x: torch.Tensor
    tokens: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    def subset(self, index) -> Toy:
        return Toy(self.x[index], self.tokens[index], self.y[index], self.lengths[index], self.mask[index])


VOCAB = 24
FEATURES = 4
CLASSES = 4


def make_toy(n: int = 16, length: int = 24, seed: int = 0, full: bool = False) -> Toy:
    """`n` sequences of up to `length` steps; full=True gives every sequence all `length` steps.
    Padded steps hold zeros (float) and the pad id 0 (tokens); the longest sequence still has
    two padded steps, so every sample of a padded batch has some padding."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    y = y[torch.randperm(n, generator=g)]
    lengths = (torch.full((n,), length) if full else
               torch.randint(length // 2, length - 1, (n,), generator=g))
    steps = torch.arange(length)
    mask = steps[None, :] < lengths[:, None]
    x = 0.3 * torch.randn(n, length, FEATURES, generator=g)
    tokens = torch.randint(CLASSES + 1, VOCAB, (n, length), generator=g)
    where = (torch.rand(n, generator=g) * (lengths - 2)).long() + 1
    for i in range(n):
        x[i, where[i] - 1:where[i] + 2, y[i]] += torch.tensor([1.0, 2.0, 1.0])
        tokens[i, where[i]] = y[i] + 1
    x = x * mask[..., None]
    tokens = tokens * mask
    return Toy(x, tokens, y, lengths, mask)
