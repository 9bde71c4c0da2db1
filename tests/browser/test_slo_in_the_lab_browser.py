"""The Serve step's SLO box in a real JupyterLab and headless Chromium (issue 10, Lab part).

A bad objective is said beside the box; a good one starts the pool's server with it; under load the
refusals show as counters and as bars on the timeline; emptying the box turns it off live.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_extension import _write_notebook
from test_lab_serve import open_lab
from test_notebook_ui import button, counter, wait_for_text

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

NOTEBOOK = "lab_slo.ipynb"
CELLS = [
    ("import packrat_lab as pl\nlab = pl.Lab('mlp', cores=2)\nlab"),
]


@pytest.fixture
def notebook(jupyter_server: LabServer) -> Iterator[LabServer]:
    _write_notebook(jupyter_server.root / NOTEBOOK, CELLS)
    yield jupyter_server
    jupyter_server.shutdown_kernels()


def test_slo_box_errors_starts_refuses_and_turns_off_live(
    notebook: LabServer, page: Page, screenshot: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 1800})
    lab = open_lab(page, notebook, NOTEBOOK)
    lab.get_by_role("tab", name=re.compile("Serve")).click()
    lab.locator(".packrat-plan-box input").fill("1x1x1")
    lab.locator(".packrat-plan-box input").press("Enter")

    box, note = lab.locator(".packrat-slo-box input"), lab.locator(".packrat-slo-note")
    box.fill("fast")
    box.press("Enter")
    wait_for_text(note, r"SLO 'fast' is not a number of milliseconds; example: 50", 20)
    box.fill("0.01")  # far below any batch: every request is predicted to miss it
    box.press("Enter")
    wait_for_text(note, r"0\.01 ms \(the pool starts with it\)", 20)

    serve_status = lab.locator(".packrat-status").nth(2)
    button(lab, "Start pool").click()
    wait_for_text(serve_status, r"Serving ⟨1,1,1⟩ at .*SLO 0\.01 ms", 120)
    button(lab, "Send load").click()
    page.wait_for_function(
        "() => Number(document.querySelector('.packrat-count-rejected')?.textContent.replace(/,/g, '')) >= 20",
        timeout=60_000,
    )
    expect(lab.locator(".packrat-figure-timeline .legendtext", has_text="rejected").first).to_be_attached(
        timeout=20_000
    )
    bars = lab.locator(".packrat-figure-timeline .barlayer .point")
    expect(bars.first).to_be_attached(timeout=20_000)
    served_refusing = counter(lab, "served")
    screenshot(page, "lab-slo-refusing", locator=lab)

    box.fill("")  # off, live: the same server now answers everything
    box.press("Enter")
    wait_for_text(note, r"off: every request is queued and answered", 20)
    page.wait_for_function(
        f"() => Number(document.querySelector('.packrat-count-served')?.textContent.replace(/,/g, '')) >= {served_refusing + 20}",
        timeout=60_000,
    )
    assert "SLO" not in serve_status.inner_text()
    screenshot(page, "lab-slo-off", locator=lab)
    button(lab, "Stop load").click()
    button(lab, "Stop").click()
    wait_for_text(serve_status, r"Pool stopped after serving .* refused by the SLO", 60)
