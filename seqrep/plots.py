"""Static figures shared by the notebooks (matplotlib/seaborn)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .errors import SeqrepError

LABELS = {
    "train_loss": "train loss",
    "val_loss": "validation loss",
    "train_accuracy": "train accuracy",
    "val_accuracy": "validation accuracy",
    "val_balanced_accuracy": "validation balanced accuracy",
    "val_macro_f1": "validation macro-F1",
    "lr": "learning rate",
}


def history(run) -> list[dict]:
    """Epoch records of a run: a run directory, a FitResult, or a list of records. When a
    resumed run logged an epoch twice, the last record of each epoch wins."""
    from .runlog import read_log

    if isinstance(run, (str, os.PathLike)):
        records = read_log(Path(run))
    elif hasattr(run, "history"):
        records = run.history
    elif isinstance(run, Sequence):
        records = list(run)
    else:
        raise SeqrepError(
            f"cannot read a run from {type(run).__name__}; pass a run directory, a FitResult "
            "or a list of epoch records."
        )
    by_epoch = {r["epoch"]: r for r in records if "epoch" in r and "event" not in r}
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_runs(
    runs: Mapping[str, object],
    metrics: Sequence[str] = ("val_accuracy", "val_balanced_accuracy"),
    chance: float | None = None,
    title: str | None = None,
    axes=None,
):
    """One panel per metric, one line per run, against epoch.

    runs: {label: run directory | FitResult | list of epoch records}. chance: draws a dashed
    chance line on accuracy panels. Returns the figure.
    """
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    for ax, metric in zip(axes, metrics):
        for label, run in runs.items():
            records = history(run)
            epochs = [r["epoch"] + 1 for r in records if r.get(metric) is not None]
            values = [r[metric] for r in records if r.get(metric) is not None]
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
        if chance is not None and "accuracy" in metric:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.3f})")
        if "loss" in metric or metric == "lr":
            ax.set_yscale("log")
        elif "accuracy" in metric or "f1" in metric:
            ax.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
