"""The quickstart in a real JupyterLab and headless Chromium: Run All, then drive its Lab widget end to end.

Profile (the surface renders), Plan (bars, core map, plan map), Serve (pool, load, live switch, timeline),
with a screenshot at each step under tests/browser/screenshots/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"
PLAN_TEXT = r"^\d+x\d+x\d+(@\w+)?(\+\d+x\d+x\d+(@\w+)?)*$"


def open_and_run_all(page: Page, server: LabServer, name: str) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, and run every cell from the Run menu."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    page.goto(server.open_url(name))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    page.keyboard.press("Control+b")  # fold the file browser away: the notebook gets the width
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)  # kernel started
    first_prompt = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first.locator(".jp-InputPrompt")
    for _attempt in range(3):  # a menu click can land before the notebook panel is focused: retry
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
        try:  # JupyterLab may ask which kernel to start before it runs the cells
            select.click(timeout=5_000)
        except PlaywrightTimeout:
            pass
        try:
            expect(first_prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=20_000)
            return
        except AssertionError:
            continue
    expect(first_prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=1_000)


def button(lab: Locator, text: str) -> Locator:
    """An ipywidgets button by its label (its Font Awesome icon adds a glyph to the accessible name)."""
    return lab.get_by_role("button", name=re.compile(rf"^\W?\s*{re.escape(text)}$"))


def counter(lab: Locator, label: str) -> int:
    """The number above a counter label (served, failed, lost, in flight)."""
    text = lab.locator(f".packrat-count-{label.replace(' ', '-')}").inner_text()
    return int(text.replace(",", ""))


def wait_for_text(locator: Locator, pattern: str, timeout_s: float) -> None:
    """Wait until the element's text matches `pattern` (regex)."""
    from playwright.sync_api import expect

    expect(locator).to_have_text(re.compile(pattern), timeout=timeout_s * 1000)


def test_quickstart_and_lab_widget_end_to_end(
    page: Page, jupyter_server: LabServer, screenshot: Callable[..., Any]
) -> None:
    try:
        drive_quickstart_and_lab(page, jupyter_server, screenshot)
    finally:
        jupyter_server.shutdown_kernels()


def drive_quickstart_and_lab(page: Page, jupyter_server: LabServer, screenshot: Callable[..., Any]) -> None:
    """Run the quickstart, then profile, plan, serve and switch through its Lab widget."""
    from playwright.sync_api import expect

    # the tutorial as a user meets it (small PACKRAT_NB_* budgets come from the conftest's server env)
    shutil.copyfile(QUICKSTART, jupyter_server.root / QUICKSTART.name)
    open_and_run_all(page, jupyter_server, QUICKSTART.name)
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    expect(cells.last.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"), timeout=150_000)
    expect(
        page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    ).to_have_count(0)
    plots = page.locator(".jp-NotebookPanel .jp-OutputArea-output .js-plotly-plot .main-svg")
    assert plots.count() >= 5, (
        "surface, settings effect, plans, core map, plan map and validation should render"
    )
    page.set_viewport_size({"width": 1400, "height": 2300})  # tall enough that each tab fits in a screenshot
    lab = page.locator(".packrat-lab")
    lab.wait_for(state="visible", timeout=30_000)
    lab.scroll_into_view_if_needed()
    screenshot(page, "quickstart-lab")

    # 1. Profile: the quickstart's Lab reuses the profile the notebook just measured (issue 9 #7)
    lab.get_by_role("tab", name=re.compile("Profile")).click()
    status = lab.locator(".packrat-status").first
    wait_for_text(status, r"Profiled mlp: \d+ points", 30)
    expect(lab.locator(".packrat-figure-surface .heatmaplayer image").first).to_be_attached(timeout=30_000)
    expect(lab.locator(".packrat-figure-surface .main-svg").first).to_be_visible()
    screenshot(page, "surface", locator=lab)

    # 2. Plan: bars for the DP plan against the baselines, core map and plan map; Validate measures them
    lab.get_by_role("tab", name=re.compile("Plan")).click()
    wait_for_text(lab.locator(".packrat-status").nth(1), r"B=2 on 2 cores: packrat plan", 20)
    expect(lab.locator(".packrat-figure-bars .barlayer .point").first).to_be_visible(timeout=30_000)
    expect(lab.locator(".packrat-figure-map .barlayer .point").first).to_be_visible(timeout=30_000)
    button(lab, "Validate").click()  # measures each distinct plan in a real pool, then overlays the bars
    wait_for_text(
        lab.locator(".packrat-status").nth(1), r"Measured \(hatched\) bars overlay the expected ones", 90
    )
    expect(lab.locator(".packrat-figure-bars .barlayer .trace")).to_have_count(2, timeout=30_000)
    screenshot(page, "plan-validated", locator=lab)

    # 3. Serve: start the pool, send load, switch plans live and watch the timeline mark it
    lab.get_by_role("tab", name=re.compile("Serve")).click()
    serve_status = lab.locator(".packrat-status").nth(2)
    plan_box = lab.locator(".packrat-plan-box input")
    expect(plan_box).to_have_value(re.compile(PLAN_TEXT), timeout=30_000)
    current = plan_box.input_value()
    button(lab, "Start pool").click()
    wait_for_text(serve_status, r"Serving", 60)
    button(lab, "Send load").click()
    expect(lab.locator(".packrat-figure-timeline .main-svg").first).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('.packrat-count-served')?.textContent.replace(/,/g, '')) > 0",
        timeout=30_000,
    )
    screenshot(page, "serving", locator=lab)
    other = "1x2x2" if not current.startswith("1x2x2") else "2x1x1"
    lab.locator(".packrat-target-box input").fill(other)
    button(lab, "Reconfigure").click()
    wait_for_text(serve_status, rf"Serving ⟨{other[0]},{other[2]},{other[4]}⟩", 60)
    expect(lab.locator(".packrat-figure-timeline .legendtext", has_text="switch").first).to_be_attached(
        timeout=15_000
    )
    served_before = counter(lab, "served")
    page.wait_for_timeout(1500)
    assert counter(lab, "served") > served_before, (
        "the timeline and counters should keep updating after the switch"
    )
    assert counter(lab, "lost") == 0
    screenshot(page, "switched", locator=lab)
    button(lab, "Stop").click()
    wait_for_text(serve_status, r"Pool stopped after serving [\d,]+ requests \(0 failed, 0 lost\)", 30)
    assert counter(lab, "in flight") == 0
    screenshot(page, "stopped", locator=lab)
