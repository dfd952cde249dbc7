"""What moves the fixed model's accuracy on the hard UCR sets: TrainConfig variants, interleaved.

    python benchmarks/ablation.py [--seeds 2] [--datasets PigCVP,ArrowHead] [--variants default,dilated]

Each variant is TrainConfig() with a few fields changed, and optionally a larger floor of
optimiser steps than the default rule's 500 (`min_steps`: epochs = max(30, ceil(min_steps /
steps per epoch))). Runs are interleaved (for seed, for dataset, for variant), so every variant
sees the same machine conditions. "ensemble of 2" averages the test-set softmax of the default
variant's runs with consecutive seeds (0+1, 1+2, ...): its training time is the sum of both.
Writes results/ablation.json and results/ablation.md (not part of `make bench`: ~15 minutes per
seed on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from common import fmt, summary, table, write

import seqrep
from seqrep.inference import predict_logits
from seqrep.plan import plan_epochs

DATASETS = ["PigCVP", "OSULeaf", "ACSF1", "ArrowHead"]
VARIANTS = {
    "default": {},
    "800 steps": {"min_steps": 800},
}
ENSEMBLE = "ensemble of 2 (default)"


def config_for(variant: dict, seed: int, n_train: int) -> seqrep.TrainConfig:
    """TrainConfig() with the variant's fields, epochs resolved (with its min_steps floor)."""
    fields = {k: v for k, v in variant.items() if k != "min_steps"}
    if "min_steps" in variant:  # a different floor of the automatic rule
        fields["epochs"] = 0
    spec = {k: fields.pop(k) for k in list(fields) if k in seqrep.ModelSpec.__dataclass_fields__}
    config = seqrep.TrainConfig(seed=seed).replace(**fields, model=spec)
    return plan_epochs(config, n_train, variant.get("min_steps"))


def train_once(train, test, config: seqrep.TrainConfig) -> tuple[np.ndarray, float]:
    """(test softmax (n_test, n_classes), training seconds) of one fit."""
    model = seqrep.build_model(config, train)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        seqrep.fit(model, train, None, config, run_dir, progress=False, verbose=False)
        seconds = time.perf_counter() - start
    return torch.softmax(predict_logits(model, test), 1).numpy(), seconds


def run(datasets: list[str], seeds: list[int], variants: dict, log=print) -> dict:
    runs = {d: {v: [] for v in variants} for d in datasets}
    data = {d: (seqrep.load_dataset(d, "train"), seqrep.load_dataset(d, "test")) for d in datasets}
    for seed in seeds:
        for name in datasets:
            train, test = data[name]
            for label, variant in variants.items():
                config = config_for(variant, seed, len(train))
                prob, seconds = train_once(train, test, config)
                acc = float((prob.argmax(1) == test.y).mean())
                runs[name][label].append({"prob": prob, "accuracy": acc, "train_s": seconds,
                                          "epochs": config.epochs})
                log(f"{name} seed {seed} {label}: accuracy {acc:.3f}, train {seconds:.1f} s")
    rows = {}
    for name in datasets:
        y = data[name][1].y
        row = {label: {k: summary([r[k] for r in rs]) for k in ("accuracy", "train_s", "epochs")}
               for label, rs in runs[name].items()}
        base = runs[name].get("default", [])
        if len(base) >= 2:
            pairs = list(itertools.pairwise(base))
            row[ENSEMBLE] = {
                "accuracy": summary([float(((a["prob"] + b["prob"]).argmax(1) == y).mean()) for a, b in pairs]),
                "train_s": summary([a["train_s"] + b["train_s"] for a, b in pairs]),
            }
        rows[name] = row
    return {"datasets": rows, "seeds": seeds, "variants": {k: dict(v) for k, v in variants.items()}}


def markdown(results: dict) -> str:
    labels = list(next(iter(results["datasets"].values())))
    header = ["variant"] + [f"{d} accuracy (train s)" for d in results["datasets"]] + ["mean accuracy"]
    rows = []
    for label in labels:
        cells, accs = [], []
        for r in results["datasets"].values():
            cells.append(f"{fmt(r[label]['accuracy'])} ({r[label]['train_s']['median']:.0f})")
            accs.append(r[label]["accuracy"]["median"])
        rows.append([label, *cells, f"{np.mean(accs):.3f}"])
    return (f"Fixed-model variants on the hard sets: median test accuracy over seeds "
            f"{results['seeds']} (min-max), median training seconds in brackets; variants are "
            f"`TrainConfig()` with these changes: `{results['variants']}`.\n\n" + table(header, rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated labels of VARIANTS")
    args = parser.parse_args(argv)
    chosen = args.variants.split(",")
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    warnings.simplefilter("ignore")
    results = run(args.datasets.split(","), list(range(args.seeds)), {v: VARIANTS[v] for v in chosen})
    path = write("ablation", results, markdown(results))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
