"""The benchmark harness on a tiny configuration, so the scripts cannot rot unnoticed.

The numbers themselves are not checked (timings are noisy on shared machines); what is checked
is that every part runs end to end and writes the JSON and markdown the README quotes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy  # noqa: E402
import common  # noqa: E402
import doctor  # noqa: E402
import overhead  # noqa: E402
import speed  # noqa: E402

import seqrep  # noqa: E402


@pytest.mark.slow
def test_accuracy_table_from_a_tiny_run(tmp_path):
    config = seqrep.TrainConfig(epochs=1, model=seqrep.ModelSpec(init="random", width=8, blocks=1))
    r = accuracy.run(["Coffee"], [0], config, methods=("fixed", "broken", "nn1", "fcn"), log=lambda *_: None)
    row = r["datasets"]["Coffee"]
    assert row["shape"] == {"train": 28, "test": 28, "classes": 2, "channels": 1, "length": 286}
    assert 0 <= row["fixed"]["accuracy"]["median"] <= 1 and row["fixed"]["train_s"]["median"] > 0
    assert row["inceptiontime_published"] == 1.0
    assert row["nn1"]["accuracy"]["median"] == 1.0  # Euclidean 1-NN is exact on Coffee's test split
    assert 0 <= row["fcn"]["accuracy"]["median"] <= 1
    text = accuracy.markdown(r)
    assert "| Coffee (28/28, 2, 286) |" in text and "InceptionTime (published)" in text
    path = common.write("accuracy", r, text, tmp_path)
    assert json.loads((tmp_path / "accuracy.json").read_text())["machine"]["cores"] >= 1
    assert "Machine:" in path.read_text()


@pytest.mark.slow
def test_accuracy_runs_in_worker_processes_with_seeds_per_method():
    """make bench's layout: two processes; 1-NN on every seed, broken on the first only; the
    same numbers as one process (1-NN is deterministic)."""
    config = seqrep.TrainConfig(epochs=1, budget=0, model=seqrep.ModelSpec(init="random", width=8, blocks=1))
    r = accuracy.run(["Coffee"], [0, 1], config, methods=("nn1", "broken"), log=lambda *_: None, workers=2,
                     other_seeds=1)
    row = r["datasets"]["Coffee"]
    assert r["seeds_by_method"] == {"nn1": [0, 1], "broken": [0]} and r["workers"] == 2
    assert len(row["nn1"]["accuracy"]["values"]) == 2 and len(row["broken"]["accuracy"]["values"]) == 1
    alone = accuracy.run(["Coffee"], [0], config, methods=("nn1",), log=lambda *_: None)
    assert row["nn1"]["accuracy"]["values"][0] == alone["datasets"]["Coffee"]["nn1"]["accuracy"]["median"]
    assert "2 processes of one torch thread" in accuracy.markdown(r)


def test_overhead_parts_measure_what_they_claim(tmp_path):
    check = overhead.check_seconds(repeats=1)
    assert check["check_s"]["median"] > 0 and check["ratio_to_step"]["median"] > 0
    latest = overhead.latest_epoch_seconds(big_bytes=3 << 20, repeats=2)
    assert latest["big_bytes"] >= 3 << 20  # the log really is that big
    assert latest["ratio"]["median"] > 0


def test_speed_helpers(tmp_path):
    model, opt, x, y, kwargs = speed._setup(64, 4, n_classes=3, pool=1)
    flops = speed.step_flops(model, opt, x, y)
    assert flops > 0
    timed = speed._interleaved({"a": (model, opt, x, y, kwargs)}, repeats=2)
    assert len(timed["a"]["values"]) == 2
    assert speed.matmul_gflops(n=64, repeats=2) > 0


@pytest.mark.slow
def test_live_overhead_script_writes_its_result(tmp_path):
    import live_overhead

    out = tmp_path / "live.json"
    r = live_overhead.main(["--pairs", "1", "--epochs", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["pairs"] == 1 and len(saved["ratios"]) == 1 and saved["median_ratio"] > 0
    assert r["redraws"][0] >= 1  # the B run really drew frames
    import run

    assert "median wall-time ratio" in run.live_markdown(saved)


@pytest.mark.slow
def test_ablation_variants_and_ensemble_from_a_tiny_run():
    import ablation

    tiny = {"epochs": 1}  # the default, data-fitted start: it has no width or blocks to shrink
    variants = {"default": tiny, "more steps": {**tiny, "min_steps": 70}}
    assert ablation.config_for(variants["more steps"], 0, 28).epochs == 35  # 2 steps per epoch
    assert ablation.config_for(variants["default"], 0, 28).epochs == 1
    r = ablation.run(["Coffee"], [0, 1], variants, log=lambda *_: None)
    row = r["datasets"]["Coffee"]
    assert set(row) == {"default", "more steps", ablation.ENSEMBLE}
    assert len(row["default"]["accuracy"]["values"]) == 2
    assert len(row[ablation.ENSEMBLE]["accuracy"]["values"]) == 1  # one pair of seeds
    assert row[ablation.ENSEMBLE]["train_s"]["median"] == pytest.approx(sum(row["default"]["train_s"]["values"]))
    text = ablation.markdown(r)
    assert "| more steps |" in text and "Coffee accuracy (train s)" in text


def test_doctor_benchmark_parts(tmp_path):
    d = doctor.default_model(repeats=1)
    assert d["check_s"]["median"] > 0 and d["findings"] == 0 and "gradient_flow" in d["per_check_s"]
    w = doctor.watch_overhead(pairs=1, steps=2)
    assert 0 < w["own_share"]["median"] < 1 and w["ratio"]["median"] > 0
    c = doctor.clean([0])
    assert c["false"] == 0 and c["checks"] == len(doctor.CLEAN)
    text = doctor.markdown({"gallery": {"rows": [], "caught": 0, "total": 1, "fixed_false": 0},
                            "clean": c, "default_model": d, "watch": w})
    assert "False findings**: 0 in" in text and "Threshold margins" in text
