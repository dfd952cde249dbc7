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
from .data import class_stats
from .errors import SeqrepError
from .runlog import read_log

_NOT_IN_LABELS = {"check_gradients"}  # follows from extraction; naming it only adds noise

LABELS = {
    "train_loss": "train loss",
    "val_loss": "validation loss",
    "train_accuracy": "train accuracy",
    "val_accuracy": "validation accuracy",
    "val_balanced_accuracy": "validation balanced accuracy",
    "val_macro_f1": "validation macro-F1",
    "lr": "learning rate (per optimizer group)",
}


def history(run) -> list[dict]:
    """Epoch records of a run: a run directory, a FitResult, or a list of records. When a
    resumed run logged an epoch twice, the last record of each epoch wins."""
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
    runs: Mapping[str, object] | Sequence,
    metrics: Sequence[str] = ("val_accuracy", "val_balanced_accuracy"),
    chance: float | Mapping[str, float] | None = None,
    title: str | None = None,
    axes=None,
):
    """Finished or still-running runs on shared axes: one panel per metric, one line per run,
    against epoch (a running run as far as its log has got).

    runs: {label: run directory | FitResult | list of epoch records}, or a list of run
    directories / FitResults, labelled by what differs between their configs (`run_labels`).
    A metric logged per group (the learning rate: one rate per optimizer group) draws one line
    per run and group. chance: a dashed chance line on accuracy panels, one number for all, or
    per metric ({"val_accuracy": 0.51, "val_balanced_accuracy": 0.5}, or
    `chance_levels(val.y)`). The legend sits to the right of the panels, outside them, so it
    never covers a curve. Returns the figure (pyplot's unless `axes` are given, one per
    metric).

    Example: `plot_runs([broken.run_dir, fixed.run_dir], title="only the fixed model learns")`.
    """
    if isinstance(runs, (str, os.PathLike)) or hasattr(runs, "history"):
        runs = [runs]  # one run directory (not its letters) or one FitResult
    if not isinstance(runs, (Mapping, Sequence)):
        raise SeqrepError(f"plot_runs: runs must be run directories or FitResults (a list or a dict of "
                          f"them), got {type(runs).__name__}.")
    if not isinstance(runs, Mapping):
        runs = dict(zip(run_labels(runs), runs))
    if not runs:
        raise SeqrepError("plot_runs: no runs given; pass run directories or FitResults.")
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    for ax, metric in zip(axes, metrics):
        drawn = []
        for label, run in runs.items():
            for line_label, (epochs, values) in _series(history(run), metric, label).items():
                ax.plot(epochs, values, marker="o", markersize=3, label=line_label)
                drawn += values
        line = _chance_for(metric, chance)
        if line is not None:
            ax.axhline(line[0], color="0.3", linestyle=line[2], linewidth=1.1, label=line[1])
        if ("loss" in metric or metric == "lr") and _spans_decades(drawn):
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


def _series(records: list[dict], metric: str, label: str) -> dict[str, tuple[list, list]]:
    """{line label: (epochs, values)} of `metric` in epoch records: one line, or one per key
    when the metric is logged per group (e.g. "lr": {"kernels": ..., "readout": ...})."""
    rows = [(r["epoch"] + 1, r[metric]) for r in records if r.get(metric) is not None]
    keys = list(dict.fromkeys(k for _, v in rows if isinstance(v, Mapping) for k in v))
    if not keys:
        return {label: ([e for e, _ in rows], [v for _, v in rows])}
    single = len(keys) == 1
    return {label if single else f"{label}: {key}": ([e for e, v in rows if v.get(key) is not None],
                                                      [v[key] for _, v in rows if v.get(key) is not None])
            for key in keys}


def _spans_decades(values: Sequence[float], factor: float = 10.0) -> bool:
    """True when positive `values` span at least `factor` (largest / smallest): only then does
    a log axis help. Over a narrow range (a loss from 3.7 to 4.05) it labels its few ticks
    "4×10⁰" and hides the change; a linear axis reads plainly."""
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return bool(positive) and max(positive) / min(positive) >= factor


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


def plot_remedies(
    table,
    ratio: float,
    metrics: Sequence[str] = ("balanced_accuracy", "tail_recall"),
    order: Sequence[str] | None = None,
    balanced_ratio: float | None = 1,
    chance: float | None = None,
    title: str | None = None,
):
    """One panel per metric, one row per remedy at class-size `ratio`: every seed as a small
    dot, their mean as a bar with its 95% paired-t interval (`paired_gains`'s, shifted to the
    mean), so a reader sees the spread behind each mean. A dashed line marks "none" trained on
    the balanced set (`balanced_ratio`), a dotted one chance.

    table: one row per (seed, ratio, remedy) with the metric columns (`RemedyGrid.table`).
    order: remedies top to bottom (default: as they first appear). Returns the figure.
    """
    from scipy.stats import t as student_t

    rows = table[table["ratio"] == ratio]
    order = list(order or dict.fromkeys(rows["remedy"]))
    if not order or not set(order) <= set(rows["remedy"]):
        raise SeqrepError(f"plot_remedies: remedies {sorted(set(order) - set(rows['remedy']))} have no "
                          f"rows at ratio {ratio}; present: {sorted(set(rows['remedy']))}.")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics) + 2.2, 0.5 * len(order) + 1.6),
                             sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for y, remedy in enumerate(order):
            values = rows.loc[rows["remedy"] == remedy, metric].to_numpy(dtype=float)
            n, mean = len(values), values.mean()
            half = student_t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
            ax.errorbar(mean, y, xerr=half, fmt="D", color="C0", ms=6, capsize=3, zorder=3)
            jitter = np.linspace(-0.18, 0.18, n) if n > 1 else np.zeros(1)
            ax.scatter(values, y + jitter, s=12, color="0.45", zorder=2)
        if balanced_ratio is not None:
            ref = table.loc[(table["ratio"] == balanced_ratio) & (table["remedy"] == "none"), metric]
            if len(ref):
                ax.axvline(ref.mean(), color="C2", ls="--", lw=1.2, label=f"none, balanced set: {ref.mean():.2f}")
        if chance is not None:
            ax.axvline(chance, color="0.3", ls=":", lw=1, label=f"chance: {chance:.2f}")
        ax.set_xlim(0, 1.02)
        ax.set_xlabel(f"{metric.replace('_', ' ')} (balanced test set)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, fontsize=8, frameon=False)
    axes[0][0].set_yticks(range(len(order)), order)
    axes[0][0].set_ylim(len(order) - 0.5, -0.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Gradient flow, grouped by module (notebook 03)
# --------------------------------------------------------------------------------------------


def module_group(module: str, depth: int = 2) -> str:
    """The group a parameter's module belongs to: its first `depth` named levels, a list index
    kept with the level it indexes. "representation.blocks.0.branches.1" -> (depth 2)
    "representation.blocks.0"; "readout" -> "readout"; the root module "" -> "(model)"."""
    if depth < 1:
        raise SeqrepError(f"module_group: depth must be >= 1, got {depth}; 2 groups by block.")
    kept, named = [], 0
    for part in module.split(".") if module else []:
        if not part.isdigit():
            if named == depth:
                break
            named += 1
        kept.append(part)
    return ".".join(kept) or "(model)"


def gradient_groups(parameters: Sequence[Mapping], depth: int = 2) -> list[dict]:
    """Per-parameter gradient records grouped by module, in model order.

    parameters: dicts with "name", "module" and "grad_norm" (None = no gradient), as in
    `check_gradient_flow(...).parameters`; frozen ones (requires_grad False) are left out.
    Returns one dict per group: group, tensors, none (tensors whose .grad is None), zero
    (exactly zero), norm (L2 norm over the group's gradients; None when no tensor has one) and
    missing (names of the tensors without a gradient).
    """
    groups: dict[str, dict] = {}
    for p in parameters:
        if not p.get("requires_grad", True):
            continue
        g = groups.setdefault(module_group(p["module"], depth), {"tensors": 0, "none": 0, "zero": 0,
                                                                   "squares": [], "missing": []})
        g["tensors"] += 1
        if p["grad_norm"] is None:
            g["none"] += 1
            g["missing"].append(p["name"])
        else:
            g["zero"] += p["grad_norm"] == 0
            g["squares"].append(float(p["grad_norm"]) ** 2)
    if not groups:
        raise SeqrepError("gradient_groups: no trainable parameters given; pass "
                          "check_gradient_flow(model, batch).parameters.")
    return [{"group": name, "tensors": g["tensors"], "none": g["none"], "zero": int(g["zero"]),
             "norm": math.sqrt(sum(g["squares"])) if g["squares"] else None, "missing": g["missing"]}
            for name, g in groups.items()]


def plot_gradient_flow(report, depth: int = 2, title: str | None = None, ax=None):
    """Gradient L2 norm per module group (`gradient_groups`), one horizontal bar each on a log
    axis, names readable on the left. A tensor whose .grad is None has no value to plot, so it
    is never drawn on the axis: a column to the right of it, "no gradient", marks each group
    with such tensors (red x and "k of n"), and the row is shaded. Exactly-zero gradients are
    counted in the same column (orange o).

    report: a `check_gradient_flow` / `check_training` report, or its `.parameters`.
    Returns the figure; the column is `ax.child_axes[0]` (an inset of `ax`).
    """
    rows = gradient_groups(getattr(report, "parameters", report), depth)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.4))
    ys = np.arange(len(rows))
    have = [r for r in rows if r["norm"]]
    bars = ax.barh([ys[rows.index(r)] for r in have], [r["norm"] for r in have], color="tab:blue", height=0.6)
    ax.bar_label(bars, labels=[f"{r['norm']:.2g}" for r in have], padding=3, fontsize=8)
    for y, r in zip(ys, rows):
        if r["none"]:
            ax.axhspan(y - 0.45, y + 0.45, color="tab:red", alpha=0.08, lw=0)
    ax.set_xscale("log")
    ax.set_yticks(ys, [f"{r['group']} ({r['tensors']} tensors)" for r in rows], fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("gradient L2 norm of the group (log scale)")
    ax.grid(axis="x", alpha=0.3)
    _none_column(ax, rows)
    missing = sum(r["none"] for r in rows)
    total = sum(r["tensors"] for r in rows)
    ax.set_title(title or (f"{missing} of {total} parameter tensors get no gradient" if missing
                           else f"every one of {total} parameter tensors gets a gradient"))
    return ax.figure


def _none_column(ax, rows: list[dict]) -> None:
    """The "no gradient" column right of `ax`: a red x and "k of n" per group with tensors
    whose gradient is None, an orange o for exactly-zero gradients; same rows as `ax`."""
    column = ax.inset_axes([1.01, 0, 0.16, 1], sharey=ax)
    column.set_xlim(0, 1)
    column.set_xticks([0.5], ["no gradient\n(None)"], fontsize=8)
    column.tick_params(axis="y", left=False, labelleft=False)
    for side in ("top", "right"):
        column.spines[side].set_visible(False)
    for y, r in enumerate(rows):
        if r["none"]:
            column.scatter([0.25], [y], marker="x", color="tab:red", s=45, zorder=3)
            column.text(0.45, y, f"{r['none']} of {r['tensors']}", va="center", fontsize=8, color="tab:red")
        if r["zero"]:
            column.scatter([0.25], [y + 0.25], marker="o", facecolors="none", edgecolors="tab:orange", s=30)
            column.text(0.45, y + 0.25, f"{r['zero']} zero", va="center", fontsize=7, color="tab:orange")


def plot_monitor(history: list[dict], key: str = "update_ratio", ax=None):
    """Heatmap of a GradientMonitor's `history`: `key` ("update_ratio", "grad_norm" (log10) or
    "dead_relu") per group (rows) over optimizer steps (columns). A cell with no value — no
    update (update ratio -inf), no gradient (None) — is black and counted in the row's label,
    never left blank."""
    names = list(history[-1][key].keys())
    grid = np.full((len(names), len(history)), np.nan)
    for j, row in enumerate(history):
        for i, n in enumerate(names):
            v = row[key].get(n)
            if v is not None:
                grid[i, j] = (math.log10(v) if v > 0 else -math.inf) if key == "grad_norm" else v
    grid[~np.isfinite(grid)] = np.nan
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
    steps = [r["step"] for r in history]
    label = {"update_ratio": "log10(update std / weight std)", "grad_norm": "log10 gradient norm",
             "dead_relu": "fraction of dead ReLU channels"}[key]
    cmap = plt.get_cmap("coolwarm" if key == "update_ratio" else "viridis").with_extremes(bad="black")
    kwargs = {"vmin": -5, "vmax": -1} if key == "update_ratio" else {}
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap=cmap,
                      extent=(steps[0] - 0.5, steps[-1] + 0.5, len(names) - 0.5, -0.5), **kwargs)
    empty = np.isnan(grid).sum(1)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{n}  [{k} of {grid.shape[1]} none]" if k else n for n, k in zip(names, empty)], fontsize=8)
    ax.set_xlabel("optimizer step" + ("  (black: no update / no gradient)" if empty.any() else ""))
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
