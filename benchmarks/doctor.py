"""The doctor measured: detection rate on the gallery of reported bugs (kind and culprit named),
false findings on clean architectures (several data seeds) and on every bug's one-line fix;
the zoo of stock architectures (seqrep/doctor/zoo.py: transformers, timm, torch) clean over
seeds and batch orders, its injected bugs named, crashes counted, and each check's time in
training steps of the same model; a 110M-parameter model's check in steps and peak memory;
seconds per check_training call on the default model, the margins between the thresholds and
what clean and broken models measure, and watch's overhead on a training step (interleaved).

    python benchmarks/doctor.py [--quick]

Results: results/doctor.{json,md}.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
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
from seqrep.doctor import Watch, dynamics, losses, mixing, zoo
from seqrep.doctor.batch import default_forward
from seqrep.doctor.gallery import CLEAN, REPORTED_BUGS
from seqrep.doctor.toy import make_toy
from seqrep.rocket import LeaveOneOut


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

    def bugs(kind):  # "step_size>": only the bugs of a step far too large
        if kind.endswith(">"):
            return [r for r in bug_rows if r["kind"] == kind[:-1] and "too_high" in r.get("name", "") + r.get("bug", "")]
        return [r for r in bug_rows if r["kind"] == kind]

    specs = [
        ("init_loss: loss / loss of zero logits", ("init_loss", "ratio"), None, losses.INIT_LOSS_RATIO, "init_loss", max, min),
        ("batch_mixing: largest change of another sample", ("batch_mixing", "largest_change"), None, mixing.TOLERANCE, "batch_mixing", max, min),
        ("padding_leak: largest change from padding", ("padding_leak", "largest_change"), None, mixing.TOLERANCE, "padding_leak", max, min),
        ("step_size: largest update / weight of a component (a finding needs the share below too)",
         ("step_size", "ratios"), max, dynamics.STEP_HIGH, "step_size>", max, min),
        ("gradient trend with depth (decades)", ("gradient_span", "trend_decades"), None, dynamics.GRADIENT_TREND, "vanishing_gradient", max, min),
        ("largest relative gradient", ("gradient_span", "largest"), None, dynamics.GRADIENT_HUGE, "exploding_gradient", max, min),
        ("dead_units: share of a ReLU layer", ("dead_units", "dead_share"), max, dynamics.DEAD_SHARE, "dead_units", max, min),
        ("step_size: share of the values moving > 0.5", ("step_size", "high_share"), None, dynamics.STEP_HIGH_SHARE,
         "step_size>", max, min),
    ]
    out = []
    for label, path, reduce, threshold, kind, worst, mildest in specs:
        c = values(clean_rows, path, reduce or max)
        b = values(bugs(kind), path, reduce or max)
        out.append({"threshold": label, "value": threshold, "clean_worst": worst(c) if c else None,
                    "bug_mildest": mildest(b) if b else None})
    return out


def _worst(values: dict) -> dict:
    """The largest entry of {name: number} (a margin reads only the worst one)."""
    return dict([max(values.items(), key=lambda kv: kv[1])]) if values else {}


def _plain(measured: dict) -> dict:
    """The measured numbers a margin reads, with per-component dicts cut to their worst entry."""
    keep = ("init_loss", "batch_mixing", "padding_leak", "step_size", "gradient_span", "dead_units")
    out = {k: v for k, v in measured.items() if k in keep}
    if "ratios" in out.get("step_size", {}):
        out["step_size"] = {**out["step_size"], "ratios": _worst(out["step_size"]["ratios"])}
    if "dead_share" in out.get("dead_units", {}):
        out["dead_units"] = {"dead_share": _worst(out["dead_units"]["dead_share"])}
    return out


def _zoo_check(case):
    args, kwargs = case.arguments()
    start = time.perf_counter()
    report = seqrep.check_training(case.model, *args, **kwargs)
    return report, time.perf_counter() - start


def _crashed(report) -> list[str]:
    return [f"{k}: {v}" for k, v in report.skipped.items() if "raised" in v]


def zoo_clean(seeds: list[int], orders, log=print) -> dict:
    """Every zoo architecture, clean, over seeds and batch orders: findings, crashes, and the
    reachable parameters with an exactly-zero gradient (interior ones are conventions)."""
    rows = []
    for arch in zoo.ZOO:
        for seed in seeds:
            for order in orders:
                try:
                    report, seconds = _zoo_check(arch.case(None, seed, order))
                except Exception as err:  # a crash of check_training itself is what this counts
                    rows.append({"name": arch.name, "seed": seed, "order": order, "findings": [],
                                 "crashed": [f"{type(err).__name__}: {err}"], "seconds": math.nan, "measured": {}})
                    continue
                zero = [p["name"] for p in report.parameters if p["reachable"] and p["grad_norm"] == 0]
                rows.append({"name": arch.name, "family": arch.family, "seed": seed, "order": order,
                             "findings": [f.kind for f in report.findings], "crashed": _crashed(report),
                             "zero_gradient_params": len(zero), "seconds": seconds, "measured": _plain(report.measured)})
        log(f"zoo {arch.name}: {sum(bool(r['findings']) for r in rows if r['name'] == arch.name)} with findings")
    return {"rows": rows, "checks": len(rows), "false": sum(bool(r["findings"]) for r in rows),
            "crashes": sum(bool(r["crashed"]) for r in rows)}


def zoo_bugs(orders, log=print) -> dict:
    """Every injected bug on every architecture it applies to, in every batch order."""
    rows = []
    for arch in zoo.ZOO:
        for bug in arch.bug_names():
            for order in orders:
                case = arch.case(bug, 0, order)
                try:
                    report, _ = _zoo_check(case)
                except Exception as err:
                    rows.append({"name": arch.name, "bug": bug, "order": order, "kind": zoo.EXPECTED[bug][0],
                                 "named": False, "crashed": [f"{type(err).__name__}: {err}"], "measured": {}})
                    continue
                rows.append({"name": arch.name, "bug": bug, "order": order, "kind": zoo.EXPECTED[bug][0],
                             "named": zoo.named(arch, case, bug, report.findings) is not None,
                             "crashed": _crashed(report), "measured": _plain(report.measured)})
        log(f"zoo {arch.name}: {sum(r['named'] for r in rows if r['name'] == arch.name)} bugs named")
    return {"rows": rows, "checks": len(rows), "named": sum(r["named"] for r in rows),
            "crashes": sum(bool(r["crashed"]) for r in rows)}


def _train_step(case) -> float:
    """Seconds of one training step of the case's model: forward, loss, backward, optimizer step."""
    forward = case.forward or default_forward
    loss_fn = case.loss_fn or torch.nn.functional.cross_entropy
    optimizer = torch.optim.Adam(case.model.parameters(), lr=1e-3)
    case.model.train()
    start = time.perf_counter()
    optimizer.zero_grad()
    loss_fn(forward(case.model, case.batch.x), case.batch.y).backward()
    optimizer.step()
    return time.perf_counter() - start


def zoo_cost(repeats: int, log=print) -> dict:
    """check_training's time in training steps of the same model and batch, per architecture:
    checks and steps alternated, `repeats` each after one of each to warm up; the median
    ratio per architecture, and the median over the zoo."""
    rows = []
    for arch in zoo.ZOO:
        check_case, step_case = arch.case(None, 0, "middle"), arch.case(None, 0, "middle")
        _zoo_check(check_case), _train_step(step_case)
        checks, steps = [], []
        for _ in range(repeats):
            checks.append(_zoo_check(check_case)[1])
            steps.append(_train_step(step_case))
        ratio = statistics.median(checks) / statistics.median(steps)
        rows.append({"name": arch.name, "check_s": statistics.median(checks), "step_s": statistics.median(steps),
                     "steps": ratio})
        log(f"cost {arch.name}: {ratio:.2f} steps")
    return {"rows": rows, "median_steps": statistics.median(r["steps"] for r in rows)}


def _big_child(what: str) -> None:
    """In a fresh process: build a BERT-base-sized classifier (110M parameters, from its config)
    and run `what` ("step": one training step; "check": check_training) on 8 x 128 tokens;
    print the seconds and the process's peak resident memory before and after."""
    import resource

    torch.set_num_threads(1)  # as the rest of this benchmark
    warnings.simplefilter("ignore")
    case = zoo.Arch("BERT-base", "transformers", zoo._hf("BertConfig", "BertForSequenceClassification", num_labels=4),
                    zoo._text(), "bert", "classifier").case(None, 0, "middle")
    case.batch.x = {k: v.repeat(1, 8) for k, v in case.batch.x.items()}  # 128 steps
    case.batch.mask = case.batch.mask.repeat(1, 8)
    _train_step(case)  # warm up, and Adam's state exists in neither measurement
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = _train_step(case) if what == "step" else _zoo_check(case)[1]
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_kb_before": before, "peak_kb_after": after,
                      "parameters": sum(p.numel() for p in case.model.parameters())}))


def big_model(pairs: int) -> dict:
    """check_training on a 110M-parameter model: its time in training steps (alternated, each
    in a fresh process) and how much it raises the process's peak memory above a training
    step's warmed-up peak."""
    runs = {"step": [], "check": []}
    for _ in range(pairs):
        for what in ("step", "check"):
            out = subprocess.run([sys.executable, __file__, "--big-child", what], capture_output=True, text=True,
                                 check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            runs[what].append(json.loads(out.stdout.strip().splitlines()[-1]))
    step = statistics.median(r["seconds"] for r in runs["step"])
    check = statistics.median(r["seconds"] for r in runs["check"])
    extra = statistics.median((r["peak_kb_after"] - r["peak_kb_before"]) / 1024 ** 2 for r in runs["check"])
    return {"parameters": runs["step"][0]["parameters"], "step_s": step, "check_s": check, "steps": check / step,
            "extra_peak_gb": extra, "step_peak_gb": statistics.median(r["peak_kb_after"] / 1024 ** 2 for r in runs["step"]),
            "check_peak_gb": statistics.median(r["peak_kb_after"] / 1024 ** 2 for r in runs["check"])}


def default_model(repeats: int) -> dict:
    """check_training on the default model (its start fitted) and batch (16 x 1 x 128, 60
    classes), interleaved with one plain training step of the same model, both on the
    objective it trains on (its ridge readout's leave-one-out error, seqrep.rocket.LeaveOneOut)."""
    config = seqrep.TrainConfig()
    model = seqrep.build_model(config, DataShape(1, 60, 128))
    # as fit does: the data-fitted start on a training set (240 random series), the objective,
    # the optimizer's groups, the schedule's first learning rates, and a check on the first 16
    # training series with the parts frozen by design named
    torch.manual_seed(0)
    train = seqrep.SequenceDataset(torch.randn(240, 1, 128).numpy(), np.arange(240) % 60,
                                   [str(c) for c in range(60)])
    _, features = seqrep.model.fit_init(model, train, seed=config.seed, with_features=True)
    objective = LeaveOneOut(torch.Generator().manual_seed(0))
    objective.attach(model.readout)
    objective.refit(model.readout, features, torch.from_numpy(train.y).long())
    index = torch.arange(16)
    x, y = torch.from_numpy(train.X[:16]), torch.from_numpy(train.y[:16]).long()

    def loss_fn(logits, target):
        return objective.loss(objective.captured, index)[0]

    optimizer = torch.optim.AdamW(seqrep.model.param_groups(model, config.lr), lr=config.lr)
    seqrep.plan.make_scheduler(optimizer, config, 100)
    frozen = seqrep.model.frozen_by_design(model)
    seqrep.check_training(model, (x, y), optimizer=optimizer, loss_fn=loss_fn, expect_frozen=frozen)  # warm-up
    checks, steps = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        report = seqrep.check_training(model, (x, y), optimizer=optimizer, loss_fn=loss_fn, expect_frozen=frozen)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x, training=True), y).backward()
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
    orders = zoo.ORDERS[:1] if quick else zoo.ORDERS
    return {
        "gallery": gallery(log),
        "clean": clean([0] if quick else [0, 1, 2], log),
        "zoo_clean": zoo_clean([0] if quick else [0, 1, 2], orders, log),
        "zoo_bugs": zoo_bugs(orders, log),
        "zoo_cost": zoo_cost(1 if quick else 3, log),
        "big_model": None if quick else big_model(2),
        "default_model": default_model(3 if quick else 9),
        "watch": watch_overhead(3 if quick else 9, 5 if quick else 20),
    }


def _zoo_markdown(r: dict) -> list[str]:
    zc, zb, cost, big = r.get("zoo_clean"), r.get("zoo_bugs"), r.get("zoo_cost"), r.get("big_model")
    if not zc:
        return []
    names = list(dict.fromkeys(row["name"] for row in zc["rows"]))
    seeds = sorted({row["seed"] for row in zc["rows"]})
    orders = list(dict.fromkeys(row["order"] for row in zc["rows"]))
    steps = {row["name"]: row["steps"] for row in cost["rows"]}
    per_arch = []
    for name in names:
        clean = [x for x in zc["rows"] if x["name"] == name]
        bugs = [x for x in zb["rows"] if x["name"] == name]
        found = sorted({k for x in clean for k in x["findings"]})
        per_arch.append([name, f"{sum(bool(x['findings']) for x in clean)} of {len(clean)}" + (f" ({', '.join(found)})" if found else ""),
                         f"{sum(x['named'] for x in bugs)} of {len(bugs)}", f"{steps.get(name, math.nan):.1f}"])
    kinds: dict[str, list] = {}
    for x in zb["rows"]:
        kinds.setdefault(x["kind"], []).append(x)
    kind_rows = [[k, ", ".join(sorted({x["bug"] for x in v})), f"{sum(x['named'] for x in v)} of {len(v)}"]
                 for k, v in sorted(kinds.items())]
    interior = sorted({x["name"] for x in zc["rows"] if x.get("zero_gradient_params")})
    ratios = [x["steps"] for x in cost["rows"]]
    text = [
        f"**Zoo of stock architectures** (`seqrep/doctor/zoo.py`, built from configs, no download): {len(names)} "
        f"architectures x {len(seeds)} seeds x {len(orders)} batch orders (the unpadded sample {', '.join(orders)}): "
        f"**{zc['false']} of {zc['checks']} clean checks with a finding, {zc['crashes'] + zb['crashes']} crashes**; "
        f"injected bugs named with the expected kind and culprit: **{zb['named']} of {zb['checks']}** "
        f"({len({(x['name'], x['bug']) for x in zb['rows']})} bug x architecture pairs in every order). "
        f"Interior exactly-zero gradients (conventions, not reported: `blocked_gradient` needs the input "
        f"layer's too): {len(interior)} of {len(names)} clean architectures ({', '.join(interior) or 'none'}).",
        f"**Cost of a check** in training steps of the same model and batch (forward, loss, backward, "
        f"Adam step; alternated, medians per architecture): median over the zoo "
        f"**{cost['median_steps']:.1f} steps** ({min(ratios):.1f}-{max(ratios):.1f}).",
    ]
    if big:
        text.append(f"**A {big['parameters'] / 1e6:.0f}M-parameter model** (BERT-base from its config, 8 x 128 "
                    f"tokens, each run in a fresh process): a check takes {big['check_s']:.2f} s against "
                    f"{big['step_s']:.2f} s for a training step, **{big['steps']:.1f} steps**; it raises the "
                    f"process's peak memory by {big['extra_peak_gb']:.2f} GB above a warmed-up training step's "
                    f"(peak {big['check_peak_gb']:.2f} GB vs {big['step_peak_gb']:.2f} GB).")
    text += [table(["architecture", "clean checks with findings", "bugs named", "check in steps"], per_arch),
             table(["kind", "injected bugs", "named"], kind_rows)]
    return text


def markdown(r: dict) -> str:
    g, c, d, w = r["gallery"], r["clean"], r["default_model"], r["watch"]
    bug_rows = [[x["name"], x["kind"], x["culprit"] or "-", "yes" if x["caught"] else "**no**",
                 ", ".join(x["other_kinds"]) or "-", ", ".join(x["fixed_findings"]) or "none", f"{x['seconds']:.2f}"]
                for x in g["rows"]]
    margins = [[m["threshold"], f"{m['value']:g}", "-" if m["clean_worst"] is None else f"{m['clean_worst']:.3g}",
                "-" if m["bug_mildest"] is None else f"{m['bug_mildest']:.3g}"]
               for m in _margins([*c["rows"], *r.get("zoo_clean", {}).get("rows", []), {"measured": d.get("measured", {})}],
                                 [*g["rows"], *r.get("zoo_bugs", {}).get("rows", [])])]
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
        *_zoo_markdown(r),
        table(["bug", "kind", "culprit", "caught", "other findings", "findings after the fix", "seconds"], bug_rows),
        table(["clean architecture", "checks (seeds)", "with findings", "median seconds"], clean_rows),
        "**Threshold margins** (worst value over the clean gallery and zoo architectures and the "
        "default model vs the mildest reconstructed or injected bug of that kind):\n\n"
        + table(["threshold", "value", "clean models, worst", "bugs, mildest"], margins),
    ])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--big-child"]:
        _big_child(argv[1])
        return 0
    return cli("doctor", __doc__, run, markdown, argv)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
