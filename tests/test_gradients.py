"""seqrep.doctor.graph: the gradient-flow doctor on planted bugs, its side-effect freedom, the
training monitor, and gradcheck of seqrep's custom pieces."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seqrep
from seqrep.build import DataShape
from seqrep.builtin import GradientMonitor
from seqrep.doctor import TrainingBugError, check_gradient_flow
from seqrep.model import AttentionPooling, MultiScaleBlock

torch.manual_seed(0)
X = torch.randn(8, 2, 30)
Y = torch.arange(8) % 3


class Net(nn.Module):
    """A small encoder/head model; `bug` plants one classic mistake."""

    def __init__(self, bug: str | None = None):
        super().__init__()
        self.bug = bug
        self.encoder = nn.Sequential(nn.Conv1d(2, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),
                                     nn.Dropout(0.1))
        self.head = nn.Linear(8, 3)
        self.spare = nn.Linear(8, 3)  # used only by the "unused branch" bug's absence

    def encode(self, x):
        if self.bug == "no_grad":
            self.encoder.eval()
            with torch.no_grad():
                return self.encoder(x).mean(-1)
        if self.bug == "eval_mode":
            self.encoder[1].eval()
        h = self.encoder(x).mean(-1)
        if self.bug == "detach":
            return h.detach()
        if self.bug == "numpy":
            return torch.from_numpy(h.detach().cpu().numpy())
        if self.bug == "tensor":
            return torch.tensor(h.tolist())
        if self.bug == "nan":
            return torch.sqrt(h - h)  # d/dx sqrt(x) at 0 is infinite
        return h

    def forward(self, x):
        h = self.encode(x)
        out = self.head(h)
        if self.bug != "unused":
            out = out + 0.1 * self.spare(h)
        return out


def _check(model, **kw):
    return check_gradient_flow(model, (X, Y), **kw)


def _kinds(report):
    return [f.kind for f in report.findings]


def test_seqrep_model_is_clean():
    model = seqrep.SequenceClassifier(2, 3, 30, seqrep.ModelSpec(init="random", width=16, kernel_sizes=(3, 5, 7)))
    report = _check(model, optimizer=torch.optim.AdamW(model.parameters()))
    assert report.ok, str(report)
    assert report.verdict().startswith("ok: gradients reach all")


def test_the_seed_bug_is_named():
    model = seqrep.LegacyClassifier(2, 3, 30, seqrep.ModelSpec(init="random", width=16, kernel_sizes=(3, 5, 7)))
    report = _check(model, optimizer=torch.optim.AdamW(model.parameters()))
    kinds = _kinds(report)
    assert {"no_grad", "graph_break", "unreachable", "eval_mode"} <= set(kinds), str(report)
    messages = {f.kind: f for f in report.findings}
    assert messages["no_grad"].names == ("representation",)
    assert "representation ran under torch.no_grad()" in messages["no_grad"].message
    assert messages["graph_break"].names == ("representation", "readout")
    assert "graph break between representation and readout" in messages["graph_break"].message
    unreachable = messages["unreachable"].names
    assert set(unreachable) == {n for n, _ in model.representation.named_parameters(prefix="representation")}
    assert report.verdict().startswith("4 findings:")


@pytest.mark.parametrize(
    ("bug", "kind", "names", "fragment"),
    [
        ("no_grad", "no_grad", ("encoder",), "encoder ran under torch.no_grad()"),
        ("detach", "graph_break", ("encoder", "head"), "graph break between encoder and head"),
        ("numpy", "graph_break", ("encoder", "head"), "numpy round-trip"),
        ("tensor", "graph_break", ("encoder", "head"), "torch.tensor(...)"),
        ("eval_mode", "eval_mode", ("encoder.1",), "encoder.1 ran in eval mode during a training forward: its BatchNorm1d"),
        ("unused", "unused", ("spare.weight", "spare.bias"), "spare is defined but never called"),
        ("nan", "nonfinite_grad", None, "non-finite (NaN/Inf) gradients"),
    ],
)
def test_planted_bugs_are_named(bug, kind, names, fragment):
    report = _check(Net(bug))
    found = [f for f in report.findings if f.kind == kind]
    assert found, f"{bug}: expected a {kind} finding, got\n{report}"
    if names is not None:
        assert found[0].names == names
    assert fragment in found[0].message
    with pytest.raises(TrainingBugError):
        report.raise_if_broken(warnings=True)


def test_missing_from_optimizer():
    model = Net()
    report = _check(model, optimizer=torch.optim.AdamW(model.head.parameters()))
    assert _kinds(report) == ["not_in_optimizer"]
    assert set(report.findings[0].names) == {n for n, _ in model.named_parameters() if not n.startswith("head")}


def test_accidental_requires_grad_false():
    model = Net()
    model.encoder[0].weight.requires_grad_(False)
    report = _check(model, optimizer=torch.optim.AdamW(model.parameters()))
    assert sorted(_kinds(report)) == ["frozen", "frozen_in_optimizer"]
    assert report.findings[0].names == ("encoder.0.weight",)


def test_loss_from_a_detached_tensor():
    report = _check(Net(), loss_fn=lambda out, y: F.cross_entropy(out.detach(), y))
    assert _kinds(report) == ["detached_loss"]


def test_nan_loss():
    report = _check(Net(), loss_fn=lambda out, y: F.cross_entropy(out, y) * float("nan"))
    assert "nonfinite_loss" in _kinds(report)


def test_intentionally_frozen_encoder_is_clean():
    model = Net("no_grad")
    model.encoder.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    report = _check(model, optimizer=opt, expect_frozen=("encoder",))
    assert report.ok, str(report)


def test_check_has_no_side_effects():
    model = seqrep.SequenceClassifier(2, 3, 30, seqrep.ModelSpec(init="random", width=16, kernel_sizes=(3, 5, 7)))
    opt = torch.optim.AdamW(model.parameters())
    loss = F.cross_entropy(model(X, training=True), Y)
    loss.backward()
    opt.step()
    model.eval()
    model.readout.train()
    state = copy.deepcopy(model.state_dict())  # parameters and BatchNorm running statistics
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    opt_state = copy.deepcopy(opt.state_dict())
    rng = torch.get_rng_state()
    _check(model, optimizer=opt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert torch.equal(torch.get_rng_state(), rng)
    after = opt.state_dict()
    assert all(torch.equal(after["state"][k]["exp_avg"], opt_state["state"][k]["exp_avg"]) for k in after["state"])


def test_report_table_frame_and_plot():
    model = seqrep.LegacyClassifier(2, 3, 30, seqrep.ModelSpec(init="random", width=16, kernel_sizes=(3, 5, 7)))
    report = _check(model)
    text = str(report)
    assert text.index("findings:") < text.index("parameter  ")
    assert "readout.weight" in text and "None" in text
    frame = report.to_frame()
    assert len(frame) == len(list(model.parameters()))
    assert frame.loc[frame.name == "readout.weight", "grad_norm"].item() > 0
    fig = report.plot()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    n_rep = len(list(model.representation.parameters()))
    assert f"no gradient (None): {n_rep}" in legend  # shown, not dropped


def test_fit_refuses_to_train_the_broken_model(tmp_path):
    ds = seqrep.make_sequences(n_classes=3, n_samples=30, length=40, motif_widths=(5, 9))
    config = seqrep.TrainConfig(model=seqrep.ModelSpec(init="random", extraction="broken", width=8, kernel_sizes=(3, 5, 7)), epochs=1, batch_size=8)
    model = seqrep.build_model(config, DataShape(1, 3, 40))
    with pytest.raises(TrainingBugError, match="graph break between representation and readout"):
        seqrep.fit(model, ds, None, config, tmp_path / "a", progress=False, verbose=False)
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    result = seqrep.fit(model, ds, None, config.replace(check_gradients=False), tmp_path / "b",
                        progress=False, verbose=False)
    assert len(result.history) == 1


def test_guard_does_not_change_the_run(tmp_path):
    ds = seqrep.make_sequences(n_classes=3, n_samples=30, length=40, motif_widths=(5, 9))
    config = seqrep.TrainConfig(model=seqrep.ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7)), epochs=2, batch_size=8)
    runs = []
    for check in (True, False):
        model = seqrep.build_model(config, DataShape(1, 3, 40))
        c = config.replace(check_gradients=check)
        runs.append(seqrep.fit(model, ds, ds, c, tmp_path / str(check), progress=False, verbose=False))
    assert runs[0].final["val_loss"] == runs[1].final["val_loss"]


def test_monitor_records_norms_ratios_and_dead_relus(tmp_path):
    ds = seqrep.make_sequences(n_classes=3, n_samples=30, length=40, motif_widths=(5, 9))
    config = seqrep.TrainConfig(model=seqrep.ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7)), epochs=2, batch_size=8)
    monitor = GradientMonitor(every=2)
    model = seqrep.build_model(config, DataShape(1, 3, 40))
    result = seqrep.fit(model, ds, None, config, tmp_path, callbacks=[monitor], progress=False, verbose=False)
    assert [r["step"] for r in monitor.history] == [2, 4, 6, 8]
    row = monitor.history[-1]
    assert {"representation.stem", "representation.blocks", "readout"} <= set(row["update_ratio"])
    assert all(-8 < v < 0 for v in row["update_ratio"].values())
    assert all(0 <= v <= 1 for v in row["dead_relu"].values()) and row["dead_relu"]
    logged = result.final["monitor"]
    assert logged["samples"] == 2 and set(logged["grad_norm"]) == set(row["grad_norm"])
    assert monitor.plot().axes  # heatmap draws
    assert not model.representation.blocks[0].act._forward_hooks  # hooks removed at the end


def test_gradcheck_custom_pieces():
    torch.manual_seed(0)
    block = MultiScaleBlock(3, 8, (3, 5, 7), bottleneck=2).double()
    x = torch.randn(2, 3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))
    pool = AttentionPooling(4).double()
    h = torch.randn(2, 4, 9, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False  # padded steps
    assert torch.autograd.gradcheck(lambda t: pool(t, mask)[0], (h,))
    features, _ = pool(h, mask)
    features.sum().backward()
    assert torch.count_nonzero(h.grad[1, :, 5:]) == 0  # no gradient flows into padding


def test_check_runs_fast_enough_to_call_before_every_run():
    model = seqrep.SequenceClassifier(1, 60, 128)
    x, y = torch.randn(16, 1, 128), torch.randint(0, 60, (16,))
    report = check_gradient_flow(model, (x, y), expect_frozen=seqrep.model.frozen_by_design(model))
    assert report.ok
    assert np.isfinite(report.loss)


def test_layerdrop_is_not_an_unused_branch():
    """Issue 27: LayerDrop skips layers at random while training (Wav2Vec2, Whisper); a layer that
    runs at inference is not "unused" (the blocking finding refused HF audio models)."""
    class LayerDrop(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
            self.head = nn.Linear(4, 3)
            self.never = nn.Linear(4, 4)

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                if not (self.training and i == 1):  # layer 1 dropped in this training forward
                    x = x + layer(x)
            return self.head(x.mean(1))

    x, y = torch.randn(8, 5, 4), torch.arange(8) % 3
    for report in (seqrep.doctor.check_gradient_flow(LayerDrop(), (x, y)), seqrep.check_training(LayerDrop(), (x, y))):
        unused = [f for f in report.findings if f.kind == "unused"]
        assert len(unused) == 1 and unused[0].names == ("never.weight", "never.bias"), report.verdict()
