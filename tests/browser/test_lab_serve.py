"""The Lab's Serve step in a real JupyterLab and headless Chromium (issue 9 items 1-4).

1. The plan chosen in Plan fills Serve. 2. The p99 the Lab shows is the pool's own: at most 1.5× and at least a third of
what `packrat-lab load` measures headless against the same pool. 3. The load process sends what it
says. 4. A switch and a stop made in the Packrat sidebar show up in the widget.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_extension import _open_sidebar, _run_cell, _write_notebook
from test_notebook_ui import button, wait_for_text

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

NOTEBOOK = "lab_serve.ipynb"
CELLS = [
    (
        "import packrat_lab as pl\n"
        "from packrat_lab.profiling.table import profile_from_latencies\n"
        "prof = profile_from_latencies('mlp', {(t, b): 1.2 * b**0.9 / t**0.6 + 0.4 * t for t in (1, 2) for b in (1, 2, 4)})\n"
        "lab = pl.Lab('mlp', cores=2, profile=prof)\n"
        "lab"
    ),
]
RATE = 20


def number(lab: Locator, label: str) -> float:
    """A figure from the Serve step's counter row (served, pool p99 ms, …)."""
    text = lab.locator(f".packrat-count-{label}").inner_text().replace(",", "")
    return float(text)


def open_lab(page: Page, server: LabServer, notebook: str) -> Locator:
    """Open `notebook` in JupyterLab, run its first cell, and return the Lab widget once it shows."""
    from playwright.sync_api import expect

    page.goto(server.open_url(notebook))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)
    _run_cell(page, 0)
    lab = page.locator(".packrat-lab")
    lab.wait_for(state="visible", timeout=60_000)
    return lab


@pytest.fixture
def notebook(jupyter_server: LabServer) -> Iterator[LabServer]:
    _write_notebook(jupyter_server.root / NOTEBOOK, CELLS)
    yield jupyter_server
    jupyter_server.shutdown_kernels()


def test_lab_serves_the_chosen_plan_and_follows_the_sidebar(
    notebook: LabServer, page: Page, screenshot: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 1600})
    lab = open_lab(page, notebook, NOTEBOOK)

    # 1. the Lab starts at Plan with the notebook's profile; choosing fat there fills Serve
    plan_status = lab.locator(".packrat-status").nth(1)
    wait_for_text(plan_status, r"B=4 on 2 cores: packrat plan", 30)
    chooser = lab.locator("select", has=page.locator("option", has_text="fat: "))
    labels = chooser.evaluate("select => [...select.options].map(option => option.text)")
    fat = next((t for t in labels if t.strip().startswith("fat")), None)
    assert fat is not None, labels
    chooser.select_option(label=fat)
    lab.get_by_role("tab", name=re.compile("Serve")).click()
    plan_box = lab.locator(".packrat-plan-box input")
    expect(plan_box).to_have_value("1x2x4", timeout=10_000)
    expect(lab.locator(".packrat-will-serve")).to_contain_text("fat plan from step 2")

    # start it as its own server process; fixed-rate load from the load process
    lab.get_by_role("checkbox", name="Poisson arrivals").uncheck()
    serve_status = lab.locator(".packrat-status").nth(2)
    button(lab, "Start pool").click()
    wait_for_text(serve_status, r"Serving ⟨1,2,4⟩ at", 90)
    url = serve_status.locator("code").inner_text()
    button(lab, "Send load").click()
    page.wait_for_timeout(5_000)  # warm-up, then measure the served rate over a timed window
    served_before, t_before = number(lab, "served"), time.monotonic()
    page.wait_for_timeout(10_000)
    served_after, t_after = number(lab, "served"), time.monotonic()

    # 3. served ≈ asked, and the load process's own count says the same
    served_rate = (served_after - served_before) / (t_after - t_before)
    assert abs(served_rate - RATE) <= 0.15 * RATE, served_rate
    achieved = float(re.search(r"sent [\d,]+ \(([\d.]+) req/s\)", serve_status.inner_text()).group(1))  # type: ignore[union-attr]
    assert abs(achieved - RATE) <= 0.05 * RATE, achieved
    lab_p99 = number(lab, "pool-p99-ms")
    screenshot(page, "lab-serve", locator=lab)

    # 2. the p99 the Lab shows is the pool's: compare with `packrat-lab load` headless, same pool, same run
    button(lab, "Stop load").click()
    out = subprocess.run(
        [sys.executable, "-m", "packrat_lab.cli", "load", url, "--rate", str(RATE), "--duration", "10"]
        + ["--no-poisson", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    load_p99 = json.loads(out.stdout)["p99_ms"]
    # The pool's p99 leaves out the HTTP front end, which the client's includes: on 2 cores shared
    # with Chromium, JupyterLab and the kernel that can double it. So the pool's is at most the
    # client's (with noise) and not far below it; a client-side or UI-inclusive figure would be above.
    assert load_p99 / 3 <= lab_p99 <= load_p99 * 1.5, (lab_p99, load_p99)

    # 4. a switch in the sidebar shows up in the widget; so does a stop
    panel = _open_sidebar(page)
    card = panel.locator(".jp-PackratPanel-kernels .jp-PackratPool")  # its owner is this notebook's kernel
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".jp-PackratPool-owner")).to_contain_text(f"notebook {NOTEBOOK}")
    card.locator(".jp-PackratPool-input").fill("2x1x2")
    card.locator(".jp-PackratPool-switch").click()
    wait_for_text(serve_status, r"Serving ⟨2,1,2⟩ at .*switched the pool to 2x1x2", 120)
    expect(plan_box).to_have_value("2x1x2")
    screenshot(page, "lab-follows-sidebar-switch")
    card.locator(".jp-PackratPool-stop").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Stop").click()
    wait_for_text(serve_status, r"stopped outside this Lab", 60)
    assert "Serving" not in serve_status.inner_text()
    expect(button(lab, "Start pool")).to_be_enabled()
    screenshot(page, "lab-follows-sidebar-stop")
