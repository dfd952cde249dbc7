"""seqrep.plots: the static figures the notebooks share (behaviour, not pixels)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import seqrep
from seqrep import plots


def _records(losses):
    return [{"epoch": i, "train_loss": v, "val_accuracy": 0.5} for i, v in enumerate(losses)]


@pytest.mark.parametrize(("losses", "scale"), [([4.05, 3.9, 3.7], "linear"), ([4.0, 1.0, 0.2], "log")])
def test_loss_axis_is_log_only_over_a_decade(losses, scale):
    fig = plots.plot_runs({"run": _records(losses)}, metrics=("train_loss",))
    assert fig.axes[0].get_yscale() == scale
    plt.close(fig)


def test_a_rate_logged_per_group_draws_a_line_per_group():
    records = [{"epoch": i, "lr": {"kernels": 4e-4 / (i + 1), "readout": 1e-5 / (i + 1)}} for i in range(3)]
    fig = plots.plot_runs({"run": records, "seed's": [{"epoch": 0, "lr": {"all": 1e-2}}]}, metrics=("lr",))
    lines = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].lines}
    assert lines == {"run: kernels": [4e-4, 2e-4, 4e-4 / 3], "run: readout": [1e-5, 5e-6, 1e-5 / 3], "seed's": [1e-2]}
    assert fig.axes[0].get_yscale() == "log"  # the groups' rates are decades apart
    plt.close(fig)


def test_module_group_keeps_list_indices_with_their_level():
    assert plots.module_group("representation.blocks.0.branches.1") == "representation.blocks.0"
    assert plots.module_group("representation.blocks.0.branches.1", depth=1) == "representation"
    assert plots.module_group("readout") == "readout"
    assert plots.module_group("") == "(model)"
    with pytest.raises(seqrep.SeqrepError, match="depth must be >= 1"):
        plots.module_group("readout", depth=0)


def _broken_report():
    torch.manual_seed(0)
    model = seqrep.LegacyClassifier(1, 3, 30, seqrep.ModelSpec(init="random", width=16, kernel_sizes=(3, 5, 7)))
    x, y = torch.randn(8, 1, 30), torch.arange(8) % 3
    return seqrep.doctor.check_gradient_flow(model, (x, y), optimizer=torch.optim.AdamW(model.parameters()))


def test_gradient_groups_count_missing_gradients_and_never_drop_a_tensor():
    report = _broken_report()
    groups = plots.gradient_groups(report.parameters)
    assert sum(g["tensors"] for g in groups) == len(report.parameters)
    by_name = {g["group"]: g for g in groups}
    assert by_name["readout"]["none"] == 0 and by_name["readout"]["norm"] > 0
    rep = [g for g in groups if g["group"].startswith("representation")]
    assert rep and all(g["none"] == g["tensors"] and g["norm"] is None for g in rep)
    with pytest.raises(seqrep.SeqrepError, match="no trainable parameters"):
        plots.gradient_groups([])


def test_plot_gradient_flow_marks_none_beside_the_axis():
    report = _broken_report()
    fig = plots.plot_gradient_flow(report)
    ax = fig.axes[0]
    column = ax.child_axes[0]
    labels = [t.get_text() for t in column.texts]
    groups = plots.gradient_groups(report.parameters)
    assert len(ax.get_yticklabels()) == len(groups)
    assert sum("of" in t for t in labels) == sum(g["none"] > 0 for g in groups)
    assert "get no gradient" in ax.get_title()
    plt.close(fig)


def test_plot_monitor_marks_steps_without_an_update():
    history = [{"step": s, "update_ratio": {"representation": -math.inf, "readout": -2.0}} for s in range(4)]
    fig = plots.plot_monitor(history)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["representation  [4 of 4 none]", "readout"]
    assert "black" in fig.axes[0].get_xlabel()
    plt.close(fig)


def test_plot_remedies_draws_every_seed_and_refuses_unknown_remedies():
    rows = [{"seed": s, "ratio": r, "remedy": m, "balanced_accuracy": 0.5 + 0.1 * s, "tail_recall": 0.3}
            for s in range(3) for r, ms in ((1, ["none"]), (50, ["none", "x"])) for m in ms]
    table = pd.DataFrame(rows)
    fig = plots.plot_remedies(table, 50, chance=0.1)
    dots = [c for c in fig.axes[0].collections if len(c.get_offsets()) == 3]
    assert len(dots) == 2  # one row of seed dots per remedy
    plt.close(fig)
    with pytest.raises(seqrep.SeqrepError, match="no rows at ratio 50"):
        plots.plot_remedies(table, 50, order=["none", "missing"])
    assert np.isfinite(table["balanced_accuracy"]).all()


def test_plot_runs_takes_one_run_directory_and_refuses_none(tmp_path):
    """plot_runs('runs/a') read each letter of the path as a run ('/run.jsonl: no run log')."""
    from seqrep.runlog import RunLog

    log = RunLog(tmp_path / "run.jsonl")
    log.append({"event": "start", "config": seqrep.TrainConfig().to_dict()})
    for i in range(2):
        log.append({"epoch": i, "epochs": 2, "val_accuracy": 0.5 + 0.1 * i, "val_balanced_accuracy": 0.5})
    fig = seqrep.plot_runs(str(tmp_path))
    assert len(fig.axes[0].get_lines()) >= 1
    plt.close(fig)
    with pytest.raises(seqrep.SeqrepError, match=r"plot_runs: runs must be run directories or FitResults .* got NoneType"):
        seqrep.plot_runs(None)
