"""What the torch thread count does to one config's results: the default TrainConfig() with 20
epochs (no time budget, so the steps are the same), seed 0, trained twice on 1 thread and twice
on 2 threads per set. Each thread count repeats its own weights bitwise; the two differ in the
order float sums are added, which training can grow into different accuracies.

    python benchmarks/threads.py [--datasets ArrowHead,Lightning7]

Results: results/threads.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import load
from common import table, write

import seqrep


def run(datasets: list[str], epochs: int = 20) -> dict:
    out = {}
    for name in datasets:
        train, test = load(name)
        config = seqrep.TrainConfig(epochs=epochs, seed=0)
        runs: dict[int, list] = {}
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            model = seqrep.build_model(config, train)
            with tempfile.TemporaryDirectory() as run_dir:
                seqrep.fit(model, train, None, config, run_dir, progress=False, verbose=False)
            weights = torch.cat([p.detach().flatten() for p in model.parameters()])
            runs.setdefault(threads, []).append((seqrep.evaluate(model, test)["accuracy"], weights))
        out[name] = {"accuracy_1_thread": runs[1][0][0], "accuracy_2_threads": runs[2][0][0],
                     "bitwise_repeat_1_thread": bool(torch.equal(runs[1][0][1], runs[1][1][1])),
                     "bitwise_repeat_2_threads": bool(torch.equal(runs[2][0][1], runs[2][1][1])),
                     "max_weight_difference_1_vs_2": float((runs[1][0][1] - runs[2][0][1]).abs().max())}
    return {"datasets": out, "epochs": epochs}


def markdown(r: dict) -> str:
    rows = [[n, f"{d['accuracy_1_thread']:.3f}", f"{d['accuracy_2_threads']:.3f}", str(d["bitwise_repeat_1_thread"]),
             str(d["bitwise_repeat_2_threads"]), f"{d['max_weight_difference_1_vs_2']:.3g}"] for n, d in r["datasets"].items()]
    return (f"The default config, {r['epochs']} epochs, seed 0, on 1 and 2 torch threads (each twice).\n\n"
            + table(["set", "accuracy, 1 thread", "accuracy, 2 threads", "1 thread repeats bitwise",
                     "2 threads repeat bitwise", "largest weight difference, 1 vs 2"], rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ArrowHead,Lightning7")
    args = parser.parse_args(argv)
    r = run(args.datasets.split(","))
    print(write("threads", r, markdown(r)).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
