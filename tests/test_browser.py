"""The notebooks in a real browser: JupyterLab driven by headless Chromium through playwright.

The server serves quick copies of the notebooks (parameters cell edited to `quick = True`) from
a temporary folder, so the repository's notebooks stay untouched and their runs/ folders land
in the temporary folder. JupyterLab runs from this venv with temporary user-settings,
workspaces, config and runtime folders: nothing is written into the venv or the home folder.
Screenshots go to test-artifacts/browser/ (git-ignored), one at each step and one at the end
of every test, whether it passed or not.

The tests skip only when Chromium is missing (`apt-get install chromium chromium-driver`;
.ci/run installs it). playwright drives the system Chromium: never `playwright install`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
NOTEBOOKS = ("01_broken_no_grad_extraction", "03_gradient_checks", "05_live_training")
# User settings for the test server: no news or update toast over the page, and every cell
# attached to the DOM (the default windowing leaves cells out of view unrendered or detached,
# which would hide their outputs from the checks).
SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}
# Epochs set in the panel for the run that Stop ends. An epoch of the synthetic scenario's quick
# model takes about 0.1 s (20 epochs finished in 2 s, before the test reached Stop, on 2026-12-03),
# so the run is made far longer than the test can take to get there: Stop always lands mid-run.
PANEL_EPOCHS = 2000
# Generous bounds for a loaded 2-core machine; a working run needs a fraction of each.
SERVER_TIMEOUT = 120  # s: the server answers
KERNEL_TIMEOUT = 180  # s: page loaded and kernel idle
RUN_TIMEOUT = 300  # s: Run All done
TRAIN_TIMEOUT = 120  # s: panel frames and Stop


# --------------------------------------------------------------------------------------------
# The JupyterLab server
# --------------------------------------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the folder it serves: the quick copies
    log: Path

    def api(self, method: str, path: str):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page_url(self, notebook: str) -> str:
        # ?reset: an old workspace would reopen tabs; the token logs the page in.
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def delete_kernels(self) -> None:
        """Shut down every session and kernel through the REST API."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quick_copy(name: str, folder: Path) -> None:
    """The notebook with `quick = True` in its parameters cell, written into `folder`."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    params = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    assert params is not None, f"{name}.ipynb has no cell tagged 'parameters'"
    params.source, found = re.subn(r"^quick = False\b", "quick = True", params.source, flags=re.M)
    assert found == 1, f"{name}.ipynb: expected one `quick = False` line in the parameters cell"
    nbformat.write(nb, folder / f"{name}.ipynb")


def _write_settings(folder: Path) -> None:
    for plugin, values in SETTINGS.items():
        package, _, name = plugin.partition(":")
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (the server shuts its kernels down); SIGKILL to its process group (its own
    session) if it has not exited 30 s later."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium chromium-driver")
    return CHROMIUM


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("jupyterlab")
    served = work / "notebooks"
    served.mkdir()
    for name in NOTEBOOKS:
        _quick_copy(name, served)
    _write_settings(work / "user-settings")
    port, token = _free_port(), secrets.token_hex(24)
    lab = Lab(f"http://127.0.0.1:{port}", token, served, work / "server.log")
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
        f"--LabApp.user_settings_dir={work / 'user-settings'}",
        f"--LabApp.workspaces_dir={work / 'workspaces'}",
    ]
    # A user's own Jupyter config (password, root folder, ...) must not change the test.
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(work / "config"),
           "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    with lab.log.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=served, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode} before answering; "
                            f"its log ({lab.log}):\n{lab.log_tail()}")
            try:
                lab.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {lab.url} within {SERVER_TIMEOUT} s; "
                                f"its log ({lab.log}):\n{lab.log_tail()}")
                time.sleep(0.2)  # polling a port that is not open yet: no event to wait on
        for plugin, values in SETTINGS.items():
            seen = lab.api("GET", f"/lab/api/settings/{plugin}")["settings"]
            assert seen == values, f"JupyterLab ignored the test's settings for {plugin}: {seen}"
        yield lab
    finally:
        try:
            if process.poll() is None:
                lab.delete_kernels()
        finally:
            _stop(process)


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(chromium) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]' (never `playwright install`; "
                    "the tests drive the system Chromium)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def _artifact(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png")


@pytest.fixture
def page(lab, browser, request) -> Iterator[Page]:
    """A fresh page; afterwards a screenshot of where it ended, the page closed unsaved, and
    every kernel shut down."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TRAIN_TIMEOUT * 1000)
    try:
        yield page
    finally:
        try:
            page.screenshot(path=_artifact(f"{request.node.name}-end"))
        finally:
            context.close()
            lab.delete_kernels()


# --------------------------------------------------------------------------------------------
# Driving JupyterLab
# --------------------------------------------------------------------------------------------

# JupyterLab shows a code cell's prompt as "[ ]:" before it runs, "[*]:" while queued or running
# and "[n]:" once done; after an error, Run All resets the cells it did not reach to "[ ]:".
PROMPTS = "[...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
RUN_ALL_STARTED = f"() => {PROMPTS}.some(p => p !== '[ ]:')"
RUN_ALL_DONE = f"() => {PROMPTS}.length > 0 && !{PROMPTS}.some(p => p.includes('*'))"
# An error output renders like stderr (data-mime-type application/vnd.jupyter.stderr, as do
# harmless warnings): it is told apart by its traceback, or IPython's "Cell In[n], line m"
# header for a SyntaxError, found in any output (a thread's exception lands in some cell too).
PROBLEMS = r"""() => {
  const problems = [];
  const traceback = /Traceback \(most recent call last\)|^\s*Cell In\[\d+\], line \d+/m;
  const skipped = [];
  document.querySelectorAll('.jp-Notebook .jp-Cell').forEach((cell, i) => {
    const prompt = cell.querySelector('.jp-CodeCell .jp-InputPrompt');
    const source = cell.querySelector('.jp-InputArea-editor')?.innerText.trim();
    if (prompt && source && !/^\[\d+\]:$/.test(prompt.textContent.trim())) skipped.push(i + 1);
    for (const output of cell.querySelectorAll('.jp-OutputArea-output')) {
      if (traceback.test(output.innerText)) problems.push(`cell ${i + 1}: ${output.innerText.slice(0, 2000)}`);
    }
  });
  if (skipped.length) problems.push(`cells not executed by Run All: ${skipped.join(', ')}`);
  return problems;
}"""


def _wait_idle(page: Page, timeout: float) -> None:
    # The status bar, not the toolbar indicator: the latter says idle before the kernel is ready.
    page.get_by_text("(ipykernel) | Idle").wait_for(timeout=timeout * 1000)


def open_and_run_all(page: Page, lab: Lab, name: str) -> None:
    """Open `name`.ipynb, wait for its kernel, Run All from the Run menu, wait until every cell
    ran or Run All stopped at an error, and the kernel is idle again."""
    page.goto(lab.page_url(f"{name}.ipynb"))
    _wait_idle(page, KERNEL_TIMEOUT)
    cells = len(nbformat.read(lab.root / f"{name}.ipynb", as_version=4).cells)
    shown = page.locator(".jp-Notebook .jp-Cell").count()
    assert shown == cells, f"{name}: {cells} cells in the notebook, {shown} in the page"
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_function(RUN_ALL_STARTED, timeout=KERNEL_TIMEOUT * 1000)
    page.wait_for_function(RUN_ALL_DONE, timeout=RUN_TIMEOUT * 1000)
    _wait_idle(page, KERNEL_TIMEOUT)


def assert_no_errors(page: Page, name: str) -> None:
    problems = page.evaluate(PROBLEMS)
    assert not problems, f"{name}: errors in the browser:\n" + "\n---\n".join(problems)


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["01_broken_no_grad_extraction", "03_gradient_checks"])
def test_notebook_runs_in_jupyterlab_without_errors(page, lab, name):
    open_and_run_all(page, lab, name)
    page.screenshot(path=_artifact(f"{name}-run-all"))
    assert_no_errors(page, name)
    images = page.locator(".jp-OutputArea-output img").count()
    assert images > 0, f"{name}: no figure rendered in the page after Run All"


FRAMES = """() => {
  const img = document.querySelector('img.seqrep-live-figure');
  const status = document.querySelector('.seqrep-status');
  window.seqrepFrames = [];  // [src, status text when it changed]
  new MutationObserver(() => window.seqrepFrames.push([img.src, status.innerText.trim()]))
    .observe(img, {attributes: true, attributeFilter: ['src']});
}"""


def _ended(page: Page, number: int) -> str:
    """Wait until the panel's run #number has ended; its status line."""
    page.wait_for_function(
        f"() => /^(stopped|finished|failed) #{number}\\b/.test("
        "document.querySelector('.seqrep-status').innerText.trim())",
        timeout=TRAIN_TIMEOUT * 1000,
    )
    return page.locator(".seqrep-status").inner_text()


def _type(page: Page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")  # the text box sends its value on Enter


def _button(page: Page, label: str):
    return page.locator(".widget-button", has_text=re.compile(rf"^\s*{label}\s*$"))


def _toggle(page: Page, label: str) -> None:
    page.locator(".widget-toggle-button", has_text=re.compile(rf"^\s*{label}\s*$")).click()


def test_live_training_panel_start_frames_stop(page, lab):
    from playwright.sync_api import expect

    name = "05_live_training"
    open_and_run_all(page, lab, name)
    assert_no_errors(page, name)
    status = page.locator(".seqrep-status")
    figure = page.locator("img.seqrep-live-figure")
    train, stop = _button(page, "Train"), _button(page, "Stop")
    assert status.count() == figure.count() == train.count() == stop.count() == 1, (
        "expected one panel (status line, live figure, Train, Stop) in the page, found "
        f"{status.count()}, {figure.count()}, {train.count()}, {stop.count()}")
    # The notebook presses Train itself once (a short broken run) and waits for it.
    assert status.inner_text().startswith("finished #1"), f"panel status after Run All: {status.inner_text()!r}"
    page.screenshot(path=_artifact(f"{name}-1-run-all"))

    # A broken run from the controls: the status line leads with the final validation
    # accuracy, the best beside it, the accuracy at init and the chance level (issues 20.1, 28).
    _toggle(page, "broken")
    _type(page, "epochs", "3")
    train.click()
    ended = _ended(page, 2)
    assert re.match(r"finished #2: epoch 3/3 in \d+ s \| val acc (\d\.\d{3}) \(best \d\.\d{3} at epoch \d\), "
                    r"balanced \d\.\d{3} \| at init \d\.\d{3} \| chance: acc \d\.\d{3} \(majority class\), "
                    r"balanced \d\.\d{3} \(1/\d+ classes\)", ended), f"status line of the broken run: {ended!r}"
    expect(page.locator(".seqrep-runs")).to_contain_text("broken", timeout=TRAIN_TIMEOUT * 1000)
    figure.scroll_into_view_if_needed()
    page.screenshot(path=_artifact(f"{name}-2-broken-run"))

    _toggle(page, "fixed")
    _type(page, "epochs", str(PANEL_EPOCHS))
    page.evaluate(FRAMES)  # records every frame the live figure shows from now on
    train.click()

    # Two new frames while the run trains: the figure is redrawn live, not only at the end.
    page.wait_for_function("() => window.seqrepFrames.length >= 2", timeout=TRAIN_TIMEOUT * 1000)
    training = status.inner_text()
    assert re.match(rf"training #3: epoch \d+/{PANEL_EPOCHS}\b", training), (
        f"expected run #3 to be training {PANEL_EPOCHS} epochs after two frames, status line: "
        f"{training!r}")
    seen = [text for _, text in page.evaluate("window.seqrepFrames")]
    assert all(re.match(r"(starting|training) #3:", text) for text in seen), (
        f"expected the frames to arrive while the run starts or trains; status at each: {seen}")
    # Locked while it trains (issue 20.3).
    expect(page.get_by_label("epochs", exact=True)).to_be_disabled()
    figure.scroll_into_view_if_needed()
    page.screenshot(path=_artifact(f"{name}-3-training"))

    stop.click()
    ended = _ended(page, 3)
    stopped = re.match(rf"stopped #3 at epoch (\d+)/{PANEL_EPOCHS}\b.*\(stop requested\)", ended)
    assert stopped, f"expected 'stopped #3 at epoch N/{PANEL_EPOCHS} ... (stop requested)', status line: {ended!r}"
    assert int(stopped[1]) < PANEL_EPOCHS, f"Stop did not end the run early: {ended!r}"
    # The buttons and the runs table follow the status line (the thread's last updates).
    expect(train).to_be_enabled(timeout=TRAIN_TIMEOUT * 1000)
    expect(stop).to_be_disabled(timeout=TRAIN_TIMEOUT * 1000)
    expect(page.locator(".seqrep-runs")).to_contain_text("stopped", timeout=TRAIN_TIMEOUT * 1000)
    assert figure.evaluate("img => img.naturalWidth") > 0, "the live figure does not render as an image"
    assert status.count() == 1, "the panel shows twice after its display was updated"
    figure.scroll_into_view_if_needed()
    page.screenshot(path=_artifact(f"{name}-4-stopped"))
    assert_no_errors(page, name)

    # Issue 28: under the default init ("data") broken and fixed score alike; the status line
    # must show the difference anyway: the broken representation gets no gradient.
    _toggle(page, "data")
    expect(page.get_by_label("model width", exact=True)).to_be_disabled()
    expect(page.locator(".seqrep-init-reason")).to_contain_text("MiniRocket")
    said, inits = {}, {}
    for number, extraction in ((4, "broken"), (5, "fixed")):
        _toggle(page, extraction)
        _type(page, "epochs", "3")
        train.click()
        said[extraction] = _ended(page, number)
        inits[extraction] = re.search(r"\| at init (\d\.\d{3}) \|", said[extraction])[1]
        status.scroll_into_view_if_needed()
        page.screenshot(path=_artifact(f"{name}-5-data-init-{extraction}"))
    finding = page.locator(".seqrep-finding", has_text="no gradient reaches")
    assert "no gradient reaches: representation" in said["broken"], said["broken"]
    assert "no gradient reaches" not in said["fixed"], said["fixed"]
    assert finding.count() == 0  # the fixed run's status shows no such line ...
    assert inits["broken"] == inits["fixed"], inits  # ... from the same start
    assert "learning rate applied (peak, per group): kernels" in said["fixed"]
    expect(page.locator(".seqrep-runs")).to_contain_text("no gradient reaches: representation")
    assert_no_errors(page, name)


def test_shared_ipynb_shows_the_static_panel_in_jupyterlab(page, lab, executed_05):
    """Issue 28: the executed 05_live_training.ipynb opened in JupyterLab showed its panel
    under 26 red "disconnected" icons (saved widgets that no kernel backs). Saved without
    widget state, it shows the panel's static snapshot: status line, last frame, runs table."""
    import shutil

    nb = nbformat.read(executed_05 / "05_live_training.ipynb", as_version=4)
    fallback = next(o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
                    if str(o.get("data", {}).get("text/plain", "")).startswith("seqrep panel: "))
    shutil.copy(executed_05 / "05_live_training.ipynb", lab.root / "shared_05.ipynb")
    page.goto(lab.page_url("shared_05.ipynb"))
    _wait_idle(page, KERNEL_TIMEOUT)
    snapshot = page.locator(".seqrep-snapshot")
    snapshot.wait_for(timeout=KERNEL_TIMEOUT * 1000)
    snapshot.scroll_into_view_if_needed()
    page.wait_for_timeout(2000)  # time for any widget view to be drawn (and flagged)
    page.screenshot(path=_artifact("05-shared-ipynb-in-jupyterlab"))
    shown = page.evaluate("""() => ({
        disconnected: document.querySelectorAll('.jupyter-widgets-disconnected').length,
        widgetErrors: [...document.querySelectorAll('.jp-OutputArea-output')]
            .filter(o => /Error displaying widget/.test(o.innerText)).length,
        frame: [...document.querySelectorAll('.seqrep-snapshot img')].map(i => i.naturalWidth),
    })""")
    assert shown == {"disconnected": 0, "widgetErrors": 0, "frame": [shown["frame"][0]]}, shown
    assert shown["frame"][0] > 0, "the panel's last frame does not render"
    text = snapshot.locator(".seqrep-status").inner_text().strip()
    assert "seqrep panel: " + text.replace("\n", " | ") == fallback
    assert "broken" in snapshot.locator(".seqrep-runs").inner_text()


# --------------------------------------------------------------------------------------------
# The shared HTML, offline
# --------------------------------------------------------------------------------------------


def _left_values(page_html: str) -> dict[str, str]:
    """The displayed panel's text boxes and toggles as the executed notebook left them, read
    from the widget state saved in the HTML page, under the model of its one widget output
    (the panel; the notebook's second, undisplayed panel has the same controls)."""
    def script(kind: str) -> dict:
        found = re.search(rf'<script type="application/vnd.jupyter.widget-{kind}\+json">(.*?)</script>',
                          page_html, re.S)
        return json.loads(found[1])

    state = script("state")["state"]
    values, todo = {}, [script("view")["model_id"]]
    while todo:
        model = state[todo.pop()]
        s = model["state"]
        todo.extend(child.removeprefix("IPY_MODEL_") for child in s.get("children", []))
        if model["model_name"] == "TextModel" and s.get("description") in ("epochs", "model width", "random seed"):
            values[s["description"]] = s["value"]
        if model["model_name"] == "ToggleButtonsModel" and s.get("description") in ("extraction", "init"):
            values[s["description"]] = s["_options_labels"][s["index"]]
    return values


def test_shared_html_renders_the_panel_offline(browser, executed_05):
    """Issue 18: executed/05_live_training.html opened from disk with every request that is
    not file:, data: or blob: blocked shows the panel: controls, status line, figure."""
    html = executed_05 / "05_live_training.html"
    nb = nbformat.read(executed_05 / "05_live_training.ipynb", as_version=4)
    fallback = next(o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
                    if str(o.get("data", {}).get("text/plain", "")).startswith("seqrep panel: "))
    context = browser.new_context(viewport={"width": 1300, "height": 1400})
    requests, refused = [], []

    def local_only(route):
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(html.as_uri())
        status = page.locator(".seqrep-status")
        status.wait_for(timeout=KERNEL_TIMEOUT * 1000)
        left = _left_values(html.read_text(encoding="utf-8"))
        assert left["extraction"] == "broken" and left["epochs"] == "2", left
        for label in ("epochs", "model width", "random seed"):
            assert page.get_by_label(label, exact=True).input_value() == left[label], label
        for label in ("extraction", "init"):
            toggles = page.locator(".widget-toggle-buttons", has=page.locator(".widget-label", has_text=label))
            active = toggles.locator(".widget-toggle-button.mod-active").inner_text().strip()
            assert active == left[label], f"{label} shows {active!r}, left at {left[label]!r}"
        # Issue 28: the page says its controls are inert, and is titled with the notebook's name.
        note = page.locator(".seqrep-inert")
        assert note.count() == 1 and note.is_visible() and "no kernel runs behind this page" in note.inner_text()
        assert note.evaluate("n => n.nextElementSibling.classList.contains('jupyter-widgets')")
        assert page.title() == "05_live_training"
        shown = status.inner_text().strip()
        assert shown.startswith("finished #1: epoch 2/2") and "chance: acc" in shown, shown
        assert "seqrep panel: " + shown.replace("\n", " | ") == fallback
        figure = page.locator("img.seqrep-live-figure")
        assert figure.evaluate("img => img.complete && img.naturalWidth > 0"), "the live figure is not drawn"
        assert _button(page, "Train").count() == 1
        assert page.evaluate("document.fonts.check('900 12px \"Font Awesome 5 Free\"')"), "button icons missing"
        status.locator("xpath=..").screenshot(path=_artifact("05-offline-html-panel"))
    finally:
        page.screenshot(path=_artifact("05-offline-html-end"), full_page=True)
        context.close()
    assert refused == [], f"the page asked the network for {refused}"
    assert [u for u in requests if not u.startswith(("data:", "blob:"))] == [html.as_uri()], requests
