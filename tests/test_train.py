"""seqrep.train: fit, its run log and checkpoints, resume, stops."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
import torch

import seqrep
from seqrep.build import DataShape
from seqrep.checkpoint import CHECKPOINT_NAME
from seqrep.config import ModelSpec, TrainConfig
from seqrep.plan import plan_epochs

TINY = TrainConfig(model=ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7), blocks=1, bottleneck=4), epochs=4, batch_size=8, budget=0)


@pytest.fixture(scope="module")
def data():
    ds = seqrep.make_sequences(n_classes=4, n_samples=48, length=40, motif_widths=(5, 9), seed=1)
    return ds.split(0.25, seed=0)


def _fit(data, run_dir, config=TINY, extraction="fixed", **kw):
    train, val = data
    config = config.replace(model={"extraction": extraction}, check_gradients=extraction == "fixed")
    model = seqrep.build_model(config, train)
    return model, seqrep.fit(model, train, val, config, run_dir, progress=False, verbose=False, **kw)


class StopAt(seqrep.Callback):
    def __init__(self, epoch, step=None):
        self.epoch, self.step = epoch, step

    def after_step(self, state):
        if self.step is not None and (state.epoch, state.step) == (self.epoch, self.step):
            state.request_stop("test stop")

    def after_epoch(self, state):
        if self.step is None and state.epoch == self.epoch:
            state.request_stop("test stop")


METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy")


def _metrics(record):
    return [record[k] for k in METRICS]


# ---------------------------------------------------------------------- config


def test_config_round_trips_through_json():
    config = TrainConfig(model=ModelSpec(init="random", kernel_sizes=(3, 5), width=63), lr=3e-3, schedule="cosine")
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.diff(TrainConfig()) == {"model.init": ("random", "data"), "model.kernel_sizes": ((3, 5), ()),
                                          "model.width": (63, 64), "lr": (3e-3, 1e-2), "schedule": ("cosine", "onecycle")}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"lr": 0}, "lr must be > 0"),
        ({"schedule": "step"}, "schedule must be"),
        ({"model": {"extraction": "half"}}, "extraction must be one of 'fixed', 'broken'"),
        ({"model": {"dropout": 1.5}}, "dropout must be in [0, 1)"),
        ({"epochs": -1}, "epochs must be >= 1, or 0 for automatic"),
        ({"learning_rate": 0.1}, "no field(s) ['learning_rate']"),
    ],
)
def test_config_rejects_bad_values(changes, fragment):
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        TrainConfig().replace(**changes)


def test_automatic_epochs_give_small_training_sets_enough_steps(data, tmp_path, monkeypatch):
    import seqrep.plan
    from seqrep.plan import AUTO_EPOCHS, MIN_STEPS, plan_epochs

    auto = TrainConfig(batch_size=16)
    assert plan_epochs(auto, 400).epochs == AUTO_EPOCHS  # 25 steps an epoch: 750 steps
    assert plan_epochs(auto, 36).epochs == math.ceil(MIN_STEPS / 3)  # ArrowHead: 3 steps an epoch
    assert plan_epochs(auto.replace(epochs=7), 36).epochs == 7  # an explicit choice stays
    monkeypatch.setattr(seqrep.plan, "MIN_STEPS", 3 * AUTO_EPOCHS)  # fit reads it at run time
    train, val = data
    small = TINY.replace(epochs=0, batch_size=len(train))  # one step an epoch
    result = seqrep.fit(seqrep.build_model(small, train),
                        train, val, small, tmp_path, progress=False, verbose=False)
    assert len(result.history) == 3 * AUTO_EPOCHS == result.history[-1]["epochs"]
    assert seqrep.read_log(tmp_path)[0]["config"]["epochs"] == 3 * AUTO_EPOCHS  # the resolved value


def test_automatic_pool_and_kernels_follow_the_length():
    assert ModelSpec().resolved(2000).pool == 4
    assert ModelSpec().resolved(128) == ModelSpec().resolved(128)
    short = ModelSpec(init="random").resolved(24)
    assert short.pool == 1 and max(short.kernel_sizes) <= 24
    with pytest.raises(seqrep.SeqrepError, match=r"kernels of \[39\] steps are longer than the series \(24 steps\)"):
        ModelSpec(init="random", kernel_sizes=(9, 39), width=63).resolved(24)


# ---------------------------------------------------------------------- fit


def test_fit_logs_every_epoch_and_checkpoints(data, tmp_path):
    model, result = _fit(data, tmp_path)
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["event"] == "start" and records[0]["parameter_counts"]["representation"]["in_optimizer"] > 0
    epochs = [r for r in records if "epoch" in r]
    assert [r["epoch"] for r in epochs] == [0, 1, 2, 3] == [r["epoch"] for r in result.history]
    for key in (*METRICS, "val_macro_f1", "seconds", "samples_per_s"):
        assert all(np.isfinite(r[key]) for r in epochs), key
    assert all(list(r["lr"]) == ["all"] and np.isfinite(r["lr"]["all"]) for r in epochs)  # every group's rate
    assert set(epochs[-1]["grad_norm"]) == {"representation", "readout"}
    assert all(v is not None and v > 0 for v in epochs[-1]["grad_norm"].values())
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["complete"]
    assert TrainConfig.from_json(ckpt["config"]) == TINY
    reloaded = seqrep.load_model(tmp_path)
    x = torch.from_numpy(data[1].X)
    torch.testing.assert_close(reloaded(x, training=False), model(x, training=False))


def test_fit_is_deterministic(data, tmp_path):
    _, a = _fit(data, tmp_path / "a")
    _, b = _fit(data, tmp_path / "b")
    assert [_metrics(r) for r in a.history] == [_metrics(r) for r in b.history]


def test_refuses_to_overwrite_a_run(data, tmp_path):
    _fit(data, tmp_path, TINY.replace(epochs=1))
    with pytest.raises(seqrep.SeqrepError, match="already holds a run; pass resume=True"):
        _fit(data, tmp_path, TINY.replace(epochs=1))


def test_broken_model_trains_only_its_readout(data, tmp_path):
    train, val = data
    config = TINY.replace(model={"extraction": "broken"}, check_gradients=False)
    model = seqrep.build_model(config, train)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = seqrep.fit(model, train, val, config, tmp_path, progress=False, verbose=False)
    after = model.state_dict()
    rep_params = [n for n, _ in model.representation.named_parameters()]
    assert all(torch.equal(before[f"representation.{n}"], after[f"representation.{n}"]) for n in rep_params)
    assert not torch.equal(before["readout.weight"], after["readout.weight"])
    assert result.final["grad_norm"]["representation"] is None
    assert result.final["update_ratio"]["representation"] == float("-inf")
    assert result.parameter_counts["representation"]["in_optimizer"] > 0  # looks right, is not


def test_fixed_model_changes_its_representation(data, tmp_path):
    train, val = data
    model = seqrep.build_model(TINY, train)
    before = [p.clone() for p in model.representation.parameters()]
    seqrep.fit(model, train, val, TINY, tmp_path, progress=False, verbose=False)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.representation.parameters()))


@pytest.mark.parametrize("stop", [StopAt(1), StopAt(1, step=2)], ids=["after-epoch", "mid-epoch"])
def test_resume_equals_uninterrupted(data, tmp_path, stop):
    _, straight = _fit(data, tmp_path / "straight")
    _, first = _fit(data, tmp_path / "resumed", callbacks=[stop])
    assert first.stopped == "test stop" and len(first.history) == 2
    _, second = _fit(data, tmp_path / "resumed", resume=True)
    assert _metrics(second.final) == _metrics(straight.final)
    log = [r for r in seqrep.read_log(tmp_path / "resumed") if "epoch" in r]
    assert [r["epoch"] for r in log] == [0, 1, 2, 3]  # one record per epoch
    assert [_metrics(r) for r in log] == [_metrics(r) for r in straight.history]


def test_stop_event_from_another_thread(data, tmp_path):
    event = threading.Event()

    class SetAfterFirstEpoch(seqrep.Callback):
        def after_epoch(self, state):
            threading.Thread(target=event.set).start()

    _, result = _fit(data, tmp_path, callbacks=[SetAfterFirstEpoch()], stop_event=event)
    assert result.stopped == "stop requested" and len(result.history) < 4
    assert seqrep.read_log(tmp_path)[-1]["event"] == "stopped"


def test_ctrl_c_ends_cleanly_with_log_and_checkpoint(data, tmp_path):
    class PressCtrlC(seqrep.Callback):
        def after_step(self, state):
            if (state.epoch, state.step) == (1, 1):
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="log and checkpoint in"):
        _fit(data, tmp_path, callbacks=[PressCtrlC()])
    assert signal.getsignal(signal.SIGINT) is previous  # handler restored
    last = seqrep.runlog.latest_epoch(tmp_path)
    assert last["epoch"] == 1 and last["partial"]
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert (ckpt["epoch"], ckpt["complete"], ckpt["next_step"]) == (1, False, 2)
    _, resumed = _fit(data, tmp_path, resume=True)
    assert resumed.final["epoch"] == 3


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint(data, tmp_path):
    class Poison(seqrep.Callback):
        def after_step(self, state):
            if (state.epoch, state.step) == (1, 0):
                with torch.no_grad():
                    state.model.readout.weight.fill_(float("nan"))

    with pytest.raises(seqrep.NonFiniteLossError, match=r"at epoch 1, step 1; training stopped"):
        _fit(data, tmp_path, callbacks=[Poison()])
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["complete"]
    assert torch.isfinite(ckpt["model"]["readout.weight"]).all()
    assert seqrep.read_log(tmp_path)[-1]["reason"].startswith("non-finite loss")


def test_checkpoint_of_another_config_or_architecture_is_refused(data, tmp_path):
    _fit(data, tmp_path, TINY.replace(epochs=1))
    with pytest.raises(seqrep.SeqrepError, match=r"different config \(lr: 0.01 in the checkpoint vs 0.001 now\)"):
        _fit(data, tmp_path, TINY.replace(epochs=1, lr=1e-3), resume=True)
    train, val = data
    wider = seqrep.build_model(TINY.replace(epochs=1), DataShape(train.channels, 7, train.length))
    with pytest.raises(seqrep.SeqrepError, match="does not fit this model's architecture"):
        seqrep.fit(wider, train, val, TINY.replace(epochs=1), tmp_path, resume=True, progress=False, verbose=False)
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(seqrep.SeqrepError, match="not a readable seqrep checkpoint"):
        _fit(data, tmp_path, TINY.replace(epochs=1), resume=True)


def test_fit_rejects_bad_inputs(data, tmp_path):
    train, val = data
    with pytest.raises(seqrep.SeqrepError, match=r"batch size 64 is larger than the training set of .* \(35 samples\)"):
        _fit(data, tmp_path, TINY.replace(batch_size=64))
    other = seqrep.make_sequences(n_classes=3, n_samples=30, length=40, motif_widths=(5, 9))
    with pytest.raises(seqrep.SeqrepError, match=r"synthetic has the classes \[.*\] but synthetic \(train part\) has"):
        seqrep.fit(seqrep.build_model(TINY, DataShape(1, 4, 40)), train, other, TINY, tmp_path, progress=False)
    with pytest.raises(seqrep.SeqrepError, match=r"must be a seqrep\.SequenceDataset"):
        seqrep.fit(seqrep.build_model(TINY, DataShape(1, 4, 40)), (train.X, train.y), val, TINY, tmp_path)


def test_variable_length_data_trains(tmp_path):
    train = seqrep.load_dataset("JapaneseVowels", "train").subset(np.arange(0, 270, 9))
    config = TINY.replace(epochs=1)
    model = seqrep.build_model(config, train)
    result = seqrep.fit(model, train, None, config, tmp_path, progress=False, verbose=False)
    assert np.isfinite(result.final["train_loss"])


# ---------------------------------------------------------------------- nothing lost, nothing silently wrong


def test_non_finite_weights_at_an_epoch_end_are_never_checkpointed(data, tmp_path):
    class PoisonLastStep(seqrep.Callback):
        def after_step(self, state):  # after the optimiser's last step of epoch 1: no loss sees it
            if (state.epoch, state.steps_done) == (1, state.steps_per_epoch):
                with torch.no_grad():
                    state.model.readout.bias.fill_(float("inf"))

    with pytest.raises(seqrep.NonFiniteLossError, match=r"weight tensor.*non-finite during epoch 1") as err:
        _fit(data, tmp_path, callbacks=[PoisonLastStep()])
    assert "epoch 0) is kept" in str(err.value) and "--grad-clip" in str(err.value)
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert [r["epoch"] for r in seqrep.read_log(tmp_path) if "epoch" in r] == [0]


def test_a_failure_in_the_first_epoch_does_not_promise_a_checkpoint(data, tmp_path):
    class PoisonFirstStep(seqrep.Callback):
        def after_step(self, state):
            with torch.no_grad():
                state.model.readout.weight.fill_(float("nan"))

    with pytest.raises(seqrep.NonFiniteLossError, match="there is no checkpoint") as err:
        _fit(data, tmp_path, callbacks=[PoisonFirstStep()])
    assert "is kept" not in str(err.value) and not (tmp_path / CHECKPOINT_NAME).exists()


def test_resume_without_a_checkpoint_refuses_and_keeps_the_log(data, tmp_path):
    _fit(data, tmp_path, TINY.replace(epochs=2))
    (tmp_path / CHECKPOINT_NAME).unlink()
    before = (tmp_path / "run.jsonl").read_text()
    with pytest.raises(seqrep.SeqrepError, match=r"its log has 2 epoch\(s\) but there is no checkpoint.pt"):
        _fit(data, tmp_path, TINY.replace(epochs=2), resume=True)
    assert (tmp_path / "run.jsonl").read_text() == before
    with pytest.raises(seqrep.SeqrepError, match=r"nothing to resume in .*typo"):
        _fit(data, tmp_path / "typo", resume=True)
    assert not (tmp_path / "typo").exists()


def test_a_second_run_in_the_same_directory_is_refused_while_the_first_runs(data, tmp_path):
    seen = {}

    class TryASecondRun(seqrep.Callback):
        def after_epoch(self, state):
            if state.epoch == 0:
                with pytest.raises(seqrep.SeqrepError, match="is in use by another run") as err:
                    _fit(data, tmp_path, resume=True)
                seen["message"] = str(err.value)

    _fit(data, tmp_path, callbacks=[TryASecondRun()])
    assert f"pid {os.getpid()}" in seen["message"]
    assert [r["epoch"] for r in seqrep.read_log(tmp_path) if "epoch" in r] == [0, 1, 2, 3]  # logged once


def test_an_unwritable_run_directory_is_a_clear_error(data, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")  # unwritable even for root, unlike chmod
    with pytest.raises(seqrep.SeqrepError, match=r"cannot write to the run directory .*choose a writable one"):
        _fit(data, tmp_path / "a-file" / "run")


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(data, tmp_path):
    class PressCtrlC(seqrep.Callback):
        def after_step(self, state):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="resume=True") as err:
        _fit(data, tmp_path, callbacks=[PressCtrlC()])
    assert str(tmp_path) in str(err.value) and "seqrep train --resume" in str(err.value)


def test_random_bytes_are_not_a_checkpoint_and_torch_advice_is_not_echoed(data, tmp_path):
    _fit(data, tmp_path, TINY.replace(epochs=1))
    (tmp_path / CHECKPOINT_NAME).write_bytes(os.urandom(4096))
    for load in (lambda: seqrep.load_model(tmp_path), lambda: _fit(data, tmp_path, TINY.replace(epochs=1), resume=True)):
        with pytest.raises(seqrep.SeqrepError, match="not a readable seqrep checkpoint") as err:
            load()
        assert "weights_only=False" not in str(err.value)


def test_fit_returns_the_epochs_it_planned(data, tmp_path):
    train, _ = data
    result = _fit(data, tmp_path, TINY.replace(epochs=0))[1]
    assert result.config.epochs == plan_epochs(TINY.replace(epochs=0), len(train)).epochs > 0
    assert result.config.epochs == seqrep.read_log(tmp_path)[0]["config"]["epochs"]


# ---------------------------------------------------------------------- the time budget


def test_a_time_budget_plans_epochs_and_records_them(data, tmp_path, monkeypatch):
    import seqrep.plan

    monkeypatch.setattr(seqrep.plan, "_seconds_per_step", lambda state: 0.01)  # a known speed
    monkeypatch.setattr(seqrep.plan, "_seconds_per_evaluation", lambda state: 0.05)
    budget = TINY.replace(epochs=0, budget=1000.0)
    train, val = data
    state = seqrep.train._set_up(seqrep.build_model(budget, train), train, val, budget, tmp_path, "cpu", False)
    per_epoch = state.steps_per_epoch * 0.01 + 0.05  # 5 steps and one evaluation
    assert state.config.epochs == int((1000.0 - state.planning_seconds) // per_epoch)
    assert state.scheduler.total_steps == state.config.epochs * state.steps_per_epoch
    assert state.plan["epochs"] == state.config.epochs and state.plan["seconds_per_step"] == 0.01
    assert TINY.replace(epochs=3, budget=1000.0).epochs == 3  # explicit epochs still win


@pytest.mark.parametrize("init", ["data", "random"])
def test_a_budget_planned_run_is_repeated_bitwise_by_its_logged_config(data, tmp_path, init, monkeypatch):
    """The plan (epochs) is made once, before the first step, and is the run's config: fit with
    result.config, or with the config the run log recorded, trains the same steps on the same
    schedule — the same weights to the bit, however loaded the machine was either time (the
    overrun stop, the one exception, is switched off: a loaded test machine could trip it)."""
    import seqrep.plan

    monkeypatch.setattr(seqrep.plan, "OVERRUN", float("inf"))
    train, val = data
    config = (TINY if init == "random" else TrainConfig(batch_size=8)).replace(epochs=0, budget=3.0)
    first = seqrep.build_model(config, train)
    result = seqrep.fit(first, train, val, config, tmp_path / "a", progress=False, verbose=False)
    assert result.plan is not None and result.config.epochs == result.plan["epochs"] >= 1
    assert result.steps == result.config.epochs * math.ceil(len(train) / config.batch_size)
    logged = TrainConfig.from_dict(seqrep.read_log(tmp_path / "a")[0]["config"])
    assert logged == result.config and seqrep.read_log(tmp_path / "a")[0]["steps"] == result.steps
    again = seqrep.build_model(logged, train)
    repeat = seqrep.fit(again, train, val, logged, tmp_path / "b", progress=False, verbose=False)
    assert repeat.plan is None and repeat.steps == result.steps
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert repeat.final["val_loss"] == result.final["val_loss"]


def test_a_run_far_past_its_budget_ends_there_mid_epoch(data, tmp_path, monkeypatch):
    """A machine that slows down after the plan: the run is not re-planned (that could not be
    repeated) but ends at the first step past OVERRUN x the budget, saying so."""
    import seqrep.plan

    monkeypatch.setattr(seqrep.plan, "_seconds_per_step", lambda state: 0.01)  # planned as fast

    class SlowSteps(seqrep.Callback):  # each step now takes 0.5 s: 5-step epochs of 2.5 s
        def after_step(self, state):
            time.sleep(0.5)

    config = TINY.replace(epochs=0, budget=1.0)
    result = _fit(data, tmp_path, config, callbacks=[SlowSteps()])[1]
    assert result.stopped.startswith("time budget") and "1.5 x" in result.stopped
    assert len(result.history) == 1 and result.history[0]["partial"]
    assert 2 <= result.history[0]["steps"] <= 4  # past 1.5 s after 3 steps (plus set-up)
    assert seqrep.read_log(tmp_path)[-1]["event"] == "stopped"


def test_every_group_rate_is_logged_from_its_own_peak(data, tmp_path):
    """The data-fitted start trains its groups at their own rates: each is logged by name, the
    peaks in the start event, and the schedule scales all of them alike."""
    config = TrainConfig(epochs=2, batch_size=8, budget=0, schedule="cosine")
    _, result = _fit(data, tmp_path, config)
    start = seqrep.read_log(tmp_path)[0]
    groups = ["kernels", "thresholds", "scorers"]  # the readout is solved, not stepped
    assert list(start["peak_lr"]) == groups and all(v > 0 for v in start["peak_lr"].values())
    assert start["peak_lr"]["scorers"] == config.lr != start["peak_lr"]["kernels"]
    for record in result.history:
        assert list(record["lr"]) == groups
        factors = [record["lr"][g] / start["peak_lr"][g] for g in groups]
        assert factors == pytest.approx([factors[0]] * 3)  # one schedule, every group's own peak
    assert result.final["lr"]["kernels"] < start["peak_lr"]["kernels"]  # cosine: annealed
