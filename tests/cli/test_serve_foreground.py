"""serve_in_foreground: what a foreground server does once it is up, before it blocks."""

from __future__ import annotations

import gc

import pytest

from packrat_lab.cli.stop_signals import serve_in_foreground


class FakeServer:
    """Records how many objects the collector had frozen when the server started waiting."""

    url = "http://127.0.0.1:1"

    def __init__(self) -> None:
        self.frozen_while_serving = -1

    def wait(self) -> None:
        self.frozen_while_serving = gc.get_freeze_count()


def test_the_start_up_heap_is_frozen_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    """Full collections while serving must not walk torch and the app (tens of ms each: p99 spikes)."""
    gc.unfreeze()
    server = FakeServer()
    try:
        serve_in_foreground(server, "from PACKRAT_LAB_TOKEN")
    finally:
        gc.unfreeze()
    assert server.frozen_while_serving > 1000  # this process has imported pytest and packrat_lab at least
    assert "url   http://127.0.0.1:1" in capsys.readouterr().out
