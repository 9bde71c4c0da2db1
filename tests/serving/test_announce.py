"""announce(pool): serve the management routes, register, follow switches, withdraw on close."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from packrat_lab import registry
from packrat_lab.plan import Plan
from packrat_lab.serving import announce as announce_mod
from packrat_lab.serving.announce import announce
from packrat_lab.serving.events import Event


@dataclass
class FakeServer:
    url: str = "http://127.0.0.1:4567"
    token: str = ""
    stopped: int = 0

    def stop(self) -> None:
        self.stopped += 1


@dataclass
class FakeWorkload:
    name: str = "mlp"


@dataclass
class FakePool:
    """Only what announce reads: workload.name, plan, state, on_event."""

    plan: Plan = field(default_factory=lambda: Plan.parse("2x1x4"))
    state: str = "serving"
    workload: FakeWorkload = field(default_factory=FakeWorkload)
    observers: list[Callable[[Event], None]] = field(default_factory=list)

    def on_event(self, callback: Callable[[Event], None]) -> None:
        self.observers.append(callback)

    def record(self, kind: str, plan: str) -> None:
        for callback in self.observers:
            callback(Event(0.0, kind, plan))


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Any, dict[str, Any]]]:
    """serve_pool replaced by a recorder; the registry in a temp runtime dir."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv(announce_mod.ENV_DISABLE, raising=False)
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_serve_pool(pool: Any, **kwargs: Any) -> FakeServer:
        calls.append((pool, kwargs))
        return FakeServer(token=kwargs["token"])

    from packrat_lab.serving import http

    monkeypatch.setattr(http, "serve_pool", fake_serve_pool)
    return calls


def test_announce_serves_on_loopback_with_a_fresh_token_and_registers(served: list[Any]) -> None:
    pool = FakePool()
    handle = announce(pool)
    ((_, kwargs),) = served
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 0 and kwargs["background"] is True
    assert len(kwargs["token"]) >= 24
    (entry,) = registry.list_pools()
    assert (entry.model, entry.plan, entry.url, entry.token) == (
        "mlp",
        "2x1x4",
        "http://127.0.0.1:4567",
        kwargs["token"],
    )
    assert handle.url == "http://127.0.0.1:4567"
    assert announce(FakePool()).entry.token != kwargs["token"]  # type: ignore[union-attr]


def test_close_unregisters_then_stops_the_server_once(served: list[Any]) -> None:
    handle = announce(FakePool())
    server = handle.server
    handle.close()
    handle.close()
    assert registry.list_pools() == []
    assert isinstance(server, FakeServer) and server.stopped == 1


def test_the_registry_follows_switches_and_a_closed_pool_withdraws(served: list[Any]) -> None:
    pool = FakePool()
    handle = announce(pool)
    pool.record("switch", "1x2x4")
    assert registry.list_pools()[0].plan == "1x2x4"
    pool.record("stopped", "2x1x4")  # a switch retiring old workers: the pool still serves
    assert len(registry.list_pools()) == 1
    pool.state = "closed"
    pool.record("closed", "1x2x4")
    assert registry.list_pools() == []
    assert isinstance(handle.server, FakeServer) and handle.server.stopped == 1


def test_a_stop_from_the_pools_own_http_thread_leaves_the_server_to_stop_itself(served: list[Any]) -> None:
    handle = announce(FakePool())
    worker = threading.Thread(target=handle.close, name="packrat-http_0")
    worker.start()
    worker.join()
    assert registry.list_pools() == []
    assert isinstance(handle.server, FakeServer) and handle.server.stopped == 0


def test_env_switch_keeps_pools_private(served: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(announce_mod.ENV_DISABLE, "0")
    handle = announce(FakePool())
    assert (handle.server, handle.entry, handle.url) == (None, None, None)
    assert served == [] and registry.list_pools() == []
    handle.close()


def test_a_failing_server_does_not_break_the_pool(served: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from packrat_lab.serving import http

    def broken(pool: Any, **kwargs: Any) -> FakeServer:
        msg = "cannot listen on 127.0.0.1:0 (Address already in use); example: --port 0"
        raise ValueError(msg)

    monkeypatch.setattr(http, "serve_pool", broken)
    handle = announce(FakePool())
    assert handle.entry is None and registry.list_pools() == []


def test_a_failing_registration_stops_only_the_server_it_started(
    served: list[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(**kwargs: Any) -> None:
        msg = "registry directory is read-only"
        raise OSError(msg)

    started: list[FakeServer] = []

    def recording_serve_pool(pool: Any, **kwargs: Any) -> FakeServer:
        started.append(FakeServer(token=kwargs["token"]))
        return started[-1]

    from packrat_lab.serving import http

    monkeypatch.setattr(http, "serve_pool", recording_serve_pool)
    monkeypatch.setattr(registry, "register", refused)
    handle = announce(FakePool())
    assert handle.entry is None and [s.stopped for s in started] == [1]
    assert "pool not announced to JupyterLab" in caplog.text and "read-only" in caplog.text
    given = FakeServer()
    assert announce(FakePool(), server=given).entry is None and given.stopped == 0  # the caller's stays up
