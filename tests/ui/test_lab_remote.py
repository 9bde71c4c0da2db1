"""The Lab's Serve step against a real `packrat-lab serve` process and a real load process (slow)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from packrat_lab.plan import Plan
from packrat_lab.serving.http.client import HTTPStatusError, V2Client
from packrat_lab.ui.backend import RealBackend
from packrat_lab.ui.serve_controller import ServeController, ServeState

pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.1)


def test_lab_serves_from_its_own_process_and_follows_changes_made_elsewhere() -> None:
    controller = ServeController(RealBackend())
    controller.start("mlp", Plan.parse("1x1x1"), sample_interval_s=0.25)
    try:
        wait_for(lambda: controller.state is ServeState.RUNNING, 120)
        pool = controller.pool
        assert pool is not None
        server_pid = pool.pid  # type: ignore[attr-defined]
        assert server_pid is not None and server_pid != os.getpid()
        controller.start_load(rate=20, poisson=False)
        assert controller.load is not None
        wait_for(lambda: controller.counters["served"] >= 20)
        assert controller.load.counts()["failed"] == 0

        # another client (the sidebar) switches the plan and pauses auto through the routes
        other = V2Client(pool.url, token=pool.token, timeout=120)  # type: ignore[attr-defined]
        other.send_json("PUT", "/packrat/plan", {"plan": "1x1x2"})
        wait_for(lambda: controller.plan is not None and controller.plan.text == "1x1x2")
        assert "switched the pool to 1x1x2" in controller.status()

        # ... and stops it: the widget says so, stops its load, and does not claim to serve
        other.send_json("POST", "/packrat/stop", {})
        other.close()
        wait_for(lambda: controller.state is ServeState.STOPPED)
        assert not controller.load_running
        assert "stopped" in controller.status() and "Serving" not in controller.status()
    finally:
        controller.stop()


def test_lab_starts_the_server_with_its_slo_and_changes_it_live() -> None:
    """The SLO box's value reaches `packrat-lab serve --slo-ms`, then PUT /packrat/slo changes it."""
    controller = ServeController(RealBackend())
    controller.set_slo(500.0)
    controller.start("mlp", Plan.parse("1x1x1"), sample_interval_s=None)
    try:
        wait_for(lambda: controller.state is ServeState.RUNNING, 120)
        pool = controller.pool
        assert pool is not None
        assert pool.stats()["slo_ms"] == 500.0
        controller.set_slo(20.0)
        assert pool.stats()["slo_ms"] == 20.0
        with pytest.raises(HTTPStatusError, match="got -1.0; example") as refused:
            pool.set_slo(-1.0)  # past the widget's own check: the server says why, in one line
        assert refused.value.status == 400 and pool.stats()["slo_ms"] == 20.0
        controller.set_slo(None)
        assert pool.stats()["slo_ms"] is None
        controller.sample()
        assert controller.slo_ms is None and controller.state is ServeState.RUNNING
    finally:
        controller.stop()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's parent may be slow to reap it)."""
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_the_labs_server_ends_when_its_kernel_is_killed() -> None:
    """A killed kernel must not leave its Lab's pool serving with no owner."""
    import subprocess
    import sys

    script = (
        "from packrat_lab.plan import Plan\n"
        "from packrat_lab.ui.remote import start_server\n"
        "pool = start_server('mlp', Plan.parse('1x1x1'))\n"
        "print(pool.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None
        server = int(kernel.stdout.readline())
        assert _running(server)
    finally:
        kernel.kill()  # no atexit, no finalizers: only the server's own watch can end it
        kernel.wait()
    wait_for(lambda: not _running(server), 60)
