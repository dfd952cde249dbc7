"""seqrep.imbalance: class statistics, weights, losses, batch order, per-class evaluation."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score

import seqrep
from seqrep import plots
from seqrep.config import ModelSpec, TrainConfig
from seqrep.imbalance import (
    FocalLoss,
    LogitAdjustedLoss,
    adjust_logits,
    balanced_order,
    batch_order,
    class_weights,
    make_loss,
    per_class_report,
    split_per_class,
)

# logits whose softmax is (0.25, 0.75) in both rows
LOGITS = torch.log(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
TARGET = torch.tensor([1, 0])
# per-sample focal losses for gamma=2 by hand: (1 - p)^2 * -log p
FOCAL_ROW = [0.25**2 * -math.log(0.75), 0.75**2 * -math.log(0.25)]

labels = st.lists(st.integers(0, 7), min_size=1, max_size=200).map(np.array)


def _random_logits(n=12, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * 3, torch.randint(0, k, (n,), generator=g)


# ---------------------------------------------------------------------- class statistics


@given(labels)
def test_class_stats_properties(y):
    s = seqrep.class_stats(y)
    assert s.counts.sum() == len(y) and s.n_classes == y.max() + 1
    assert s.ratio >= 1 or s.ratio == float("inf")
    assert 0 <= s.balance <= 1 + 1e-12
    groups = np.concatenate(list(s.groups.values()))
    assert sorted(groups.tolist()) == list(range(s.n_classes))
    if len(s.groups["tail"]) and len(s.groups["head"]):
        assert s.counts[s.groups["head"]].min() >= s.counts[s.groups["tail"]].max()


def test_class_stats_by_hand():
    s = seqrep.class_stats(np.array([0, 0, 0, 1]), beta=0.5)
    assert s.ratio == 3.0
    assert s.effective.tolist() == [1.75, 1.0]  # (1 - 0.5**n) / (1 - 0.5)
    p = np.array([0.75, 0.25])
    assert s.balance == pytest.approx(-(p * np.log(p)).sum() / np.log(2))


# ---------------------------------------------------------------------- class weights


@pytest.mark.parametrize(
    ("y", "scheme", "beta", "expected"),
    [
        ([0, 0, 0, 1], "inverse", 0.999, [0.5, 1.5]),
        ([0, 0, 0, 0, 1, 1, 2], "inverse", 0.999, [3 / 7, 6 / 7, 12 / 7]),
        ([0, 0, 0, 1], "sqrt_inverse", 0.999, [2 / (1 + math.sqrt(3)), 2 * math.sqrt(3) / (1 + math.sqrt(3))]),
        # effective numbers 1.75 and 1 (beta 0.5): weights 4/7 and 1, scaled to mean 1
        ([0, 0, 0, 1], "effective", 0.5, [8 / 11, 14 / 11]),
        ([0, 0, 0, 1], "effective", 0.0, [1.0, 1.0]),
    ],
)
def test_class_weights_by_hand(y, scheme, beta, expected):
    w = class_weights(np.array(y), scheme, beta)
    assert w.dtype == torch.float32 and w.shape == (len(expected),)
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float32))


@given(st.lists(st.integers(1, 60), min_size=2, max_size=12), st.sampled_from(["inverse", "sqrt_inverse", "effective"]))
def test_class_weights_mean_one_and_favour_small_classes(counts, scheme):
    y = np.repeat(np.arange(len(counts)), counts)
    w = class_weights(y, scheme, beta=0.9).numpy()
    assert w.mean() == pytest.approx(1, rel=1e-5)
    order = np.argsort(counts, kind="stable")
    assert np.all(np.diff(w[order]) <= 1e-6)  # a smaller class never gets a smaller weight


def test_effective_weights_approach_inverse_as_beta_grows():
    y = np.repeat([0, 1, 2], [40, 10, 2])
    inverse = class_weights(y, "inverse")
    gaps = [float((class_weights(y, "effective", b) - inverse).abs().max()) for b in (0.5, 0.9, 0.99, 0.99999)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 and gaps[0] > 0.5


def test_balanced_labels_give_unit_weights():
    y = np.repeat(np.arange(4), 5)
    for scheme in ("inverse", "sqrt_inverse", "effective"):
        torch.testing.assert_close(class_weights(y, scheme), torch.ones(4))


def test_class_weights_errors():
    with pytest.raises(seqrep.SeqrepError, match="unknown scheme 'balanced'; use one of inverse"):
        class_weights(np.array([0, 1]), "balanced")
    with pytest.raises(seqrep.SeqrepError, match=r"classes \[1, 3\] have no training samples"):
        class_weights(np.array([0, 2, 2]), n_classes=4)
    with pytest.raises(seqrep.SeqrepError, match=r"beta must be in \[0, 1\)"):
        class_weights(np.array([0, 1]), "effective", beta=1.0)


# ---------------------------------------------------------------------- losses


def test_focal_loss_by_hand():
    assert float(FocalLoss(2.0)(LOGITS, TARGET)) == pytest.approx(np.mean(FOCAL_ROW), rel=1e-6)
    weighted = FocalLoss(2.0, weight=torch.tensor([2.0, 1.0]))(LOGITS, TARGET)
    # weights of the targets (1, 0) are (1, 2); the mean is normalised by their sum
    assert float(weighted) == pytest.approx((FOCAL_ROW[0] + 2 * FOCAL_ROW[1]) / 3, rel=1e-6)


@pytest.mark.parametrize("weight", [None, torch.tensor([0.5, 1.0, 2.0, 1.0, 0.5])])
def test_focal_loss_with_gamma_zero_is_cross_entropy(weight):
    logits, y = _random_logits()
    torch.testing.assert_close(FocalLoss(0.0, weight)(logits, y), F.cross_entropy(logits, y, weight=weight))


def test_focal_loss_gradient_stays_finite_on_confident_samples():
    logits = torch.tensor([[60.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    FocalLoss(0.5)(logits, torch.tensor([0, 1])).backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(seqrep.SeqrepError, match="gamma must be >= 0"):
        FocalLoss(-1.0)


def test_logit_adjusted_loss_by_hand():
    # zero logits + log prior (0.8, 0.2): softmax is the prior itself
    loss = LogitAdjustedLoss([0.8, 0.2], tau=1.0)
    assert float(loss(torch.zeros(1, 2), torch.tensor([1]))) == pytest.approx(-math.log(0.2), rel=1e-6)
    assert float(loss(torch.zeros(1, 2), torch.tensor([0]))) == pytest.approx(-math.log(0.8), rel=1e-6)
    counts = LogitAdjustedLoss([8, 2], tau=1.0)  # counts and frequencies give the same prior
    torch.testing.assert_close(counts.log_prior, loss.log_prior)
    half = LogitAdjustedLoss([0.8, 0.2], tau=0.5)(torch.zeros(1, 2), torch.tensor([1]))
    p = math.sqrt(0.2) / (math.sqrt(0.8) + math.sqrt(0.2))
    assert float(half) == pytest.approx(-math.log(p), rel=1e-6)


@pytest.mark.parametrize(
    ("prior", "tau", "weight", "smoothing"),
    [
        ([5, 1, 1, 2, 9], 0.0, None, 0.0),  # tau = 0: no adjustment
        ([5, 1, 1, 2, 9], 0.0, torch.tensor([0.5, 1.0, 2.0, 1.0, 0.5]), 0.1),
        ([3, 3, 3, 3, 3], 1.0, None, 0.1),  # a uniform prior shifts every logit equally
    ],
)
def test_logit_adjusted_loss_reduces_to_cross_entropy(prior, tau, weight, smoothing):
    logits, y = _random_logits()
    adjusted = LogitAdjustedLoss(prior, tau, weight, smoothing)(logits, y)
    torch.testing.assert_close(adjusted, F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing))


def test_logit_adjusted_loss_rejects_empty_classes():
    with pytest.raises(seqrep.SeqrepError, match=r"classes \[1\] have a prior of 0"):
        LogitAdjustedLoss([3, 0, 1])


def test_adjust_logits_by_hand():
    out = adjust_logits(torch.zeros(1, 2), [3, 1], tau=1.0)
    torch.testing.assert_close(out, torch.tensor([[-math.log(0.75), -math.log(0.25)]]))
    assert out.argmax(1).item() == 1  # a tie goes to the rarer class
    logits, _ = _random_logits()
    torch.testing.assert_close(adjust_logits(logits, [1, 2, 3, 4, 5], tau=0.0), logits)
    with pytest.raises(seqrep.SeqrepError, match=r"logits must be \(n, 3\) for a prior of 3 classes"):
        adjust_logits(logits, [1, 2, 3])


# ---------------------------------------------------------------------- make_loss


Y4 = np.array([0, 0, 0, 0, 1, 1, 2, 3])


@pytest.mark.parametrize(
    ("changes", "reference"),
    [
        ({}, lambda lg, y: F.cross_entropy(lg, y)),
        ({"label_smoothing": 0.2}, lambda lg, y: F.cross_entropy(lg, y, label_smoothing=0.2)),
        ({"class_weights": "inverse"},
         lambda lg, y: F.cross_entropy(lg, y, weight=class_weights(Y4, "inverse"))),
        ({"class_weights": "effective", "effective_beta": 0.9, "label_smoothing": 0.1},
         lambda lg, y: F.cross_entropy(lg, y, weight=class_weights(Y4, "effective", 0.9), label_smoothing=0.1)),
        ({"loss": "focal", "focal_gamma": 0.0, "class_weights": "sqrt_inverse"},
         lambda lg, y: F.cross_entropy(lg, y, weight=class_weights(Y4, "sqrt_inverse"))),
        ({"loss": "focal", "focal_gamma": 2.0},
         lambda lg, y: FocalLoss(2.0)(lg, y)),
        ({"loss": "logit_adjusted", "logit_tau": 1.0},
         lambda lg, y: F.cross_entropy(lg + torch.log(torch.tensor([0.5, 0.25, 0.125, 0.125])), y)),
        ({"loss": "logit_adjusted", "logit_tau": 0.0, "label_smoothing": 0.1},
         lambda lg, y: F.cross_entropy(lg, y, label_smoothing=0.1)),
    ],
)
def test_make_loss_follows_the_config(changes, reference):
    logits, y = _random_logits(k=4)
    loss = make_loss(TrainConfig(model={"init": "random"}, **changes), Y4, 4)  # init="data" has no logit loss
    torch.testing.assert_close(loss(logits, y), reference(logits, y))


def test_make_loss_errors_name_the_problem():
    with pytest.raises(seqrep.SeqrepError, match=re.escape("label_smoothing is not defined for loss='focal'")):
        TrainConfig(model={"init": "random"}, loss="focal", label_smoothing=0.1)
    with pytest.raises(seqrep.SeqrepError, match=r"loss='logit_adjusted': classes \[4\] have no training samples"):
        make_loss(TrainConfig(model={"init": "random"}, loss="logit_adjusted"), Y4, 5)
    with pytest.raises(seqrep.SeqrepError, match=r"loss='focal' would be ignored: init='data'"):
        TrainConfig(loss="focal")  # the data-fitted start trains on its readout's leave-one-out error


# ---------------------------------------------------------------------- batch order


@settings(max_examples=60, deadline=None)
@given(labels, st.integers(0, 2**16))
def test_balanced_order_visits_every_class_equally(y, seed):
    order = balanced_order(y, torch.Generator().manual_seed(seed)).numpy()
    assert order.shape == y.shape and order.min() >= 0 and order.max() < len(y)
    present = np.unique(y)
    visits = np.bincount(y[order], minlength=y.max() + 1)[present]
    assert visits.max() - visits.min() <= 1
    for c, r in zip(present, visits):  # without replacement until a class is used up
        members = np.flatnonzero(y == c)
        repeats = np.bincount(order, minlength=len(y))[members]
        assert repeats.max() <= math.ceil(r / len(members))
        assert repeats.max() - repeats.min() <= 1


def test_balanced_order_on_equal_classes_is_a_shuffle():
    y = np.repeat(np.arange(5), 6)
    order = balanced_order(y, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(y)))  # every sample exactly once
    assert not torch.equal(order, torch.arange(len(y)))


@pytest.mark.parametrize("sampler", ["shuffle", "balanced"])
def test_batch_order_is_deterministic_in_seed_and_epoch(sampler):
    y = np.repeat(np.arange(4), [20, 8, 3, 1])
    config = TrainConfig(sampler=sampler, seed=3)
    first = batch_order(config, y, epoch=2)
    assert torch.equal(first, batch_order(config, y, epoch=2))
    assert not torch.equal(first, batch_order(config, y, epoch=3))
    assert not torch.equal(first, batch_order(config.replace(seed=4), y, epoch=2))
    assert len(first) == len(y)
    if sampler == "shuffle":
        assert sorted(first.tolist()) == list(range(len(y)))
    else:
        assert np.bincount(y[first.numpy()]).tolist() == [8, 8, 8, 8]


# ---------------------------------------------------------------------- fit with remedies


@pytest.fixture(scope="module")
def skewed():
    ds = seqrep.make_sequences(n_classes=4, n_samples=60, length=40, motif_widths=(5, 9), imbalance=6, seed=2)
    return ds.split(0.25, seed=0)


TINY = TrainConfig(model=ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7), blocks=1, bottleneck=4), epochs=3, batch_size=8, budget=0)


@pytest.fixture
def one_thread():
    """Tiny models train several times slower with two threads on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fit(data, config, run_dir, **kw):
    train, val = data
    model = seqrep.build_model(config, train)
    return seqrep.fit(model, train, val, config, run_dir, progress=False, verbose=False, **kw)


class StopMidway(seqrep.Callback):
    def after_step(self, state):
        if (state.epoch, state.step) == (1, 2):
            state.request_stop("test stop")


def test_fit_with_balanced_sampler_and_weights_resumes_exactly(skewed, tmp_path, one_thread):
    config = TINY.replace(sampler="balanced", class_weights="inverse")
    straight = _fit(skewed, config, tmp_path / "a")
    _fit(skewed, config, tmp_path / "b", callbacks=[StopMidway()])
    resumed = _fit(skewed, config, tmp_path / "b", resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert resumed.final["val_loss"] == straight.final["val_loss"]


@pytest.mark.parametrize(
    "changes",
    [{"loss": "focal", "class_weights": "effective"}, {"loss": "logit_adjusted", "label_smoothing": 0.1}],
    ids=["focal+effective", "logit-adjusted"],
)
def test_fit_trains_with_each_loss(skewed, tmp_path, one_thread, changes):
    plain = _fit(skewed, TINY, tmp_path / "plain")
    remedied = _fit(skewed, TINY.replace(**changes), tmp_path / "remedied")
    losses = [r["train_loss"] for r in remedied.history]
    assert all(np.isfinite(losses))
    assert losses[0] != plain.history[0]["train_loss"]  # fit used the configured loss


# ---------------------------------------------------------------------- experiments


def test_split_per_class_sizes_nesting_and_errors():
    y = np.repeat(np.arange(3), 12)
    train, test = split_per_class(y, np.array([6, 3, 1]), test_per_class=4, seed=1)
    assert np.bincount(y[train]).tolist() == [6, 3, 1]
    assert np.bincount(y[test]).tolist() == [4, 4, 4]
    assert not set(train) & set(test)
    bigger, same_test = split_per_class(y, np.array([8, 8, 8]), test_per_class=4, seed=1)
    assert np.array_equal(test, same_test) and set(train) <= set(bigger)
    with pytest.raises(seqrep.SeqrepError, match=r"class 1 has 12 samples but needs 13 \(9 train \+ 4 test"):
        split_per_class(y, np.array([1, 9, 1]), test_per_class=4)
    with pytest.raises(seqrep.SeqrepError, match="train_sizes must be a"):
        split_per_class(y, np.array([1.5, 1, 1]), test_per_class=1)


def test_per_class_report_by_hand():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    r = per_class_report(y_true, y_pred, np.array([5, 3, 1]), class_names=["a", "b", "c"])
    t = r.table
    assert t["recall"].tolist() == [0.5, 1.0, 0.0]
    assert t["precision"].tolist() == pytest.approx([0.5, 2 / 3, 0.0])
    assert t["support"].tolist() == [2, 2, 1] and t["train"].tolist() == [5, 3, 1]
    assert t["group"].tolist() == ["head", "medium", "tail"]
    assert r.balanced_accuracy == pytest.approx(0.5) and r.accuracy == pytest.approx(0.6)
    assert r.macro_f1 == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert r.tail_recall == 0.0 and r.groups.loc["head", "accuracy"] == 0.5
    assert r.summary()["medium_recall"] == 1.0
    np.testing.assert_allclose(r.confusion, [[0.5, 0.5, 0], [0, 1, 0], [1, 0, 0]])
    top = r.top_confusions(5)
    assert top[["true", "predicted"]].values.tolist() == [["c", "a"], ["a", "b"]]
    assert top["fraction"].tolist() == [1.0, 0.5]


def test_per_class_report_skips_classes_without_test_samples():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 80)  # class 5 never occurs in the test labels
    y_pred = np.where(rng.random(80) < 0.7, y_true, rng.integers(0, 6, 80))
    r = per_class_report(y_true, y_pred, np.array([30, 20, 10, 8, 4, 2]))
    assert np.isnan(r.table.loc[5, "recall"]) and r.table.loc[5, "support"] == 0
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        reference = balanced_accuracy_score(y_true, y_pred)
    assert r.balanced_accuracy == pytest.approx(reference)
    assert r.groups.loc["tail", "mean_recall"] == r.table.loc[4, "recall"]


def test_per_class_report_errors():
    with pytest.raises(seqrep.SeqrepError, match=re.escape("y_pred[1] = 3 is outside the 3 classes")):
        per_class_report(np.array([0, 1]), np.array([0, 3]), np.array([2, 2, 2]))
    with pytest.raises(seqrep.SeqrepError, match="same length"):
        per_class_report(np.array([0, 1]), np.array([0]), np.array([2, 2]))
    with pytest.raises(seqrep.SeqrepError, match="2 class_names for 3 classes"):
        per_class_report(np.array([0]), np.array([0]), np.array([1, 1, 1]), class_names=["a", "b"])


# ---------------------------------------------------------------------- plots


def test_plot_class_sizes_draws_one_bar_per_class_sorted():
    y = np.repeat(np.arange(7), [1, 9, 3, 5, 2, 8, 4])
    fig = plots.plot_class_sizes(y)
    heights = [p.get_height() for p in fig.axes[0].patches if p.get_height() > 0]
    assert heights == [9, 8, 5, 4, 3, 2, 1]
    assert "largest/smallest = 9.0" in fig.axes[0].get_title()
    plt.close(fig)


def test_plot_confusion_sorts_by_training_size_and_circles_top_pairs():
    r = per_class_report(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), np.array([1, 3, 5]))
    fig = plots.plot_confusion(r, top_k=2)
    ax = fig.axes[0]
    shown = ax.collections[0].get_array().reshape(3, 3)
    np.testing.assert_allclose(shown, r.confusion[np.ix_([2, 1, 0], [2, 1, 0])])
    assert len(ax.collections) == 1 + 2  # heatmap + two circled pairs
    plt.close(fig)


def test_plot_grid_one_panel_per_metric():
    df = pd.DataFrame({"ratio": [1, 1, 10, 10] * 2, "remedy": ["none"] * 4 + ["inverse"] * 4,
                       "balanced_accuracy": np.linspace(0.2, 0.9, 8), "tail_recall": np.linspace(0, 1, 8)})
    fig = plots.plot_grid(df, "ratio", ["balanced_accuracy", "tail_recall"], hue="remedy", title="t")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "tail recall"
    assert fig.axes[0].get_legend() is not None and fig.axes[1].get_legend() is None
    plt.close(fig)


def test_paired_gains_by_hand():
    from seqrep.experiments import paired_gains

    table = pd.DataFrame([{"seed": s, "ratio": 50, "remedy": r, "balanced_accuracy": v}
                          for s, base in enumerate([0.5, 0.6, 0.7])
                          for r, v in (("none", base), ("x", base + 0.1), ("y", base - (0.05 if s else -0.05)))])
    gains = paired_gains(table, 50)
    assert gains.loc["x", "gain"] == pytest.approx(0.1) and gains.loc["x", "wins"] == 3
    assert gains.loc["x", "low"] == pytest.approx(0.1) and gains.loc["x", "sign_p"] == pytest.approx(0.25)
    assert (gains.loc["y", "wins"], gains.loc["y", "losses"]) == (1, 2)
    with pytest.raises(seqrep.SeqrepError, match="no 'none' rows at ratio 10"):
        paired_gains(table, 10)


def test_remedy_grid_trains_the_remedies_only_where_they_differ():
    from seqrep.experiments import POST_HOC, remedy_grid

    config = TINY.replace(epochs=1, check_gradients=False)
    grid = remedy_grid(config, ("none", "logit-adjusted loss"), n_classes=3, n_train=12, ratios=(1, 4),
                       test_per_class=3, seeds=[0], scenario={"length": 24, "motif_widths": (5,), "n_distractors": 0})
    assert grid.runs == 3  # ratio 1: none only; ratio 4: both
    assert set(map(tuple, grid.table[["ratio", "remedy"]].to_numpy())) == {
        (1, "none"), (4, "none"), (4, "logit-adjusted loss"), (4, POST_HOC)}
    assert grid.table["balanced_accuracy"].between(0, 1).all()
    assert list(grid.paired(4).index) == ["logit-adjusted loss", POST_HOC]
    with pytest.raises(seqrep.SeqrepError, match="must include 'none'"):
        remedy_grid(config, ("logit-adjusted loss",))
