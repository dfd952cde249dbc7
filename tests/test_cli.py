"""The `seqrep` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from seqrep.cli import main


def test_data_synthetic_json(capsys):
    assert main(["data", "synthetic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["all"]
    assert out["samples"] == 500 and out["classes"] == 60 and out["length"] == {"min": 128, "max": 128}
    assert out["imbalance"]["per_class"]["min"] == 2


def test_data_named_dataset_text(capsys):
    assert main(["data", "PigCVP"]) == 0
    out = capsys.readouterr().out
    assert "PigCVP train: 104 samples, 52 classes, 1 channel(s), length 2000" in out
    assert "PigCVP test: 208 samples" in out


def test_data_list(capsys):
    assert main(["data", "--list"]) == 0
    assert "ArrowHead" in capsys.readouterr().out.split()


def test_bad_input_is_a_clear_error_not_a_traceback(capsys):
    assert main(["data", "NoSuchSet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqrep data: error: no dataset named 'NoSuchSet'")
    assert "Traceback" not in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "seqrep"
    out = subprocess.run([str(script), "data", "GunPoint", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["test"]["samples"] == 150


def test_train_then_show_latest_epoch_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "synthetic", "--classes", "4", "--samples", "40", "--length", "80",
            "--epochs", "2", "--width", "8", "--kernel-sizes", "3,5,7", "--batch-size", "8",
            "--run-dir", str(run)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "run directory:" in out and "epoch 1/2" in out
    assert main(["show-latest-epoch", str(run)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("epoch 1/2 | train loss") and "val acc" in shown
    assert main(args) == 2  # the run directory is taken: a clear error, nothing overwritten
    assert "already holds a run; pass resume=True" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0


def test_train_broken_on_a_real_dataset(tmp_path, capsys):
    args = ["train", "ItalyPowerDemand", "--broken", "--epochs", "1", "--width", "8",
            "--run-dir", str(tmp_path / "r")]
    assert main(args) == 0
    records = [r for r in __import__("seqrep").read_log(tmp_path / "r") if "epoch" in r]
    assert records[0]["grad_norm"]["representation"] is None


def test_train_bad_hyperparameter_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--lr", "-1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
