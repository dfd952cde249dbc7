"""seqrep.inference: `modes` is the one place train/eval modes switch; inference helpers and
`fit` leave the modes where the caller expects them."""

from __future__ import annotations

import pytest

import seqrep
from seqrep.config import ModelSpec, TrainConfig
from seqrep.inference import modes

TINY = TrainConfig(model=ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7), blocks=1, bottleneck=4),
                   epochs=2, batch_size=8, budget=0)


@pytest.fixture(scope="module")
def data():
    return seqrep.make_sequences(n_classes=4, n_samples=48, length=40, motif_widths=(5, 9), seed=1).split(0.25, seed=0)


def _modes(model):
    return [m.training for m in model.modules()]


def test_modes_sets_the_block_and_restores_every_module(data):
    model = seqrep.build_model(TINY, data[0])
    model.representation.stem.eval()  # the caller froze one part on purpose
    found = _modes(model)
    with modes(model, False):
        assert not any(_modes(model))
    with modes(model, True):
        assert all(_modes(model))
    assert _modes(model) == found


@pytest.mark.parametrize("helper", [seqrep.predict_logits, seqrep.evaluate])
def test_inference_helpers_restore_the_mode_they_found(data, helper):
    model = seqrep.build_model(TINY, data[0])
    for training in (True, False):
        model.train(training)
        helper(model, data[1])
        assert _modes(model) == [training] * len(_modes(model))


def test_fit_trains_in_train_mode_whatever_a_callback_does_and_hands_back_eval(data, tmp_path):
    seen = []

    class Meddler(seqrep.Callback):
        def after_loss(self, state):
            seen.append((state.epoch, all(_modes(state.model))))

        def after_epoch(self, state):
            state.model.eval()  # e.g. its own evaluation, never put back

    model = seqrep.build_model(TINY, data[0])
    seqrep.fit(model, *data, TINY, tmp_path, [Meddler()], progress=False, verbose=False)
    assert seen and all(training for _, training in seen) and {e for e, _ in seen} == {0, 1}
    assert not any(_modes(model))  # a trained model comes back ready for inference


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
    ({"device": "banana"}, "device 'banana' is not a device name"),
])
def test_inference_refuses_a_bad_batch_size_or_device(data, kwargs, fragment):
    """batch_size=0 was range()'s raw ValueError; a bad device torch's RuntimeError."""
    train, _ = data
    model = seqrep.build_model(TINY, train)
    for helper in (seqrep.predict_logits, seqrep.evaluate):
        with pytest.raises(seqrep.SeqrepError, match=fragment):
            helper(model, train, **kwargs)
    with pytest.raises(seqrep.SeqrepError, match=r"expected a seqrep\.SequenceDataset, got tuple"):
        seqrep.predict_logits(model, (train.X, train.y))
