"""Class statistics that separate scarcity from imbalance: `class_stats(y)` and `ClassStats`.

Scarcity is few samples per class; imbalance is unequal class sizes. A dataset's `describe()`
reports both; `seqrep.imbalance` builds its weights and priors on these counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SeqrepError

__all__ = ["ClassStats", "class_stats", "size_groups"]


@dataclass(frozen=True)
class ClassStats:
    """Per-class counts and the numbers that separate scarcity from imbalance.

    counts: (K,) samples per class. effective: (K,) effective number of samples per class,
    (1 - beta**n) / (1 - beta) (Cui et al. 2019). groups: class indices of the head, medium and
    tail thirds by size (largest first).
    """

    counts: np.ndarray
    effective: np.ndarray
    beta: float
    groups: dict[str, np.ndarray]

    @property
    def n_classes(self) -> int:
        return len(self.counts)

    @property
    def n_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def ratio(self) -> float:
        """Largest / smallest class size (inf when a class is empty): imbalance."""
        smallest = self.counts.min()
        return float(self.counts.max() / smallest) if smallest > 0 else float("inf")

    @property
    def balance(self) -> float:
        """Normalised entropy of the class distribution: 1 = balanced, towards 0 = one class."""
        if self.n_classes < 2:
            return 1.0
        p = self.counts[self.counts > 0] / self.n_samples
        return float(-(p * np.log(p)).sum() / np.log(self.n_classes))

    def summary(self) -> dict:
        """JSON-ready: samples per class (min/median/mean/max), ratio, balance, group sizes."""
        c = self.counts
        return {
            "samples": self.n_samples,
            "classes": self.n_classes,
            "per_class": {
                "min": int(c.min()),
                "median": float(np.median(c)),
                "mean": round(float(c.mean()), 3),
                "max": int(c.max()),
            },
            "max_min_ratio": round(self.ratio, 3),
            "balance_entropy": round(self.balance, 4),
            "effective_samples": {
                "beta": self.beta,
                "min": round(float(self.effective.min()), 3),
                "total": round(float(self.effective.sum()), 3),
            },
            "classes_under_5": int((c < 5).sum()),
            "group_mean_size": {
                g: round(float(c[idx].mean()), 3) for g, idx in self.groups.items() if idx.size
            },
        }


def class_stats(y: np.ndarray, n_classes: int | None = None, beta: float = 0.999) -> ClassStats:
    """Statistics of integer labels y (n,) in 0..n_classes-1.

    Example:
        >>> s = class_stats(np.array([0, 0, 0, 1]))
        >>> s.counts.tolist(), s.ratio
        ([3, 1], 3.0)
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise SeqrepError(f"labels must be a non-empty 1-D array, got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise SeqrepError(f"labels must be integers >= 0, got dtype {y.dtype} (min {y.min()}).")
    if n_classes is not None and y.max() >= n_classes:
        raise SeqrepError(f"label {int(y.max())} is outside 0..{n_classes - 1}.")
    if not 0 <= beta < 1:
        raise SeqrepError(f"beta must be in [0, 1), got {beta}.")
    counts = np.bincount(y, minlength=n_classes or 0)
    effective = (1 - beta**counts) / (1 - beta)
    return ClassStats(counts=counts, effective=effective, beta=beta, groups=size_groups(counts))


def size_groups(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Class indices of the head, medium and tail thirds by size (largest first; ties keep
    class order)."""
    order = np.argsort(-counts, kind="stable")
    return dict(zip(("head", "medium", "tail"), np.array_split(order, 3)))
