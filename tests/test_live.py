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
TINY = TrainConfig(model=ModelSpec(width=8, kernel_sizes=(3, 5, 7), blocks=1, bottleneck=4), epochs=3, batch_size=8)
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

    def update(self, obj):
        self.log.append(("update", obj))


def test_liveplot_keeps_one_display_output_however_many_redraws(data, tmp_path, monkeypatch):
    import IPython.display

    calls = []

    def fake_display(obj, display_id=False):
        calls.append(("display", obj))
        assert display_id is True, "a live figure needs a display handle to update in place"
        return FakeHandle(calls)

    monkeypatch.setattr(IPython.display, "display", fake_display)
    plot = seqrep.LivePlot(to="display", min_interval=0, budget=1.0)  # a frame every epoch at least
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


def test_cli_train_live_writes_the_png(tmp_path, capsys):
    from seqrep.cli import main

    run_dir = tmp_path / "run"
    code = main(["train", "--classes", "4", "--samples", "48", "--epochs", "1", "--width", "9",
                 "--kernel-sizes", "3,5", "--blocks", "1", "--run-dir", str(run_dir), "--live"])
    assert code == 0, capsys.readouterr().err
    assert (run_dir / live.LIVE_PNG).read_bytes().startswith(PNG)


@pytest.mark.parametrize(("min_interval", "budget", "at_least", "at_most"), [
    (1e9, 1.0, 1, 1),  # throttled by time: only the final frame
    (0.0, 0.0, 5, 5),  # no time for step frames: the first (exempt), one per epoch, the final
    (0.0, 1.0, 1 + 3 + 1, 3 * 5 + 3 + 1),  # all the time allowed: every epoch, maybe every step
])
def test_redraws_are_throttled(data, tmp_path, min_interval, budget, at_least, at_most):
    plot = live.LivePlot(to="file", min_interval=min_interval, budget=budget)
    _fit(data, tmp_path, TINY.replace(epochs=3), [plot])  # 3 epochs x 5 steps
    assert at_least <= plot.redraws <= at_most


def test_broken_run_says_no_gradient_reaches_the_representation(data, tmp_path):
    plot = live.LivePlot(to="file")
    _fit(data, tmp_path, TINY.replace(model={"extraction": "broken"}, check_gradients=False), [plot])
    assert plot._figure.no_grad.get_text() == "no gradient reaches: representation"


def test_blitted_frames_equal_a_full_redraw(data, tmp_path):
    from PIL import Image

    plot = live.LivePlot(to="file", min_interval=0, budget=1.0)
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
    assert seqrep.run_labels(runs) == ["lr=0.003", "lr=0.01"]
    broken = _fit(data, tmp_path / "broken", TINY.replace(epochs=1, model={"extraction": "broken"}, check_gradients=False))
    assert seqrep.run_labels([broken, runs[1]]) == ["extraction=broken", "extraction=fixed"]
    same = _fit(data, tmp_path / "same", TINY.replace(epochs=1, lr=0.01))
    assert seqrep.run_labels([runs[1], same]) == ["0.01", "same"]  # identical configs: directory names

    fig = seqrep.overlay([r.run_dir for r in runs], title="lr=0.01 learns faster")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    assert legend == ["lr=0.003", "lr=0.01"]


# ---------------------------------------------------------------------- the panel


@pytest.fixture
def panel(data, tmp_path):
    panel = seqrep.Panel(TINY, datasets={"tiny": data}, root=tmp_path / "runs", min_interval=0.05)
    yield panel
    panel.stop.click()  # whatever a test left running
    assert panel.wait(TIMEOUT), "the training thread did not end"


def test_panel_config_follows_the_widgets(panel):
    c = panel.controls
    c["lr"].value, c["batch_size"].value, c["epochs"].value = 0.003, 4, 7
    c["kernel_sizes"].value, c["attention"].value, c["dropout"].value = "3, 5", False, 0.2
    c["remedy"].value, c["extraction"].value, c["seed"].value = "focal loss", "broken", 3
    c["width"].value = 9  # 3 branches with two kernel sizes
    assert panel.config() == TINY.replace(
        lr=0.003, batch_size=4, epochs=7, loss="focal", check_gradients=False, seed=3,
        model={"kernel_sizes": (3, 5), "attention": False, "dropout": 0.2, "extraction": "broken", "width": 9})
    c["kernel_sizes"].value, c["remedy"].value = "auto", "none"
    assert panel.config().model.kernel_sizes == () and panel.config().loss == "cross_entropy"


def test_panel_start_train_stop_keeps_log_checkpoint_and_status(panel):
    panel.controls["epochs"].value = 10_000  # would run for hours: only Stop ends it
    panel.start.click()
    assert panel.running and len(panel.runs) == 1
    run_dir = panel.runs[0].run_dir
    _until(lambda: len(_epochs(run_dir)) >= 2, "two epochs in the run log")
    assert re.match(r"training: epoch \d+/10000, step \d+/\d+ \| best val acc [\d.]+ \| "
                    r"\d+ samples/s \| ETA [\d.]+ (s|min) \| ", panel.status_text), panel.status_text

    panel.start.click()  # a second Start while training is refused
    assert len(panel.runs) == 1 and panel.running
    assert "still training" in panel.status_text and "press Stop first" in panel.status_text

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
    assert "stopped at epoch" in panel.status_text and str(run_dir) in panel.status_text
    assert "stop requested" in panel.status_text and "best val acc" in panel.status_text
    assert not panel.start.disabled and panel.stop.disabled
    assert bytes(panel.figure.value).startswith(PNG)
    assert "stopped" in panel.table.value and run_dir.name in panel.table.value


def test_panel_runs_can_be_overlaid(panel):
    for lr in (0.003, 0.01):
        panel.controls["epochs"].value, panel.controls["lr"].value = 2, lr
        panel.start.click()
        assert panel.wait(TIMEOUT)
    assert [r.state for r in panel.runs] == ["finished", "finished"]
    assert "finished epoch 2/2" in panel.status_text
    assert "<th style='border:1px solid #ccc;padding:2px 6px'>lr</th>" in panel.table.value
    assert panel.selection.value == (0, 1)
    panel.overlay_button.click()
    assert bytes(panel.overlay_figure.value).startswith(PNG)


@pytest.mark.parametrize(("control", "value", "message"), [
    ("batch_size", 1000, "batch size 1000 is larger than the training set of tiny ({n} samples)"),
    ("kernel_sizes", "3, 5, 99", "longer than the series (40 steps)"),
    ("kernel_sizes", "3, five", "kernel sizes '3, five' are not whole numbers"),
])
def test_panel_reports_invalid_input_in_the_status_line(panel, data, control, value, message):
    panel.controls[control].value = value
    panel.start.click()
    assert message.format(n=len(data[0])) in panel.status_text and "cannot start" in panel.status_text
    assert not panel.running and panel.runs == [] and not panel.start.disabled


def test_panel_reports_a_remedy_that_is_not_available(panel, monkeypatch):
    def unavailable(config, y, n_classes):
        raise seqrep.SeqrepError(f"loss={config.loss!r}: not available yet.")

    import seqrep.train

    monkeypatch.setattr(seqrep.train, "make_loss", unavailable)  # the check fit and the panel share
    panel.controls["remedy"].value = "focal loss"
    panel.start.click()
    assert "cannot start: loss='focal': not available yet." in panel.status_text
    assert panel.runs == []


def test_panel_reports_a_failed_run_instead_of_raising(panel, monkeypatch):
    def failing_fit(*args, **kwargs):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(live.panel, "fit", failing_fit)
    panel.start.click()
    assert panel.wait(TIMEOUT)
    assert "training failed: RuntimeError: planted failure" in panel.status_text
    assert panel.runs[0].state == "failed" and isinstance(panel.error, RuntimeError)
    assert not panel.start.disabled and panel.stop.disabled


def test_panel_shows_as_a_widget(panel):
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    descriptions = {b.description for b in (panel.start, panel.stop)}
    assert descriptions == {"Start", "Stop"} and panel.controls["epochs"].description == "epochs"


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
live = seqrep.LivePlot(min_interval=0, budget=1.0)
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
