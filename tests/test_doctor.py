"""seqrep.doctor: check_training on the gallery of reported bugs (each must be named with its
kind and culprit, and its one-line fix must be clean), on clean sequence architectures (no
finding at all), its side-effect freedom, and what users bring (tuples, dicts, autocast,
torch.compile)."""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import seqrep
from seqrep.build import DataShape
from seqrep.doctor import BLOCKING, KINDS, check_training
from seqrep.doctor.gallery import CLEAN, REPORTED_BUGS
from seqrep.doctor.toy import make_toy


def _check(setup, **extra):
    toy = make_toy(16, full=setup.full)
    args, kwargs = setup.arguments(toy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_training(setup.model, *args, **{**kwargs, **extra})


def test_gallery_is_large_and_cited():
    assert len(REPORTED_BUGS) >= 24 and len({c.name for c in REPORTED_BUGS}) == len(REPORTED_BUGS)
    assert len(CLEAN) >= 10
    where = re.compile(r"github\.com/\S+ (issue|PR) \d+|discuss\.pytorch\.org/t/\S+/\d+|this project's post-mortem")
    assert [c.name for c in REPORTED_BUGS if not where.search(c.source)] == []  # every case says where it was reported
    assert {c.kind for c in REPORTED_BUGS} >= {"loss_input", "batch_mixing", "padding_leak", "unregistered",
                                     "init_loss", "step_size", "vanishing_gradient",
                                     "exploding_gradient", "dead_units"}
    assert all(c.kind in KINDS for c in REPORTED_BUGS)


@pytest.mark.parametrize("case", REPORTED_BUGS, ids=lambda c: c.name)
def test_gallery_bug_is_named_and_its_fix_is_clean(case):
    report = _check(case.build(False))
    found = case.caught_by(report.findings)
    assert found is not None, f"{case.name}: expected {case.kind} naming {case.culprit!r}, got\n{report.verdict()}"
    assert found.message and found.fix
    fixed = _check(case.build(True))
    assert fixed.ok, f"{case.name} fixed with `{case.fix}` still reports\n{fixed.verdict()}"


@pytest.mark.parametrize("clean", CLEAN, ids=lambda c: c.name)
def test_clean_architecture_gets_no_finding(clean):
    report = _check(clean.build())
    assert report.ok, report.verdict()
    assert report.verdict().startswith("ok: no finding in")


def test_blocking_kinds_are_documented():
    assert BLOCKING <= set(KINDS)
    assert {"no_grad", "graph_break", "loss_input", "batch_mixing", "padding_leak", "unregistered"} <= BLOCKING
    assert not {"init_loss", "step_size", "dead_units", "blocked_gradient", "frozen"} & BLOCKING
    assert all(len(KINDS[k]) == 3 and KINDS[k][2] for k in KINDS)  # every kind says why


def test_report_prints_verdict_first_with_seconds_and_frame():
    case = next(c for c in REPORTED_BUGS if c.name == "softmax_into_cross_entropy")
    report = _check(case.build(False))
    text = str(report)
    assert text.startswith("1 finding:") and text.index("seconds per check") < text.index("parameter  ")
    assert set(report.seconds) >= {"gradient_flow", "loss", "batch_mixing", "step_size"}
    assert all(s >= 0 for s in report.seconds.values())
    frame = report.findings_frame()
    assert list(frame.kind) == ["loss_input"] and bool(frame.blocking.iloc[0])
    assert len(report.to_frame()) == len(list(case.build(False).model.parameters()))
    assert report.plot().axes
    with pytest.raises(seqrep.TrainingBugError, match="loss_input"):
        report.raise_if_broken()


def test_check_training_has_no_side_effects():
    setup = next(c for c in CLEAN if c.name.startswith("seqrep")).build()
    model, optimizer = setup.model, setup.optimizer
    toy = make_toy(16)
    args, kwargs = setup.arguments(toy)
    loss = nn.functional.cross_entropy(setup.forward(model, args[0][0]), toy.y)
    loss.backward()
    optimizer.step()  # real optimizer state, real gradients
    model.eval()
    model.readout.train()
    state = copy.deepcopy(model.state_dict())
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()
    report = check_training(model, *args, **kwargs)
    assert "step_size" in report.measured  # the step really ran (on copies)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is grads[n] is None or torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    after = optimizer.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]
    for k, v in after["state"].items():
        assert all(torch.equal(v[name], opt_state["state"][k][name]) for name in ("exp_avg", "exp_avg_sq", "step"))


def test_model_returning_a_tuple_asks_for_forward():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            out = self.head(x.mean(1))
            return out, out.detach()

    x, y = torch.randn(8, 5, 4), torch.arange(8) % 3
    with pytest.raises(seqrep.SeqrepError, match=r"forward=lambda m, x: m\(x\)\[0\]"):
        check_training(Pair(), (x, y))
    assert check_training(Pair(), (x, y), forward=lambda m, x: m(x)[0]).ok


def test_mask_time_axis_must_be_unambiguous():
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    x, y = torch.randn(8, 6, 6), torch.arange(8) % 3
    mask = torch.ones(8, 6, dtype=torch.bool)
    mask[:, 4:] = False
    with pytest.raises(seqrep.SeqrepError, match="time_dim="):
        check_training(model, (x, y), mask=mask)
    report = check_training(model, (x, y), mask=mask, time_dim=2)
    assert [f.kind for f in report.findings] == ["padding_leak"]


@pytest.mark.parametrize("name", ["softmax_into_cross_entropy", "mean_over_padding", "layers_in_python_list"])
def test_under_bfloat16_autocast(name):
    # (oneDNN has no bfloat16 LSTM on CPU: torch itself raises for the LSTM cases under autocast)
    case = next(c for c in REPORTED_BUGS if c.name == name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert case.caught_by(_check(case.build(False)).findings)
        assert _check(case.build(True)).ok


def test_compiled_model():
    case = next(c for c in REPORTED_BUGS if c.name == "softmax_into_cross_entropy")
    setup = case.build(False)
    setup.model = torch.compile(setup.model, backend="eager")  # no C++ compilation
    report = _check(setup)
    assert case.caught_by(report.findings)
    assert all(not p["name"].startswith("_orig_mod") for p in report.parameters)


def test_default_model_and_batch():
    model = seqrep.build_model(seqrep.TrainConfig(), DataShape(1, 60, 128))
    x, y = torch.randn(16, 1, 128), torch.randint(0, 60, (16,))
    optimizer = torch.optim.AdamW(seqrep.model.param_groups(model, 1e-2))
    frozen = seqrep.model.frozen_by_design(model)  # its solved readout, the groups kept as fitted
    report = check_training(model, (x, y), optimizer=optimizer, expect_frozen=frozen)
    assert report.ok, report.verdict()
    # not told, the optimizer (from the trainable parameters only) says the freezing is deliberate
    assert check_training(model, (x, y), optimizer=optimizer).ok
    plain = check_training(model, (x, y))  # not told, no optimizer: named, as a warning only
    assert [f.kind for f in plain.findings] == ["frozen"] and not plain.findings[0].blocking
    assert abs(report.measured["init_loss"]["expected"] - torch.log(torch.tensor(60.0))) < 1e-3
