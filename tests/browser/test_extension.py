"""The packrat-lab JupyterLab extension in a real JupyterLab and headless Chromium.

A notebook kernel starts a Pool; the Packrat sidebar lists it, switches its plan (by plan text and
by a batch B planned from its profile) and stops it; the kernel then sees its pool closed. A saved
profile opens in the profile viewer, and the launcher creates a tuning notebook. A Fleet (its real
HTTP server, fake workers on a fake 8-core host) shows as one card with a core map per model, and
its cores move from the card.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

POOL_NAME = "sidebar-test"
PROFILE = "mlp.packrat.json"
NOTEBOOK = "sidebar_pool.ipynb"
CELLS = [
    (
        "import threading, time\n"
        "from packrat_lab import Pool, load_profile\n"
        f"pool = Pool('mlp', '2x1x4', profile=load_profile('{PROFILE}'), name='{POOL_NAME}')\n"
        "def traffic():  # light load until the pool closes, so the sidebar has latencies to show\n"
        "    x = pool.workload.example_input(4)\n"
        "    while pool.state != 'closed':\n"
        "        try:\n"
        "            pool.infer(x)\n"
        "        except Exception:\n"
        "            break\n"
        "        time.sleep(0.1)\n"
        "threading.Thread(target=traffic, daemon=True).start()\n"
        "print('started', pool.plan.text)"
    ),
    "print('state:', pool.state)",
]


def _save_profile(root: Path) -> None:
    """A small mlp profile file (as `Profile.save` writes it); B=4 on 2 cores plans ⟨2,1,2⟩."""
    from packrat_lab.profiling.table import profile_from_latencies

    latencies = {(t, b): 1.2 * b**0.9 / t**0.6 + 0.4 * t for t in (1, 2) for b in (1, 2, 4, 8)}
    profile_from_latencies("mlp", latencies).save(root / PROFILE)


def _write_notebook(path: Path, cells: list[str]) -> None:
    """A clean nbformat-4 notebook with one code cell per source string."""
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook = {
        "cells": [{**cell, "id": f"cell-{i}", "source": source} for i, source in enumerate(cells)],
        "metadata": {"kernelspec": kernelspec},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))


def _run_cell(page: Page, index: int) -> Locator:
    """Run one cell with Shift+Enter; returns its output area."""
    cell = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")
    return cell.locator(".jp-OutputArea-output")


def _open_sidebar(page: Page) -> Locator:
    tab = page.locator('.jp-SideBar.jp-mod-right li[data-id="packrat-lab-pools"]')
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    return page.locator("#packrat-lab-pools")


@pytest.fixture
def lab_root(jupyter_server: LabServer) -> Iterator[LabServer]:
    """The server with a profile and the pool notebook in its root; kernels of this test shut down after."""
    _save_profile(jupyter_server.root)
    _write_notebook(jupyter_server.root / NOTEBOOK, CELLS)
    yield jupyter_server
    for session in json.loads(jupyter_server.api("api/sessions")):
        if session["path"] in (NOTEBOOK,) or session["path"].startswith("Untitled"):
            jupyter_server.api(f"api/kernels/{session['kernel']['id']}", method="DELETE")


def test_sidebar_controls_a_pool_started_by_a_notebook(
    lab_root: LabServer, page: Page, screenshot: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    from packrat_lab.host import detect_host

    page.goto(lab_root.open_url(NOTEBOOK))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=60_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)
    expect(_run_cell(page, 0)).to_contain_text("started 2x1x4", timeout=120_000)

    panel = _open_sidebar(page)
    named = panel.locator(f'.jp-PackratPool[data-pool-name="{POOL_NAME}"]')
    expect(named).to_have_count(1, timeout=30_000)
    pool_id = named.get_attribute("data-pool-id")
    card = panel.locator(f'.jp-PackratPool[data-pool-id="{pool_id}"]')
    # grouped under this server's kernels, titled by model, name and owning notebook (issue 9 #5)
    expect(card.locator(".jp-PackratPool-model")).to_have_text(f"mlp · {POOL_NAME} · {NOTEBOOK}")
    expect(panel.locator(".jp-PackratPanel-kernels .jp-PackratPool")).to_have_count(1)
    expect(card.locator(".jp-PackratPool-owner")).to_contain_text(f"notebook {NOTEBOOK} (kernel pid")
    expect(card.locator(".jp-PackratPool-plan")).to_have_text("⟨2,1,4⟩")
    expect(card.locator(".jp-PackratPool-state")).to_have_text("serving")
    expect(card.locator(".jp-PackratPool-core")).to_have_count(
        max(2, detect_host().usable_cores)
    )  # one cell per core of the host
    expect(card.locator('.jp-PackratPool-core[title*="instance"]')).to_have_count(2)  # 2x1x4: two busy cores
    expect(card.locator(".jp-PackratPool-metrics")).to_contain_text(re.compile(r"p50 \d"), timeout=15_000)
    screenshot(page, "pool-listed")

    # switch by plan text: one instance with both threads
    card.locator(".jp-PackratPool-input").fill("1x2x4")
    card.locator(".jp-PackratPool-switch").click()
    expect(card.locator(".jp-PackratPool-plan")).to_have_text("⟨1,2,4⟩", timeout=120_000)
    expect(card.locator(".jp-PackratPool-message")).to_have_text("")
    screenshot(page, "switched-by-plan")

    # switch by a batch B: the pool plans it from its profile (two 1-thread instances of 2)
    card.locator(".jp-PackratPool-input").fill("4")
    card.locator(".jp-PackratPool-input").press("Enter")
    expect(card.locator(".jp-PackratPool-plan")).to_have_text("⟨2,1,2⟩", timeout=120_000)

    # a malformed request is refused in the panel, and the pool keeps its plan
    card.locator(".jp-PackratPool-input").fill("2x1")
    card.locator(".jp-PackratPool-switch").click()
    expect(card.locator(".jp-PackratPool-message")).to_contain_text("neither a plan nor a batch")
    expect(card.locator(".jp-PackratPool-plan")).to_have_text("⟨2,1,2⟩")

    card.locator(".jp-PackratPool-stop").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Stop").click()
    expect(card).to_have_count(0, timeout=60_000)
    expect(_run_cell(page, 1)).to_contain_text("state: closed", timeout=30_000)
    screenshot(page, "stopped")
    assert pool_id not in [p["id"] for p in json.loads(lab_root.api("packrat-lab/pools"))["pools"]]


@pytest.fixture
def fake_fleet(lab_root: LabServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Fleet announced in the Lab server's registry: real fleet HTTP server, fake in-process workers."""
    from fake_workers import FakeWorld

    from packrat_lab.fleet import Fleet
    from packrat_lab.host import HostInfo
    from packrat_lab.serving.lifecycle import FailurePolicy

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(lab_root.log.parent / "runtime"))  # the server's own
    monkeypatch.setenv("PACKRAT_LAB_ANNOUNCE", "1")
    world = FakeWorld(run_s=0.002)
    with Fleet(
        {"a": ("mlp", "2x1x2"), "b": ("mlp", "1x3x4")},
        host=HostInfo("fake 8-core", tuple(range(8)), None),
        channels=world.factory,
        warmup=0,
        policy=FailurePolicy(tick_s=0.01, backoff_s=0.02, max_backoff_s=0.1),
    ) as fleet:
        x = fleet.pools["a"].workload.example_input(1).abs() + 0.1  # fake workers die on negative rows
        for _ in range(3):
            fleet.pools["a"].infer(x, deadline_ms=60_000)  # offered with a deadline, answered in time
            fleet.infer("b", x)
        yield fleet


def _fleet_core_map(card: Locator) -> dict[str, list[int]]:
    """Which cores each member's map marks as its own (in host order), read from the page."""
    owned: dict[str, list[int]] = {}
    for member in card.locator(".jp-PackratFleet-member").all():
        name = member.get_attribute("data-member") or ""
        cells = member.locator(f'.jp-PackratPool-core[data-owner="{name}"]').all()
        owned[name] = [int(c.get_attribute("data-core") or -1) for c in cells]
    return owned


def test_profile_opens_in_the_viewer_and_launcher_makes_a_tuning_notebook(
    lab_root: LabServer, page: Page, screenshot: Callable[..., Any], fake_fleet: Any
) -> None:
    from playwright.sync_api import expect

    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/packrat-lab/pools" in r.url else None)
    page.goto(f"{lab_root.url}/lab?token={lab_root.token}")
    page.locator(".jp-DirListing-item", has_text=PROFILE).dblclick(timeout=60_000)
    viewer = page.locator(".jp-PackratProfile")
    expect(viewer.locator(".jp-PackratSurface-cell")).to_have_count(
        8, timeout=30_000
    )  # 2 threads × 4 batches
    expect(viewer.locator(".jp-PackratSurface-cell").first).to_have_text("1.6 ms")
    row_b4 = viewer.locator(".jp-PackratPlanMap tbody tr", has_text="⟨2,1,2⟩")
    expect(row_b4.locator("th")).to_have_text("4")
    screenshot(page, "profile-viewer")

    # a fleet is one card: per model its own core map over the host, plan, stats and SLO figures
    panel = _open_sidebar(page)
    card = panel.locator('.jp-PackratPool[data-kind="fleet"]')
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".jp-PackratFleet-member")).to_have_count(2)
    expect(card.locator(".jp-PackratPool-core")).to_have_count(16)  # 8 host cores in each model's map
    assert _fleet_core_map(card) == {n: sorted(c) for n, c in fake_fleet.shares.items()}
    a = card.locator('.jp-PackratFleet-member[data-member="a"]')
    expect(a.locator(".jp-PackratPool-plan")).to_have_text("⟨2,1,2⟩")
    expect(a.locator(".jp-PackratPool-metrics")).to_contain_text("3 served")
    expect(a.locator('.jp-PackratSlo-figure[data-key="slo_attainment"]')).to_have_text("attained 100.0 %")
    b = card.locator('.jp-PackratFleet-member[data-member="b"]')
    expect(b.locator('.jp-PackratSlo-figure[data-key="slo_attainment"]')).to_have_text("attained —")
    screenshot(page, "fleet-listed", locator=card)

    # moving cores from the card: the fleet switches live and the next refresh shows the new map
    card.locator(".jp-PackratPool-input").fill("a=1x3x2 b=1x2x4")
    card.locator(".jp-PackratPool-switch").click()
    expect(a.locator(".jp-PackratPool-plan")).to_have_text("⟨1,3,2⟩", timeout=30_000)
    expect(card.locator(".jp-PackratPool-message")).to_have_text("")
    assert {n: p.text for n, p in fake_fleet.plans.items()} == {"a": "1x3x2", "b": "1x2x4"}
    expect(a.locator('.jp-PackratPool-core[data-owner="a"]')).to_have_count(3)
    assert _fleet_core_map(card) == {n: sorted(c) for n, c in fake_fleet.shares.items()}
    card.locator(".jp-PackratPool-input").fill("c=1x1x1")  # not a model of this fleet: refused in the panel
    card.locator(".jp-PackratPool-switch").click()
    expect(card.locator(".jp-PackratPool-message")).to_contain_text("'c' is not a model of this fleet")
    screenshot(page, "fleet-moved", locator=card)

    # the pools panel polls only while it is shown
    page.wait_for_timeout(2_500)
    assert len(polls) >= 2, polls
    page.locator('.jp-SideBar.jp-mod-right li[data-id="packrat-lab-pools"]').click()  # hide it
    expect(page.locator("#packrat-lab-pools")).to_be_hidden()
    page.wait_for_timeout(300)  # a poll already on the wire may still be reported
    seen = len(polls)
    page.wait_for_timeout(3_000)
    assert len(polls) == seen, polls[seen:]

    page.keyboard.press("Control+Shift+c")  # the command palette lists the command ...
    page.locator(".lm-CommandPalette-input").fill("Packrat")
    expect(page.locator(".lm-CommandPalette-item", has_text="Packrat: New tuning notebook")).to_have_count(1)
    page.keyboard.press("Escape")
    _palette(page, "New Launcher")  # ... and the launcher has a card that runs it
    page.locator(".jp-LauncherCard:visible", has_text="Packrat tuning").click()
    first_cell = page.locator(".jp-NotebookPanel:visible .jp-Cell.jp-CodeCell").first
    expect(first_cell).to_contain_text("%load_ext packrat_lab", timeout=30_000)
    expect(first_cell).to_contain_text("%packrat lab")
    screenshot(page, "tuning-notebook")


def _palette(page: Page, label: str) -> None:
    """Run a command from the command palette, as a user would."""
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill(label)
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()
