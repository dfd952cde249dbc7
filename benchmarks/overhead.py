"""What the diagnostics cost, each as a ratio against the same run without them:
the gradient monitor on vs off (target < 10 %), the one-shot gradient-flow check on the default
model (target < 1 s), show-latest-epoch on a 1 GB log vs a 1 KB log (target: the same within
noise, under 50 ms). Live curves on vs off is measured by live_overhead.py.

    python benchmarks/overhead.py [--quick]

Results: results/overhead.{json,md}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cli, summary, table

import seqrep
from seqrep.build import DataShape


def monitor_ratio(pairs: int, epochs: int, log=print) -> dict:
    """fit with GradientMonitor(every=10) vs without, interleaved A B A B on the default
    scenario; the ratio of wall times per pair, and its median."""
    data = seqrep.make_sequences()
    train, val = data.split(0.2, seed=0)
    config = seqrep.TrainConfig(epochs=epochs)
    runs = {"off": [], "on": []}
    warm = seqrep.build_model(config.replace(epochs=1), DataShape(1, 60, 128))
    with tempfile.TemporaryDirectory() as d:  # the first fit in a process pays for warm-up
        seqrep.fit(warm, train, val, config.replace(epochs=1), Path(d) / "w", progress=False, verbose=False)
        for i in range(pairs):
            for mode in ("off", "on"):
                model = seqrep.build_model(config, DataShape(1, 60, 128))
                callbacks = [seqrep.GradientMonitor(every=10)] if mode == "on" else []
                start = time.perf_counter()
                seqrep.fit(model, train, val, config, Path(d) / f"{mode}{i}", callbacks,
                           progress=False, verbose=False)
                runs[mode].append(time.perf_counter() - start)
                log(f"monitor {mode} pair {i}: {runs[mode][-1]:.1f} s")
    ratios = [on / off for on, off in zip(runs["on"], runs["off"])]
    return {"off_s": summary(runs["off"]), "on_s": summary(runs["on"]), "ratio": summary(ratios),
            "epochs": epochs, "every": 10}


def check_seconds(repeats: int) -> dict:
    """check_gradient_flow on the default model and a default batch (16 x 1 x 128, 60 classes),
    against one plain training step of the same model."""
    model = seqrep.SequenceClassifier(1, 60, 128)
    optimizer = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(16, 1, 128), torch.randint(0, 60, (16,))
    checks, steps = [], []
    seqrep.doctor.check_gradient_flow(model, (x, y), optimizer=optimizer)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        seqrep.doctor.check_gradient_flow(model, (x, y), optimizer=optimizer)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x, training=True), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - start)
    return {"check_s": summary(checks), "step_s": summary(steps),
            "ratio_to_step": summary([c / s for c, s in zip(checks, steps)])}


def _write_log(path: Path, size: int) -> None:
    record = {"epoch": 0, "epochs": 10**9, "time": 0.0, "train_loss": 1.0, "val_accuracy": 0.5,
              "grad_norm": {"representation": 1.0, "readout": 1.0}, "note": "x" * 200}
    line = (json.dumps(record) + "\n").encode()
    block = line * max(1, (1 << 20) // len(line))
    with open(path, "wb") as f:
        written = 0
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
        f.write(line * max(1, (size - written) // len(line)))
        f.write(json.dumps({**record, "epoch": 123456}).encode() + b"\n")
        f.write(b'{"epoch": 123457, "train_l')  # a run still writing


def latest_epoch_seconds(big_bytes: int, repeats: int) -> dict:
    """seqrep.runlog.latest_epoch on a ~1 KB and a big log, interleaved."""
    with tempfile.TemporaryDirectory() as d:
        small, big = Path(d) / "small.jsonl", Path(d) / "big.jsonl"
        _write_log(small, 1024)
        _write_log(big, big_bytes)
        times = {"small": [], "big": []}
        for _ in range(repeats):
            for name, path in (("small", small), ("big", big)):
                start = time.perf_counter()
                record = seqrep.runlog.latest_epoch(path)
                times[name].append(time.perf_counter() - start)
                assert record["epoch"] == 123456
        size = big.stat().st_size
    return {"small_s": summary(times["small"]), "big_s": summary(times["big"]), "big_bytes": size,
            "ratio": summary([b / s for b, s in zip(times["big"], times["small"])])}


def run(quick: bool = False, log=print) -> dict:
    return {
        "monitor": monitor_ratio(pairs=2 if quick else 3, epochs=2 if quick else 6, log=log),
        "check": check_seconds(5 if quick else 15),
        "latest_epoch": latest_epoch_seconds((64 if quick else 1024) << 20, 10 if quick else 30),
    }


def markdown(r: dict) -> str:
    m, c, s = r["monitor"], r["check"], r["latest_epoch"]
    rows = [
        ["gradient monitor on vs off (fit, default scenario)", f"{m['ratio']['median']:.3f}",
         f"{m['ratio']['min']:.3f}-{m['ratio']['max']:.3f}", "< 1.10"],
        ["check_gradient_flow, default model + batch", f"{c['check_s']['median']:.3f} s "
         f"({c['ratio_to_step']['median']:.1f} training steps)", f"{c['check_s']['min']:.3f}-"
         f"{c['check_s']['max']:.3f} s", "< 1 s"],
        [f"show-latest-epoch, {s['big_bytes'] / 2**30:.2f} GB log vs 1 KB log",
         f"{s['big_s']['median'] * 1e3:.2f} ms vs {s['small_s']['median'] * 1e3:.2f} ms "
         f"(ratio {s['ratio']['median']:.2f})", f"{s['big_s']['min'] * 1e3:.2f}-{s['big_s']['max'] * 1e3:.2f} ms",
         "same within noise, < 50 ms"],
    ]
    return table(["what", "median", "min-max", "target"], rows)


def main(argv=None) -> int:
    return cli("overhead", __doc__, run, markdown, argv)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
