"""The synthetic post-mortem scenario: `make_sequences` (the post-mortem's "60 classes with only 500
samples", with every class's motifs planted where the notebooks can check what attention looks
at) and `class_sizes` (a long-tailed class-size profile).

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
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import SeqrepError
from .validation import SequenceDataset, check_seed

__all__ = ["class_sizes", "make_sequences"]


# --------------------------------------------------------------------------------------------
# the synthetic post-mortem scenario
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


def _check_size(n_samples, channels: int, length: int) -> None:
    """Refuse sizes that are not whole numbers, or whose float64 work arrays (noise, drift and
    the series: about four of n_samples x channels x length) exceed this machine's memory."""
    for name, value in (("n_samples", n_samples), ("channels", channels), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise SeqrepError(f"{name} must be a whole number, got {value!r}.")
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: let numpy say it
        return
    need = 4 * 8 * max(n_samples, 0) * max(channels, 0) * max(length, 0)
    if need > memory:
        raise SeqrepError(
            f"{n_samples} samples x {channels} channel(s) x {length} steps need about {need / 2**30:,.0f} GiB "
            f"to generate, more than this machine's {memory / 2**30:,.0f} GiB; use fewer samples or "
            "shorter series."
        )


def _check_scenario(length, channels, noise, amplitude, n_distractors, n_distractor_shapes, motif_widths) -> list[int]:
    """The generator's arguments checked together; returns the motif widths as ints."""
    if length < 1 or channels < 1:
        raise SeqrepError(f"length and channels must be >= 1, got {length} and {channels}.")
    if not (np.isfinite(noise) and np.isfinite(amplitude)) or noise < 0 or amplitude <= 0 or n_distractors < 0 \
            or n_distractor_shapes < 1:
        raise SeqrepError(
            f"noise >= 0, amplitude > 0, n_distractors >= 0 and n_distractor_shapes >= 1 are "
            f"required, got noise={noise}, amplitude={amplitude}, n_distractors={n_distractors}, "
            f"n_distractor_shapes={n_distractor_shapes}."
        )
    if isinstance(motif_widths, (str, bytes)) or not hasattr(motif_widths, "__iter__"):
        raise SeqrepError(f"motif_widths must be widths in steps, e.g. (9, 27), got {motif_widths!r}.")
    widths = [int(w) for w in motif_widths]
    if not widths or min(widths) < 2:
        raise SeqrepError(f"motif_widths must be non-empty with widths >= 2, got {motif_widths}.")
    needed = sum(widths) + n_distractors * int(np.median(widths))
    if needed > length:
        raise SeqrepError(
            f"length {length} cannot hold the motifs and distractors of one sample ({needed} "
            f"steps); use length >= {needed}, shorter motif_widths or fewer n_distractors."
        )
    return widths


def _series(rng, y, planted, distractors, all_widths, channels, length, noise, amplitude):
    """X (n, channels, length) z-normalised: noise and drift, each sample's class motifs
    (planted[class]) and random distractors from the bank added at non-overlapping starts;
    returns (X, starts (n, len(all_widths)))."""
    n, n_motifs = len(y), len(planted[0])
    drift = np.cumsum(rng.normal(scale=0.05, size=(n, channels, length)), axis=2)
    X = noise * (rng.normal(size=(n, channels, length)) + drift)
    starts = _place(rng, n, length, all_widths)
    gains = amplitude * rng.uniform(0.8, 1.2, size=(n, len(all_widths)))
    picked = rng.integers(0, len(distractors), size=(n, len(all_widths) - n_motifs))
    for i in range(n):
        shapes = [*planted[y[i]], *(distractors[k] for k in picked[i])]
        for s, w, g, shape in zip(starts[i], all_widths, gains[i], shapes):
            X[i, :, s : s + w] += g * shape
    std = X.std(axis=2, keepdims=True)
    return (X - X.mean(axis=2, keepdims=True)) / np.where(std > 0, std, 1), starts


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
    """The post-mortem's scenario: many classes, few and unequal samples, class identity in
    motifs (the generative process is in this module's docstring; every draw comes from one
    `numpy.random.Generator(seed)`, so the same arguments give bitwise-identical arrays).

    Returns a `SequenceDataset` whose `motifs` holds the [start, stop) window of every planted
    class motif, shape (n, len(motif_widths), 2); `meta` holds the sizes, the motif shapes
    (one (n_classes, channels, width) array per scale), distractor windows and all arguments.
    """
    args = dict(locals())
    _check_size(n_samples, channels, length)
    check_seed(seed)
    widths = _check_scenario(length, channels, noise, amplitude, n_distractors, n_distractor_shapes, motif_widths)
    distractor_w = int(np.median(widths))
    sizes = class_sizes(n_classes, n_samples, imbalance, zipf, min_per_class)
    rng = np.random.default_rng(seed)

    chosen: list[np.ndarray] = []
    motifs = [_distinct_shapes(rng, n_classes, channels, w, chosen, max_similarity) for w in widths]
    distractors = _distinct_shapes(rng, n_distractor_shapes, channels, distractor_w, chosen, max_similarity)

    y = np.repeat(np.arange(n_classes), sizes)
    y = y[rng.permutation(len(y))]
    all_widths = widths + [distractor_w] * n_distractors
    planted = [[m[k] for m in motifs] for k in range(n_classes)]
    X, starts = _series(rng, y, planted, distractors, all_widths, channels, length, noise, amplitude)
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
