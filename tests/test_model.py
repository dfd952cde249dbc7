"""seqrep.model (the fixed classifier) and seqrep.legacy (the bug)."""

from __future__ import annotations

import pytest
import torch

import seqrep
from seqrep.legacy import BUG_LINES, AblatedClassifier
from seqrep.model import AttentionPooling, MultiScaleBlock


def _model(cls=seqrep.SequenceClassifier, channels=2, classes=5, length=40, **kw):
    torch.manual_seed(0)
    kw.setdefault("width", 16)
    kw.setdefault("kernel_sizes", (3, 7, 11))
    return cls(channels, classes, length, seqrep.ModelSpec(**{"init": "random", **kw}))


def test_shapes_and_probed_feature_size():
    model = _model(pool=2)
    x = torch.randn(4, 2, 40)
    assert model(x, training=False).shape == (4, 5)
    assert model.feature_dim == 2 * 16  # attention-pooled + averaged features
    assert model.extract_features(x, training=False).shape == (4, model.feature_dim)
    assert model(torch.randn(3, 2, 17), training=False).shape == (3, 5)  # any length


def test_training_flag_chooses_autograd_and_never_switches_a_mode():
    model = _model()
    for mode in (False, True):
        model.train(mode)
        before = [m.training for m in model.modules()]
        stats = model.representation.stem.norm.running_mean.clone()
        feats = model.extract_features(torch.randn(3, 2, 40), training=True)
        assert isinstance(feats, torch.Tensor) and feats.requires_grad
        assert not model(torch.randn(3, 2, 40), training=False).requires_grad
        assert model(torch.randn(3, 2, 40), training=True).requires_grad
        assert [m.training for m in model.modules()] == before  # the caller's modes, untouched
        # in eval() BatchNorm keeps its running statistics even with training=True
        assert torch.equal(stats, model.representation.stem.norm.running_mean) == (not mode)


def test_forward_without_flag_follows_module_mode():
    model = _model()
    model.train()
    assert model(torch.randn(3, 2, 40)).requires_grad
    model.eval()
    assert not model(torch.randn(3, 2, 40)).requires_grad


def test_fixed_model_gradients_reach_every_parameter():
    model = _model()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(6, 2, 40), training=True), torch.arange(6) % 5)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_legacy_model_representation_gets_no_gradient():
    model = _model(seqrep.LegacyClassifier)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(6, 2, 40), training=True), torch.arange(6) % 5)
    loss.backward()
    rep = [p.grad for p in model.representation.parameters()]
    assert all(g is None for g in rep) and len(rep) > 10
    assert all(p.grad is not None for p in model.readout.parameters())
    assert not model.representation.training  # the bug: eval() even while training


def test_parameter_counts_look_right_for_the_broken_model_too():
    model = _model(seqrep.LegacyClassifier)
    opt = torch.optim.AdamW(model.parameters())
    counts = seqrep.parameter_counts(model, opt)
    rep = counts["representation"]
    assert rep["total"] == rep["trainable"] == rep["in_optimizer"] > 1000
    assert counts["all"]["total"] == sum(p.numel() for p in model.parameters())
    frozen = _model()
    frozen.representation.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in frozen.parameters() if p.requires_grad])
    assert seqrep.parameter_counts(frozen, opt)["representation"]["in_optimizer"] == 0


def test_padding_values_do_not_matter_and_get_no_attention():
    model = _model(pool=3).eval()
    x = torch.randn(2, 2, 40)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 25:] = False
    noisy = x.clone()
    noisy[1, :, 25:] = 1e3
    torch.testing.assert_close(model(x, training=False, mask=mask), model(noisy, training=False, mask=mask))
    weights = model.attention(x, mask)
    assert weights.shape == (2, 40)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert weights[1, 27:].abs().max() == 0  # pooled windows wholly inside the padding


def test_attention_off_means_average_pooling():
    pool = AttentionPooling(4, attention=False)
    h = torch.randn(2, 4, 6)
    features, weights = pool(h)
    torch.testing.assert_close(features[:, :4], h.mean(-1))
    torch.testing.assert_close(weights, torch.full((2, 6), 1 / 6))


def test_width_must_divide_over_branches():
    with pytest.raises(seqrep.SeqrepError, match="multiple of 4"):
        MultiScaleBlock(8, 30, (3, 5, 7))


def test_legacy_and_fixed_share_the_architecture():
    fixed, legacy = _model(), _model(seqrep.LegacyClassifier)
    assert fixed.state_dict().keys() == legacy.state_dict().keys()


def test_spec_is_resolved_for_the_data_and_kept_on_the_model():
    model = seqrep.build_model(seqrep.TrainConfig(), seqrep.build.DataShape(1, 3, 2000))
    assert model.spec.pool == 4 and model.spec.kernel_sizes == ()  # the data-fitted start: only the pool
    model = seqrep.build_model(seqrep.ModelSpec(init="random"), seqrep.build.DataShape(1, 3, 2000))
    assert model.spec.pool == 4 and model.spec.kernel_sizes == (9, 19, 39) and model.spec.width == 64
    short = seqrep.build_model(seqrep.ModelSpec(init="random", width=7), seqrep.build.DataShape(1, 3, 12))
    assert short.spec.kernel_sizes == (9, 11) and short.spec.width == 9  # 3 branches: 7 -> 9, logged
    with pytest.raises(seqrep.SeqrepError, match=r"width 7 does not divide over 4 branches .* use 4 or 8"):
        seqrep.ModelSpec(init="random", width=7, kernel_sizes=(3, 5, 7))


def test_attention_weights_follow_the_mode_the_caller_set():
    model, x = _model(), torch.randn(4, 2, 40)
    model.train()
    in_train = model.attention(x)
    assert all(m.training for m in model.modules())  # it never switches the mode itself
    model.eval()
    with torch.no_grad():
        in_eval = model.attention(x)
    assert not any(m.training for m in model.modules())
    assert not torch.allclose(in_train, in_eval)  # batch statistics vs running statistics


def test_a_single_class_is_refused_with_the_reason():
    with pytest.raises(seqrep.SeqrepError, match="one class has nothing to tell apart"):
        _model(classes=1)


def _ablated(bugs):
    torch.manual_seed(0)
    return AblatedClassifier(2, 5, 40, seqrep.ModelSpec(init="random", width=16, kernel_sizes=(3, 7, 11)), bugs=bugs)


@pytest.mark.parametrize(("bugs", "rep_gets_grad", "rep_mode_in_training"), [
    ((), True, True), (("eval",), True, False), (("no_grad",), False, True), (("numpy",), False, True),
    (("eval", "no_grad", "numpy"), False, False)])
def test_ablated_classifier_keeps_exactly_the_chosen_lines(bugs, rep_gets_grad, rep_mode_in_training):
    model = _ablated(bugs)
    model.train()
    torch.nn.functional.cross_entropy(model(torch.randn(4, 2, 40)), torch.arange(4)).backward()
    assert all((p.grad is not None) == rep_gets_grad for p in model.representation.parameters())
    assert model.readout.weight.grad is not None
    assert model.representation.training == rep_mode_in_training
    model.eval()
    model(torch.randn(2, 2, 40))
    assert not model.representation.training  # inference is eval() whatever the bugs


def test_ablated_all_three_is_the_legacy_model_and_none_the_fixed_one():
    x = torch.randn(3, 2, 40)
    legacy, fixed = _model(seqrep.LegacyClassifier), _model()
    all_three, no_bug = _ablated(BUG_LINES), _ablated(())
    for reference, ablated in ((legacy, all_three), (fixed, no_bug)):
        reference.eval()
        ablated.eval()
        torch.testing.assert_close(reference(x, training=False), ablated(x))
    with pytest.raises(seqrep.SeqrepError, match="unknown bugs"):
        _ablated(("detach",))
