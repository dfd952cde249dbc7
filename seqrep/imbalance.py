"""Class imbalance: the remedies fit can use (class weights, focal and logit-adjusted losses,
a balanced batch order), post-hoc logit adjustment, and per-class evaluation.

Scarcity is few samples per class; imbalance is unequal class sizes. `seqrep.data.class_stats`
measures both; `per_class_report` shows which classes a model fails on, grouped
head/medium/tail by training size. The remedy grid of notebook 04, which trains models, is in
`seqrep.experiments`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .config import WEIGHT_SCHEMES
from .data.classes import class_stats, size_groups
from .errors import SeqrepError

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = [
    "REMEDIES",
    "ClassReport",
    "FocalLoss",
    "LogitAdjustedLoss",
    "adjust_logits",
    "balanced_order",
    "batch_order",
    "class_weights",
    "make_loss",
    "per_class_report",
    "remedy_of",
    "split_per_class",
]

# Each remedy by name, as the TrainConfig fields it sets; the others keep their plain values
# (the panel's dropdown and notebook 04 use this table).
PLAIN = {"class_weights": "none", "loss": "cross_entropy", "sampler": "shuffle"}
REMEDIES: dict[str, dict] = {
    "none": {},
    "class weights: inverse frequency": {"class_weights": "inverse"},
    "class weights: sqrt inverse frequency": {"class_weights": "sqrt_inverse"},
    "class weights: effective number": {"class_weights": "effective"},
    "focal loss": {"loss": "focal"},
    "logit-adjusted loss": {"loss": "logit_adjusted"},
    "class-balanced sampler": {"sampler": "balanced"},
}


def remedy_of(config: TrainConfig) -> str:
    """The name in REMEDIES that `config`'s remedy fields describe ("none" if no single one)."""
    current = {k: getattr(config, k) for k in PLAIN}
    return next((name for name, fields in REMEDIES.items() if {**PLAIN, **fields} == current), "none")


def _counts_without_gaps(y: np.ndarray, n_classes: int | None, what: str) -> np.ndarray:
    """(K,) class counts of labels y; raises naming the classes that have no sample, for
    which a weight or a prior would divide by zero."""
    counts = class_stats(y, n_classes).counts
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise SeqrepError(
            f"{what}: classes {empty.tolist()} have no training samples, so their weight or "
            "prior is undefined. Use a split that keeps every class in train (Dataset.split "
            "does), or relabel the data without those classes."
        )
    return counts


# --------------------------------------------------------------------------------------------
# Remedies: class weights, losses, batch order
# --------------------------------------------------------------------------------------------


def class_weights(
    y: np.ndarray, scheme: str = "inverse", beta: float = 0.999, n_classes: int | None = None
) -> torch.Tensor:
    """(K,) float32 loss weight per class from training labels y (n,), normalised to mean 1.

    "inverse": scikit-learn's "balanced" weights n / (K * n_k). "sqrt_inverse": their square
    root, a milder correction. "effective": 1 / effective number of samples,
    (1 - beta) / (1 - beta**n_k) (Cui et al. 2019); beta -> 0 gives equal weights, beta -> 1
    approaches "inverse".

    Example:
        >>> class_weights(np.array([0, 0, 0, 1])).tolist()
        [0.5, 1.5]
    """
    from sklearn.utils.class_weight import compute_class_weight

    if scheme not in WEIGHT_SCHEMES:
        raise SeqrepError(
            f"class_weights: unknown scheme {scheme!r}; use one of {', '.join(WEIGHT_SCHEMES)}."
        )
    counts = _counts_without_gaps(y, n_classes, f"class_weights(scheme={scheme!r})")
    if scheme == "effective":
        weights = 1 / class_stats(y, len(counts), beta).effective
    else:
        weights = compute_class_weight("balanced", classes=np.arange(len(counts)), y=np.asarray(y))
        if scheme == "sqrt_inverse":
            weights = np.sqrt(weights)
    return torch.as_tensor(weights / weights.mean(), dtype=torch.float32, device="cpu")  # fit moves the loss


def _weighted_mean(losses: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-sample losses (batch,), each weighted by weight[y] and normalised by the
    weights' sum: the reduction nn.CrossEntropyLoss(weight=...) uses."""
    if weight is None:
        return losses.mean()
    w = weight[y]
    return (w * losses).sum() / w.sum()


def _weight_buffer(weight) -> torch.Tensor | None:
    return None if weight is None else torch.as_tensor(weight, dtype=torch.float32, device="cpu")


class FocalLoss(nn.Module):
    """Softmax focal loss for K classes (Lin et al. 2017): -w_y (1 - p_y)**gamma log p_y.

    logits: (batch, K), y: (batch,) -> scalar. gamma = 0 is cross-entropy; larger gamma
    down-weights samples the model already classifies confidently. weight: (K,) class weights
    or None; the mean is weighted as in nn.CrossEntropyLoss(weight=...).
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        if not gamma >= 0:
            raise SeqrepError(f"FocalLoss: gamma must be >= 0 (0 = cross-entropy), got {gamma}.")
        self.gamma = float(gamma)
        self.register_buffer("weight", _weight_buffer(weight))

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, y[:, None])[:, 0]
        if self.gamma == 0:
            return _weighted_mean(-log_p, y, self.weight)
        # 1 - p is exactly 0 for confident samples; the clamp keeps (1-p)**(gamma-1) finite in
        # the backward pass for gamma < 1 and changes the loss by less than 1e-12.
        modulator = (-torch.expm1(log_p)).clamp(min=1e-12) ** self.gamma
        return _weighted_mean(-modulator * log_p, y, self.weight)


class LogitAdjustedLoss(nn.Module):
    """Logit-adjusted cross-entropy (Menon et al. 2021): CE(logits + tau * log prior, y).

    Training against prior-shifted logits leaves the raw logits free of the training set's
    preference for large classes, so their argmax targets balanced error. tau = 0 is
    cross-entropy. prior: (K,) positive class counts or frequencies of the training labels
    (normalised here). logits: (batch, K), y: (batch,) -> scalar.
    """

    def __init__(
        self,
        prior,
        tau: float = 1.0,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.tau = float(tau)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("log_prior", _log_prior(prior, "LogitAdjustedLoss"))
        self.register_buffer("weight", _weight_buffer(weight))

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits + self.tau * self.log_prior, y, weight=self.weight,
            label_smoothing=self.label_smoothing,
        )


def _log_prior(prior, where: str) -> torch.Tensor:
    """(K,) log of the normalised prior; raises naming classes with a non-positive prior."""
    prior = torch.as_tensor(np.asarray(prior, dtype=np.float64))
    if prior.ndim != 1 or len(prior) == 0:
        raise SeqrepError(f"{where}: prior must be a (K,) vector, got shape {tuple(prior.shape)}.")
    bad = torch.nonzero(~(prior > 0))[:, 0].tolist()
    if bad:
        raise SeqrepError(
            f"{where}: classes {bad} have a prior of 0 (or not a number); log prior is "
            "undefined. Every class needs at least one training sample."
        )
    return torch.log(prior / prior.sum()).float()


def adjust_logits(logits: torch.Tensor, prior, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al. 2021): logits - tau * log(prior).

    logits: (n, K) of a model trained with a plain loss; prior: (K,) class counts or
    frequencies of its training set. Subtracting the log prior removes the training set's
    preference for large classes from the argmax, at no training cost. tau = 0 returns the
    logits. Do not apply it to a model trained with the logit-adjusted loss (adjusted twice).

    Example:
        >>> adjust_logits(torch.zeros(1, 2), [3, 1]).argmax(1).item()
        1
    """
    log_prior = _log_prior(prior, "adjust_logits")
    logits = torch.as_tensor(logits)
    if logits.ndim != 2 or logits.shape[1] != len(log_prior):
        raise SeqrepError(
            f"adjust_logits: logits must be (n, {len(log_prior)}) for a prior of "
            f"{len(log_prior)} classes, got shape {tuple(logits.shape)}."
        )
    return logits - tau * log_prior.to(logits.dtype)


def make_loss(config: TrainConfig, y_train: np.ndarray, n_classes: int) -> nn.Module:
    """The training loss `config` asks for, given the training labels y_train (n,).
    Returns a module: loss(logits (batch, K), y (batch,)) -> scalar. Class weights
    (config.class_weights) combine with every loss; label smoothing works with cross-entropy
    and the logit-adjusted loss."""
    weight = None
    if config.class_weights != "none":
        weight = class_weights(y_train, config.class_weights, config.effective_beta, n_classes)
    if config.loss == "focal":  # TrainConfig rules out label smoothing with it
        return FocalLoss(config.focal_gamma, weight)
    if config.loss == "logit_adjusted":
        counts = _counts_without_gaps(y_train, n_classes, "loss='logit_adjusted'")
        return LogitAdjustedLoss(counts, config.logit_tau, weight, config.label_smoothing)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def batch_order(config: TrainConfig, y_train: np.ndarray, epoch: int) -> torch.Tensor:
    """(n,) indices of the training samples in the order this epoch visits them; fit cuts it
    into batches. Deterministic in (config.seed, epoch), so a resumed run repeats it.
    sampler "shuffle": a permutation; "balanced": `balanced_order`. On the CPU, where the
    training set lives (fit moves each batch to the run's device)."""
    generator = torch.Generator().manual_seed(config.seed * 7919 + epoch)
    if config.sampler == "balanced":
        return balanced_order(y_train, generator)
    return torch.randperm(len(y_train), generator=generator, device="cpu")


def balanced_order(y: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """(n,) sample indices in which each of the K classes present in y (n,) appears n // K or
    n // K + 1 times, in random order: small classes repeat, large ones are subsampled.

    Same length as a shuffle, so an epoch has the same number of steps. Within a class,
    samples are drawn without replacement until all have been used, so a class of m samples
    drawn r times repeats none more than ceil(r / m) times.
    """
    y = torch.from_numpy(np.ascontiguousarray(y))
    classes = torch.unique(y)
    n, k = len(y), len(classes)
    draws = torch.full((k,), n // k, device="cpu")
    draws[torch.randperm(k, generator=generator, device="cpu")[: n % k]] += 1
    picked = []
    for c, r in zip(classes, draws.tolist()):
        members = torch.nonzero(y == c)[:, 0]
        cycles = -(-r // len(members))
        shuffled = [members[torch.randperm(len(members), generator=generator, device="cpu")] for _ in range(cycles)]
        picked.append(torch.cat(shuffled)[:r])
    order = torch.cat(picked)
    return order[torch.randperm(n, generator=generator, device="cpu")]


# --------------------------------------------------------------------------------------------
# Experiments and per-class evaluation
# --------------------------------------------------------------------------------------------


def split_per_class(
    y: np.ndarray, train_sizes, test_per_class: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) sample indices with exactly train_sizes[k] training and
    `test_per_class` test samples of class k; other samples are left out.

    Gives the same classes any class-size profile (e.g. `seqrep.data.class_sizes`) while the
    test set stays balanced. For one seed the test set does not depend on train_sizes, and
    larger train_sizes extend smaller ones (nested training sets), so a sweep compares like
    with like. y: (n,) labels; train_sizes: (K,).
    """
    y = np.asarray(y)
    sizes = np.asarray(train_sizes)
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or (sizes < 0).any():
        raise SeqrepError(f"train_sizes must be a (K,) vector of integers >= 0, got {train_sizes!r}.")
    if test_per_class < 0:
        raise SeqrepError(f"test_per_class must be >= 0, got {test_per_class}.")
    counts = class_stats(y, len(sizes)).counts
    need = sizes + test_per_class
    if (counts < need).any():
        k = int(np.argmax(counts < need))  # the first class that is short
        raise SeqrepError(
            f"split_per_class: class {k} has {counts[k]} samples but needs {need[k]} "
            f"({sizes[k]} train + {test_per_class} test; {int((counts < need).sum())} classes are "
            "short). Generate more samples per class or ask for fewer."
        )
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k, size in enumerate(sizes):
        idx = rng.permutation(np.flatnonzero(y == k))
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class : test_per_class + size])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@dataclass(frozen=True)
class ClassReport:
    """Per-class evaluation of predictions on a test set.

    table: one row per class index: name, train (training samples), group (head / medium /
    tail third by training size), precision, recall, f1, support (test samples); recall and
    f1 are NaN for classes without test samples.
    confusion: (K, K) confusion matrix normalised per true class (row k: where class k's test
    samples went; rows of classes without test samples are 0).
    groups: one row per group: classes, train_min, train_max, support, accuracy (over the
    group's test samples) and mean_recall (over its classes with test samples).
    balanced_accuracy and macro_f1 average over the classes present in the test labels.
    """

    table: pd.DataFrame
    confusion: np.ndarray
    groups: pd.DataFrame
    accuracy: float
    balanced_accuracy: float
    macro_f1: float

    @property
    def tail_recall(self) -> float:
        """Mean recall of the tail third (smallest training classes)."""
        return float(self.groups.loc["tail", "mean_recall"])

    def summary(self) -> dict:
        """Headline numbers: accuracy, balanced accuracy, macro-F1, mean recall per group."""
        out = {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_f1": self.macro_f1,
        }
        out.update({f"{g}_recall": float(r) for g, r in self.groups["mean_recall"].items()})
        return out

    def top_confusions(self, k: int = 10) -> pd.DataFrame:
        """The k largest off-diagonal cells of `confusion`: true class, predicted class and
        the fraction of the true class's test samples predicted as that class."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        flat = np.argsort(-off, axis=None, kind="stable")[:k]
        rows, cols = np.unravel_index(flat, off.shape)
        keep = off[rows, cols] > 0
        names = self.table["name"].to_numpy()
        return pd.DataFrame({
            "true": names[rows[keep]],
            "predicted": names[cols[keep]],
            "fraction": off[rows[keep], cols[keep]],
            "true_train_size": self.table["train"].to_numpy()[rows[keep]],
        })


def per_class_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    train_counts: np.ndarray,
    class_names=None,
) -> ClassReport:
    """Per-class precision, recall, F1 and support (scikit-learn), head/medium/tail groups by
    training size, balanced accuracy, macro-F1 and the normalised confusion matrix.

    y_true, y_pred: (n,) test labels and predictions in 0..K-1; train_counts: (K,) training
    samples per class (defines K and the groups); class_names: K names (default "0".."K-1").

    Example:
        >>> r = per_class_report(np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([9, 1]))
        >>> r.table["recall"].tolist(), r.balanced_accuracy
        ([0.5, 1.0], 0.75)
    """
    from sklearn.metrics import (
        balanced_accuracy_score,
        classification_report,
        confusion_matrix,
        f1_score,
    )

    y_true, y_pred, counts = _check_report_inputs(y_true, y_pred, train_counts)
    k = len(counts)
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise SeqrepError(f"per_class_report: {len(names)} class_names for {k} classes.")
    labels = np.arange(k)
    per_class = classification_report(
        y_true, y_pred, labels=labels, output_dict=True, zero_division=0
    )
    table = pd.DataFrame([per_class[str(c)] for c in labels], index=labels).rename(
        columns={"f1-score": "f1"}
    )
    table["support"] = table["support"].astype(int)
    table.loc[table["support"] == 0, ["recall", "f1"]] = np.nan
    groups = size_groups(counts)
    group_of = {int(c): g for g, idx in groups.items() for c in idx}
    table.insert(0, "name", names)
    table.insert(1, "train", counts)
    table.insert(2, "group", [group_of[c] for c in labels])
    present = np.unique(y_true)
    return ClassReport(
        table=table,
        confusion=confusion_matrix(y_true, y_pred, labels=labels, normalize="true"),
        groups=_group_table(table, groups, y_true, y_pred),
        accuracy=float((y_true == y_pred).mean()),
        balanced_accuracy=float(_quiet(balanced_accuracy_score, y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
    )


def _quiet(metric, *args):
    """metric(*args) without scikit-learn's "y_pred contains classes not in y_true" warning:
    a model predicting a class absent from a small test set is expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return metric(*args)


def _check_report_inputs(y_true, y_pred, train_counts) -> tuple[np.ndarray, ...]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise SeqrepError(
            f"per_class_report: train_counts must be a non-empty (K,) vector of counts >= 0, "
            f"got shape {counts.shape}; pass train_dataset.counts."
        )
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise SeqrepError(
            f"per_class_report: y_true and y_pred must be non-empty (n,) vectors of the same "
            f"length, got shapes {y_true.shape} and {y_pred.shape}; pass logits.argmax(1) as "
            "y_pred."
        )
    for what, y in (("y_true", y_true), ("y_pred", y_pred)):
        out = np.flatnonzero((y < 0) | (y >= len(counts)))
        if out.size:
            raise SeqrepError(
                f"per_class_report: {what}[{int(out[0])}] = {y[out[0]]} is outside the "
                f"{len(counts)} classes of train_counts (0..{len(counts) - 1})."
            )
    return y_true.astype(np.int64), y_pred.astype(np.int64), counts.astype(np.int64)


def _group_table(table, groups, y_true, y_pred) -> pd.DataFrame:
    rows = {}
    for g, idx in groups.items():
        in_group = np.isin(y_true, idx)
        rows[g] = {
            "classes": len(idx),
            "train_min": int(table["train"].iloc[idx].min()) if len(idx) else 0,
            "train_max": int(table["train"].iloc[idx].max()) if len(idx) else 0,
            "support": int(in_group.sum()),
            "accuracy": float((y_true[in_group] == y_pred[in_group]).mean()) if in_group.any() else np.nan,
            "mean_recall": float(table["recall"].iloc[idx].mean()) if len(idx) else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")
