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
