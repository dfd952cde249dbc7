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
