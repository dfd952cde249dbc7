"""seqrep.watch inside hand-written training loops: each planted loop bug is reported once with
its kind, a clean loop gets nothing, and start/stop, raise and the fit-protocol events work."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seqrep
from seqrep.doctor import TrainingWarning, watch


class Net(nn.Module):
    def __init__(self, unused: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(2, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1),
                                  nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3))
        self.spare = nn.Linear(8, 3) if unused else None  # defined, never called

    def forward(self, x):
        return self.body(x)


def _model(unused: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return Net(unused)


X, Y = torch.randn(8, 2, 20), torch.arange(8) % 3


def _loop(model, optimizer, steps=6, *, zero_grad=True, step=True, validate=False, nan_at=None):
    for i in range(steps):
        model.train() if not validate or i == 0 else None
        loss = F.cross_entropy(model(X), Y)
        if nan_at == i:
            loss = loss * float("nan")
        yield loss
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        if validate:
            model.eval()  # the validation pass, never undone


def _kinds(model, optimizer, **loop):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, optimizer) as w:
            for loss in _loop(model, optimizer, **loop):
                w.after_loss(loss)
    return [f.kind for f in w.findings], w


def test_clean_loop_has_no_finding():
    model = _model()
    kinds, w = _kinds(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    assert kinds == [] and w.steps == 6


@pytest.mark.parametrize(("loop", "kind"), [
    ({"zero_grad": False}, "accumulated_grad"),
    ({"validate": True}, "eval_step"),
    ({"nan_at": 2}, "nonfinite_loss"),
])
def test_loop_bugs_are_reported_once(loop, kind):
    model = _model()
    kinds, _ = _kinds(model, torch.optim.AdamW(model.parameters(), lr=1e-3), **loop)
    assert kinds.count(kind) == 1, kinds


def test_stale_parameters_and_zero_lr():
    model = _model(unused=True)
    kinds, w = _kinds(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    assert kinds == ["stale_parameter"] and w.findings[0].names == ("spare.weight", "spare.bias")
    model = _model()
    kinds, _ = _kinds(model, torch.optim.SGD(model.parameters(), lr=0.0))
    assert kinds == ["zero_lr"]


def test_a_fitted_batch_is_not_a_stale_parameter_but_a_missing_gradient_still_is():
    """Updates below float32's resolution: with the loss near 0 (a data-fitted start) that is
    expected and not reported; with a real loss it is (a learning rate too small to act), and a
    parameter without a gradient is reported either way."""
    def stale_names(scale):
        model = _model(unused=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with watch(model, optimizer) as w:
                for _ in range(4):
                    loss = F.cross_entropy(model(X), Y) * scale
                    w.after_loss(loss)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        return [n for f in w.findings if f.kind == "stale_parameter" for n in f.names]

    assert stale_names(1e-6) == ["spare.weight", "spare.bias"]  # the loss is ~1e-6: fitted
    assert stale_names(0.0) == ["spare.weight", "spare.bias"]  # exactly 0: every gradient is 0
    assert "body.6.weight" in stale_names(1.0) and "spare.weight" in stale_names(1.0)


def test_the_tail_of_a_decaying_schedule_is_not_a_stale_parameter():
    """lr decayed to 1e-10 of its peak (the end of a one-cycle schedule): updates below float32's
    resolution are expected; the never-called layer is still reported."""
    model = _model(unused=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, optimizer, stale_every=1) as w:
            for step in range(8):
                for group in optimizer.param_groups:
                    group["lr"] = 0.1 if step < 3 else 1e-11
                loss = F.cross_entropy(model(X), Y)
                w.after_loss(loss)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    assert [n for f in w.findings for n in f.names] == ["spare.weight", "spare.bias"]


def test_gradient_accumulation_on_purpose_is_fine():
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with watch(model, optimizer, on_finding="raise"):
        for _ in range(4):
            optimizer.zero_grad()
            for half in (X[:4], X[4:]):  # two micro-batches, one step
                F.cross_entropy(model(half), Y[:4]).backward()
            optimizer.step()


def test_raise_warn_and_explicit_start_stop():
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    w = watch(model, optimizer, on_finding="raise").start()
    with pytest.raises(seqrep.TrainingBugError, match="accumulated_grad"):
        for _loss in _loop(model, optimizer, zero_grad=False):
            pass
    w.stop()
    assert not optimizer._optimizer_step_pre_hooks  # hooks removed
    for _loss in _loop(model, optimizer, zero_grad=False):  # unwatched: nothing raised
        pass
    with pytest.warns(TrainingWarning, match="eval mode"), watch(model, optimizer):
        for _loss in _loop(model, optimizer, validate=True):
            pass


def test_fit_protocol_events():
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = type("State", (), {"model": model, "optimizer": optimizer, "loss": float("inf")})()
    w = watch(on_finding="record")
    w.before_fit(state)
    w.after_loss(state)
    w.after_fit(state, None)
    assert [f.kind for f in w.findings] == ["nonfinite_loss"]
    assert not optimizer._optimizer_step_post_hooks


def test_a_loop_that_never_steps_is_reported():
    """Issue 29: 120 iterations of loss, zero_grad, backward and no optimizer.step() were silent."""
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, optimizer) as w:
            for _ in _loop(model, optimizer, 5, step=False):
                pass
    assert [f.kind for f in w.findings] == ["missing_step"]
    assert "optimizer.step()" in w.findings[0].fix
    with warnings.catch_warnings():  # no zero_grad either: reported when the watch stops
        warnings.simplefilter("ignore")
        with watch(model, optimizer) as w:
            F.cross_entropy(model(X), Y).backward()
    assert [f.kind for f in w.findings] == ["missing_step"]


def test_eval_inside_forward_is_named_as_the_cause():
    """Issue 27: a forward() that calls self.eval() itself got 'model.train() at the start of
    every epoch', which cannot help; a model never put in train() gets its own message."""
    class SelfEval(Net):
        def forward(self, x):
            self.body.eval()
            return self.body(x)

    def message(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with watch(model, optimizer) as w:
                for _ in range(2):
                    model.train()
                    optimizer.zero_grad()
                    F.cross_entropy(model(X), Y).backward()
                    optimizer.step()
        return w.findings[0]

    torch.manual_seed(0)
    found = message(SelfEval(False))
    assert found.kind == "eval_step" and "forward() (or code it calls) switches" in found.message
    assert found.fix == "delete the .eval() call inside forward()"
    model = _model().eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, optimizer) as w:
            F.cross_entropy(model(X), Y).backward()
            optimizer.step()
    assert "never put in train()" in w.findings[0].message


def test_a_parameter_with_a_tiny_or_zero_gradient_is_not_stale_while_others_move():
    """Issue 27: fit's watch warned stale_parameter for readout.bias on a many-class set (its
    gradient too small for float32 to register the update near the loss floor), and on
    Longformer's zero-initialised biases (an exactly-zero gradient). Parameters with a gradient
    that stay put while others move are not a loop bug; one without a gradient still is."""
    model = _model(unused=True)
    with torch.no_grad():
        model.body[6].bias.fill_(1e4)  # an update of ~1e-4 is below float32's resolution at 1e4
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, optimizer) as w:
            for loss in _loop(model, optimizer, 4):
                w.after_loss(loss)
    assert [n for f in w.findings if f.kind == "stale_parameter" for n in f.names] == ["spare.weight", "spare.bias"]


def test_the_doctor_refuses_what_is_no_model_or_optimizer():
    model = nn.Linear(3, 2)
    with pytest.raises(seqrep.SeqrepError, match=r"watch: give the model and the optimizer.*got a Linear and a str"):
        watch(model, "adam").start()
    with pytest.raises(seqrep.SeqrepError, match=r"check_training: model must be a torch.nn.Module, got NoneType"):
        seqrep.check_training(None, (torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)))


def test_a_warning_names_the_module_not_a_file_path():
    """Issue 28: a TrainingWarning printed the path of torch's optimizer (or of this checkout)
    into notebook outputs that are shared."""
    import os

    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with watch(model, optimizer) as w:
            for loss in _loop(model, optimizer, zero_grad=False):
                w.after_loss(loss)
    found = [c for c in caught if issubclass(c.category, TrainingWarning)]
    assert found and all(c.filename == "seqrep.doctor.watch" for c in found)
    shown = warnings.formatwarning(found[0].message, found[0].category, found[0].filename, found[0].lineno)
    assert shown.startswith("seqrep.doctor.watch:") and os.sep not in shown.split("TrainingWarning")[0], shown
    with warnings.catch_warnings(record=True) as caught:  # filtered by module, as any warning
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module="seqrep.doctor.watch")
        with watch(model, optimizer) as w:
            for loss in _loop(model, optimizer, zero_grad=False):
                w.after_loss(loss)
    assert w.findings and not [c for c in caught if issubclass(c.category, TrainingWarning)]
