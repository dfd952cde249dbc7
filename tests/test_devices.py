"""Every tensor of a run follows the run's device, and every random draw comes from a seeded
generator or a fork of torch's RNG: building a model, fitting its start and training leave
the caller's RNG as they found it."""

from __future__ import annotations

import pytest
import torch

import seqrep
from seqrep.config import TrainConfig
from seqrep.model import fit_init


@pytest.fixture(scope="module")
def data():
    return seqrep.make_sequences(n_classes=3, n_samples=30, length=80, seed=0).split(0.25, seed=0)


@pytest.mark.parametrize("settings", [
    {"sampler": "shuffle"}, {"sampler": "balanced"},  # the default start
    {"class_weights": "inverse", "model": {"init": "random"}},  # a weighted loss
    {"loss": "focal", "class_weights": "effective", "model": {"init": "random"}},
], ids=["default", "balanced", "class-weights", "focal"])
def test_the_default_start_and_a_step_make_every_tensor_on_the_run_device(data, tmp_path, settings):
    """With "meta" as torch's default device, a tensor made without device= lands there and
    cannot meet the run's CPU tensors: on a CPU-only machine this finds what would break on a
    GPU (the run's device) without one."""
    train, val = data
    config = TrainConfig(epochs=1, batch_size=len(train), budget=0, **settings)  # one step
    reference = seqrep.build_model(config, train)
    expected = seqrep.fit(reference, train, val, config, tmp_path / "cpu", progress=False, verbose=False)
    model = seqrep.build_model(config, train)  # built before: a model's layers follow the default device
    torch.set_default_device("meta")
    try:
        result = seqrep.fit(model, train, val, config, tmp_path / "meta", progress=False, verbose=False, device="cpu")
    finally:
        torch.set_default_device(None)
    if config.model.init == "data":
        assert bool(model.representation.fitted)  # the data-fitted start ran, on the CPU
    assert all(p.device.type == "cpu" for p in model.parameters())
    # Indexing a CPU tensor with a meta index does not fail: it reads memory that holds
    # nothing (once: NaN features on one machine, finite garbage on another). Only the same
    # numbers as the run without "meta" show that no tensor went there.
    assert result.final["val_accuracy"] == expected.final["val_accuracy"]
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs from the run without a default device"


def test_building_fitting_the_start_and_training_leave_the_global_rng_alone(data, tmp_path):
    train, val = data
    config = TrainConfig(epochs=1, budget=0, batch_size=8)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = seqrep.build_model(config.replace(model={"extraction": "fixed"}), train)
    fit_init(model, train, seed=config.seed)
    seqrep.fit(seqrep.build_model(config, train), train, val, config, tmp_path, progress=False, verbose=False)
    assert torch.equal(torch.rand(3), expected)


def test_the_start_is_seeded(data):
    train, _ = data
    first, again, other = (seqrep.build_model(TrainConfig(seed=s), train) for s in (0, 0, 1))
    for model, seed in ((first, 0), (again, 0), (other, 1)):
        fit_init(model, train, seed=seed)
    assert torch.equal(first.representation.groups[0].bias, again.representation.groups[0].bias)
    assert not torch.equal(first.representation.groups[0].bias, other.representation.groups[0].bias)
