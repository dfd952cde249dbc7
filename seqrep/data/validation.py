"""The dataset type and its checks: `SequenceDataset` (validated on construction),
`check_arrays`, `check_train_val` (what a (train, validation) pair must satisfy before
training) and `stratified_split`.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..errors import SeqrepError
from .classes import class_stats

__all__ = ["SequenceDataset", "channel_spread", "check_arrays", "check_train_val", "scale_problem",
           "stratified_split"]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_arrays(
    X: np.ndarray,
    y: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    n_classes: int | None = None,
    min_length: int = 1,
    where: str = "X",
) -> None:
    """Raise `SeqrepError` naming the first problem in (X, y, mask), or return None.

    X: (n, channels, time) finite floats within the float32 range (seqrep trains in float32);
    y: (n,) integer labels in 0..n_classes-1;
    mask: (n, time) bool, True on real time steps (padding may hold anything).
    `min_length`: the fewest real time steps a series may have. `where` names the data in
    messages (a file, a dataset name).
    """
    try:
        X = np.asarray(X)
    except ValueError:
        raise SeqrepError(
            f"{where}: series of different lengths cannot form one array; zero-pad them to the "
            "longest and pass mask (n_samples, time), True on real steps."
        ) from None
    if X.ndim != 3:
        hint = " Add a channel axis with X[:, None, :]." if X.ndim == 2 else ""
        raise SeqrepError(
            f"{where}: expected an array of shape (n_samples, channels, time), got rank "
            f"{X.ndim} with shape {X.shape}.{hint}"
        )
    if 0 in X.shape:
        raise SeqrepError(
            f"{where}: empty data, shape {X.shape} (n_samples, channels, time); "
            "every axis needs at least one element."
        )
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise SeqrepError(f"{where}: values must be real numbers, got dtype {X.dtype}.")
    n, _, t = X.shape
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (n, t) or mask.dtype != bool:
            raise SeqrepError(
                f"{where}: mask must be a bool array of shape {(n, t)} (n_samples, time), "
                f"got {mask.dtype} {mask.shape}."
            )
    _check_values(X, mask, min_length, where)
    _check_float32_range(X, mask, where)
    if y is not None:
        _check_labels(np.asarray(y), n, n_classes, where)


def _check_values(X: np.ndarray, mask: np.ndarray | None, min_length: int, where: str) -> None:
    """Every series has at least `min_length` real steps, and every real value is finite."""
    lengths = mask.sum(axis=1) if mask is not None else np.full(X.shape[0], X.shape[2])
    short = np.flatnonzero(lengths < min_length)
    if short.size:
        i = int(short[0])
        raise SeqrepError(
            f"{where}: sample {i} has {int(lengths[i])} time steps, fewer than the minimum "
            f"{min_length} ({short.size} samples are that short). Drop them, pad them, or use "
            "smaller kernels (TrainConfig.kernel_sizes)."
        )
    bad = ~np.isfinite(X)
    if mask is not None:
        bad &= mask[:, None, :]
    if bad.any():
        i, c, s = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(X[i, c, s]) else "Inf"
        raise SeqrepError(
            f"{where}: {int(bad.sum())} non-finite values; the first is {kind} at sample {i}, "
            f"channel {c}, time {s}. Fill them (load_dataset(..., missing='interpolate'), or "
            "--missing interpolate on the command line, interpolates linearly) or drop those "
            "samples."
        )


def _check_float32_range(X: np.ndarray, mask: np.ndarray | None, where: str) -> None:
    """Finite float64 values beyond float32's range would become Inf once seqrep casts them."""
    if X.dtype.itemsize > 4 and np.issubdtype(X.dtype, np.floating):
        big = np.abs(X) > np.finfo(np.float32).max
        if mask is not None:
            big &= mask[:, None, :]
        if big.any():
            i, c, s = (int(v) for v in np.argwhere(big)[0])
            raise SeqrepError(
                f"{where}: {int(big.sum())} values exceed the float32 range "
                f"(+-{np.finfo(np.float32).max:.3g}) that seqrep trains in; the first is "
                f"{X[i, c, s]:.3g} at sample {i}, channel {c}, time {s}. Rescale the data "
                "(e.g. z-normalise each series) before building the dataset."
            )


def channel_spread(X: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel of X (n, channels, time), over every real step (mask (n, time)): the mean,
    the standard deviation and the sum of squared deviations from the mean, in float64, each
    (channels,)."""
    means, stds, sums = [], [], []
    for c in range(X.shape[1]):
        values = X[:, c, :].astype(np.float64)
        values = values[mask] if mask is not None else values.ravel()
        deviations = values - values.mean()
        sums.append(float(deviations @ deviations))
        means.append(float(values.mean()))
        stds.append(float(np.sqrt(sums[-1] / values.size)))
    return np.array(means), np.array(stds), np.array(sums)


# Both starts normalise the input with sums over many of its values in float32: the data-fitted
# start sums each channel's squared deviations over the whole training set (seqrep.rocket),
# init="random"'s input BatchNorm over one batch. Past float32's 3.4e38 the sum is inf, the
# normalised input 0 and the model a constant. Measured on synthetic data (6 classes, 192
# training series x 96 steps, std 1), scaled: init="data" 0.979 validation accuracy at x1.3e17,
# 0.417 (the majority class) at x1.5e17 — the whole-set sum crosses 3.4e38 at x1.36e17;
# init="random" (480 steps) 1.000 at x3e17, 0.417 at x5e17 — one batch's sum (16 x 96 values)
# crosses at x4.7e17. Refused from a hundredth of the crossing: 10x in scale.
OVERFLOW_MARGIN = 100.0
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def scale_problem(X: np.ndarray, mask: np.ndarray | None = None, where: str = "X") -> str | None:
    """What goes wrong when a model trains on X (n, channels, time) at its scale, or None: a
    channel whose sum of squared deviations (over every real step) comes within
    OVERFLOW_MARGIN of float32's range, where the statistics the models normalise with
    overflow and the model becomes a constant."""
    _, stds, sums = channel_spread(X, mask)
    worst = int(np.argmax(sums))
    if sums[worst] <= _FLOAT32_MAX / OVERFLOW_MARGIN:
        return None
    peak = float(np.nanmax(np.abs(X[:, worst, :] if mask is None else X[:, worst, :][mask])))
    return (
        f"{where}: channel {worst} is too large in scale to train on (std {stds[worst]:.3g}, values up "
        f"to {peak:.3g}): the models normalise the input with sums of squared values in float32, "
        f"which reach its limit ({_FLOAT32_MAX:.3g}) and turn the model into a constant (measured: "
        "series of std 1 scaled by 1.3e17 train, by 1.5e17 give a constant model; seqrep refuses "
        "from a tenth of where the sums overflow). Rescale the data: z-normalise "
        f"each series ((x - x.mean()) / x.std()), or divide every value by {10 ** np.floor(np.log10(peak)):.0e}."
    )


def _check_labels(y: np.ndarray, n: int, n_classes: int | None, where: str) -> None:
    """y: (n,) integer labels in 0..n_classes-1 (or >= 0 when n_classes is unknown)."""
    if y.ndim != 1:
        raise SeqrepError(f"{where}: labels must be one-dimensional, got shape {y.shape}.")
    if len(y) != n:
        raise SeqrepError(
            f"{where}: {len(y)} labels for {n} samples; X and y must have the same length."
        )
    if not np.issubdtype(y.dtype, np.number) or np.iscomplexobj(y):
        raise SeqrepError(
            f"{where}: labels must be integers 0..K-1, got dtype {y.dtype}. "
            "Map names to integers first (np.unique(names, return_inverse=True))."
        )
    frac = np.flatnonzero(~np.isfinite(y.astype(float)) | (y != np.round(y)))
    if frac.size:
        i = int(frac[0])
        raise SeqrepError(
            f"{where}: label of sample {i} is {y[i].item()!r}, not an integer; labels must be "
            "integers 0..K-1."
        )
    if n_classes is not None:
        out = np.flatnonzero((y < 0) | (y >= n_classes))
        if out.size:
            i = int(out[0])
            raise SeqrepError(
                f"{where}: label of sample {i} is {int(y[i])}, outside 0..{n_classes - 1} "
                f"({out.size} labels out of range). Labels must index the {n_classes} classes."
            )
    elif (y < 0).any():
        i = int(np.flatnonzero(y < 0)[0])
        raise SeqrepError(f"{where}: label of sample {i} is {int(y[i])}; labels must be >= 0.")


# --------------------------------------------------------------------------------------------
# The dataset type
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Labelled sequences, validated on construction.

    X: (n, channels, time) float32. y: (n,) int64 in 0..n_classes-1.
    class_names: the original label of each class index.
    mask: (n, time) bool, True on real steps, or None when every series has full length.
    motifs: (n, m, 2) int64 [start, stop) windows of the m class motifs planted in each sample
    (synthetic data only).
    """

    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    mask: np.ndarray | None = None
    motifs: np.ndarray | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [str(c) for c in self.class_names]
        if not names:
            raise SeqrepError(f"{self.name}: class_names is empty; pass one name per class.")
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise SeqrepError(
                f"{self.name}: class_names {names[:10]} repeat {repeated[:5]}; two class indices "
                "with one name cannot be told apart. Give each class its own name."
            )
        check_arrays(self.X, self.y, self.mask, n_classes=len(self.class_names), where=self.name)
        with np.errstate(over="ignore"):  # only masked padding can exceed float32 here
            object.__setattr__(self, "X", np.ascontiguousarray(self.X, dtype=np.float32))
        object.__setattr__(self, "y", np.asarray(self.y).astype(np.int64))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.mask is not None and self.mask.all():
            object.__setattr__(self, "mask", None)
        if self.motifs is not None and (
            self.motifs.ndim != 3 or len(self.motifs) != len(self.y) or self.motifs.shape[2] != 2
        ):
            raise SeqrepError(
                f"{self.name}: motifs must have shape (n_samples, m, 2), got {self.motifs.shape}."
            )

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"SequenceDataset({self.name!r}: {len(self)} samples, {self.n_classes} classes, "
            f"{self.channels} channel(s), length {self.length}"
            f"{', variable length' if self.mask is not None else ''})"
        )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.X.shape[1]

    @property
    def length(self) -> int:
        """Padded length (the time axis of X)."""
        return self.X.shape[2]

    @property
    def lengths(self) -> np.ndarray:
        """(n,) real length of each series."""
        if self.mask is None:
            return np.full(len(self), self.length)
        return self.mask.sum(axis=1)

    @property
    def counts(self) -> np.ndarray:
        """(n_classes,) samples per class."""
        return np.bincount(self.y, minlength=self.n_classes)

    def subset(self, index: np.ndarray, name: str | None = None) -> SequenceDataset:
        """The samples at `index` (indices or a boolean mask), same classes."""
        index = np.asarray(index)
        n = len(self)
        if index.dtype == bool:
            if index.shape != (n,):
                raise SeqrepError(f"{self.name}: a boolean index needs one entry per sample ({n}), got {index.shape}.")
        elif index.size and (not np.issubdtype(index.dtype, np.integer) or index.min() < -n or index.max() >= n):
            raise SeqrepError(f"{self.name}: subset indices must be whole numbers in 0..{n - 1}, got "
                              f"{index.ravel()[:5].tolist()}{' ...' if index.size > 5 else ''}.")
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return replace(
            self,
            X=self.X[index],
            y=self.y[index],
            mask=pick(self.mask),
            motifs=pick(self.motifs),
            name=name or self.name,
            meta=dict(self.meta),
        )

    def split(
        self, val_fraction: float = 0.2, seed: int = 0, require_val: bool = False
    ) -> tuple[SequenceDataset, SequenceDataset]:
        """Seeded stratified (train, validation) split; see `stratified_split`."""
        train, val, missing = stratified_split(self.y, val_fraction, seed, require_val)
        tr = self.subset(train, f"{self.name} (train part)")
        va = self.subset(val, f"{self.name} (validation part)")
        va.meta["classes_without_val"] = [self.class_names[k] for k in missing]
        return tr, va

    def fingerprint(self) -> str:
        """A content hash (sha256, 16 hex digits) of the series, labels, padding mask and class
        names: two datasets with one fingerprint hold the same data. A checkpoint keeps its
        training and validation sets' fingerprints, so a resume on other data is refused."""
        h = hashlib.sha256()
        for part in (self.X, self.y, self.mask if self.mask is not None else np.zeros(0, bool)):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        h.update("\0".join(self.class_names).encode())
        return h.hexdigest()[:16]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x, y, mask) as torch tensors: x (n, channels, time) float32, y (n,) int64,
        mask (n, time) bool or None."""
        mask = None if self.mask is None else torch.from_numpy(self.mask)
        return torch.from_numpy(self.X), torch.from_numpy(self.y), mask

    def describe(self) -> dict:
        """A JSON-ready summary: sizes, length, channels, class counts and imbalance statistics."""
        stats = class_stats(self.y, self.n_classes)
        lengths = self.lengths
        return {
            "name": self.name,
            "source": self.meta.get("source"),
            "samples": len(self),
            "classes": self.n_classes,
            "channels": self.channels,
            "length": {"min": int(lengths.min()), "max": int(lengths.max())},
            "variable_length": self.mask is not None,
            "class_counts": {c: int(n) for c, n in zip(self.class_names, self.counts)},
            "imbalance": stats.summary(),
        }


def check_seed(seed) -> int:
    """`seed` if numpy can seed a generator with it (a whole number >= 0), else SeqrepError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SeqrepError(f"seed must be a whole number >= 0, got {seed!r}.")
    return int(seed)


def stratified_split(
    y: np.ndarray, val_fraction: float = 0.2, seed: int = 0, require_val: bool = False
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Seeded stratified split of sample indices into (train, val).

    Every class keeps at least one sample in train. A class with n >= 2 samples puts
    max(1, round(val_fraction * n)) of them (at most n - 1) in validation; a class with one
    sample cannot, and is listed in the third return value (a warning names them too).
    `require_val=True` raises instead. Returns (train_idx, val_idx, classes_without_val).
    """
    y = np.asarray(y)
    check_arrays(np.zeros((len(y), 1, 1)), y, where="labels")
    if not 0 < val_fraction < 1:
        raise SeqrepError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    rng = np.random.default_rng(check_seed(seed))
    train, val, missing = [], [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_val = min(max(1, round(val_fraction * len(idx))), len(idx) - 1)
        if n_val == 0:
            missing.append(int(k))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    if missing:
        message = (
            f"classes {missing} have a single sample: it stays in train and they get no "
            "validation sample. Collect more samples for them or merge them with similar classes."
        )
        if require_val:
            raise SeqrepError(message.replace("it stays in train and", "so"))
        warnings.warn(message, stacklevel=2)
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64)), missing


def check_train_val(train: SequenceDataset, val: SequenceDataset | None = None) -> dict[str, int]:
    """Check that `train` can train a classifier validated on `val`, before any training.

    Raises `SeqrepError` when train has fewer than 2 classes, or when val's classes or
    channels differ from train's. Warns (UserWarning) naming every class with no training
    series and its count in val: a model cannot predict a class it never saw, so those val
    series are always wrong. Warns too when 10% or more of val are exact copies of training
    series (a test file copied from the train file inflates every metric; the archive's own
    sets have at most a few percent). Returns {class name: series in val} for those classes, empty
    when every class has training series.

    Example:
        >>> check_train_val(load_dataset("GunPoint", "train"), load_dataset("GunPoint", "test"))
        {}
    """
    if train.n_classes < 2:
        source = train.meta.get("source")
        fix = (
            f"every series in {source} has that label: check the label column (first field in "
            ".tsv/.txt, last in .ts/.arff) or add series of other classes"
            if source
            else "build the data with at least 2 classes (make_sequences(n_classes=...), "
            "seqrep train --classes)"
        )
        raise SeqrepError(
            f"{train.name}: one class ({train.class_names[0]!r}), but a classifier needs at least "
            f"2; {fix}."
        )
    if val is not None:
        if val.class_names != train.class_names:
            raise SeqrepError(
                f"{val.name} has the classes {list(val.class_names)[:10]} but {train.name} has "
                f"{list(train.class_names)[:10]}; load both splits with load_dataset so labels "
                "map to the same class indices."
            )
        if val.channels != train.channels:
            raise SeqrepError(
                f"{val.name} has {val.channels} channel(s) per series but {train.name} has "
                f"{train.channels} ({val.meta.get('source', val.name)} vs "
                f"{train.meta.get('source', train.name)}); both splits must come from the same "
                "dataset."
            )
        _warn_copies(train, val)
        _warn_rescaled(train, val)
    val_counts = val.counts if val is not None else np.zeros(train.n_classes, dtype=np.int64)
    unseen = {train.class_names[k]: int(val_counts[k]) for k in np.flatnonzero(train.counts == 0)}
    if unseen:
        where = val.name if val is not None else "val"
        listed = ", ".join(f"{c!r} ({n} in {where})" for c, n in list(unseen.items())[:10])
        more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        warnings.warn(
            f"{train.name}: {len(unseen)} of {train.n_classes} classes have no training series, "
            f"so the model can never predict them: {listed}{more}. Add training series for "
            "them, or expect those validation series to be misclassified.",
            stacklevel=1,  # one location: the CLI and fit both checking warn once, not twice
        )
    return unseen


# A validation set on another scale than its training set (one z-normalised, the other not;
# volts against millivolts) is scored by a model normalised for the training scale. Measured
# on the 23 train/test pairs of the shipped and shared UCR/UEA sets: per-channel std ratios
# 1.00-1.78 (Covid3Month_disc), mean shifts up to 0.26 training std (JapaneseVowels).
RESCALED_RATIO, SHIFTED_STDS = 10.0, 5.0


def _warn_rescaled(train: SequenceDataset, val: SequenceDataset) -> None:
    """Warn when a channel of `val` has a std RESCALED_RATIO times larger or smaller than in
    `train`, or a mean SHIFTED_STDS training stds away."""
    (m_t, s_t, _), (m_v, s_v, _) = channel_spread(train.X, train.mask), channel_spread(val.X, val.mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(s_v / s_t, s_t / s_v)
        shift = np.abs(m_v - m_t) / s_t
    bad = np.flatnonzero((ratio > RESCALED_RATIO) | (shift > SHIFTED_STDS))
    if bad.size:
        c = int(bad[0])
        warnings.warn(
            f"{val.name}: channel {c} is on another scale than in {train.name} (std {s_v[c]:.3g} vs "
            f"{s_t[c]:.3g}, mean {m_v[c]:.3g} vs {m_t[c]:.3g}); a model normalised for the "
            "training data misreads it. Scale both splits the same way (e.g. z-normalise every "
            "series of both), or check that they hold the same measurement in the same units.",
            stacklevel=1,
        )


def _warn_copies(train: SequenceDataset, val: SequenceDataset) -> None:
    """Warn when 10% or more of `val` are exact copies of training series (values and length)."""
    def key(ds: SequenceDataset, i: int) -> bytes:
        return ds.X[i, :, : ds.lengths[i]].tobytes()

    seen = {key(train, i): i for i in range(len(train))}
    copies = [(i, seen[k]) for i in range(len(val)) if (k := key(val, i)) in seen]
    if copies and len(copies) >= 0.1 * len(val):
        i, j = copies[0]
        warnings.warn(
            f"{val.name}: {len(copies)} of {len(val)} series are exact copies of training series "
            f"(the first: sample {i} = {train.name} sample {j}); metrics on them measure memory, "
            "not generalisation. Check that the test file is not a copy of the train file, or "
            "remove the copies from one split.",
            stacklevel=1,
        )
