"""seqrep.callbacks: fit's events, their order, CancelFit, and the dispatcher's rules."""

from __future__ import annotations

import pytest
import torch

import seqrep
from seqrep.callbacks import EVENTS, Events
from seqrep.config import ModelSpec, TrainConfig

TINY = TrainConfig(model=ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7), blocks=1, bottleneck=4), epochs=2, batch_size=8, budget=0)


@pytest.fixture(scope="module")
def data():
    ds = seqrep.make_sequences(n_classes=4, n_samples=48, length=40, motif_widths=(5, 9), seed=1)
    return ds.split(0.25, seed=0)


def _fit(data, run_dir, callbacks=(), config=TINY, **kw):
    train, val = data
    model = seqrep.build_model(config, train)
    return seqrep.fit(model, train, val, config, run_dir, callbacks, progress=False, verbose=False, **kw)


class Recorder(seqrep.Callback):
    def __init__(self, name, calls, order=0):
        self.name, self.calls, self.order = name, calls, order
        for event in EVENTS:
            setattr(self, event, lambda state, event=event: self.calls.append((self.name, event)))


def test_events_come_in_loop_order_with_one_dispatcher(data, tmp_path):
    calls = []
    _fit(data, tmp_path, [Recorder("a", calls)])
    events = [e for _, e in calls]
    steps = 5  # 35 training series in batches of 8
    per_epoch = ["before_epoch", *["before_batch", "after_loss", "after_backward", "after_step"] * steps, "after_epoch"]
    assert events == ["before_fit", *per_epoch, *per_epoch, "after_fit"]


def test_order_decides_who_runs_first_and_after_fit_runs_in_reverse(data, tmp_path):
    calls = []
    _fit(data, tmp_path, [Recorder("late", calls, order=5), Recorder("early", calls, order=-5)])
    firsts = [n for n, e in calls if e == "before_fit"]
    lasts = [n for n, e in calls if e == "after_fit"]
    assert firsts == ["early", "late"] and lasts == ["late", "early"]


def test_cancel_fit_ends_the_run_cleanly_with_a_partial_epoch(data, tmp_path):
    class Enough(seqrep.Callback):
        def after_step(self, state):
            if state.global_step == 3:
                raise seqrep.CancelFit("three steps are enough")

    result = _fit(data, tmp_path, [Enough()])
    assert result.stopped == "three steps are enough"
    assert result.final["partial"] and result.final["steps"] == 3
    assert seqrep.read_log(tmp_path)[-1]["reason"] == "three steps are enough"
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (ckpt["complete"], ckpt["next_step"]) == (False, 3)


def test_after_fit_still_runs_after_an_error(data, tmp_path):
    calls = []

    class Boom(seqrep.Callback):
        def after_step(self, state):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as err:
        _fit(data, tmp_path, [Boom(), Recorder("watcher", calls)])
    assert calls[-1] == ("watcher", "after_fit")
    assert seqrep.read_log(tmp_path)[-1]["reason"] == "RuntimeError: boom (raised by Boom.after_step)"
    assert "(raised by the callback Boom.after_step)" in getattr(err.value, "__notes__", [""])[0]
    _fit(data, tmp_path / "again")  # the run directory lock of the failed run was released


def test_a_refused_start_tears_down_only_what_was_set_up(data, tmp_path):
    calls = []
    broken = TINY.replace(model={"extraction": "broken"})
    with pytest.raises(seqrep.TrainingBugError):
        _fit(data, tmp_path, [Recorder("mine", calls)], config=broken)
    assert calls == []  # the guard (order -50) refused before this callback's before_fit


def test_callbacks_add_fields_to_the_logged_record(data, tmp_path):
    class Note(seqrep.Callback):
        def after_epoch(self, state):
            state.record["note"] = f"epoch {state.epoch}"

    _fit(data, tmp_path, [Note()])
    assert [r["note"] for r in seqrep.read_log(tmp_path) if "epoch" in r] == ["epoch 0", "epoch 1"]


@pytest.mark.parametrize(("name", "meant"), [("on_epoch_end", "after_epoch"), ("on_fit_start", "before_fit"),
                                             ("after_epochs", "after_epoch"), ("before_step", None)])
def test_a_method_that_looks_like_a_hook_but_is_no_event_is_refused(name, meant):
    hint = rf" \(did you mean {meant}\?\)" if meant else ""
    with pytest.raises(seqrep.SeqrepError, match=rf"defines {name}, which is not one of fit's events{hint};"):
        type("Mine", (seqrep.Callback,), {name: lambda self, state: None})  # at the class definition
    plain = type("Plain", (), {name: lambda self, state: None, "after_step": lambda self, state: None})
    with pytest.raises(seqrep.SeqrepError, match=f"defines {name}"):
        Events(None, [plain()])  # not a Callback subclass: when given to fit


def test_helpers_and_non_callbacks_are_told_apart():
    class Fine(seqrep.Callback):
        def _after_epoch_summary(self): ...  # private: a helper

        def summary(self): ...

    Events(None, [Fine()])
    with pytest.raises(seqrep.SeqrepError, match="has none of fit's events"):
        Events(None, [object()])


def test_built_ins_can_be_left_out_by_name(data, tmp_path):
    calls = []
    _fit(data, tmp_path / "a", [Recorder("a", calls)], without=("Checkpointer", "WatchTraining"))
    assert not (tmp_path / "a" / "checkpoint.pt").exists() and seqrep.read_log(tmp_path / "a")
    with pytest.raises(seqrep.SeqrepError, match=r"'Checkpointr' is not a built-in callback \(did you mean 'Checkpointer'\?\)"):
        _fit(data, tmp_path / "b", without=("Checkpointr",))
    assert not (tmp_path / "b").exists()  # refused before the run directory was touched
    with pytest.raises(seqrep.SeqrepError, match="ProgressBar: leave it out with progress=False"):
        _fit(data, tmp_path / "c", without=("ProgressBar",))


def test_show_training_loop_prints_who_runs_at_each_event_in_order(capsys):
    class Mine(seqrep.Callback):
        order = 10

        def after_epoch(self, state): ...

    text = seqrep.show_training_loop([Mine()], TINY, without=("WatchTraining",))
    assert text == capsys.readouterr().out.strip()
    lines = dict(line.split(maxsplit=1) for line in text.splitlines())
    assert list(lines) == list(EVENTS)
    assert lines["after_epoch"] == ("NonFiniteGuard (-60), GradientStats (-40), Mine (10), Checkpointer (90), "
                                    "RunLogger (95), ProgressBar (100)")  # checkpointed, then logged
    assert lines["after_fit"].startswith("ProgressBar (100), RunLogger (95)")  # reverse order
    assert "WatchTraining" not in text and "TimeBudget" not in text  # left out; epochs planned, no budget


def test_a_failing_after_fit_still_lets_every_other_callback_tear_down(data, tmp_path):
    """A full disk in the run logger's after_fit left the SIGINT handler and watch's hooks in
    place (the later after_fit never ran) and replaced the error that ended the run."""
    import signal

    calls = []

    class FailsAtTheEnd(seqrep.Callback):
        order = 50

        def after_fit(self, state):
            raise OSError("disk full")

    class Late(seqrep.Callback):
        order = -200  # tears down after FailsAtTheEnd (after_fit runs in reverse order)

        def after_fit(self, state):
            calls.append("torn down")

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(OSError, match="disk full") as err:
        _fit(data, tmp_path / "a", [FailsAtTheEnd(), Late()])
    assert calls == ["torn down"] and signal.getsignal(signal.SIGINT) is previous
    assert "(raised by the callback FailsAtTheEnd.after_fit)" in getattr(err.value, "__notes__", [])

    class Breaks(seqrep.Callback):
        def after_step(self, state):
            raise RuntimeError("the run's own error")

    with pytest.raises(RuntimeError, match="the run's own error") as err:  # the first error stays the one raised
        _fit(data, tmp_path / "b", [Breaks(), FailsAtTheEnd(), Late()])
    assert any("FailsAtTheEnd.after_fit failed too: disk full" in note for note in err.value.__notes__)
    assert calls == ["torn down", "torn down"]
