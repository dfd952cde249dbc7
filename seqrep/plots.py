"""Static figures shared by the notebooks (matplotlib/seaborn)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .config import flatten
from .errors import SeqrepError

_NOT_IN_LABELS = {"check_gradients"}  # follows from extraction; naming it only adds noise

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


def chance_levels(y) -> dict[str, float]:
    """What a model that always predicts one class scores on labels y: (n,) class indices.

    {"accuracy": the largest class's share of y (always predicting it is the best such guess;
    on an imbalanced set it is far above 1/k), "balanced_accuracy": 1/k for the k classes
    present in y (every single-class guess scores that)}. Compare validation accuracy with
    chance_levels(val.y)["accuracy"], balanced accuracy with ["balanced_accuracy"].
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64).ravel()) if len(y) else np.zeros(0)
    present = counts[counts > 0]
    if not len(present):
        raise SeqrepError("chance_levels: no labels given; pass the validation labels (val.y).")
    return {"accuracy": float(present.max() / present.sum()), "balanced_accuracy": 1.0 / len(present)}


def chance_label(kind: str, value: float) -> str:
    """Legend text of a chance line: kind "accuracy" (majority class) or "balanced_accuracy"."""
    if kind == "balanced_accuracy":
        return f"chance, balanced (1/{round(1 / value)}): {value:.3f}"
    return f"chance (majority class): {value:.3f}"


def _chance_for(metric: str, chance) -> tuple[float, str, str] | None:
    """The chance line of `metric` (value, legend text, line style): `chance` is one number
    for every accuracy panel, or {metric or "accuracy" / "balanced_accuracy": value}."""
    if chance is None or "accuracy" not in metric:
        return None
    if not isinstance(chance, Mapping):
        return float(chance), f"chance ({float(chance):.3f})", "--"
    kind = metric.removeprefix("val_").removeprefix("train_")
    value = chance.get(metric, chance.get(kind))
    style = "--" if kind == "balanced_accuracy" else ":"  # as in the live figure
    return None if value is None else (float(value), chance_label(kind, value), style)


def plot_runs(
    runs: Mapping[str, object],
    metrics: Sequence[str] = ("val_accuracy", "val_balanced_accuracy"),
    chance: float | Mapping[str, float] | None = None,
    title: str | None = None,
    axes=None,
):
    """One panel per metric, one line per run, against epoch.

    runs: {label: run directory | FitResult | list of epoch records}. chance: a dashed chance
    line on accuracy panels, one number for all, or per metric ({"val_accuracy": 0.51,
    "val_balanced_accuracy": 0.5}, or `chance_levels(val.y)`). The legend sits to the right of
    the panels, outside them, so it never covers a curve. Returns the figure.
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
        line = _chance_for(metric, chance)
        if line is not None:
            ax.axhline(line[0], color="0.3", linestyle=line[2], linewidth=1.1, label=line[1])
        if "loss" in metric or metric == "lr":
            ax.set_yscale("log")
        elif "accuracy" in metric or "f1" in metric:
            ax.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    _legend_outside(fig, axes)
    return fig


def _legend_outside(fig, axes) -> None:
    """One legend for all panels (each label once), outside them: right of the figure for a
    few entries, below it in up to three columns for many (to the right, a long column would
    make a wide image that viewers shrink until the text is unreadable). Saved with
    bbox_inches="tight" (as notebooks show figures) the image grows to hold it."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.tight_layout()
    if len(entries) > 6:
        fig.legend(list(entries.values()), list(entries), loc="upper center", fontsize=9,
                   bbox_to_anchor=(0.5, 0.0), ncols=min(3, math.ceil(len(entries) / 4)), frameon=False)
    elif entries:
        fig.legend(list(entries.values()), list(entries), loc="center left", fontsize=9,
                   bbox_to_anchor=(1.0, 0.5), frameon=False)


# --------------------------------------------------------------------------------------------
# Class imbalance (notebook 04)
# --------------------------------------------------------------------------------------------

GROUP_COLORS = {"head": "#4c72b0", "medium": "#8c8c8c", "tail": "#c44e52"}


def plot_class_sizes(y, n_classes: int | None = None, title: str | None = None, ax=None):
    """Bar chart of samples per class, sorted largest first and coloured by head / medium /
    tail third, with the group boundaries and the mean marked. y: (n,) integer labels.
    Returns the figure."""
    import seaborn as sns

    from .imbalance import class_stats

    stats = class_stats(y, n_classes)
    order = np.concatenate(list(stats.groups.values()))
    group = np.concatenate([[g] * len(idx) for g, idx in stats.groups.items()])
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2 + 0.14 * stats.n_classes, 11), 3.4))
    sns.barplot(x=np.arange(stats.n_classes), y=stats.counts[order], hue=group,
                palette=GROUP_COLORS, dodge=False, width=0.85, ax=ax)
    edge = 0
    for idx in list(stats.groups.values())[:-1]:
        edge += len(idx)
        ax.axvline(edge - 0.5, color="black", linestyle=":", linewidth=1)
    mean = stats.counts.mean()
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.1f}")
    step = max(1, stats.n_classes // 12)
    ax.set_xticks(np.arange(0, stats.n_classes, step))
    ax.set_xlabel("class rank by size (largest first)")
    ax.set_ylabel("samples per class")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or f"{stats.n_classes} classes, {stats.n_samples} samples, "
                 f"largest/smallest = {stats.ratio:.1f}")
    ax.figure.tight_layout()
    return ax.figure


def plot_confusion(report, top_k: int = 0, title: str | None = None, ax=None):
    """Heatmap of a `ClassReport`'s confusion matrix (fraction of each true class), classes
    sorted by training size (largest first) so head and tail form bands; group boundaries
    drawn, tick labels thinned to stay legible at 60 classes; the top_k confused pairs circled.
    Returns the figure."""
    import seaborn as sns

    table = report.table
    order = np.argsort(-table["train"].to_numpy(), kind="stable")
    matrix = report.confusion[np.ix_(order, order)]
    k = len(order)
    if ax is None:
        side = min(3.5 + 0.11 * k, 10)
        _, ax = plt.subplots(figsize=(side + 1.2, side))
    step = max(1, k // 15)
    labels = [f"{table['name'].iloc[c]} ({table['train'].iloc[c]})" for c in order]
    sns.heatmap(matrix, vmin=0, vmax=1, cmap="viridis", square=True, ax=ax,
                xticklabels=False, yticklabels=False,
                cbar_kws={"label": "fraction of the true class's test samples"})
    ticks = np.arange(0, k, step)
    ax.set_xticks(ticks + 0.5, [labels[i] for i in ticks], rotation=90, fontsize=7)
    ax.set_yticks(ticks + 0.5, [labels[i] for i in ticks], rotation=0, fontsize=7)
    edges = np.cumsum(table.groupby("group", sort=False).size().reindex(["head", "medium"]).fillna(0))
    for edge in edges:
        ax.axhline(edge, color="white", linewidth=1)
        ax.axvline(edge, color="white", linewidth=1)
    position = {c: i for i, c in enumerate(order)}
    names = table["name"].tolist()
    for _, pair in report.top_confusions(top_k).iterrows() if top_k else ():
        r, c = position[names.index(pair["true"])], position[names.index(pair["predicted"])]
        ax.scatter(c + 0.5, r + 0.5, s=120, facecolors="none", edgecolors="red", linewidths=1.5)
    ax.set_xlabel("predicted class (training samples)")
    ax.set_ylabel("true class (training samples)")
    ax.set_title(title or f"balanced accuracy {report.balanced_accuracy:.2f}")
    ax.figure.tight_layout()
    return ax.figure


def plot_grid(
    df,
    x: str,
    metrics: Sequence[str],
    hue: str | None = None,
    hue_order: Sequence[str] | None = None,
    chance: float | None = None,
    title: str | None = None,
    xlabel: str | None = None,
):
    """One panel per metric: its mean over runs (points) +/- one standard deviation (bars)
    against the categories of column `x`, one line per value of `hue` (in `hue_order`).

    df: one row per run (a pandas DataFrame with columns x, hue and metrics). chance: a dashed
    line at chance level. Returns the figure.
    """
    import seaborn as sns

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    for i, (ax, metric) in enumerate(zip(axes[0], metrics)):
        sns.pointplot(data=df, x=x, y=metric, hue=hue, hue_order=hue_order, errorbar="sd",
                      dodge=0.45 if hue else False, markersize=4, linewidth=1.4, capsize=0.08,
                      err_kws={"linewidth": 1}, legend=i == 0, ax=ax)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_xlabel(xlabel or x.replace("_", " "))
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(loc="lower left", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_monitor(history: list[dict], key: str = "update_ratio", ax=None):
    """Heatmap of a GradientMonitor's `history`: `key` ("update_ratio", "grad_norm" (log10) or
    "dead_relu") per group (rows) over optimizer steps (columns)."""
    import math

    names = list(history[-1][key].keys())
    grid = np.full((len(names), len(history)), np.nan)
    for j, row in enumerate(history):
        for i, n in enumerate(names):
            v = row[key].get(n)
            if v is not None:
                grid[i, j] = math.log10(v) if key == "grad_norm" and v > 0 else v
    grid[~np.isfinite(grid)] = np.nan
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
    steps = [r["step"] for r in history]
    label = {"update_ratio": "log10(update std / weight std)", "grad_norm": "log10 gradient norm",
             "dead_relu": "fraction of dead ReLU channels"}[key]
    kwargs = {"vmin": -5, "vmax": -1, "cmap": "coolwarm"} if key == "update_ratio" else {"cmap": "viridis"}
    image = ax.imshow(grid, aspect="auto", interpolation="nearest",
                      extent=(steps[0] - 0.5, steps[-1] + 0.5, len(names) - 0.5, -0.5), **kwargs)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("optimizer step")
    ax.figure.colorbar(image, ax=ax, label=label)
    ax.figure.tight_layout()
    return ax.figure


# --------------------------------------------------------------------------------------------
# Overlays of runs, labelled by what differs between them
# --------------------------------------------------------------------------------------------


def _run_dir(run) -> Path:
    if isinstance(run, (str, os.PathLike)):
        return Path(run)
    if hasattr(run, "run_dir"):
        return Path(run.run_dir)
    raise SeqrepError(
        f"cannot find the run log of a {type(run).__name__}; pass run directories or FitResults."
    )


def _runconfig_facts(run) -> dict:
    """The config of a run plus the name of its data, from the first start event of its log."""
    from .runlog import read_log

    path = _run_dir(run)
    start = next((r for r in read_log(path) if r.get("event") == "start"), None)
    if start is None:
        raise SeqrepError(f"{path}: the run log has no start event; was it written by seqrep.fit?")
    return {**config_facts(start["config"]), "data": (start.get("data") or {}).get("name")}


def config_facts(config: dict) -> dict:
    """A config dict as flat, short labels: {"model": {"width": 8}} -> {"width": 8}."""
    return {k.removeprefix("model."): v for k, v in flatten(config).items()}


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(str(v) for v in value) + ")" if value else "auto"
    return str(value)


def config_differences(facts: Sequence[Mapping]) -> list[str]:
    """The keys whose values are not the same in every one of `facts` (in first-seen order)."""
    keys = list(dict.fromkeys(k for f in facts for k in f))
    return [k for k in keys if k not in _NOT_IN_LABELS and len({repr(f.get(k)) for f in facts}) > 1]


def run_name(run) -> str:
    """A run directory's name without the timestamp `new_run_dir` puts in front of it."""
    return re.sub(r"^\d{8}-\d{6}-\d+-", "", _run_dir(run).name)


def run_labels(runs: Sequence) -> list[str]:
    """A legend label per run from what differs between their configs (and data), e.g.
    ["lr=0.003", "lr=0.01"] or ["extraction=broken", "extraction=fixed"]. Runs whose configs
    are identical are told apart by their run directory names (without the timestamp), and
    by their position when those are the same too."""
    facts = [_runconfig_facts(r) for r in runs]
    keys = config_differences(facts)
    labels = [", ".join(f"{k}={format_value(f.get(k))}" for k in keys) for f in facts]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({run_name(r)})" if label else run_name(r) for label, r in zip(labels, runs)]
    if len(set(labels)) < len(labels):
        labels = [f"#{i + 1} {label}" for i, label in enumerate(labels)]
    return labels


def overlay(
    runs: Sequence | Mapping,
    metrics: Sequence[str] = ("val_loss", "val_accuracy", "val_balanced_accuracy"),
    *,
    title: str | None = None,
    chance: float | Mapping[str, float] | None = None,
    axes=None,
):
    """Finished or still-running runs on shared axes, one line per run per metric, read from
    their run logs (a running run as far as it has got). runs: run directories or FitResults,
    labelled by `run_labels`; or a mapping {label: run} to choose the labels. chance: as in
    `plot_runs`. Returns the figure (pyplot's unless `axes` are given, one per metric): in a
    notebook it shows below the cell; elsewhere save it or `plt.close` it.

    Example: `overlay([broken.run_dir, fixed.run_dir], title="only the fixed model learns")`.
    """
    if not isinstance(runs, Mapping):
        runs = dict(zip(run_labels(runs), runs))
    if not runs:
        raise SeqrepError("overlay: no runs given; pass run directories or FitResults.")
    return plot_runs(runs, metrics, chance=chance, axes=axes,
                     title=title or f"{len(runs)} runs on shared axes (from their run logs)")
