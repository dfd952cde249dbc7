"""seqrep.runlog: the JSON Lines run log and show-latest-epoch."""

from __future__ import annotations

import builtins
import io
import json
import threading
import time

import pytest

import seqrep
from seqrep.runlog import RunLog, format_record, latest_epoch, read_log, show_latest_epoch


def _epoch(i: int, **extra) -> dict:
    return {"epoch": i, "epochs": 10, "time": float(i), "train_loss": 1.0 / (i + 1),
            "val_accuracy": 0.1 * i, **extra}


def test_append_then_read(tmp_path):
    log = RunLog(tmp_path / "run.jsonl")
    log.append({"event": "start"})
    for i in range(3):
        log.append(_epoch(i))
    assert [r.get("epoch") for r in read_log(tmp_path)] == [None, 0, 1, 2]
    assert latest_epoch(tmp_path)["epoch"] == 2


def test_half_written_last_line_is_ignored(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(_epoch(0)) + "\n" + json.dumps(_epoch(1)) + "\n" + '{"epoch": 2, "train_lo')
    assert latest_epoch(path)["epoch"] == 1
    assert [r["epoch"] for r in read_log(path)] == [0, 1]


def test_events_after_the_last_epoch_are_skipped(tmp_path):
    log = RunLog(tmp_path / "run.jsonl")
    log.append(_epoch(4))
    log.append({"event": "stopped", "at_epoch": 4, "reason": "test"})
    assert latest_epoch(tmp_path)["epoch"] == 4


def test_no_epoch_yet(tmp_path):
    RunLog(tmp_path / "run.jsonl").append({"event": "start"})
    assert latest_epoch(tmp_path) is None
    out = io.StringIO()
    assert show_latest_epoch(tmp_path, out=out) is None
    assert "no epoch finished yet" in out.getvalue()


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(seqrep.SeqrepError, match="no run log here"):
        latest_epoch(tmp_path)


@pytest.mark.parametrize("filler", [10, 5000], ids=["short-lines", "lines-longer-than-a-chunk"])
def test_reads_only_the_tail_of_a_big_log(tmp_path, monkeypatch, filler):
    path = tmp_path / "run.jsonl"
    with open(path, "w") as f:
        for i in range(10000 if filler == 10 else 400):
            f.write(json.dumps(_epoch(i, note="x" * filler)) + "\n")
        f.write('{"epoch": 999999, "half')  # a run still writing
    size = path.stat().st_size
    read_bytes = []
    real_open = builtins.open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def read(self, n=-1):
            data = self.f.read(n)
            read_bytes.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    record = latest_epoch(path)
    assert record["epoch"] == (9999 if filler == 10 else 399)
    assert size > 1_000_000 and sum(read_bytes) < 3 * 65536


def test_follow_prints_each_new_epoch_while_a_run_writes(tmp_path):
    log = RunLog(tmp_path / "run.jsonl")
    log.append(_epoch(0))

    def writer():
        for i in range(1, 3):
            time.sleep(0.15)
            log.append(_epoch(i))

    thread = threading.Thread(target=writer)
    thread.start()
    out = io.StringIO()
    last = show_latest_epoch(tmp_path, follow=True, interval=0.05, out=out, max_updates=3)
    thread.join()
    assert last["epoch"] == 2
    printed = [line for line in out.getvalue().splitlines() if line.startswith("epoch")]
    assert [line.split(" |")[0] for line in printed] == ["epoch 0/10", "epoch 1/10", "epoch 2/10"]


def test_format_record_shows_missing_gradients():
    text = format_record(_epoch(3, grad_norm={"representation": None, "readout": 0.5},
                                update_ratio={"representation": float("-inf"), "readout": -2.5}))
    assert "epoch 3/10" in text and "train loss 0.2500" in text
    assert "representation None" in text and "representation -inf" in text


def test_truncate_after_drops_later_epochs(tmp_path):
    log = RunLog(tmp_path / "run.jsonl")
    log.append({"event": "start"})
    for i in range(5):
        log.append(_epoch(i))
    log.truncate_after(2)
    assert [r.get("epoch") for r in read_log(tmp_path)] == [None, 0, 1, 2]


# ---------------------------------------------------------------------- hostile cases (issue 14)


def test_append_after_a_half_written_line_keeps_the_new_record(tmp_path):
    """Issue 14.7: the new record was glued onto the half line and both were lost."""
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(_epoch(0)) + "\n" + '{"epoch": 1, "train_lo')
    with pytest.warns(UserWarning, match=r"removed a half-written last line \(22 bytes"):
        RunLog(path).append(_epoch(1))
    assert [r["epoch"] for r in read_log(path)] == [0, 1]
    assert path.read_text().count("\n") == 2  # valid JSON Lines: no damaged line left behind


def test_append_after_a_whole_record_missing_its_newline_keeps_both(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(_epoch(0)) + "\n" + json.dumps(_epoch(1)))
    RunLog(path).append(_epoch(2))
    assert [r["epoch"] for r in read_log(path)] == [0, 1, 2]


def _cut_log(path, epochs: int) -> dict:
    """A log of `epochs` epochs whose last line lost its tail; returns the record cut off."""
    log = RunLog(path)
    log.append({"event": "start"})
    for i in range(epochs):
        log.append(_epoch(i))
    text = path.read_text()
    path.write_text(text[: len(text) - 15])
    return _epoch(epochs - 1)


def test_truncate_after_restores_the_checkpoint_record_whose_line_was_cut(tmp_path):
    """Issue 14.7: resuming from a checkpoint of epoch 2 whose log line was cut lost epoch 2
    for good; the checkpoint's copy of the record now takes its place."""
    path = tmp_path / "run.jsonl"
    record = _cut_log(path, 3)
    RunLog(path).truncate_after(2, last_record=record)
    assert [r.get("epoch") for r in read_log(path)] == [None, 0, 1, 2]
    assert read_log(path)[-1] == record
    RunLog(path).append(_epoch(3))
    assert [r.get("epoch") for r in read_log(path)] == [None, 0, 1, 2, 3]


def test_truncate_after_says_when_a_record_is_lost(tmp_path):
    path = tmp_path / "run.jsonl"
    _cut_log(path, 3)
    with pytest.warns(UserWarning, match="the record of epoch 2 is missing"):
        RunLog(path).truncate_after(2)
    assert [r.get("epoch") for r in read_log(path)] == [None, 0, 1]


def test_truncate_after_keeps_a_whole_last_record_missing_its_newline(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(_epoch(0)) + "\n" + json.dumps(_epoch(1)))
    RunLog(path).truncate_after(1)
    assert [r["epoch"] for r in read_log(path)] == [0, 1]


class _StopAfter(seqrep.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, state):
        if state.epoch == self.epoch:
            state.request_stop("test")


def _cut_run(tmp_path):
    """A fit stopped after epoch 1 whose log lost the tail of epoch 1's line (disk full, a
    copied run cut short), then resumed to the end. Returns the log's epochs."""
    from seqrep.config import ModelSpec, TrainConfig

    train, val = seqrep.make_sequences(n_classes=3, n_samples=24, length=30, motif_widths=(5, 9), seed=1).split(0.25)
    config = TrainConfig(model=ModelSpec(init="random", width=9, kernel_sizes=(3, 5), blocks=1, bottleneck=4), epochs=3,
                         batch_size=8, check_gradients=False)
    run = tmp_path / "run"

    def fit(**kw):
        model = seqrep.build_model(config, train)
        return seqrep.fit(model, train, val, config, run, progress=False, verbose=False, **kw)

    fit(callbacks=[_StopAfter(1)])
    log = run / "run.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    last_epoch = max(i for i, line in enumerate(lines) if '"epoch":' in line)
    log.write_text("".join(lines[:last_epoch]) + lines[last_epoch][:40])
    fit(resume=True)
    return [r["epoch"] for r in read_log(run) if "epoch" in r]


def test_resume_after_a_cut_log_line_restores_it(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _cut_run(tmp_path) == [0, 1, 2]


def _deny(monkeypatch, target, error):
    real_open = builtins.open

    def fake(path, *args, **kwargs):
        if str(path).endswith(target):
            raise error(13 if error is PermissionError else 21, "Permission denied" if error is PermissionError else "Is a directory", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake)


@pytest.mark.parametrize("reader", [read_log, latest_epoch])
def test_an_unreadable_log_is_a_clear_error(tmp_path, monkeypatch, reader):
    """A raw PermissionError traceback before (tests run as root, so chmod cannot deny)."""
    RunLog(tmp_path / "run.jsonl").append(_epoch(0))
    _deny(monkeypatch, "run.jsonl", PermissionError)
    with pytest.raises(seqrep.SeqrepError, match=r"cannot read the run log \(Permission denied\).*chmod u\+rw"):
        reader(tmp_path)


@pytest.mark.parametrize("reader", [read_log, latest_epoch])
def test_a_folder_or_a_binary_file_is_not_a_log(tmp_path, reader):
    (tmp_path / "a" / "run.jsonl").mkdir(parents=True)
    with pytest.raises(seqrep.SeqrepError, match="a folder, not a run log file"):
        reader(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01\n")
    with pytest.raises(seqrep.SeqrepError, match="not a seqrep run log"):
        reader(tmp_path / "b")


def test_read_log_returns_only_records_and_names_damaged_lines(tmp_path):
    """JSON lines that are not objects came back as records (and broke `"epoch" in r`)."""
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(_epoch(0)) + "\n3\n[1, 2]\n{bad json\n" + json.dumps(_epoch(1)) + "\n")
    with pytest.warns(UserWarning, match=r"lines \[2, 3, 4\] are not JSON records"):
        assert [r["epoch"] for r in read_log(path)] == [0, 1]


def test_format_record_shows_odd_values_as_written():
    text = format_record({"epoch": "x", "train_loss": "n/a", "lr": None, "grad_norm": [1, 2]})
    assert text == "epoch x | train loss n/a"


@pytest.mark.parametrize("interval", [-1.0, 0.0, float("nan"), float("inf")])
def test_show_latest_epoch_rejects_a_bad_interval(tmp_path, interval):
    RunLog(tmp_path / "run.jsonl").append(_epoch(0))
    with pytest.raises(seqrep.SeqrepError, match="interval must be a positive number of seconds"):
        show_latest_epoch(tmp_path, follow=True, interval=interval, out=io.StringIO(), max_updates=2)


def test_a_full_disk_while_appending_is_a_clear_error(tmp_path, monkeypatch):
    import errno

    import seqrep.runlog

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(seqrep.runlog.os, "fsync", full)
    with pytest.raises(seqrep.SeqrepError, match=r"cannot write the run log \(No space left on device\); free disk space"):
        RunLog(tmp_path / "run.jsonl").append(_epoch(0))


# ---------------------------------------------------------------------- hostile round two (issue 29)


@pytest.mark.parametrize(("end", "said"), [({"event": "finished"}, "run finished; nothing more to follow"),
                                           ({"event": "stopped", "reason": "interrupted (Ctrl-C)"},
                                            "run stopped: interrupted (Ctrl-C); nothing more to follow")])
def test_follow_ends_at_the_run_s_end_record(tmp_path, end, said):
    """show-latest-epoch --follow polled forever after the last epoch."""
    log = RunLog(tmp_path / "run.jsonl")
    log.append(_epoch(0))
    out, done = io.StringIO(), threading.Event()

    def follow():
        show_latest_epoch(tmp_path, follow=True, interval=0.01, out=out)
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.1)
    log.append(_epoch(1))
    assert not done.wait(0.2)  # still following: the run has not ended
    log.append(end)
    assert done.wait(10), "follow did not stop at the end record"
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch 0/10") and lines[-1] == said
    assert sum(line.startswith("epoch 1/10") for line in lines) == 1


def test_follow_goes_on_after_a_stopped_run_was_resumed(tmp_path):
    log = RunLog(tmp_path / "run.jsonl")
    for record in (_epoch(0), {"event": "stopped", "reason": "x"}, {"event": "resume"}):
        log.append(record)
    out = io.StringIO()
    assert show_latest_epoch(tmp_path, follow=True, interval=0.01, out=out, max_updates=1)["epoch"] == 0
    assert "nothing more to follow" not in out.getvalue()


def test_a_full_disk_while_rewriting_the_log_leaves_it_whole(tmp_path, monkeypatch):
    import errno
    import os

    log = RunLog(tmp_path / "run.jsonl")
    for i in range(3):
        log.append(_epoch(i))
    before = log.path.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(seqrep.SeqrepError, match=r"cannot rewrite the run log \(No space left on device\); it is left"):
        log.truncate_after(1)
    assert log.path.read_bytes() == before and not (tmp_path / "run.jsonl.tmp").exists()


def test_read_log_of_no_path_is_a_clear_error():
    with pytest.raises(seqrep.SeqrepError, match=r"read_log: run must be a path"):
        read_log(None)
