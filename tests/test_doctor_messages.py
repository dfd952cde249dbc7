"""Issue 29's doctor messages and issue 27's crashes: each odd input gets a message that names
the problem and the fix, and a check that raises becomes a `skipped` entry, never a traceback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import seqrep
from seqrep.doctor import check_training
from seqrep.doctor.gallery import REPORTED_BUGS
from seqrep.doctor.toy import make_toy

X, Y = torch.randn(8, 5, 4), torch.arange(8) % 3


class Mean(nn.Module):
    def forward(self, x):
        return x.mean(1)[:, :3]


def _finding(report, kind):
    return next(f for f in report.findings if f.kind == kind)


def test_a_model_without_parameters_is_named_as_such():
    found = _finding(check_training(Mean(), (X, Y)), "detached_loss")
    assert "no parameters at all" in found.message


def test_an_all_frozen_model_is_not_blamed_on_detach():
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 3)).requires_grad_(False)
    report = check_training(model, (X, Y))
    assert "requires_grad=False" in _finding(report, "detached_loss").message
    assert ".detach()" not in _finding(report, "detached_loss").message
    assert "frozen" in {f.kind for f in report.findings}


def test_integer_outputs_blame_the_output_not_the_target():
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 3))
    with pytest.raises(seqrep.SeqrepError, match=r"integer tensor \(torch.int64.*argmax") as err:
        check_training(model, (X, Y), forward=lambda m, x: m(x).argmax(1))
    assert "target" not in str(err.value)


def test_a_meta_device_model_is_refused_with_the_fix():
    with torch.device("meta"):
        model = nn.Linear(4, 3)
    with pytest.raises(seqrep.SeqrepError, match=r"meta device.*to_empty"):
        check_training(model, (X.mean(1), Y))


def test_reentrant_checkpoint_gets_use_reentrant_false():
    class Checkpointed(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(4, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(checkpoint(self.block, x, use_reentrant=True).mean(1))

    report = check_training(Checkpointed(), (X, Y))
    found = _finding(report, "no_grad")
    assert found.names == ("block",) and "use_reentrant=False" in found.fix
    assert "post-mortem" not in found.message


def test_an_unreduced_loss_is_named_not_reported_as_nan():
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 3))
    with pytest.raises(seqrep.SeqrepError, match=r"reduction='none'.*\.mean\(\)"):
        check_training(model, (X, Y), loss_fn=nn.CrossEntropyLoss(reduction="none"))


def test_an_input_without_tensors_is_refused_before_the_model_runs():
    model = nn.Conv1d(5, 3, 1)
    with pytest.raises(seqrep.SeqrepError, match="holds no tensor"):
        check_training(model, (("input_ids", "labels"), Y))


def test_a_check_that_raises_becomes_a_skipped_entry():
    class EvalFails(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            if not self.training:
                raise RuntimeError("this model only runs in training mode")
            return self.head(x.mean(1))

    report = check_training(EvalFails(), (X, Y), mask=torch.ones(8, 5, dtype=torch.bool))
    assert report.ok
    assert "RuntimeError: this model only runs in training mode" in report.skipped["eval_forward"]
    assert set(report.skipped) >= {"batch_mixing", "padding_leak"}
    assert "not checked: eval_forward" in str(report)


@pytest.mark.parametrize("where", [0, 7, 15])
def test_padding_leak_with_the_unpadded_sample_anywhere(where):
    """Issue 27: with the unpadded sample first, the padding check raised IndexError in
    doctor/mixing.py, exactly when the leak was there."""
    toy = make_toy(16)
    toy.lengths[where] = toy.x.shape[1]
    toy.mask[where] = True
    case = next(c for c in REPORTED_BUGS if c.name == "last_step_of_padding")
    for fixed in (False, True):
        setup = case.build(fixed)
        args, kwargs = setup.arguments(toy)
        report = check_training(setup.model, *args, **kwargs)
        assert "padding_leak" not in report.skipped
        assert (case.caught_by(report.findings) is not None) != fixed, report.verdict()
    sample = int(case.caught_by(check_training(case.build(False).model, *case.build(False).arguments(toy)[0],
                                                **case.build(False).arguments(toy)[1]).findings).names[-1].split()[-1])
    assert not toy.mask[sample].all()  # the sample it reports has padding of its own


def test_per_step_outputs_are_compared_on_the_original_steps_only():
    """Token classification with a mask: the padding probe appends padded steps; the per-step
    output grows with them and must be compared on the original real steps."""
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(24, 8, padding_idx=0)
            self.head = nn.Linear(8, 3)

        def forward(self, tokens):
            return self.head(self.embed(tokens))

    toy = make_toy(8)
    targets = (toy.tokens % 3).masked_fill(~toy.mask, -100)
    report = check_training(Tagger(), (toy.tokens, targets), mask=toy.mask,
                            loss_fn=lambda out, y: F.cross_entropy(out.flatten(0, 1), y.flatten()))
    assert report.ok and set(report.skipped) == {"step_size"}, (report.verdict(), report.skipped)
    assert report.measured["padding_leak"]["largest_change"] == 0.0
