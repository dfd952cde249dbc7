"""seqrep.live: the LivePlot callback, overlays, and the panel driven programmatically."""

from __future__ import annotations

import base64
import io
import re
import time
from pathlib import Path

import pytest

import seqrep
from seqrep import live
from seqrep.checkpoint import CHECKPOINT_NAME
from seqrep.config import ModelSpec, TrainConfig
from seqrep.runlog import read_log

PNG = b"\x89PNG\r\n\x1a\n"
TINY = TrainConfig(model=ModelSpec(init="random", width=8, kernel_sizes=(3, 5, 7), blocks=1, bottleneck=4), epochs=3, batch_size=8, budget=0)
TIMEOUT = 120  # seconds: a generous bound for a slow shared machine, never reached when working


@pytest.fixture(scope="module")
def data():
    ds = seqrep.make_sequences(n_classes=4, n_samples=48, length=40, motif_widths=(5, 9), seed=1)
    return ds.split(0.25, seed=0)


def _fit(data, run_dir, config=TINY, callbacks=()):
    train, val = data
    model = seqrep.build_model(config, train)
    return seqrep.fit(model, train, val, config, run_dir, callbacks, progress=False, verbose=False)


def _until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _epochs(run_dir: Path) -> list[dict]:
    return [r for r in read_log(run_dir) if "epoch" in r] if (run_dir / "run.jsonl").exists() else []


# ---------------------------------------------------------------------- LivePlot


class FakeHandle:
    def __init__(self, log):
        self.log = log

    def update(self, obj, **kwargs):
        self.log.append(("update", obj))


def test_liveplot_keeps_one_display_output_however_many_redraws(data, tmp_path, monkeypatch):
    import IPython.display

    calls = []

    def fake_display(obj, display_id=False):
        calls.append(("display", obj))
        assert display_id is True, "a live figure needs a display handle to update in place"
        return FakeHandle(calls)

    monkeypatch.setattr(IPython.display, "display", fake_display)
    plot = seqrep.LivePlot(to="display", min_interval=0, draw_share=1.0)  # a frame every epoch at least
    _fit(data, tmp_path, TINY.replace(epochs=4), [plot])
    kinds = [kind for kind, _ in calls]
    assert kinds.count("display") == 1 and kinds[0] == "display"
    assert kinds.count("update") == plot.redraws - 1 >= 4 + 1
    assert all(obj.data.startswith(PNG) for _, obj in calls)
    assert calls[-1][1].data == plot.png and "finished" in plot.title and "4/4 epochs done" in plot.title


def test_liveplot_writes_a_png_next_to_the_run_log_without_a_kernel(data, tmp_path):
    plot = seqrep.LivePlot()  # "auto": pytest runs no Jupyter kernel
    _fit(data, tmp_path, callbacks=[plot])
    assert plot.path == tmp_path / live.LIVE_PNG
    assert plot.path.read_bytes() == plot.png and plot.png.startswith(PNG)
    assert not list(tmp_path.glob("*.tmp"))


def test_liveplot_draws_every_optimizer_groups_rate(data, tmp_path):
    plot = seqrep.LivePlot(to="file", min_interval=0, draw_share=1.0)
    _fit(data, tmp_path, TrainConfig(epochs=1, batch_size=8, budget=0), [plot])  # the data-fitted start
    ax = plot._figure.axes["lr"]
    assert [line.get_label() for line in plot._figure.lr] == ["kernels", "thresholds", "scorers"]
    assert all(len(line.get_xdata()) for line in plot._figure.lr)
    peaks = [max(line.get_ydata()) for line in plot._figure.lr]
    assert ax.get_yscale() == ("log" if max(peaks) >= 10 * min(peaks) else "linear")
    seed = seqrep.LivePlot(to="file", min_interval=0)
    _fit(data, tmp_path / "seed", callbacks=[seed])  # one group: the linear axis as before
    assert [line.get_label() for line in seed._figure.lr] == ["all"]
    assert seed._figure.axes["lr"].get_yscale() == "linear"


def test_cli_train_live_writes_the_png(tmp_path, capsys):
    from seqrep.cli import main

    run_dir = tmp_path / "run"
    code = main(["train", "--classes", "4", "--samples", "48", "--epochs", "1",
                 "--run-dir", str(run_dir), "--live"])
    assert code == 0, capsys.readouterr().err
    assert (run_dir / live.LIVE_PNG).read_bytes().startswith(PNG)


@pytest.mark.parametrize(("min_interval", "draw_share", "at_least", "at_most"), [
    (1e9, 1.0, 1, 1),  # throttled by time: only the final frame
    (0.0, 0.0, 5, 5),  # no time for step frames: the first (exempt), one per epoch, the final
    (0.0, 1.0, 1 + 3 + 1, 3 * 5 + 3 + 1),  # all the time allowed: every epoch, maybe every step
])
def test_redraws_are_throttled(data, tmp_path, min_interval, draw_share, at_least, at_most):
    plot = live.LivePlot(to="file", min_interval=min_interval, draw_share=draw_share)
    _fit(data, tmp_path, TINY.replace(epochs=3), [plot])  # 3 epochs x 5 steps
    assert at_least <= plot.redraws <= at_most


def test_broken_run_says_no_gradient_reaches_the_representation(data, tmp_path):
    plot = live.LivePlot(to="file")
    _fit(data, tmp_path, TINY.replace(model={"extraction": "broken"}, check_gradients=False), [plot])
    figure = plot._figure
    assert figure.no_grad.get_text().splitlines()[0] == "no gradient reaches: representation"
    none_x, _ = figure.grad_none["representation"].get_data()  # an x on the axis per epoch
    assert len(none_x) == len(figure.grad["representation"].get_xdata()) > 0
    assert len(figure.grad_none["readout"].get_data()[0]) == 0


def test_liveplot_and_panel_show_the_running_diagnosis_of_the_log(data, tmp_path):
    """Issue 30: the figure's foot and the panel's status line carry the verdict that
    `seqrep diagnose` gives the run's log, updated every epoch."""
    plot = live.LivePlot(to="file")
    config = TINY.replace(model={"extraction": "broken"}, check_gradients=False, epochs=4)
    _fit(data, tmp_path / "plot", config, [plot])
    verdict = seqrep.diagnose(tmp_path / "plot").verdict
    assert plot._figure.verdict.get_text() == f"diagnosis: {verdict}"
    assert live.figure.running_verdict([]) == ""
    panel = seqrep.Panel(config, datasets={"tiny": data}, root=tmp_path / "panel", min_interval=0.05)
    panel.controls["extraction"].value = "broken"
    panel.train_button.click()
    assert panel.wait(TIMEOUT) and panel.runs[-1].state == "finished", panel.status_text
    run = panel.runs[-1]
    assert f"diagnosis: {seqrep.diagnose(run.run_dir).verdict}" in panel.status_text.splitlines()
    assert run.plan is None and "plan:" not in panel.status_text  # explicit epochs: nothing planned


def test_the_panel_shows_the_steps_a_time_budget_bought(data, tmp_path):
    """Issue 26: the number of steps chosen is in the log, FitResult and the panel."""
    panel = seqrep.Panel(TrainConfig(epochs=0, budget=3.0, batch_size=8), datasets={"tiny": data}, root=tmp_path,
                         min_interval=0.05)
    panel.train_button.click()
    assert panel.wait(TIMEOUT) and panel.runs[-1].state in ("finished", "stopped"), panel.status_text
    run = panel.runs[-1]
    start = next(r for r in seqrep.read_log(run.run_dir) if r.get("event") == "start")
    assert run.plan == start["plan"] and run.plan["steps"] == start["steps"] == run.epochs * run.steps_per_epoch
    assert f"plan: {run.epochs} epochs x {run.steps_per_epoch} steps = {run.plan['steps']} steps in the 3 s budget" \
        in panel.status_text


def test_blitted_frames_equal_a_full_redraw(data, tmp_path):
    from PIL import Image

    plot = live.LivePlot(to="file", min_interval=0, draw_share=1.0)
    _fit(data, tmp_path, TINY.replace(epochs=3), [plot])
    figure = plot._figure
    assert figure.full_redraws < plot.redraws  # most frames reused the background
    blitted = figure.png()
    figure.background = None
    full = figure.png()

    def pixels(png):
        return Image.open(io.BytesIO(png)).convert("RGBA").tobytes()

    assert pixels(blitted) == pixels(full)


def test_liveplot_rejects_an_unknown_target():
    with pytest.raises(seqrep.SeqrepError, match="expected 'auto', 'display', 'file'"):
        seqrep.LivePlot(to="screen")


# ---------------------------------------------------------------------- overlays


def test_overlay_labels_come_from_config_differences(data, tmp_path):
    import matplotlib.pyplot as plt

    runs = [_fit(data, tmp_path / str(lr), TINY.replace(epochs=1, lr=lr)) for lr in (0.003, 0.01)]
    assert seqrep.plots.run_labels(runs) == ["lr=0.003", "lr=0.01"]
    broken = _fit(data, tmp_path / "broken", TINY.replace(epochs=1, model={"extraction": "broken"}, check_gradients=False))
    assert seqrep.plots.run_labels([broken, runs[1]]) == ["extraction=broken", "extraction=fixed"]
    same = _fit(data, tmp_path / "same", TINY.replace(epochs=1, lr=0.01))
    assert seqrep.plots.run_labels([runs[1], same]) == ["0.01", "same"]  # identical configs: directory names
    # Timestamped directories are told apart by the name after the stamp, or by position.
    stamped = [_fit(data, seqrep.new_run_dir(tmp_path, "panel-fixed"), TINY.replace(epochs=1)) for _ in range(2)]
    assert seqrep.plots.run_labels(stamped) == ["#1 panel-fixed", "#2 panel-fixed"]

    fig = seqrep.plot_runs([r.run_dir for r in runs], ('val_loss', 'val_accuracy', 'val_balanced_accuracy'), title="lr=0.01 learns faster")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    assert legend == ["lr=0.003", "lr=0.01"]


def test_overlay_legend_of_many_runs_sits_outside_the_panels(data, tmp_path):
    """Issue 20.5: with nine runs the legend covered the middle panel."""
    import matplotlib.pyplot as plt

    run = _fit(data, tmp_path / "run", TINY.replace(epochs=2))
    runs = {f"#{i} lr=0.00{i}, seed={i}, a long label": run.run_dir for i in range(1, 10)}
    fig = seqrep.plot_runs(runs, chance=seqrep.plots.chance_levels(data[1].y))
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    below_panels = min(ax.get_window_extent().y0 for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    assert all(ax.get_legend() is None for ax in fig.axes) and legend.y1 <= below_panels
    assert labels[:9] == list(runs) and labels[9].startswith("chance (majority class): ")
    assert labels[10].startswith("chance, balanced (1/4): 0.250")
    assert min(t.get_fontsize() for t in fig.legends[0].get_texts()) >= 9


@pytest.mark.parametrize(("y", "accuracy", "balanced"), [
    ([0, 0, 0, 1], 0.75, 0.5),  # imbalanced: always predicting class 0 scores 0.75
    ([0, 1, 2, 3, 3, 2], 2 / 6, 0.25),
    ([3, 3, 5], 2 / 3, 0.5),  # balanced accuracy averages over the classes present
])
def test_chance_levels(y, accuracy, balanced):
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    levels = seqrep.plots.chance_levels(np.array(y))
    assert levels == pytest.approx({"accuracy": accuracy, "balanced_accuracy": balanced})
    # What a model always predicting the most frequent class scores.
    constant = np.full(len(y), np.bincount(y).argmax())
    assert accuracy_score(y, constant) == pytest.approx(accuracy)
    assert balanced_accuracy_score(y, constant) == pytest.approx(balanced)


# ---------------------------------------------------------------------- the panel


@pytest.fixture
def panel(data, tmp_path):
    panel = seqrep.Panel(TINY, datasets={"tiny": data}, root=tmp_path / "runs", min_interval=0.05)
    yield panel
    panel.stop.click()  # whatever a test left running
    assert panel.wait(TIMEOUT), "the training thread did not end"


def _start_event(run_dir: Path) -> dict:
    return next(r for r in read_log(run_dir) if r.get("event") == "start")


def _table(panel) -> tuple[list[str], list[list[str]]]:
    """The runs table as (header, rows of cell texts)."""
    from html.parser import HTMLParser

    rows: list[list[str]] = []

    class Cells(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                rows.append([])

        def handle_data(self, text):
            if rows:
                rows[-1].append(text)

    Cells().feed(panel.table.value)
    return rows[0], rows[1:]


def test_panel_config_follows_the_widgets(panel):
    c = panel.controls
    c["lr"].value, c["batch_size"].value, c["epochs"].value = "0.003", "4", "7"
    c["kernel_sizes"].value, c["attention"].value, c["dropout"].value = "3, 5", False, 0.2
    c["remedy"].value, c["extraction"].value, c["seed"].value = "focal loss", "broken", "3"
    c["width"].value = "9"  # 3 branches with two kernel sizes
    assert panel.config() == TINY.replace(
        lr=0.003, batch_size=4, epochs=7, loss="focal", check_gradients=False, seed=3,
        model={"kernel_sizes": (3, 5), "attention": False, "dropout": 0.2, "extraction": "broken", "width": 9})
    c["kernel_sizes"].value, c["remedy"].value, c["epochs"].value = "auto", "none", "auto"
    assert panel.config().model.kernel_sizes == () and panel.config().loss == "cross_entropy"
    assert panel.config().epochs == 0


def test_panel_disables_what_the_data_fitted_start_has_not(panel):
    c = panel.controls
    assert not c["width"].disabled and not c["kernel_sizes"].disabled  # TINY: init "random"
    c["width"].value = "12"
    c["init"].value = "data"
    assert c["width"].disabled and c["kernel_sizes"].disabled
    assert panel.config().model == ModelSpec(dropout=TINY.model.dropout)  # nothing ignored is set
    c["init"].value = "random"
    assert not c["width"].disabled and panel.config().model.width == 12
    panel._lock_controls(True)  # a run trains: everything is locked either way
    assert c["width"].disabled and c["init"].disabled


def test_the_training_thread_changes_the_runs_only_under_the_lock(panel, monkeypatch):
    owned, record = [], live.PanelRun.record

    def checked(run, epoch_record):  # called from the training thread at every epoch's end
        owned.append(panel._runs_lock._is_owned())
        record(run, epoch_record)

    monkeypatch.setattr(live.PanelRun, "record", checked)
    panel.controls["epochs"].value = "2"
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    assert owned == [True, True] and panel.runs[0].state == "finished"


def test_panel_train_stop_keeps_log_checkpoint_and_status(panel):
    panel.controls["epochs"].value = "10000"  # would run for hours: only Stop ends it
    panel.train_button.click()
    assert panel.running and len(panel.runs) == 1
    run_dir = panel.runs[0].run_dir
    _until(lambda: len(_epochs(run_dir)) >= 2, "two epochs in the run log")
    assert re.match(r"training #1: epoch \d+/10000, step \d+/\d+ \| val acc [\d.]+ \(best [\d.]+ at "
                    r"epoch \d+\), balanced [\d.]+ \| at init [\d.]+ \| chance: .* \| \d+ samples/s \| "
                    r"ETA [\d.]+ (s|min|h) \| ", panel.status_text), panel.status_text

    out = io.StringIO()  # a terminal following the same run keeps working meanwhile
    seqrep.show_latest_epoch(run_dir, follow=True, interval=0.02, out=out, max_updates=2)
    assert out.getvalue().count("epoch ") >= 2

    panel.stop.click()
    assert panel.wait(TIMEOUT)
    records = read_log(run_dir)
    stopped = [r for r in records if r.get("event") == "stopped"]
    assert stopped and stopped[-1]["reason"] == "stop requested"
    assert seqrep.load_model(run_dir) is not None and (run_dir / CHECKPOINT_NAME).exists()
    epochs = _epochs(run_dir)
    assert 2 <= len(epochs) < 10_000
    assert panel.runs[0].state == "stopped"
    assert panel.status_text.startswith("stopped #1 at epoch") and str(run_dir) in panel.status_text
    assert "stop requested" in panel.status_text and "val acc" in panel.status_text
    assert not panel.train_button.disabled and panel.stop.disabled
    assert bytes(panel.figure.value).startswith(PNG)
    assert "stopped" in panel.table.value and run_dir.name in panel.table.value


def test_panel_leads_with_the_final_accuracy_the_best_beside_it_and_chance(panel, data):
    """Issue 20.1: a one-epoch spike led the status line, the title and the table."""
    panel.controls["epochs"].value = "4"
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    run_dir = panel.runs[0].run_dir
    scores = [r["val_accuracy"] for r in _epochs(run_dir)]
    final, best, best_epoch = scores[-1], max(scores), scores.index(max(scores)) + 1
    balanced = _epochs(run_dir)[-1]["val_balanced_accuracy"]
    counts = __import__("numpy").bincount(data[1].y)
    majority, k = counts.max() / counts.sum(), int((counts > 0).sum())
    init = _start_event(run_dir)["init_eval"]["val_accuracy"]
    said = (f"val acc {final:.3f} (best {best:.3f} at epoch {best_epoch}), balanced {balanced:.3f} | "
            f"at init {init:.3f} | chance: acc {majority:.3f} (majority class), balanced {1 / k:.3f} (1/{k} classes)")
    assert panel.status_text.startswith("finished #1: epoch 4/4 in ") and said in panel.status_text
    header, rows = _table(panel)
    assert rows[0][header.index("val acc (final)")] == f"{final:.3f}"
    assert rows[0][header.index("best val acc (epoch)")] == f"{best:.3f} ({best_epoch})"
    assert rows[0][header.index("chance acc / bal")] == f"{majority:.3f} / {1 / k:.3f}"
    assert header.index("val acc (final)") < header.index("best val acc (epoch)")
    assert f"val acc {final:.3f} (best {best:.3f}) | at init {init:.3f} | chance {majority:.3f}" in panel.live.title
    chance_lines = [line.get_label() for line in panel.live._figure.axes["accuracy"].get_lines()
                    if line.get_label().startswith("chance")]
    assert chance_lines == [f"chance (majority class): {majority:.3f}", f"chance, balanced (1/{k}): {1 / k:.3f}"]


def test_panel_run_best_and_final_when_they_differ():
    run = live.PanelRun(1, Path("r"), TINY, "GunPoint", {"accuracy": 0.507, "balanced_accuracy": 0.5}, epochs=2)
    run.record({"epoch": 0, "val_accuracy": 0.753, "val_balanced_accuracy": 0.75})
    run.record({"epoch": 1, "val_accuracy": 0.493, "val_balanced_accuracy": 0.5})
    assert run.accuracy() == ("val acc 0.493 (best 0.753 at epoch 1), balanced 0.500 | chance: acc 0.507 "
                              "(majority class), balanced 0.500 (1/2 classes)")


@pytest.mark.parametrize(("control", "typed", "message"), [
    ("seed", "-5", "seed '-5' is out of range; write a whole number from 0 to 2147483647."),
    ("batch_size", "0", "batch size '0' is out of range; write a whole number >= 1."),
    ("batch_size", "2.5", "batch size '2.5' is not a whole number"),
    ("batch_size", "1e3", "batch size 1000 is larger than the training set of tiny"),  # 1e3 is 1000, not 13
    ("epochs", "-3", "epochs '-3' is out of range; write a whole number from 1 to 100000, or 'auto'."),
    ("epochs", "", "epochs is empty; write a whole number from 1 to 100000, or 'auto'."),
    ("width", "2", "model width '2' is out of range; write a whole number >= 4."),
    ("width", "abc", "model width 'abc' is not a number"),
    ("kernel_sizes", "3, 5, 7, 9, 11", "width 8 does not divide over 6 branches (5 kernel sizes + max-pool); use 6 or 12"),
])
def test_panel_refuses_input_it_would_not_run_as_shown(panel, control, typed, message):
    """Issue 20.2: out-of-range numbers were clamped, '1e3' became 13, blank epochs became 0."""
    panel.controls[control].value = typed
    panel.train_button.click()
    assert "cannot start: " in panel.status_text and message in panel.status_text, panel.status_text
    assert "seqrep-notice-error" in panel.status.value
    assert panel.runs == [] and not panel.running
    assert panel.controls[control].value == typed  # left as typed, for the user to correct


@pytest.mark.parametrize(("control", "typed", "shown", "field"), [
    ("batch_size", "1e1", "10", ("batch_size", 10)),
    ("seed", " 7 ", "7", ("seed", 7)),
    ("epochs", "0", "auto", None),  # 0 is TrainConfig's automatic: said as such
])
def test_panel_rewrites_what_it_accepts_as_it_will_run(panel, control, typed, shown, field):
    panel.controls[control].value = typed
    if control != "epochs":
        panel.controls["epochs"].value = "1"
    panel.train_button.click()
    assert panel.controls[control].value == shown and panel.running, panel.status_text
    run_dir = panel.runs[0].run_dir
    _until(lambda: len(_epochs(run_dir)) >= 1, "an epoch in the run log")
    panel.stop.click()
    assert panel.wait(TIMEOUT) and panel.runs[0].state in ("finished", "stopped"), panel.status_text
    logged = _start_event(run_dir)["config"]
    if field:
        assert logged[field[0]] == field[1]
    else:  # automatic epochs: the log has the number planned, the table says it was automatic
        assert panel.runs[0].config.epochs == 0 and logged["epochs"] == panel.runs[0].epochs > 1
        header, rows = _table(panel)
        assert f"/{logged['epochs']} (auto)" in rows[0][header.index("epochs done")]


def test_panel_shows_and_logs_the_width_that_trains(panel):
    """Issue 20.2: width 7 with automatic kernel sizes trained 8 wide; the table and log said 7."""
    c = panel.controls
    c["width"].value, c["kernel_sizes"].value, c["epochs"].value = "7", "auto", "1"
    panel.train_button.click()
    assert c["width"].value == "8"
    assert re.search(r"model width 7 -> 8: the automatic kernel sizes \([\d, ]+\) and max-pool make 4 "
                     r"branches", panel.status_text), panel.status_text
    assert "seqrep-notice-info" in panel.status.value
    assert panel.wait(TIMEOUT)
    start = _start_event(panel.runs[0].run_dir)
    assert start["config"]["model"]["width"] == start["model_spec"]["width"] == 8
    assert panel.runs[0].config.model.width == 8 and "model width 7 -> 8" in panel.status_text


def test_panel_locks_its_controls_while_a_run_trains(panel):
    """Issue 20.3: controls changed mid-run were ignored without a word."""
    panel.controls["epochs"].value = "10000"
    panel.train_button.click()
    assert all(control.disabled for control in panel.controls.values()), "a control is editable mid-run"
    assert panel.train_button.disabled and not panel.stop.disabled
    panel.stop.click()
    assert panel.wait(TIMEOUT)
    assert not any(control.disabled for control in panel.controls.values())
    assert panel.config() == panel.runs[0].config  # the controls describe the run on screen


def test_panel_runs_table_and_overlay_list_tell_runs_apart(panel):
    """Issue 20.4: two columns headed 'epochs'; a 4-row list whose entries were cut off and
    looked alike; legends named runs by their directories."""
    for lr, epochs in (("0.003", "2"), ("0.01", "2"), ("0.01", "2"), ("0.01", "1")):
        panel.controls["epochs"].value, panel.controls["lr"].value = epochs, lr
        panel.train_button.click()
        assert panel.wait(TIMEOUT)
    header, rows = _table(panel)
    assert len(header) == len(set(header)) and [h for h in header if "epochs" in h] == ["epochs (setting)", "epochs done"]
    assert [row[header.index("epochs done")] for row in rows] == ["2/2", "2/2", "2/2", "1/1"]
    options = [label for label, _ in panel.selection.options]
    assert len(set(options)) == 4 and [o.split()[0] for o in options] == ["#1", "#2", "#3", "#4"]
    assert options[0] == f"#1  epochs=2, lr=0.003  (finished, val acc {panel.runs[0].final['val_accuracy']:.3f})"
    assert panel.selection.rows >= 4 and panel.selection.layout.width == "100%"
    assert panel.selection.value == (0, 1, 2, 3)
    panel.overlay_button.click()
    assert bytes(panel.overlay_figure.value).startswith(PNG)
    assert panel.overlay_labels == ["#1 epochs=2, lr=0.003", "#2 epochs=2, lr=0.01", "#3 epochs=2, lr=0.01",
                                    "#4 epochs=1, lr=0.01"]
    assert re.fullmatch(r"4 runs as of \d\d:\d\d:\d\d", panel.overlay_title)


def test_panel_overlay_of_a_running_run_is_redrawn_as_it_trains(panel):
    """Issue 20.5: an overlay of a running run was a still snapshot that never refreshed."""
    panel.overlay_interval = 0
    panel.controls["epochs"].value = "10000"
    panel.train_button.click()
    run_dir = panel.runs[0].run_dir
    _until(lambda: len(_epochs(run_dir)) >= 1, "an epoch in the run log")
    panel.overlay_button.click()
    assert "#1 still training (redrawn as it trains)" in panel.overlay_title
    first = bytes(panel.overlay_figure.value)
    _until(lambda: bytes(panel.overlay_figure.value) != first, "the overlay redrawn by the next epoch")
    panel.stop.click()
    assert panel.wait(TIMEOUT)
    assert "still training" not in panel.overlay_title  # redrawn once more when the run ended


def test_panel_before_any_run_shows_no_empty_images(panel):
    """Issue 20.6: two broken-image icons where the figures go."""
    assert panel.figure.layout.display == panel.overlay_figure.layout.display == "none"
    panel.controls["epochs"].value = "1"
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    assert panel.figure.layout.display is None and panel.overlay_figure.layout.display == "none"
    panel.overlay_button.click()
    assert panel.overlay_figure.layout.display is None


def test_live_figure_legends_cover_no_curve_and_equal_lines_stay_visible(data, tmp_path):
    """Issue 20.6: legends over the loss and accuracy curves; validation accuracy hiding
    balanced accuracy when they are equal."""
    plot = live.LivePlot(to="file")
    _fit(data, tmp_path, TINY.replace(epochs=2), [plot])
    figure = plot._figure
    figure.fig.canvas.draw()
    for name in ("loss", "accuracy", "grad"):
        ax = figure.axes[name]
        assert ax.get_legend().get_window_extent().y0 >= ax.get_window_extent().y1 - 1, name
    plain, balanced = figure.lines["val_accuracy"], figure.lines["val_balanced_accuracy"]
    assert (plain.get_marker(), plain.get_linestyle()) != (balanced.get_marker(), balanced.get_linestyle())
    assert balanced.get_zorder() > plain.get_zorder()


def test_panel_double_click_on_start_starts_one_run_quietly(panel, monkeypatch):
    """Issue 20.6: the second click of a double-click showed a red 'still training'."""
    panel.controls["epochs"].value = "10000"
    panel.train_button.click()
    panel.train_button.click()
    assert len(panel.runs) == 1 and panel.running
    assert "still training" not in panel.status_text and "seqrep-notice" not in panel.status.value
    monkeypatch.setattr(live.panel, "DOUBLE_CLICK", 0.0)  # a click long after: answered, not alarmed
    panel.train_button.click()
    assert len(panel.runs) == 1 and "run #1 is still training" in panel.status_text
    assert "seqrep-notice-info" in panel.status.value and "seqrep-notice-error" not in panel.status.value


@pytest.mark.parametrize(("control", "value", "message"), [
    ("batch_size", "1000", "batch size 1000 is larger than the training set of tiny ({n} samples)"),
    ("kernel_sizes", "3, 5, 99", "longer than the series (40 steps)"),
    ("kernel_sizes", "3, five", "kernel sizes '3, five' are not whole numbers"),
])
def test_panel_reports_invalid_input_in_the_status_line(panel, data, control, value, message):
    panel.controls[control].value = value
    panel.train_button.click()
    assert message.format(n=len(data[0])) in panel.status_text and "cannot start" in panel.status_text
    assert not panel.running and panel.runs == [] and not panel.train_button.disabled


def test_panel_reports_a_remedy_that_is_not_available(panel, monkeypatch):
    def unavailable(config, y, n_classes):
        raise seqrep.SeqrepError(f"loss={config.loss!r}: not available yet.")

    import seqrep.train

    monkeypatch.setattr(seqrep.train, "make_loss", unavailable)  # the check fit and the panel share
    panel.controls["remedy"].value = "focal loss"
    panel.train_button.click()
    assert "cannot start: loss='focal': not available yet." in panel.status_text
    assert panel.runs == []


def test_panel_reports_a_failed_run_instead_of_raising(panel, monkeypatch):
    def failing_fit(*args, **kwargs):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(live.panel, "fit", failing_fit)
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    assert "training failed: RuntimeError: planted failure" in panel.status_text
    assert panel.runs[0].state == "failed" and isinstance(panel.error, RuntimeError)
    assert not panel.train_button.disabled and panel.stop.disabled
    assert not any(control.disabled for control in panel.controls.values())


def test_panel_display_data_carries_a_static_fallback(panel):
    """Issue 18: viewers without widget JavaScript show the last frame and the status line."""
    bundle = panel._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.jupyter.widget-view+json", "text/plain", "text/html"}  # no frame yet
    assert bundle["text/plain"] == "seqrep panel: ready: set the controls and press Train"
    panel.controls["epochs"].value = "1"
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    bundle = panel._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]) == bytes(panel.figure.value) == panel.live.png
    updates = []
    panel._handles = [FakeHandle(updates)]  # as if shown in a notebook
    assert panel.wait() and updates == [("update", bundle)]  # wait() brings the displayed fallback up to date
    assert bundle["text/plain"].startswith("seqrep panel: finished #1: epoch 1/1") and "\n" not in bundle["text/plain"]
    descriptions = {b.description for b in (panel.train_button, panel.stop)}
    assert descriptions == {"Train", "Stop"} and panel.controls["epochs"].description == "epochs"


@pytest.mark.slow
def test_liveplot_leaves_one_output_with_the_final_frame_in_an_executed_notebook(tmp_path):
    """The real display machinery: a kernel executes a cell that trains 8 epochs with a frame
    after every one; the cell keeps exactly one output, the final frame."""
    import nbclient
    import nbformat

    code = f"""
import seqrep
ds = seqrep.make_sequences(n_classes=4, n_samples=48, length=40, motif_widths=(5, 9), seed=1)
train, val = ds.split(0.25, seed=0)
config = seqrep.TrainConfig.from_json({TINY.replace(epochs=8).to_json()!r})
model = seqrep.build_model(config, train)
live = seqrep.LivePlot(min_interval=0, draw_share=1.0)
seqrep.fit(model, train, val, config, {str(tmp_path / "run")!r}, [live], progress=False, verbose=False)
assert live.redraws >= 10 and live.path is None, (live.redraws, live.path)
with open({str(tmp_path / "final.png")!r}, "wb") as f:
    f.write(live.png)
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    final = (tmp_path / "final.png").read_bytes()
    assert base64.b64decode(outputs[0].data["image/png"]) == final
    assert not (tmp_path / "run" / live.LIVE_PNG).exists()  # drawn into the notebook instead


# ---------------------------------------------------------------------- issue 28: the truth of a run


def test_liveplot_starts_the_validation_curves_at_the_init(data, tmp_path):
    """Issue 28: no point before the first step; the init's own accuracy was logged but not shown."""
    plot = live.LivePlot(to="file", min_interval=0)
    result = _fit(data, tmp_path, TINY.replace(epochs=2), [plot])
    init = _start_event(result.run_dir)["init_eval"]
    xs, ys = plot._figure.lines["val_accuracy"].get_data()
    assert xs[0] == 0 and ys[0] == init["val_accuracy"] and len(xs) == 3
    assert plot._figure.lines["train_accuracy"].get_xdata()[0] == 1  # training has no "before"
    assert f"at init {init['val_accuracy']:.3f}" in plot.title
    assert plot._figure.axes["accuracy"].get_xlim()[0] < 0  # the point at 0 is not cut in half


def test_panel_broken_under_the_default_init_says_the_representation_gets_no_gradient(data, tmp_path):
    """Issue 28: with init "data" broken and fixed scored alike and nothing said why."""
    panel = seqrep.Panel(TrainConfig(epochs=2, batch_size=8), datasets={"tiny": data}, root=tmp_path,
                         min_interval=0.05)
    texts = {}
    for extraction in ("broken", "fixed"):
        panel.controls["extraction"].value = extraction
        panel.train_button.click()
        assert panel.wait(TIMEOUT) and panel.runs[-1].state == "finished", panel.status_text
        texts[extraction] = panel.status_text
    broken, fixed = panel.runs
    assert broken.config.model.init == fixed.config.model.init == "data"
    assert "no gradient reaches: representation (in every epoch so far): it does not learn" in texts["broken"]
    assert "[stale_parameter] " in texts["broken"]
    assert "no gradient reaches" not in texts["fixed"]
    # Both start from the same fitted init; the status line says so beside the final accuracy.
    assert broken.init_eval == fixed.init_eval
    assert f"at init {broken.init_eval['val_accuracy']:.3f}" in texts["broken"]
    # The rates the optimizer applies, per group, not the box's 1e-2 alone.
    assert all(f"{name} {rate:.1e}" in texts["fixed"] for name, rate in fixed.peak_lr.items())
    assert list(fixed.peak_lr) == ["kernels", "thresholds", "scorers"]  # the readout is solved, not stepped
    assert fixed.peak_lr["scorers"] == fixed.config.lr != fixed.peak_lr["kernels"]  # kernels: lr x their RMS
    header, rows = _table(panel)
    assert rows[0][header.index("found")].startswith("no gradient reaches: representation")
    assert rows[0][header.index("val acc at init")] == f"{broken.init_eval['val_accuracy']:.3f}"
    # width and kernel sizes did not shape these runs: no column, no label says they did
    assert "width" not in header and "width" not in panel.selection.options[0][0]


def test_panel_says_why_a_control_is_off(panel):
    panel.controls["init"].value = "data"
    assert panel.controls["width"].disabled and "MiniRocket" in panel.init_note.value
    assert panel.controls["width"].tooltip == live.panel.INIT_NOTES["data"]
    panel.controls["init"].value = "random"
    assert panel.init_note.value == "" and panel.controls["width"].tooltip == panel.controls["width"].placeholder


@pytest.mark.parametrize(("typed", "message"), [
    ("-0.01", "learning rate '-0.01' is out of range; write a number above 0 and at most 1"),
    ("5", "learning rate '5' is out of range"),
    ("0", "learning rate '0' is out of range"),
    ("fast", "learning rate 'fast' is not a number"),
    ("nan", "learning rate 'nan' is out of range"),
])
def test_panel_learning_rate_is_refused_never_clamped(panel, typed, message):
    """Issue 28: -0.01 and 1e-7 became 1e-5 and 5 became 1.0 without a word."""
    panel.controls["lr"].value = typed
    panel.train_button.click()
    assert f"cannot start: {message}" in panel.status_text and panel.runs == []
    assert panel.controls["lr"].value == typed


def test_panel_learning_rate_runs_as_typed(panel):
    panel.controls["lr"].value = "1e-7"
    assert panel.config().lr == 1e-7  # not raised to a slider's minimum


def test_panel_refuses_epochs_beyond_any_useful_run(panel):
    panel.controls["epochs"].value = "1e9"
    panel.train_button.click()
    assert "epochs '1e9' is out of range; write a whole number from 1 to 100000, or 'auto'" in panel.status_text
    assert panel.runs == []


def test_panel_warns_of_a_long_run_with_its_eta(panel, monkeypatch):
    monkeypatch.setattr(live.panel, "LONG_RUN", 0.0)  # any run is "long": the warning's words
    panel.controls["epochs"].value = "10000"
    panel.train_button.click()
    _until(lambda: "take" in panel.status_text, "the long-run warning")
    assert re.search(r"the 10,000 epochs of run #1 take [\d.,]+ (s|min|h|days) more; OneCycle's warm-up "
                     r"alone lasts [\d.,]+ (s|min|h|days)\. Stop ends it", panel.status_text), panel.status_text
    assert "seqrep-notice-warning" in panel.status.value


@pytest.mark.parametrize(("seconds", "said"), [(12.4, "12 s"), (150, "2.5 min"), (3 * 3600, "3.0 h"),
                                               (3 * 86400, "3 days"), (35080794.1 * 60, "66.7 years")])
def test_one_duration_format(seconds, said):
    assert live.figure.duration(seconds) == said


def test_panel_partial_epoch_is_no_epoch_done():
    """Issue 28: '1/20' for 14 of 25 steps, and 'best' taken from that partial epoch."""
    run = live.PanelRun(1, Path("r"), TINY, "tiny", epochs=20, steps_per_epoch=25)
    run.record({"epoch": 0, "val_accuracy": 0.5})
    run.record({"epoch": 1, "val_accuracy": 0.9, "partial": True, "steps": 14})
    assert run.progress() == "1/20 + 14/25 steps" and run.done() == 1
    assert run.best_val_accuracy == 0.5 and run.best_epoch == 0
    assert run.accuracy().startswith("val acc 0.900 (after 14 steps of epoch 2) (best 0.500 at epoch 1)")


def test_panel_stopped_mid_epoch_says_where_and_one_duration(panel, monkeypatch):
    class StopMidEpoch(seqrep.Callback):  # what a Stop click three steps into epoch 2 does
        def after_step(self, state):
            if state.epoch == 1 and state.step == 2:
                state.request_stop("stop requested")

    real_fit = live.panel.fit
    monkeypatch.setattr(live.panel, "fit", lambda *args, callbacks=(), **kwargs: real_fit(
        *args, callbacks=[*callbacks, StopMidEpoch()], **kwargs))
    panel.controls["epochs"].value = "10000"
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    run = panel.runs[0]
    last = _epochs(run.run_dir)[-1]
    assert last["epoch"] == 1 and last["partial"] and last["steps"] == 3, last
    assert panel.status_text.startswith("stopped #1 at epoch 2/10000, step 3/5 (1 epoch done)"), panel.status_text
    assert run.progress() == "1/10000 + 3/5 steps" and run.best_epoch == 0
    # one duration: the status line and the live figure's title count from fit's start
    status = float(re.search(r"in (\d+) s \|", panel.status_text)[1])
    title = float(re.search(r"\| (\d+) s \|", panel.live.title)[1])
    assert abs(status - title) <= 1, (panel.status_text, panel.live.title)


def test_a_new_panel_stops_the_run_an_older_one_trains(panel, data, tmp_path):
    """Issue 28: re-running the panel's cell left its run training with no Stop button."""
    panel.controls["epochs"].value = "10000"
    panel.train_button.click()
    run = panel.runs[0]
    _until(lambda: len(_epochs(run.run_dir)) >= 1, "an epoch in the run log")
    again = seqrep.Panel(TINY, datasets={"tiny": data}, root=tmp_path / "again")
    assert not panel.running and run.state == "stopped"
    assert "a new panel replaced the one training run #1: that run stopped at " in again.status_text
    assert str(run.run_dir) in again.status_text and "seqrep-notice-warning" in again.status.value
    assert seqrep.Panel(TINY, datasets={"tiny": data}, root=tmp_path / "idle").status_text.startswith("ready")


def test_overlay_selects_the_latest_runs_and_labels_what_differs_among_them(panel, data, tmp_path):
    """Issue 28: every Train re-selected all runs; legends listed settings that differ across
    all runs so far; 14 runs made a 2510 px strip."""
    import shutil

    from PIL import Image

    logged = _fit(data, tmp_path / "logged", TINY.replace(epochs=2)).run_dir
    for number in range(1, 15):  # 14 runs: lr differs in all, width only between #1 and the rest
        run_dir = tmp_path / f"run{number}"
        shutil.copytree(logged, run_dir)
        config = TINY.replace(lr=number / 1000, model={"width": 12 if number == 1 else 8})
        panel.runs.append(live.PanelRun(number, run_dir, config, "tiny", state="finished"))
        panel._refresh_runs(new=number - 1)
    assert panel.selection.value == tuple(range(8, 14))  # the latest six
    panel.overlay_button.click()
    assert panel.overlay_labels == [f"#{n} lr={n / 1000:g}" for n in range(9, 15)]  # width is the same among them
    width, height = Image.open(io.BytesIO(bytes(panel.overlay_figure.value))).size
    assert width <= 1200 and height <= 500, (width, height)
    panel.selection.value = (0, 13)  # the user's choice is kept
    panel.overlay_button.click()
    assert panel.overlay_labels == ["#1 width=12, lr=0.001", "#14 width=8, lr=0.014"]


def test_panel_static_snapshot_holds_status_frame_and_table(panel):
    panel.controls["epochs"].value = "1"
    panel.train_button.click()
    assert panel.wait(TIMEOUT)
    snapshot = panel._repr_mimebundle_()["text/html"]
    assert panel.status.value in snapshot and panel.table.value in snapshot
    assert "data:image/png;base64," + panel._repr_mimebundle_()["image/png"] in snapshot
    assert "no kernel is behind it" in snapshot
