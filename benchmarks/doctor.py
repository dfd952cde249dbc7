"""The doctor measured: detection rate on the gallery of reported bugs (kind and culprit named),
false findings on clean architectures (several data seeds) and on every bug's one-line fix,
seconds per check_training call (default model and batch; each gallery model), the margins
between the thresholds and what clean and broken models measure, and watch's overhead on the
default model's training step (interleaved, median).

    python benchmarks/doctor.py [--quick]

Results: results/doctor.{json,md}.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cli, summary, table

import seqrep
from seqrep.build import DataShape
from seqrep.doctor import Watch, dynamics, losses, mixing
from seqrep.doctor.gallery import CLEAN, REPORTED_BUGS
from seqrep.doctor.toy import make_toy


def _timed_check(setup, seed: int = 0):
    toy = make_toy(16, full=setup.full, seed=seed)
    args, kwargs = setup.arguments(toy)
    start = time.perf_counter()
    report = seqrep.check_training(setup.model, *args, **kwargs)
    return report, time.perf_counter() - start


def gallery(log=print) -> dict:
    rows = []
    for case in REPORTED_BUGS:
        report, seconds = _timed_check(case.build(False))
        fixed, _ = _timed_check(case.build(True))
        found = case.caught_by(report.findings)
        rows.append({"name": case.name, "kind": case.kind, "culprit": case.culprit, "caught": found is not None,
                     "named": list(found.names) if found else [], "other_kinds": sorted({f.kind for f in report.findings} - {case.kind}),
                     "fixed_findings": [f.kind for f in fixed.findings], "seconds": seconds,
                     "measured": report.measured})
        log(f"{case.name}: {'caught' if found else 'MISSED'} in {seconds:.2f} s")
    return {"rows": rows, "caught": sum(r["caught"] for r in rows), "total": len(rows),
            "fixed_false": sum(bool(r["fixed_findings"]) for r in rows)}


def clean(seeds: list[int], log=print) -> dict:
    rows = []
    for arch in CLEAN:
        for seed in seeds:
            report, seconds = _timed_check(arch.build(), seed)
            rows.append({"name": arch.name, "seed": seed, "findings": [f.kind for f in report.findings],
                         "seconds": seconds, "measured": report.measured})
        log(f"{arch.name}: {sum(bool(r['findings']) for r in rows if r['name'] == arch.name)} false findings")
    return {"rows": rows, "checks": len(rows), "false": sum(bool(r["findings"]) for r in rows)}


def _margins(clean_rows: list[dict], bug_rows: list[dict]) -> list[dict]:
    """Per threshold: the worst value a clean model measured, the threshold, and the value of
    the mildest reconstructed bug of that kind."""
    def values(rows, path, reduce):
        out = []
        for r in rows:
            v = r["measured"]
            for key in path:
                v = v.get(key, {}) if isinstance(v, dict) else {}
            if isinstance(v, dict) and v:
                v = reduce(v.values())
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.append(float(v))
        return out

    def bugs(kind):
        return [r for r in bug_rows if r["kind"] == kind]

    specs = [
        ("init_loss: loss / loss of zero logits", ("init_loss", "ratio"), None, losses.INIT_LOSS_RATIO, "init_loss", max, min),
        ("batch_mixing: largest change of another sample", ("batch_mixing", "largest_change"), None, mixing.TOLERANCE, "batch_mixing", max, min),
        ("padding_leak: largest change from padding", ("padding_leak", "largest_change"), None, mixing.TOLERANCE, "padding_leak", max, min),
        ("step_size: largest update / weight", ("step_size", "ratios"), max, dynamics.STEP_HIGH, "step_size", max, max),
        ("gradient trend with depth (decades)", ("gradient_span", "trend_decades"), None, dynamics.GRADIENT_TREND, "vanishing_gradient", max, min),
        ("largest relative gradient", ("gradient_span", "largest"), None, dynamics.GRADIENT_HUGE, "exploding_gradient", max, min),
        ("dead_units: share of a ReLU layer", ("dead_units", "dead_share"), max, dynamics.DEAD_SHARE, "dead_units", max, min),
    ]
    out = []
    for label, path, reduce, threshold, kind, worst, mildest in specs:
        c = values(clean_rows, path, reduce or max)
        b = values(bugs(kind), path, reduce or max)
        out.append({"threshold": label, "value": threshold, "clean_worst": worst(c) if c else None,
                    "bug_mildest": mildest(b) if b else None})
    return out


def default_model(repeats: int) -> dict:
    """check_training on the default model (its start fitted) and batch (16 x 1 x 128, 60
    classes), interleaved with one plain training step of the same model."""
    config = seqrep.TrainConfig()
    model = seqrep.build_model(config, DataShape(1, 60, 128))
    # as fit does: the data-fitted start on a training set (240 random series), the optimizer's
    # groups, the schedule's first learning rates, and a check on the first 16 training series
    torch.manual_seed(0)
    train = seqrep.SequenceDataset(torch.randn(240, 1, 128).numpy(), np.arange(240) % 60,
                                   [str(c) for c in range(60)])
    seqrep.model.fit_init(model, train, seed=config.seed)
    x, y = torch.from_numpy(train.X[:16]), torch.from_numpy(train.y[:16]).long()
    optimizer = torch.optim.AdamW(seqrep.model.param_groups(model, config.lr), lr=config.lr)
    seqrep.plan.make_scheduler(optimizer, config, 100)
    seqrep.check_training(model, (x, y), optimizer=optimizer)  # warm-up
    checks, steps = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        report = seqrep.check_training(model, (x, y), optimizer=optimizer)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x, training=True), y).backward()
        optimizer.step()
        steps.append(time.perf_counter() - start)
    return {"check_s": summary(checks), "step_s": summary(steps), "findings": len(report.findings),
            "per_check_s": report.seconds, "measured": report.measured}


class _TimedWatch(Watch):
    """watch with a stopwatch around its own hooks: the time watch itself adds to a step,
    which interleaved wall times on a shared machine cannot resolve below a few percent."""

    own = 0.0

    def _timed(self, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            _TimedWatch.own += time.perf_counter() - start

    def _before_step(self, *args):
        return self._timed(super()._before_step, *args)

    def _after_step(self, *args):
        return self._timed(super()._after_step, *args)

    def _grad_hook(self, p):
        inner = super()._grad_hook(p)
        return lambda grad: self._timed(inner, grad)

    def after_loss(self, *args, **kwargs):
        return self._timed(super().after_loss, *args, **kwargs)


def watch_overhead(pairs: int, steps: int) -> dict:
    """Training steps of the default model with and without watch, interleaved A B A B; and
    watch's own time (its hooks, timed from inside) as a share of the watched steps."""
    model = seqrep.build_model(seqrep.TrainConfig(), DataShape(1, 60, 128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(16, 1, 128), torch.randint(0, 60, (16,))
    shares = []

    def run(watched: bool) -> float:
        _TimedWatch.own = 0.0
        w = _TimedWatch(model, optimizer, on_finding="record").start() if watched else None
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x, training=True), y)
            if w is not None:
                w.after_loss(loss)
            loss.backward()
            optimizer.step()
        total = time.perf_counter() - start
        if w is not None:
            w.stop()
            assert not w.findings, w.findings
            shares.append(_TimedWatch.own / total)
        return total / steps

    run(False)
    off, on = [], []
    for _ in range(pairs):
        off.append(run(False))
        on.append(run(True))
    return {"off_s": summary(off), "on_s": summary(on), "ratio": summary([b / a for a, b in zip(off, on)]),
            "own_share": summary(shares), "steps_per_run": steps}


def run(quick: bool = False, log=print) -> dict:
    warnings.simplefilter("ignore")
    # One torch thread: on a shared 2-core machine two threads fight other jobs and made a
    # training step of the default model 20x slower in one run; one thread is steadier.
    torch.set_num_threads(1)
    return {
        "gallery": gallery(log),
        "clean": clean([0] if quick else [0, 1, 2], log),
        "default_model": default_model(3 if quick else 9),
        "watch": watch_overhead(3 if quick else 9, 5 if quick else 20),
    }


def markdown(r: dict) -> str:
    g, c, d, w = r["gallery"], r["clean"], r["default_model"], r["watch"]
    bug_rows = [[x["name"], x["kind"], x["culprit"] or "-", "yes" if x["caught"] else "**no**",
                 ", ".join(x["other_kinds"]) or "-", ", ".join(x["fixed_findings"]) or "none", f"{x['seconds']:.2f}"]
                for x in g["rows"]]
    margins = [[m["threshold"], f"{m['value']:g}", "-" if m["clean_worst"] is None else f"{m['clean_worst']:.3g}",
                "-" if m["bug_mildest"] is None else f"{m['bug_mildest']:.3g}"]
               for m in _margins([*c["rows"], {"measured": d.get("measured", {})}], g["rows"])]
    per_arch = {}
    for row in c["rows"]:
        per_arch.setdefault(row["name"], []).append(row)
    clean_rows = [[name, str(len(rows)), str(sum(bool(x["findings"]) for x in rows)),
                   f"{statistics.median(x['seconds'] for x in rows):.2f}"] for name, rows in per_arch.items()]
    slowest = max(g["rows"] + c["rows"], key=lambda x: x["seconds"])
    return "\n\n".join([
        f"**Detection**: {g['caught']} of {g['total']} reconstructed bugs named with the expected kind and "
        f"culprit ({100 * g['caught'] / g['total']:.0f} %). **False findings**: {c['false']} in {c['checks']} "
        f"checks of {len(per_arch)} clean architectures, and {g['fixed_false']} on the {g['total']} one-line fixes.",
        f"**Seconds per call**, default model and batch (16 x 1 x 128, 60 classes): median "
        f"{d['check_s']['median']:.3f} s ({d['check_s']['min']:.3f}-{d['check_s']['max']:.3f}), against "
        f"{d['step_s']['median']:.3f} s for one training step measured alternately: "
        f"{d['check_s']['median'] / d['step_s']['median']:.1f} training steps (target < 1 s). Slowest "
        f"gallery call: {slowest['name']}, {slowest['seconds']:.2f} s.",
        f"**watch overhead**, default model training step: watch's own time (its hooks, timed from "
        f"inside) {100 * w['own_share']['median']:.1f} % of the watched steps ({100 * w['own_share']['min']:.1f}-"
        f"{100 * w['own_share']['max']:.1f} %; target < 5 %). Wall time with vs without, interleaved: median "
        f"ratio {w['ratio']['median']:.3f} ({w['ratio']['min']:.3f}-{w['ratio']['max']:.3f}), "
        f"{1000 * w['off_s']['median']:.1f} ms vs {1000 * w['on_s']['median']:.1f} ms per step.",
        table(["bug", "kind", "culprit", "caught", "other findings", "findings after the fix", "seconds"], bug_rows),
        table(["clean architecture", "checks (seeds)", "with findings", "median seconds"], clean_rows),
        "**Threshold margins** (worst value over the clean architectures and the default model vs "
        "the mildest reconstructed bug of that kind):\n\n"
        + table(["threshold", "value", "clean models, worst", "bugs, mildest"], margins),
    ])


def main(argv=None) -> int:
    return cli("doctor", __doc__, run, markdown, argv)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
