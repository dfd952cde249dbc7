"""The public API: a short list, one way to each thing, the rest in the module of its idea."""

from __future__ import annotations

import pytest

import seqrep
from seqrep.doctor import BLOCKING, Finding, TrainingReport


def test_the_public_api_is_short_and_every_name_is_there():
    assert len(seqrep.__all__) <= 35 and len(set(seqrep.__all__)) == len(seqrep.__all__)
    assert all(hasattr(seqrep, name) for name in seqrep.__all__)


@pytest.mark.parametrize(("gone", "where"), [
    ("overlay", "plot_runs"), ("check_gradient_flow", "doctor"), ("GradientFlowError", "TrainingBugError"),
    ("run_labels", "plots"), ("latest_epoch", "runlog"), ("class_weights", "imbalance"),
    ("check_fit_inputs", "train"), ("ClassStats", "data"),
])
def test_overlapping_names_left_the_top_level(gone, where):
    assert gone not in seqrep.__all__ and not hasattr(seqrep, gone)
    assert hasattr(seqrep, where) or hasattr(getattr(seqrep, where.split(".")[0], None), gone)


def _report(kind: str) -> TrainingReport:
    return TrainingReport(loss=1.0, parameters=[], modules=[], findings=[Finding(kind, ("x",), "m")])


def test_raise_if_broken_raises_for_what_blocks_training_as_fit_does():
    blocking, warning = sorted(BLOCKING)[0], "init_loss"
    assert warning not in BLOCKING
    with pytest.raises(seqrep.TrainingBugError):
        _report(blocking).raise_if_broken()
    _report(warning).raise_if_broken()  # a heuristic warning does not raise ...
    with pytest.raises(seqrep.TrainingBugError):
        _report(warning).raise_if_broken(warnings=True)  # ... unless asked to be strict
    assert issubclass(seqrep.TrainingBugError, seqrep.SeqrepError)
