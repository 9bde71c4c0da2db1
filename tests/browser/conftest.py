"""Real-browser fixtures: a JupyterLab server on 127.0.0.1, headless Debian Chromium via Playwright, screenshots.

Reused by every browser test (the Lab widget here, the JupyterLab sidebar extension too).
Chromium comes from `bash scripts/setup-browser.sh`; Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("PACKRAT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# kernels inherit the server's environment: notebooks opened by browser tests run on a tiny budget
KERNEL_ENV = {
    "PACKRAT_NB_MODEL": "mlp",
    "PACKRAT_NB_BATCHES": "1,2",
    "PACKRAT_NB_POINT_TIME": "0.3",
    "PACKRAT_NB_TIME_BUDGET": "60",
    "PACKRAT_NB_REPEATS": "3",
    "PACKRAT_NB_RATE": "40",
    "PACKRAT_NB_PHASE_S": "2",
    "TQDM_DISABLE": "1",
}
REPO = Path(__file__).resolve().parents[2]


def _missing(what: str) -> None:
    """Fail in CI (a browser test that silently skips there proves nothing); skip on a laptop."""
    msg = f"{what}; run `bash scripts/setup-browser.sh` and `pip install -e '.[test]'`"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The Debian Chromium binary, checked once per session."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"{CHROMIUM} is not installed")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab: where it listens, its token, and the folder it serves."""

    url: str
    token: str
    root: Path
    log: Path

    def open_url(self, path: str) -> str:
        """URL that opens a file in JupyterLab with a fresh workspace (no tabs left by an earlier test)."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's REST API (e.g. 'api/status') with the token."""
        request = urllib.request.Request(
            f"{self.url}/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def shutdown_kernels(self) -> None:
        """Stop every kernel (and so the pools its notebook started) so the next test starts clean."""
        import json

        for kernel in json.loads(self.api("api/kernels")):
            self.api(f"api/kernels/{kernel['id']}", method="DELETE")


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A real JupyterLab server on 127.0.0.1 with a token, serving a temp root; no browser of its own."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),  # no user settings or workspaces leak in or out
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        **KERNEL_ENV,
        "PYTHONUNBUFFERED": "1",
    }
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    log = home / "jupyter.log"
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.api("api/status")
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    try:
        yield server
    finally:
        try:
            server.api("api/shutdown", method="POST")  # shuts kernels down cleanly (their pools close)
            proc.wait(20)
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright (no downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's outcome on the item, so the page fixture can screenshot a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page at a laptop-sized viewport; on failure a full-page screenshot and console errors are saved."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            SCREENSHOTS.mkdir(exist_ok=True)
            name = request.node.name.replace("[", "-").replace("]", "")
            page.screenshot(path=str(SCREENSHOTS / f"{name}-FAILED.png"), full_page=True)
            (SCREENSHOTS / f"{name}-FAILED-console.txt").write_text("\n".join(errors))
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """shot(page, 'name') saves tests/browser/screenshots/<test>-NN-name.png (git-ignored) and returns it."""
    SCREENSHOTS.mkdir(exist_ok=True)
    test = request.node.name.replace("[", "-").replace("]", "")
    counter = iter(range(1, 100))

    def shot(page: Page, name: str, *, locator: Any = None, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{test}-{next(counter):02d}-{name}.png"
        if locator is not None:
            locator.screenshot(path=str(path))
        else:
            page.screenshot(path=str(path), full_page=full_page)
        return path

    return shot


@pytest.fixture
def copy_to_root(jupyter_server: LabServer) -> Callable[[Path, str | None], str]:
    """Copy a file (e.g. a repository notebook) into the server's root; returns its name there."""

    def copy(source: Path, name: str | None = None) -> str:
        target = jupyter_server.root / (name or source.name)
        shutil.copyfile(source, target)
        return target.name

    return copy
