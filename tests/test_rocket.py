"""seqrep.rocket: the data-fitted start (ModelSpec(init="data")) — its fit, its padding, its
optimizer groups, and fit/resume with it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import seqrep
from seqrep.config import TrainConfig
from seqrep.doctor import TrainingWarning
from seqrep.model import fit_init, param_groups
from seqrep.rocket import dilations_for, ridge_readout

DATA = TrainConfig(model={"init": "data"}, epochs=3, batch_size=8)


@pytest.fixture(scope="module")
def data():
    ds = seqrep.make_sequences(n_classes=4, n_samples=48, length=40, motif_widths=(5, 9), seed=1)
    return ds.split(0.25, seed=0)


def test_dilations_follow_minirocket_rule():
    for length in (9, 10, 40, 251, 512):
        d = dilations_for(length)
        assert d[0] == 1 and d == sorted(set(d))
        assert 8 * d[-1] <= length - 1 or d == [1]  # a length-9 kernel fits the series
    assert dilations_for(512, per_octave=1) == [1, 2, 5, 12, 27, 63]  # one per octave up to (512 - 1) / 8
    assert len(dilations_for(512)) == 10  # two per octave (1 and 1.5 are both dilation 1)
    for length in (24, 99, 251, 360, 512):  # the learned groups' dilations are among the finer rule's
        assert set(dilations_for(length, per_octave=1)) <= set(dilations_for(length))


def test_fit_init_fits_thresholds_statistics_and_readout(data):
    train, val = data
    model = seqrep.build_model(DATA, train)
    assert not bool(model.representation.fitted)
    info = fit_init(model, train)
    rep = model.representation
    assert bool(rep.fitted) and fit_init(model, train) is None  # fitted once
    assert all(g.bias.abs().sum() > 0 for g in rep.groups)  # thresholds from data, not zeros
    # thresholds are quantiles of each kernel's outputs (held in units of their spread): inside
    # their range, for both views (the series and its first difference)
    x = torch.from_numpy(train.X)
    views, length, _ = rep._prepared(x, None)
    assert len(views) == 2 and len(rep.groups) == 2 * len(rep.dilations)
    for v, group in (rep._view_groups()[0], rep._view_groups()[-1]):
        z = group.conv(views[v], length, rep.pad) * group.inv_scale[:, None]
        assert (group.bias.min(1).values >= z.amin((0, 2)) - 1e-4).all()
        assert (group.bias.max(1).values <= z.amax((0, 2)) + 1e-4).all()
    features = rep(x)
    assert features.mean(0).abs().max() < 1e-3  # standardised on the training set
    assert 0 <= info["loo_accuracy"] <= 1 and info["alpha"] > 0
    accuracy = seqrep.evaluate(model, val)["accuracy"]
    assert accuracy >= 0.6, accuracy  # before any training step (chance: 0.25)


def test_ridge_readout_matches_scikit_learn_leave_one_out_choice():
    from sklearn.linear_model import RidgeClassifierCV

    rng = np.random.default_rng(0)
    f = rng.normal(size=(60, 30))
    y = (f[:, :3].argmax(1) + (rng.random(60) < 0.15)) % 3
    f = (f - f.mean(0)) / f.std(0)
    alphas = np.logspace(-3, 3, 10)
    reference = RidgeClassifierCV(alphas=alphas).fit(f, y)
    weight, bias, info = ridge_readout(torch.from_numpy(f).float(), torch.from_numpy(y), 3)
    assert info["alpha"] == pytest.approx(reference.alpha_)
    ours = (torch.from_numpy(f).float() @ weight.T + bias).argmax(1).numpy()
    assert (ours == reference.predict(f)).mean() >= 0.98  # same classifier (up to the temperature)


def test_padding_changes_nothing(data):
    train, _ = data
    X = train.X.copy()
    mask = np.ones((len(X), X.shape[-1]), dtype=bool)
    mask[::2, 30:] = False  # every other series is 30 steps long
    padded = seqrep.SequenceDataset(np.where(mask[:, None], X, 0.0).astype(np.float32), train.y,
                                    train.class_names, mask=mask)
    model = seqrep.build_model(DATA, padded).eval()
    fit_init(model, padded)
    x, m = torch.from_numpy(padded.X), torch.from_numpy(mask)
    noisy = torch.where(m[:, None], x, torch.randn_like(x) * 100)
    longer = torch.cat([x, torch.randn(len(x), x.shape[1], 7)], 2)
    longer_mask = torch.cat([m, torch.zeros(len(x), 7, dtype=torch.bool)], 1)
    out = model(x, training=False, mask=m)
    assert torch.allclose(out, model(noisy, training=False, mask=m), atol=1e-5)
    assert torch.allclose(out, model(longer, training=False, mask=longer_mask), atol=1e-5)


def test_param_groups_hold_every_parameter_once_with_their_own_rates(data):
    train, _ = data
    model = seqrep.build_model(DATA, train)
    fit_init(model, train)
    groups = param_groups(model, 1e-2)
    held = [id(p) for g in groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert len(held) == len(set(held))
    assert [g["name"] for g in groups] == ["kernels", "thresholds", "scorers"]  # the readout is solved
    assert not any(p.requires_grad for p in model.readout.parameters())
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 * g["lr_scale"] for g in groups])
    assert groups[0]["lr_scale"] == pytest.approx(2 ** 0.5)  # RMS of MiniRocket's -1/+2 patterns
    assert all(g["weight_decay"] == 0 for g in groups)  # no pull of fitted thresholds towards 0
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    peaks = [g["lr"] for g in optimizer.param_groups]
    seqrep.plan.make_scheduler(optimizer, DATA.replace(schedule="constant"), 10)
    assert [g["lr"] for g in optimizer.param_groups] == peaks  # "lr" is what the optimizer applies
    # a scheduler of the user's own scales each group's own rate: nothing hidden to drop
    own = torch.optim.AdamW(param_groups(model, 1e-2))
    torch.optim.lr_scheduler.LambdaLR(own, lambda step: 0.5)
    assert [g["lr"] for g in own.param_groups] == pytest.approx([p / 2 for p in peaks])
    seed_groups = param_groups(seqrep.build_model(TrainConfig(model={"init": "random"}), train), 1e-2)
    assert [(g["name"], g["lr"]) for g in seed_groups] == [("all", 1e-2)]


def test_fit_starts_from_the_data_trains_end_to_end_and_resumes_exactly(data, tmp_path):
    train, val = data
    model = seqrep.build_model(DATA, train)
    kernels = [g.weight.clone() for g in model.representation.groups]
    readout = model.readout.weight.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pre-flight finding: the frozen parts are frozen by design
        straight = seqrep.fit(model, train, val, DATA, tmp_path / "a", progress=False, verbose=False)
    start = seqrep.read_log(tmp_path / "a")[0]
    assert start["data_fitted_init"]["loo_accuracy"] >= 0.5
    learned = [g.weight.requires_grad for g in model.representation.groups]
    assert any(learned) and not all(learned)  # the series view at one dilation per octave
    moved = [not torch.equal(a, g.weight) for a, g in zip(kernels, model.representation.groups)]
    assert moved == learned  # the learned groups trained, the others stayed as fitted
    assert not torch.equal(readout, model.readout.weight)  # solved again on the trained features
    assert straight.final["val_accuracy"] >= 0.6

    class StopAfterFirst(seqrep.Callback):
        def after_epoch(self, state):
            state.request_stop("test stop")

    first = seqrep.build_model(DATA, train)
    seqrep.fit(first, train, val, DATA, tmp_path / "b", [StopAfterFirst()], progress=False, verbose=False)
    resumed = seqrep.build_model(DATA, train)  # unfitted: the checkpoint brings the start back
    second = seqrep.fit(resumed, train, val, DATA, tmp_path / "b", resume=True, progress=False, verbose=False)
    assert second.final["val_loss"] == straight.final["val_loss"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))



@pytest.mark.slow
def test_a_start_that_fits_the_training_set_is_not_reported_stale_but_the_broken_one_is(tmp_path):
    """fit's watch on the default model, one epoch of a 30-epoch plan on PigCVP (52 classes):
    the start's training loss is ~1e-5, so the first warm-up updates of its readout bias fall
    below float32's resolution — expected, no longer reported; the post-mortem's extraction on
    the same start leaves the representation without gradients — reported."""

    class FirstEpochOnly(seqrep.Callback):
        def after_epoch(self, state):
            state.request_stop("test: one epoch")

    train = seqrep.load_dataset("PigCVP", "train")
    kinds = {}
    for extraction in ("fixed", "broken"):
        config = TrainConfig(model={"init": "data", "extraction": extraction}, epochs=30, budget=0,
                             check_gradients=False)
        torch.manual_seed(0)
        model = seqrep.build_model(config, train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrainingWarning)
            seqrep.fit(model, train, None, config, tmp_path / extraction, [FirstEpochOnly()], progress=False,
                       verbose=False)
        found = [w for r in seqrep.read_log(tmp_path / extraction) for w in r.get("watch", [])]
        kinds[extraction] = {(w["kind"], n.split(".")[0]) for w in found for n in w["names"]}
    assert kinds["fixed"] == set()
    assert kinds["broken"] == {("stale_parameter", "representation")}
