"""The course as a student meets it: JupyterLab in a real browser (Debian's Chromium driven by Playwright), smoke
profile. Started here on 127.0.0.1 with copies of the notebooks; nothing is downloaded at run time.

Checked: interrupting 05's training stops Run All there, with a message saying how to resume, and 05 saved and
opened again shows no widget error; Run All of 00 and 10 ends without an error; the widget in 10 reacts to a pick
and to uploads (the same file twice included); the committed notebook 10 shows a picture of its widget, not a repr.
Each check leaves a screenshot in ``browser-screenshots/`` (ignored by git), where a failing run can be looked at.
Skipped when Chromium or Playwright is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from PIL import Image

from resnet_course.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "browser-screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NB00, NB05, NB10 = "00_start_here.ipynb", "05_training_resnet18.ipynb", "10_interactive_classifier.ipynb"
COMMITTED_10 = "10_as_committed.ipynb"

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the skip below says what is missing
    sync_playwright = None

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="needs Debian's chromium and Playwright for Python (.ci/run installs both)",
)

# JupyterLab's settings for the test server: every cell in the page (no windowed rendering), no news pop-up.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
NB = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook in the tab shown
KERNEL_IDLE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
    const prompts = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-InputPrompt');
    const running = [...prompts].some(p => p.textContent.includes('*'));
    return !!kernel && kernel.status === 'idle' && !running;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on a folder of notebook copies, and one Chromium page on it."""

    def __init__(self, folder: Path, page: Page, url: str) -> None:
        self.folder, self.page, self.url = folder, page, url

    def open(self, name: str, *, kernel: bool = True) -> None:
        self.page.goto(f"{self.url}/lab/tree/{name}?reset")  # reset: only this notebook open
        self.page.wait_for_selector(f"{NB} .jp-Cell", timeout=60_000)
        if kernel:
            self.page.wait_for_function(KERNEL_IDLE, timeout=90_000)

    def command(self, name: str, *, wait: bool = True) -> None:
        """Run a JupyterLab command; ``wait``: until it has finished (Run All's: until every cell has run)."""
        run = "window.jupyterapp.commands.execute(name)"
        self.page.evaluate(f"name => {run}" if wait else f"name => {{ {run}; }}", name)

    def run_all(self, timeout: float = 300) -> None:
        self.command("notebook:run-all-cells", wait=False)
        self.page.wait_for_timeout(500)
        self.page.wait_for_function(KERNEL_IDLE, timeout=timeout * 1000, polling=200)

    def save(self, name: str) -> nbformat.NotebookNode:
        before = (self.folder / name).stat().st_mtime_ns
        self.command("docmanager:save")
        deadline = time.monotonic() + 30
        while (self.folder / name).stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.1)
        return nbformat.read(self.folder / name, as_version=4)

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def cell(self, index: int) -> Any:
        return self.page.locator(f"{NB} .jp-Cell").nth(index)

    def widget_errors(self) -> list[str]:
        texts = self.page.locator(f"{NB} .jp-OutputArea-output").all_inner_texts()
        return [t for t in texts if "Error displaying widget" in t]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("browser")
    folder, settings = base / "notebooks", base / "settings"
    folder.mkdir()
    for name in (NB00, NB05, NB10):
        shutil.copy(ROOT / "notebooks" / name, folder / name)
    shutil.copy(ROOT / "notebooks" / NB10, folder / COMMITTED_10)
    for path, values in SETTINGS.items():
        (settings / path).parent.mkdir(parents=True, exist_ok=True)
        (settings / path).write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, RESNET_COURSE_PROFILE="smoke", RESNET_COURSE_DATA=str(base / "data"))
    env.update(JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
            "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={base / 'workspaces'}",
        ],
        env=env, stdout=(base / "server.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (base / "server.log").read_text()[-3000:]
                    raise RuntimeError("JupyterLab did not start:\n" + log) from None
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(f"{url}/lab?token={token}")  # logs in: the cookie serves the pages below
            page.wait_for_function("!!window.jupyterapp", timeout=60_000)
            yield Lab(folder, page, url)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        for o in cell.get("outputs", [])
        if o.output_type == "error"
    ]


def _check_ran_without_error(lab: Lab, nb: nbformat.NotebookNode, name: str) -> None:
    shot = lab.shot(f"{name[:2]}-run-all")
    assert _errors(nb) == [], shot
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), f"cells left unrun: {shot}"
    assert lab.widget_errors() == [], shot


def test_interrupting_05s_training_stops_run_all_and_05_reopened_shows_no_widget_error(lab: Lab) -> None:
    name = NB05
    lab.open(name)
    nb = nbformat.read(lab.folder / name, as_version=4)
    training = next(i for i, c in enumerate(nb.cells) if "history = fit(model" in c.source)
    lab.command("notebook:run-all-cells", wait=False)
    # interrupt once the first epoch's summary line is out: an epoch is saved, the next one is running
    epochs = get_profile("smoke").epochs  # the committed outputs (cpu profile) count more epochs
    summary = lab.cell(training).locator(".jp-OutputArea-output", has_text=re.compile(rf"epoch +1/{epochs} "))
    summary.wait_for(timeout=240_000)
    lab.command("notebook:interrupt-kernel", wait=False)
    lab.page.wait_for_function(KERNEL_IDLE, timeout=60_000, polling=200)
    nb = lab.save(name)
    shot = lab.shot("05-interrupted")
    errors = [o for o in nb.cells[training].outputs if o.output_type == "error"]
    assert [o.ename for o in errors] == ["KeyboardInterrupt"], shot
    assert "resume=True" in errors[0].evalue, errors[0].evalue  # says how to continue
    later = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and i > training and c.get("execution_count")]
    assert later == [], f"cells {later} ran after the interrupt: {shot}"
    lab.page.reload()  # opened again: the finished epoch bars left text, not widgets that no longer exist
    lab.page.wait_for_selector(f"{NB} .jp-Cell", timeout=60_000)
    lab.cell(training).scroll_into_view_if_needed()
    lab.page.wait_for_timeout(2000)  # the widget manager has tried to render whatever widget outputs there are
    shot = lab.shot("05-reopened")
    assert lab.widget_errors() == [], shot


def test_run_all_of_00_ends_without_an_error(lab: Lab) -> None:
    lab.open(NB00)
    lab.run_all()
    _check_ran_without_error(lab, lab.save(NB00), NB00)


@pytest.fixture(scope="module")
def ran_10(lab: Lab) -> nbformat.NotebookNode:
    """Notebook 10 after Run All (it uses the checkpoint that 05 saved before the interrupt above, if any)."""
    lab.open(NB10)
    lab.run_all()
    return lab.save(NB10)


def test_run_all_of_10_ends_without_an_error(lab: Lab, ran_10: nbformat.NotebookNode) -> None:
    _check_ran_without_error(lab, ran_10, NB10)


def test_the_widget_in_10_reacts_to_a_pick_and_to_uploads(lab: Lab, ran_10: nbformat.NotebookNode, tmp_path: Path) -> None:
    if not lab.page.url.split("?")[0].endswith(NB10):
        lab.open(NB10)  # the kernel that ran it still holds the widget: the page shows it again
    widget = lab.page.locator(f"{NB} .widget-vbox", has=lab.page.locator(".widget-upload")).first
    widget.scroll_into_view_if_needed()
    caption = widget.locator(".widget-html").nth(2)  # header, message, caption

    def caption_says(text: str) -> None:
        lab.page.wait_for_function(
            "([el, text]) => el.textContent.includes(text)", arg=[caption.element_handle(), text], timeout=20_000
        )

    def upload(path: Path) -> None:
        with lab.page.expect_file_chooser() as chooser:
            widget.locator(".widget-upload").click()
        chooser.value.set_files(str(path))

    options = [o.replace("\xa0", " ") for o in widget.locator("select option").all_inner_texts()]
    widget.locator("select").select_option(index=2)
    caption_says(options[2])
    picture = tmp_path / "gray.png"
    Image.new("L", (40, 30), 120).save(picture)
    upload(picture)
    caption_says("gray.png")
    widget.locator("select").select_option(index=2)  # the example the dropdown showed before the upload
    caption_says(options[2])
    upload(picture)  # the same file again
    caption_says("gray.png")
    shot = lab.shot("10-widget")
    assert widget.locator(".widget-hprogress").count() == 5 and lab.widget_errors() == [], shot
    button = widget.locator(".widget-upload")
    assert button.evaluate("b => b.scrollWidth <= b.clientWidth"), f"the upload button's label is cut off: {shot}"


def test_the_committed_notebook_10_shows_a_picture_of_its_widget(lab: Lab) -> None:
    lab.open(COMMITTED_10, kernel=False)  # a copy of notebooks/10 as committed, never run here
    nb = nbformat.read(lab.folder / COMMITTED_10, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "widget = classifier_widget(" in c.source)
    output = lab.cell(index).locator(".jp-OutputArea-output")
    output.locator("img").wait_for(timeout=30_000)
    output.scroll_into_view_if_needed()
    shot = lab.shot("10-committed")
    assert "ClassifierWidget(children" not in output.inner_text() and lab.widget_errors() == [], shot
