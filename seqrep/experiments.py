"""Experiments that train many models: the remedy grid of notebook 04 (every class-imbalance
remedy at several imbalance ratios, on paired seeds) and the paired gains it is read with."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from .build import build_model
from .config import TrainConfig
from .data import SequenceDataset, class_sizes, make_sequences
from .errors import SeqrepError
from .imbalance import REMEDIES, adjust_logits, per_class_report, split_per_class
from .inference import predict_logits
from .train import fit

__all__ = ["GRID_SCENARIO", "POST_HOC", "RemedyGrid", "paired_gains", "remedy_grid"]

POST_HOC = "post-hoc logit adjustment"  # the "none" model's logits through adjust_logits
GRID_SCENARIO = {"length": 32, "motif_widths": (5, 11), "n_distractors": 0, "noise": 0.1}


@dataclass(frozen=True)
class RemedyGrid:
    """The result of `remedy_grid`.

    table: one row per (seed, ratio, remedy) with the `ClassReport.summary()` numbers on the
    balanced test set; reports: the ClassReport of each row, keyed (seed, ratio, remedy);
    runs: trainings run; seconds: wall time.
    """

    table: pd.DataFrame
    reports: dict = field(repr=False)
    runs: int
    seconds: float

    def paired(self, ratio: float, metric: str = "balanced_accuracy", reference: str = "none") -> pd.DataFrame:
        """`paired_gains` of every remedy over `reference` at `ratio`."""
        return paired_gains(self.table, ratio, metric, reference)


def _fit_and_report(train: SequenceDataset, test: SequenceDataset, config: TrainConfig):
    """Train a fresh model on `train` (no validation, a throw-away run directory) and return its
    ClassReport on `test` and the report of its post-hoc adjusted logits."""
    net = build_model(config, train)
    with tempfile.TemporaryDirectory() as run_dir:
        fit(net, train, None, config, run_dir, progress=False, verbose=False)
    logits = predict_logits(net, test)
    plain = per_class_report(test.y, logits.argmax(1).numpy(), train.counts, test.class_names)
    adjusted = adjust_logits(logits, train.counts).argmax(1).numpy()
    return plain, per_class_report(test.y, adjusted, train.counts, test.class_names)


def _check_grid(remedies: Sequence[str], ratios: Sequence[float], seeds: Sequence[int]) -> None:
    unknown = [r for r in remedies if r not in REMEDIES]
    if unknown:
        raise SeqrepError(f"remedy_grid: unknown remedies {unknown}; use names from "
                          f"seqrep.imbalance.REMEDIES: {list(REMEDIES)}.")
    if "none" not in remedies:
        raise SeqrepError("remedy_grid: remedies must include 'none', the reference every gain is "
                          "measured against (and the model post-hoc adjustment reuses).")
    if not ratios or min(ratios) < 1 or not len(seeds):
        raise SeqrepError(f"remedy_grid: ratios must be >= 1 (1 = balanced) and seeds non-empty, "
                          f"got ratios={list(ratios)}, seeds={list(seeds)}.")


def remedy_grid(
    config: TrainConfig,
    remedies: Sequence[str] = ("none", "class weights: inverse frequency", "class-balanced sampler",
                               "logit-adjusted loss"),
    *,
    n_classes: int = 10,
    n_train: int = 140,
    ratios: Sequence[float] = (1, 50),
    test_per_class: int = 30,
    seeds: Sequence[int] = range(5),
    scenario: dict | None = None,
) -> RemedyGrid:
    """Imbalance at a fixed number of training series, and the remedies (`REMEDIES` names) against it.

    For each seed one balanced pool of `make_sequences(n_classes, ..., **scenario)` (default
    `GRID_SCENARIO`: short clean series) is drawn; `split_per_class` takes the same balanced test
    set of `test_per_class` per class at every ratio and a training set of `n_train` samples
    shaped by `class_sizes(n_classes, n_train, ratio, min_per_class=1)`. Only the class-size shape
    changes. Each remedy trains `config` with its fields (and the seed); at ratio 1 only "none"
    trains (on a balanced set the weights are 1 and the prior uniform: the remedies are
    no-ops). Each "none" model also gives a `POST_HOC` row: its logits through `adjust_logits`.
    """
    _check_grid(remedies, ratios, seeds)
    sizes = {r: class_sizes(n_classes, n_train, r, min_per_class=1) for r in ratios}
    per_class = int(max(s.max() for s in sizes.values())) + test_per_class
    rows, reports, runs, started = [], {}, 0, time.perf_counter()
    for seed in seeds:
        pool = make_sequences(n_classes, n_classes * per_class, imbalance=1.0, seed=seed,
                              **(GRID_SCENARIO if scenario is None else scenario))
        for ratio in ratios:
            train_idx, test_idx = split_per_class(pool.y, sizes[ratio], test_per_class, seed=seed)
            train, test = pool.subset(train_idx), pool.subset(test_idx)
            for remedy in remedies if ratio > 1 else ["none"]:
                report, adjusted = _fit_and_report(train, test, config.replace(seed=seed, **REMEDIES[remedy]))
                runs += 1
                reports[seed, ratio, remedy] = report
                if remedy == "none" and ratio > 1:
                    reports[seed, ratio, POST_HOC] = adjusted
    for (seed, ratio, remedy), report in reports.items():
        rows.append({"seed": seed, "ratio": ratio, "remedy": remedy, **report.summary()})
    return RemedyGrid(pd.DataFrame(rows), reports, runs, time.perf_counter() - started)


def paired_gains(table: pd.DataFrame, ratio: float, metric: str = "balanced_accuracy",
                 reference: str = "none") -> pd.DataFrame:
    """Each remedy against `reference` on the same seeds (same data, initialisation, order).

    table: one row per (seed, ratio, remedy) with a `metric` column (`RemedyGrid.table`).
    Returns one row per other remedy: gain (mean of the per-seed differences), low / high (95%
    paired t-interval; NaN with one seed), wins / losses (seeds where it beat / lost to the
    reference), seeds, and sign_p (two-sided exact sign test, ties dropped: with n seeds all
    won it is 2 / 2**n, so 3 seeds can never show p < 0.25 and 5 never p < 0.0625).
    """
    from scipy.stats import binomtest
    from scipy.stats import t as student_t

    wide = table[table["ratio"] == ratio].pivot_table(index="seed", columns="remedy", values=metric)
    if reference not in wide:
        raise SeqrepError(f"paired_gains: no {reference!r} rows at ratio {ratio}; remedies there: "
                          f"{list(wide.columns)}.")
    out = {}
    for remedy in wide.columns.drop(reference):
        diff = (wide[remedy] - wide[reference]).dropna()
        n, wins, losses = len(diff), int((diff > 0).sum()), int((diff < 0).sum())
        half = student_t.ppf(0.975, n - 1) * diff.std() / math.sqrt(n) if n > 1 else math.nan
        out[remedy] = {"gain": diff.mean(), "low": diff.mean() - half, "high": diff.mean() + half,
                       "wins": wins, "losses": losses, "seeds": n,
                       "sign_p": binomtest(wins, wins + losses).pvalue if wins + losses else 1.0}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("remedy")
