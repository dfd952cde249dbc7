"""Training speed of the default model: samples/s of one training step by length and batch
size, how step time grows with length, classes and samples, achieved GFLOP/s against a matmul
peak measured in the same process, and peak memory.

    python benchmarks/speed.py [--quick]

Results: results/speed.{json,md}. CPU speed swings within a minute on shared machines, so
every comparison interleaves its variants and reports medians.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cli, summary, table

import seqrep
from seqrep.build import DataShape


def _step(model, optimizer, x, y) -> None:
    loss = torch.nn.functional.cross_entropy(model(x, training=True), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _setup(length: int, batch: int, n_classes: int = 60, config=None, **overrides):
    config = config or seqrep.TrainConfig()
    torch.manual_seed(0)
    spec = config.model.replace(**overrides).resolved(length)
    model = seqrep.SequenceClassifier(1, n_classes, length, spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, length), torch.randint(0, n_classes, (batch,))
    _step(model, optimizer, x, y)  # warm-up
    return model, optimizer, x, y, spec.to_dict()


def _interleaved(setups: dict, repeats: int) -> dict:
    """Median seconds per step of each setup, measured round-robin."""
    times = {k: [] for k in setups}
    for _ in range(repeats):
        for key, (model, opt, x, y, _) in setups.items():
            start = time.perf_counter()
            _step(model, opt, x, y)
            times[key].append(time.perf_counter() - start)
    return {k: summary(v) for k, v in times.items()}


def step_flops(model, optimizer, x, y) -> float:
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(model(x, training=True), y)
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.median(best)) / 1e9


def run(quick: bool = False, log=print) -> dict:
    repeats = 5 if quick else 15
    out: dict = {}
    # 1. samples/s by length and batch size (default model, automatic stem pooling)
    grid = {(L, b): _setup(L, b) for L in (128, 512, 2000) for b in (16, 64)}
    steps = _interleaved(grid, repeats)
    out["throughput"] = [
        {"length": L, "batch": b, "stem_pool": grid[(L, b)][4]["pool"],
         "step_s": steps[(L, b)], "samples_per_s": b / steps[(L, b)]["median"]}
        for (L, b) in grid
    ]
    log("throughput done")
    # 2. growth with length at a fixed stem (pool=1), with classes, with samples
    lengths = (128, 256, 512, 1024) if quick else (128, 256, 512, 1024, 2048)
    by_length = _interleaved({L: _setup(L, 16, pool=1) for L in lengths}, repeats)
    xs = np.array(lengths, dtype=float)
    ys = np.array([by_length[L]["median"] for L in lengths])
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = ys - (slope * xs + intercept)
    r2 = 1 - (residual**2).sum() / ((ys - ys.mean()) ** 2).sum()
    loglog = float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
    out["length_scaling"] = {"lengths": list(lengths), "step_s": [by_length[L] for L in lengths],
                             "slope_ms_per_step": slope * 1e3, "intercept_ms": intercept * 1e3,
                             "r2": float(r2), "loglog_exponent": loglog}
    classes = (2, 60, 500)
    by_classes = _interleaved({k: _setup(128, 16, n_classes=k) for k in classes}, repeats)
    out["classes_scaling"] = {k: by_classes[k] for k in classes}
    # Samples: an epoch is ceil(n / batch) steps of the same cost, so epoch time is linear in n;
    # measured on the synthetic scenario with fit.
    epoch_times = {}
    for n in (120, 240, 480):
        ds = seqrep.make_sequences(n_classes=20, n_samples=n, seed=0)
        cfg = seqrep.TrainConfig(epochs=2)
        model = seqrep.build_model(cfg, DataShape(1, 20, 128))
        import tempfile

        with tempfile.TemporaryDirectory() as run_dir:
            r = seqrep.fit(model, ds, None, cfg, run_dir, progress=False, verbose=False)
        epoch_times[n] = summary([rec["seconds"] for rec in r.history])
    out["samples_scaling"] = epoch_times
    log("scaling done")
    # 3. achieved GFLOP/s of the training step against the matmul peak, same process
    model, opt, x, y, _ = _setup(512, 16)
    flops = step_flops(model, opt, x, y)
    peaks, achieved = [], []
    for _ in range(3 if quick else 5):
        peaks.append(matmul_gflops())
        achieved.append(flops / _interleaved({0: (model, opt, x, y, None)}, 3)[0]["median"] / 1e9)
    out["gflops"] = {"step_gflop": flops / 1e9, "achieved": summary(achieved), "matmul_peak": summary(peaks),
                     "ratio": summary([a / p for a, p in zip(achieved, peaks)])}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def markdown(r: dict) -> str:
    rows = [[t["length"], t["stem_pool"], t["batch"], f"{t['step_s']['median'] * 1e3:.0f}",
             f"{t['samples_per_s']:.0f}"] for t in r["throughput"]]
    text = "### Training step of the default model\n\n" + table(
        ["length", "stem pool", "batch", "ms/step (median)", "samples/s"], rows)
    ls = r["length_scaling"]
    text += ("\n\n### Growth with length (stem pooling off)\n\n" + table(
        ["length"] + [str(L) for L in ls["lengths"]],
        [["ms/step"] + [f"{s['median'] * 1e3:.0f}" for s in ls["step_s"]]]))
    text += (f"\n\nLinear fit: {ls['slope_ms_per_step']:.3f} ms per extra time step, R² = {ls['r2']:.3f};"
             f" log-log exponent {ls['loglog_exponent']:.2f} (1 = linear).")
    cs = r["classes_scaling"]
    text += "\n\nClasses (length 128, batch 16): " + ", ".join(
        f"{k} classes {v['median'] * 1e3:.0f} ms" for k, v in cs.items())
    ss = r["samples_scaling"]
    text += "\n\nEpoch seconds by training-set size (synthetic, 20 classes): " + ", ".join(
        f"{n} samples {v['median']:.2f} s" for n, v in ss.items())
    g = r["gflops"]
    text += (f"\n\nAchieved {g['achieved']['median']:.1f} GFLOP/s in the training step (length 512, batch 16, "
             f"{g['step_gflop']:.2f} GFLOP/step) against a 1024² fp32 matmul peak of "
             f"{g['matmul_peak']['median']:.0f} GFLOP/s measured in the same process: ratio "
             f"**{g['ratio']['median']:.3f}** (min {g['ratio']['min']:.3f}, max {g['ratio']['max']:.3f}).")
    text += f"\n\nPeak resident memory of the benchmark process: {r['peak_rss_mb']:.0f} MB."
    return text


def main(argv=None) -> int:
    return cli("speed", __doc__, run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
