"""The Lab widget in a real JupyterLab and headless Chromium: profile, surface, plan, serve, switch live."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:
    from playwright.sync_api import TimeoutError  # noqa: A004 - Playwright's own timeout
except ImportError:  # the conftest skips or fails with instructions
    pass

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

# a tiny model, both cores, two batch sizes and a small budget: about 30 s of profiling on 2 cores
LAB_CELLS = [
    "%load_ext packrat_lab",
    "%packrat lab --model mlp --cores 2 --batches 1,2 --budget 8",
]


def write_notebook(path: Path, cells: list[str]) -> None:
    """A clean notebook with one code cell per source string."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(path))


def open_and_run_all(page: Page, server: LabServer, name: str) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, and run every cell from the Run menu."""
    from playwright.sync_api import expect

    page.goto(server.open_url(name))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    page.keyboard.press("Control+b")  # fold the file browser away: the notebook gets the width
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)  # kernel started
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
    try:  # JupyterLab may ask which kernel to start before it runs the cells
        select.click(timeout=5_000)
    except TimeoutError:
        pass


def counter(lab: Locator, label: str) -> int:
    """The number above a counter label (served, failed, lost, in flight)."""
    text = lab.locator(".packrat-counter", has_text=label).locator(".packrat-count").inner_text()
    return int(text.replace(",", ""))


def wait_for_text(locator: Locator, pattern: str, timeout_s: float) -> None:
    """Wait until the element's text matches `pattern` (regex)."""
    from playwright.sync_api import expect

    expect(locator).to_have_text(re.compile(pattern), timeout=timeout_s * 1000)


def test_lab_profiles_plans_serves_and_switches_live(
    page: Page, jupyter_server: LabServer, screenshot: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    write_notebook(jupyter_server.root / "lab.ipynb", LAB_CELLS)
    open_and_run_all(page, jupyter_server, "lab.ipynb")
    lab = page.locator(".packrat-lab")
    lab.wait_for(state="visible", timeout=90_000)
    lab.scroll_into_view_if_needed()
    screenshot(page, "lab-opened")

    # 1. Profile: the surface fills in from the background thread while the kernel stays free
    lab.get_by_role("button", name="Profile", exact=True).click()
    status = lab.locator(".packrat-status").first
    wait_for_text(status, r"Profiling mlp: \d+/8 points", 30)
    expect(lab.get_by_role("button", name="Cancel")).to_be_enabled()
    wait_for_text(status, r"Profiled mlp: 8 points", 150)
    surface = lab.locator(".packrat-figure-surface .main-svg").first
    expect(surface).to_be_visible()
    expect(lab.locator(".packrat-figure-surface .heatmaplayer").first).to_be_attached()
    screenshot(page, "surface", locator=lab)

    # 2. Plan: bars for the DP plan against the baselines, core map and plan map
    lab.get_by_role("tab", name=re.compile("Plan")).click()
    plan_status = lab.locator(".packrat-status").nth(1)
    wait_for_text(plan_status, r"B=2 on 2 cores: packrat plan", 20)
    expect(lab.locator(".packrat-figure-bars .main-svg").first).to_be_visible()
    screenshot(page, "plan", locator=lab)

    # 3. Serve: start the pool, send load, switch plans live and watch the timeline mark it
    lab.get_by_role("tab", name=re.compile("Serve")).click()
    serve_status = lab.locator(".packrat-status").nth(2)
    plan_box = lab.locator(".packrat-plan-box input")
    current = plan_box.input_value()
    assert re.fullmatch(r"\d+x\d+x\d+(@\w+)?(\+\d+x\d+x\d+(@\w+)?)*", current), current
    lab.get_by_role("button", name="Start pool").click()
    wait_for_text(serve_status, r"Serving", 60)
    lab.get_by_role("button", name="Send load").click()
    expect(lab.locator(".packrat-figure-timeline .main-svg").first).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('.packrat-count-served')?.textContent.replace(/,/g, '')) > 0",
        timeout=30_000,
    )
    screenshot(page, "serving", locator=lab)
    other = "1x2x2" if not current.startswith("1x2x2") else "2x1x1"
    target = lab.locator(".packrat-target-box input")
    target.fill(other)
    lab.get_by_role("button", name="Reconfigure").click()
    wait_for_text(serve_status, r"Switching live|Serving", 10)
    wait_for_text(serve_status, rf"Serving ⟨{other[0]},{other[2]},{other[4]}⟩", 60)
    expect(lab.locator(".packrat-figure-timeline .legendtext", has_text="switch").first).to_be_attached(timeout=15_000)
    served_before = counter(lab, "served")
    page.wait_for_timeout(1500)
    assert counter(lab, "served") > served_before, "the timeline and counters should keep updating after the switch"
    assert counter(lab, "lost") == 0
    screenshot(page, "switched", locator=lab)
    lab.get_by_role("button", name="Stop", exact=True).click()
    wait_for_text(serve_status, r"No pool running", 30)
    screenshot(page, "stopped", locator=lab)
