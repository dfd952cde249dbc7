"""`make bench`: every benchmark in one run, results in benchmarks/results/.

    python benchmarks/run.py [--quick] [--seeds 3] [--workers 2]
                             [--only accuracy,speed,overhead,doctor,live,notebooks]

--quick (under 25 minutes): 3 small datasets x 1 seed at the 60 s budget, fewer repeats, and
the notebook timings from the last `make notebooks` (executed/index.json) instead of a fresh
run. The full run takes about 110 minutes on a 2-core CPU, about 60 of them the 22-set accuracy
table: seqrep's default, its start, MiniRocket and 1-NN on --seeds seeds (seqrep's median is the
headline), the broken extraction and MultiRocket+Hydra on the first seed (the learned peers FCN,
ResNet and InceptionTime on request: accuracy.py --methods); the runs go to --workers processes
of one torch thread each (default: one per core). Each part writes results/<part>.{json,md};
results/summary.md collects the markdown of all parts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import accuracy  # noqa: E402
import doctor  # noqa: E402
import overhead  # noqa: E402
import speed  # noqa: E402
from common import RESULTS, table, write  # noqa: E402

PARTS = ("accuracy", "speed", "overhead", "doctor", "live", "notebooks")


def notebooks_part(quick: bool, out_dir: Path) -> str:
    """Seconds per notebook under `make notebooks` (default parameters)."""
    index = HERE.parent / "executed" / "index.json"
    if not quick or not index.exists():
        from seqrep.notebooks import run_notebooks

        run_notebooks(force=True)
    records = json.loads(index.read_text())
    rows = [[r["notebook"], f"{r['seconds']:.0f}", r["ran_at"]] for r in records]
    total = sum(r["seconds"] for r in records)
    rows.append(["**total**", f"**{total:.0f}**", ""])
    text = (table(["notebook", "seconds (default parameters)", "run at"], rows)
            + f"\n\nTarget: all notebooks under 300 s in total; measured {total:.0f} s.")
    write("notebooks", {"notebooks": records, "total_s": total}, text, out_dir)
    return text


def live_markdown(r: dict) -> str:
    """The README's sentence from live_overhead.py's JSON."""
    return (f"Live curves on vs off (fit on the default scenario, {r['pairs']} interleaved pairs x "
            f"{r['epochs']} epochs): median wall-time ratio **{r['median_ratio']:.3f}** "
            f"(pairs: {', '.join(f'{x:.3f}' for x in r['ratios'])}); CPU-time ratio "
            f"{r['median_cpu_ratio']:.3f}; LivePlot's own time {100 * r['median_callback_share']:.1f} % "
            "of each run. Target < 1.05.")


def live_part(quick: bool, out_dir: Path) -> str:
    """Live curves on vs off, by live_overhead.py in its own process (a fresh matplotlib)."""
    out = out_dir / "live_overhead.json"
    cmd = [sys.executable, str(HERE / "live_overhead.py"), "--out", str(out)]
    subprocess.run(cmd + (["--quick"] if quick else []), check=True)
    text = live_markdown(json.loads(out.read_text()))
    (out_dir / "live.md").write_text(text + "\n", encoding="utf-8")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds of seqrep's default in the accuracy "
                        "table (each adds about 22 minutes of one core: 22 sets x the 60 s budget)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes of the accuracy table, one torch thread each")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    warnings.simplefilter("ignore")
    sections = {}
    for part in args.only.split(","):
        start = time.perf_counter()
        print(f"== {part}", flush=True)
        if part == "accuracy":
            import seqrep

            datasets = accuracy.QUICK_DATASETS if args.quick else accuracy.DATASETS
            r = accuracy.run(datasets, list(range(1 if args.quick else args.seeds)), seqrep.TrainConfig(),
                             workers=args.workers, other_seeds=1)
            sections[part] = accuracy.markdown(r)
            write("accuracy", r, sections[part], out_dir)
        elif part == "speed":
            r = speed.run(args.quick)
            sections[part] = speed.markdown(r)
            write("speed", r, sections[part], out_dir)
        elif part == "overhead":
            r = overhead.run(args.quick)
            sections[part] = overhead.markdown(r)
            write("overhead", r, sections[part], out_dir)
        elif part == "doctor":
            r = doctor.run(args.quick)
            sections[part] = doctor.markdown(r)
            write("doctor", r, sections[part], out_dir)
        elif part == "live":
            sections[part] = live_part(args.quick, out_dir)
        elif part == "notebooks":
            sections[part] = notebooks_part(args.quick, out_dir)
        else:
            parser.error(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        print(f"== {part} done in {time.perf_counter() - start:.0f} s", flush=True)
    # Parts run earlier (e.g. `--only live` after a full run) stay in the summary.
    summary = "\n\n".join(f"## {name}\n\n{(out_dir / f'{name}.md').read_text().strip()}"
                          for name in PARTS if (out_dir / f"{name}.md").exists())
    (out_dir / "summary.md").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
