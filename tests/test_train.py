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

    with pytest.raises(seqrep.builtin.NonFiniteLossError, match=r"at epoch 1, step 1; training stopped"):
        _fit(data, tmp_path, callbacks=[Poison()])
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["complete"]
    assert torch.isfinite(ckpt["model"]["readout.weight"]).all()
    assert seqrep.read_log(tmp_path)[-1]["reason"].startswith("non-finite loss")


def test_checkpoint_of_another_config_or_architecture_is_refused(data, tmp_path):
    _fit(data, tmp_path, TINY.replace(epochs=2), callbacks=[StopAt(0)])
    with pytest.raises(seqrep.SeqrepError, match=r"different config \(lr: 0.01 in the checkpoint vs 0.001 now\)"):
        _fit(data, tmp_path, TINY.replace(epochs=2, lr=1e-3), resume=True)
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    ckpt["model"]["readout.bias"] = torch.zeros(7)  # a checkpoint of another architecture
    torch.save(ckpt, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(seqrep.SeqrepError, match="does not fit this model's architecture"):
        _fit(data, tmp_path, TINY.replace(epochs=2), resume=True)
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(seqrep.SeqrepError, match="not a readable seqrep checkpoint"):
        _fit(data, tmp_path, TINY.replace(epochs=2), resume=True)


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

    with pytest.raises(seqrep.builtin.NonFiniteLossError, match=r"weight tensor.*non-finite during epoch 1") as err:
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

    with pytest.raises(seqrep.builtin.NonFiniteLossError, match="there is no checkpoint") as err:
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
    assert str(tmp_path) in str(err.value) and "same seqrep train command plus --resume" in str(err.value)


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
    assert 1 <= result.history[0]["steps"] <= 4  # past 1.5 s after 3 steps, fewer if set-up is slow
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


# ---------------------------------------------------------------------- hostile round two (issue 29)


def _stopped_after_first_epoch(data, run_dir, config=TINY):
    _fit(data, run_dir, config, callbacks=[StopAt(0)])
    return (run_dir / "run.jsonl").read_text()


@pytest.mark.parametrize("change", ["seed", "length", "samples"])
def test_resume_on_other_data_is_refused_and_the_log_is_left_as_it_is(data, tmp_path, change):
    """Resuming with --data-seed 1 or --length 128 trained the rest of the run on another
    dataset inside the same log; --samples 300 died in OneCycleLR."""
    before = _stopped_after_first_epoch(data, tmp_path)
    kw = {"n_classes": 4, "n_samples": 48, "length": 40, "motif_widths": (5, 9), "seed": 1}
    kw.update({"seed": {"seed": 2}, "length": {"length": 44}, "samples": {"n_samples": 60}}[change])
    other = seqrep.make_sequences(**kw).split(0.25, seed=0)
    with pytest.raises(seqrep.SeqrepError, match=r"was made on different data \(.*train: 'synthetic \(train part\)' "
                       r"\(\d+ series, fingerprint [0-9a-f]{16}\) in the checkpoint vs .* Resume with the data the run "
                       r"started with"):
        _fit(other, tmp_path, resume=True)
    assert (tmp_path / "run.jsonl").read_text() == before
    _, resumed = _fit(data, tmp_path, resume=True)  # the run's own data still resume
    assert resumed.final["epoch"] == TINY.epochs - 1


def test_resume_on_another_validation_set_is_refused(data, tmp_path):
    train, val = data
    _stopped_after_first_epoch(data, tmp_path)
    with pytest.raises(seqrep.SeqrepError, match=r"different data \(val: 'synthetic \(validation part\)' \(13 series"):
        _fit((train, val.subset(np.arange(5))), tmp_path, resume=True)


def test_fit_refuses_a_model_that_does_not_match_its_config(data, tmp_path):
    """build_model with width 32, fit with a config of width 64: trained, logged both widths,
    and load_model on the run then failed."""
    train, val = data
    narrow = TINY.replace(model={"width": 16})
    for model, fragment in (
        (seqrep.build_model(narrow, train), "model.width: 16 in the model vs 8 in the config"),
        (seqrep.build_model(TINY, DataShape(train.channels, 7, train.length)),
         r"readout.weight: \(7, 16\) in the model vs \(4, 16\) for this config and data"),
        (seqrep.build_model(TINY.replace(model={"extraction": "broken"}), train), "model.extraction: 'broken'"),
    ):
        with pytest.raises(seqrep.SeqrepError, match=r"fit: the model does not match its config and data \(.*"
                           + fragment + r".*seqrep.build_model\(config, train\)"):
            seqrep.fit(model, train, val, TINY, tmp_path / "run", progress=False, verbose=False)
    assert not (tmp_path / "run").exists()
    data_init = TrainConfig(epochs=1, batch_size=8)
    with pytest.raises(seqrep.SeqrepError, match=r"readout\.weight"):  # built for longer series: other dilations
        seqrep.fit(seqrep.build_model(data_init, DataShape(1, 4, 400)), train, val, data_init, tmp_path / "run",
                   progress=False, verbose=False)

    class Own(torch.nn.Module):  # a model of your own has no config to disagree with
        def __init__(self):
            super().__init__()
            self.readout = torch.nn.Linear(train.length, train.n_classes)

        def forward(self, x, training=None, mask=None):
            return self.readout(x[:, 0])

    seqrep.fit(Own(), train, val, TINY.replace(epochs=1, check_gradients=False), tmp_path / "own", progress=False,
               verbose=False)
    with pytest.raises(seqrep.SeqrepError, match=r"holds a Own, a model of your own: load_model rebuilds only "
                       r"seqrep's models.*load_state_dict"):
        seqrep.load_model(tmp_path / "own")


def test_resuming_a_finished_run_is_refused_and_appends_nothing(data, tmp_path):
    """It printed the last epoch as if it had trained and appended another resume event."""
    _fit(data, tmp_path, TINY.replace(epochs=2))
    before = (tmp_path / "run.jsonl").read_text()
    assert seqrep.read_log(tmp_path)[-1]["event"] == "finished"
    with pytest.raises(seqrep.SeqrepError, match=r"nothing to resume in .*: the run finished all 2 epochs \(its "
                       r"checkpoint holds epoch 1\).*start a new run with more epochs.*load_model"):
        _fit(data, tmp_path, TINY.replace(epochs=2), resume=True)
    assert (tmp_path / "run.jsonl").read_text() == before


def test_a_deleted_log_with_its_checkpoint_kept_names_both_and_the_fix(data, tmp_path):
    _stopped_after_first_epoch(data, tmp_path)
    (tmp_path / "run.jsonl").unlink()
    with pytest.raises(seqrep.SeqrepError, match=r"checkpoint.pt \(epoch 0\) is here but its log run.jsonl is gone.*"
                       r"create an empty log \(touch .*run.jsonl\) and resume.*load_model"):
        _fit(data, tmp_path, resume=True)
    (tmp_path / "run.jsonl").touch()  # the fix the message gives
    _, resumed = _fit(data, tmp_path, resume=True)
    assert [r["epoch"] for r in seqrep.read_log(tmp_path) if "epoch" in r] == [0, 1, 2, 3]
    assert resumed.final["epoch"] == 3


def test_the_non_finite_advice_does_not_suggest_the_clip_already_applied(data, tmp_path):
    """The advice "clip gradients (grad_clip=1)" was the default already."""
    class Poison(seqrep.Callback):
        def after_step(self, state):
            with torch.no_grad():
                state.model.readout.weight.fill_(float("nan"))

    with pytest.raises(seqrep.builtin.NonFiniteLossError, match=r"lr=0.01: try --lr 0.001\); gradients are already clipped "
                       r"to norm 1 \(a smaller clip, --grad-clip 0.1"):
        _fit(data, tmp_path / "a", callbacks=[Poison()])
    with pytest.raises(seqrep.builtin.NonFiniteLossError, match=r"clip gradients \(grad_clip=1; --grad-clip 1\)"):
        _fit(data, tmp_path / "b", TINY.replace(grad_clip=0), callbacks=[Poison()])


def test_a_full_disk_at_a_checkpoint_is_named_leaves_no_temp_file_and_logs_no_epoch(data, tmp_path, monkeypatch):
    """Disk full: a raw inline_container.cc error, a checkpoint.pt.tmp left filling the disk,
    and the epoch logged without its checkpoint."""
    import errno
    import io

    import seqrep.checkpoint

    saves = []  # bytes written into each checkpoint file opened

    class FullDisk(io.FileIO):  # the disk fills up 1000 bytes into the second checkpoint
        def write(self, b):
            saves[-1] += len(b)
            if len(saves) == 2 and saves[-1] > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    def full_open(path, mode="r", *args, **kwargs):
        saves.append(0)
        return io.BufferedWriter(FullDisk(path, mode))

    monkeypatch.setattr(seqrep.checkpoint, "open", full_open, raising=False)
    with pytest.raises(seqrep.SeqrepError, match=r"checkpoint.pt: the checkpoint could not be written \(No space left "
                       r"on device\)\. The previous checkpoint, if any, is intact, no partial file is left, and this "
                       r"epoch was not logged\. Free disk space"):
        _fit(data, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "run.jsonl", "run.lock"]
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["epoch"] == 0
    log = seqrep.read_log(tmp_path)
    assert [r["epoch"] for r in log if "epoch" in r] == [0]  # epoch 1 has no checkpoint: not logged
    assert log[-1]["event"] == "stopped" and "No space left on device" in log[-1]["reason"]
    monkeypatch.undo()
    _, resumed = _fit(data, tmp_path, resume=True)  # space again: the run goes on from epoch 0's checkpoint
    assert resumed.final["epoch"] == 3


@pytest.mark.parametrize(("device", "fragment"), [
    ("banana", "device 'banana' is not a device name; use 'cpu', 'cuda'"),
    pytest.param("cuda", "device 'cuda' is not available here", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_a_device_this_machine_lacks_is_a_clear_error(data, tmp_path, device, fragment):
    """--device cuda on a CPU build raised an AssertionError, --device banana a RuntimeError."""
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        _fit(data, tmp_path / "run", device=device)
    assert not (tmp_path / "run").exists()


def test_data_too_large_in_scale_is_refused_and_tiny_data_warns_for_init_random(data, tmp_path):
    """Values around 1e20 trained a constant model, with warnings that never mentioned scale."""
    import dataclasses

    train, val = data
    big = dataclasses.replace(train, X=train.X.astype(np.float64) * 1e20)
    with pytest.raises(seqrep.SeqrepError, match=r"channel 0 is too large in scale to train on .*z-normalise each series"):
        seqrep.fit(seqrep.build_model(TINY, big), big, val, TINY, tmp_path / "big", progress=False, verbose=False)
    tiny = dataclasses.replace(train, X=train.X * 1e-4)
    config = TINY.replace(epochs=1)
    with pytest.warns(UserWarning, match=r"channel 0 varies little \(std 0.0001\): init='random' normalises the "
                      r"input with BatchNorm.*use init='data'"):
        seqrep.fit(seqrep.build_model(config, tiny), tiny, None, config, tmp_path / "tiny", progress=False,
                   verbose=False)


def test_fit_argument_mistakes_are_named(data, tmp_path):
    train, val = data
    model = seqrep.build_model(TINY, train)
    with pytest.raises(seqrep.SeqrepError, match=r"fit: model must be a torch.nn.Module, got dict"):
        seqrep.fit({"model": model}, train, val, TINY, tmp_path / "a")
    with pytest.raises(seqrep.SeqrepError, match=r"callbacks must be a list of callbacks, got one StopAt; pass \[it\]"):
        seqrep.fit(model, train, val, TINY, tmp_path / "a", StopAt(0))
    (tmp_path / "run.jsonl").write_text("")
    with pytest.raises(seqrep.SeqrepError, match=r"run.jsonl is a file, not a run directory; pass the folder"):
        seqrep.fit(model, train, val, TINY, tmp_path / "run.jsonl", resume=True)
    with pytest.raises(seqrep.SeqrepError, match=r"fit: run_dir must be a path"):
        seqrep.fit(model, train, val, TINY, None)
    with pytest.raises(seqrep.SeqrepError, match=r"build_model: config must be a TrainConfig or a ModelSpec, got NoneType"):
        seqrep.build_model(None, train)
    with pytest.raises(seqrep.SeqrepError, match=r"build_model: data must be a SequenceDataset or a DataShape"):
        seqrep.build_model(TINY, None)
    with pytest.raises(seqrep.SeqrepError, match=r"show_training_loop: config must be a seqrep.TrainConfig, got str"):
        seqrep.show_training_loop(config="TINY")
    assert not (tmp_path / "a").exists()
    _fit(data, tmp_path / "b", TINY.replace(epochs=1), without="WatchTraining")  # one name ('W' was "no built-in")


def test_a_checkpoint_that_is_incomplete_or_of_another_version_is_named(data, tmp_path):
    from seqrep.checkpoint import FORMAT

    _stopped_after_first_epoch(data, tmp_path)
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    torch.save({"format": FORMAT, "model": {}}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(seqrep.SeqrepError, match=r"an incomplete seqrep checkpoint \(missing or damaged: config, epochs"):
        seqrep.load_model(tmp_path)
    torch.save({**ckpt, "config": json.dumps({**json.loads(ckpt["config"]), "momentum": 0.9})}, tmp_path / CHECKPOINT_NAME)
    for load in (lambda: seqrep.load_model(tmp_path), lambda: _fit(data, tmp_path, resume=True)):
        with pytest.raises(seqrep.SeqrepError, match=r"checkpoint.pt: its config cannot be read \(TrainConfig has no "
                           r"field\(s\) \['momentum'\].*written by another version of seqrep"):
            load()
    with pytest.raises(seqrep.SeqrepError, match=r"load_model: run_dir must be a path"):
        seqrep.load_model(None)


def test_sizes_beyond_memory_are_refused_before_allocating(monkeypatch):
    import seqrep.build

    with pytest.raises(seqrep.SeqrepError, match=r"10000000000 samples x 1 channel\(s\) x 128 steps need about .* GiB "
                       r"to generate, more than this machine's"):
        seqrep.make_sequences(n_samples=10**10)
    with pytest.raises(seqrep.SeqrepError, match=r"n_samples must be a whole number, got 3.5"):
        seqrep.make_sequences(n_samples=3.5)

    def too_big(*args, **kwargs):  # what torch raises when a tensor does not fit
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 5100273664 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(seqrep.build, "SequenceClassifier", too_big)
    with pytest.raises(seqrep.SeqrepError, match=r"does not fit in memory \(one of its tensors alone needs 4.8 GiB\); "
                       r"use a smaller width"):
        seqrep.build_model(TINY, DataShape(1, 4, 40))


def test_the_start_record_holds_the_validation_metrics_before_the_first_step(data, tmp_path):
    """Issue 28: the live curves start at the init's own accuracy; a resumed run keeps it."""
    train, val = data
    untouched = seqrep.evaluate(seqrep.build_model(TINY, train), val)  # the same seed: the same init
    seen = []

    class Sees(seqrep.Callback):
        def before_fit(self, state):
            seen.append(dict(state.init_eval))

    _fit(data, tmp_path, callbacks=[Sees(), StopAt(1, step=1)])
    start = next(r for r in seqrep.read_log(tmp_path) if r.get("event") == "start")
    assert start["init_eval"] == {f"val_{k}": v for k, v in untouched.items()} == seen[0]
    _fit(data, tmp_path, resume=True, callbacks=[Sees()])
    assert seen[1] == seen[0]  # read back from the log, not measured on the trained model
    result = seqrep.fit(seqrep.build_model(TINY, train), train, None, TINY, tmp_path / "no-val",
                        progress=False, verbose=False)
    assert next(r for r in seqrep.read_log(result.run_dir) if r.get("event") == "start")["init_eval"] == {}



# ---------------------------------------------------------------------- the decision rule (issue 26)


class _Ascend(seqrep.Callback):
    """Steps that make the fit worse: every gradient flipped, so each step climbs the
    leave-one-out error the default model descends."""

    def after_backward(self, state):
        for p in state.model.parameters():
            if p.grad is not None:
                p.grad.neg_()


def _data_init_run(data, tmp_path, callbacks=(), **kw):
    train, val = data
    config = TrainConfig(batch_size=8, epochs=4, **kw)
    model, start = seqrep.build_model(config, train), {}

    class Start(seqrep.Callback):  # the weights as fit_init fitted them, before the first step
        def before_fit(self, state):
            start.update({k: v.clone() for k, v in state.model.state_dict().items()})

    result = seqrep.fit(model, train, val, config, tmp_path, progress=False, verbose=False,
                        callbacks=[Start(), *callbacks])
    return model, start, result


def test_training_that_raises_the_leave_one_out_error_stops_at_the_start(data, tmp_path):
    """Every epoch makes the readout's leave-one-out error worse: each is undone, and the run
    ends on its start bitwise, with the start's validation numbers."""
    model, start, result = _data_init_run(data, tmp_path, callbacks=[_Ascend()])
    assert [r["kept"] for r in result.history] == [False] * 4
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    init_eval = seqrep.read_log(tmp_path)[0]["init_eval"]
    assert result.final["val_accuracy"] == init_eval["val_accuracy"]
    assert len({r["loo_error"] for r in result.history}) == 1  # the start's, every epoch


def test_training_that_lowers_the_leave_one_out_error_is_kept(data, tmp_path):
    """The same set trained as it should: the representation moves, every epoch is kept, and
    the error the rule reads falls epoch by epoch."""
    model, start, result = _data_init_run(data, tmp_path)
    errors = [r["loo_error"] for r in result.history]
    assert all(r["kept"] for r in result.history)
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0]
    moved = [k for k in start if k.startswith("representation") and not torch.equal(start[k], model.state_dict()[k])]
    assert moved, "training changed no representation weight"
