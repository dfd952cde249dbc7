"""Wall-time overhead of seqrep.LivePlot on the default synthetic scenario.

Trains the default model (TrainConfig(), 30 epochs) on `make_sequences()` (80/20 split)
with no callback (A) and with `LivePlot()` (B), interleaved A B A B ... because CPU speed on a
shared machine drifts by several times within minutes; the result is the median over pairs of
the B/A wall-time ratio. A first one-epoch run is discarded: the first fit in a process pays
for warming up torch and is several times slower.
Also reported: the time LivePlot itself spent (rendering and writing frames) as a share of each
B run, a direct measure that does not depend on the two runs getting the same CPU, and the
ratio of process CPU time, less sensitive than wall time to other processes on the machine.

Outside a Jupyter kernel LivePlot writes run_dir/live.png: the same rendering work as in a
notebook, where the PNG goes to a display handle instead of a file.

    python benchmarks/live_overhead.py            # 3 pairs x 30 epochs (5 minutes here)
    python benchmarks/live_overhead.py --quick    # 2 pairs x 3 epochs (under a minute)

Writes benchmarks/results/live_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import seqrep

RESULTS = Path(__file__).resolve().parent / "results" / "live_overhead.json"


def one_run(train, val, config, run_dir: Path, live: bool) -> dict:
    """Wall time of one fit, and (B runs) the time LivePlot spent inside it."""
    model = seqrep.build_model(config, train)
    callbacks = [seqrep.LivePlot(to="file")] if live else []
    start, cpu = time.perf_counter(), time.process_time()
    seqrep.fit(model, train, val, config, run_dir, callbacks, progress=False, verbose=False)
    seconds = time.perf_counter() - start
    out = {"live": live, "seconds": seconds, "cpu_seconds": time.process_time() - cpu}
    if live:
        plot = callbacks[0]
        out.update(redraws=plot.redraws, callback_seconds=plot.seconds,
                   draw_seconds=plot.draw_seconds, callback_share=plot.seconds / seconds)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 pairs x 3 epochs")
    parser.add_argument("--pairs", type=int, help="A/B pairs (default 3, quick 2)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default 30, quick 3)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pairs = args.pairs or (2 if args.quick else 3)
    config = seqrep.TrainConfig(epochs=args.epochs or (3 if args.quick else 30))
    train, val = seqrep.make_sequences().split(0.2, seed=0)
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        one_run(train, val, config.replace(epochs=1), Path(tmp) / "warm-up", live=True)
        for pair in range(pairs):
            for live in (False, True):
                runs.append({"pair": pair, **one_run(train, val, config, Path(tmp) / f"{pair}-{live}", live)})
                print(f"pair {pair} {'B (LivePlot)' if live else 'A (no plot) '}: "
                      f"{runs[-1]['seconds']:.1f} s", flush=True)
    a = [r["seconds"] for r in runs if not r["live"]]
    b = [r for r in runs if r["live"]]
    ratios = [rb["seconds"] / ra for ra, rb in zip(a, b)]
    cpu_a = [r["cpu_seconds"] for r in runs if not r["live"]]
    cpu_ratios = [rb["cpu_seconds"] / ra for ra, rb in zip(cpu_a, b)]
    result = {
        "what": "wall time of fit with LivePlot / without, default synthetic scenario, interleaved A B",
        "command": "python benchmarks/live_overhead.py" + (" --quick" if args.quick else "")
                   + (f" --pairs {args.pairs}" if args.pairs else "")
                   + (f" --epochs {args.epochs}" if args.epochs else ""),
        "median_ratio": statistics.median(ratios),
        "ratios": ratios,
        "median_callback_share": statistics.median(r["callback_share"] for r in b),
        "median_cpu_ratio": statistics.median(cpu_ratios),
        "cpu_ratios": cpu_ratios,
        "redraws": [r["redraws"] for r in b],
        "pairs": pairs,
        "epochs": config.epochs,
        "train_samples": len(train),
        "runs": runs,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"median wall-time ratio with/without LivePlot: {result['median_ratio']:.3f} "
          f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)}); time inside LivePlot: "
          f"{100 * result['median_callback_share']:.1f}% of each run; CPU-time ratio "
          f"{result['median_cpu_ratio']:.3f} -> {args.out}")
    return result


if __name__ == "__main__":
    main()
