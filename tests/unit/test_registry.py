"""The pool registry: private files per pool, removed on unregister, dead processes dropped."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from packrat_lab import registry


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own Jupyter runtime directory."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return tmp_path / "runtime"


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_register_writes_a_private_file_under_the_runtime_dir(runtime_dir: Path) -> None:
    entry = registry.register(model="mlp", plan="2x1x4", url="http://127.0.0.1:8123/", token="s3cret")
    path = runtime_dir / "packrat-lab" / "pools" / f"{entry.id}.json"
    assert registry.pools_dir() == path.parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["pid"] == os.getpid()
    assert data["token"] == "s3cret"
    assert data["url"] == "http://127.0.0.1:8123"
    assert data["model"] == "mlp" and data["plan"] == "2x1x4"
    assert [e.id for e in registry.list_pools()] == [entry.id]


def test_public_view_has_no_token() -> None:
    entry = registry.register(model="mlp", plan="1x2x8", url="http://127.0.0.1:1", token="s3cret")
    public = entry.public()
    assert "token" not in public
    assert "s3cret" not in json.dumps(public)
    assert public["id"] == entry.id


def test_unregister_removes_the_entry() -> None:
    entry = registry.register(model="mlp", plan="2x1x4", url="http://127.0.0.1:1", token="t")
    assert registry.unregister(entry.id) is True
    assert registry.list_pools() == []
    assert registry.get_pool(entry.id) is None
    assert registry.unregister(entry.id) is False


def test_list_pools_drops_entries_of_dead_processes(runtime_dir: Path) -> None:
    alive = registry.register(model="mlp", plan="2x1x4", url="http://127.0.0.1:1", token="t", started=2.0)
    dead = registry.register(
        model="cnn", plan="1x2x8", url="http://127.0.0.1:2", token="t", pid=_dead_pid(), started=1.0
    )
    assert [e.id for e in registry.list_pools(clean=False)] == [alive.id]
    assert (registry.pools_dir() / f"{dead.id}.json").exists()
    assert [e.id for e in registry.list_pools()] == [alive.id]
    assert not (registry.pools_dir() / f"{dead.id}.json").exists()


def test_a_reused_pid_is_not_the_registered_process() -> None:
    entry = registry.register(model="mlp", plan="2x1x4", url="http://127.0.0.1:1", token="t")
    path = registry.pools_dir() / f"{entry.id}.json"
    data = json.loads(path.read_text())
    if data["pid_start"] is None:
        pytest.skip("no /proc start times on this platform")
    data["pid_start"] = "1"  # as if another process with our pid had registered long ago
    path.write_text(json.dumps(data))
    assert registry.list_pools() == []


def test_malformed_files_are_skipped_and_old_ones_removed() -> None:
    folder = registry.pools_dir(create=True)
    fresh, old = folder / "fresh.json", folder / "old.json"
    fresh.write_text("{not json")
    old.write_text('{"id": "x"}')
    os.utime(old, (1, 1))
    assert registry.list_pools() == []
    assert fresh.exists() and not old.exists()


def test_update_rewrites_the_plan_and_keeps_the_file_private() -> None:
    entry = registry.register(model="mlp", plan="2x1x4", url="http://127.0.0.1:1", token="t")
    updated = registry.update(entry.id, plan="1x2x8")
    assert updated is not None and updated.plan == "1x2x8" and updated.token == "t"
    assert registry.list_pools()[0].plan == "1x2x8"
    assert stat.S_IMODE((registry.pools_dir() / f"{entry.id}.json").stat().st_mode) == 0o600
    registry.unregister(entry.id)
    assert registry.update(entry.id, plan="1x1x1") is None


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 65])
def test_ids_that_could_escape_the_folder_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a registry id"):
        registry.get_pool(bad)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8123", "http://10.0.0.5:8123", "http://example.org", "ftp://127.0.0.1/"]
)
def test_register_refuses_urls_off_the_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="http://127.0.0.1:8123"):
        registry.register(model="mlp", plan="2x1x4", url=url, token="t")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1", "http://127.3.2.1:1", "http://[::1]:8", "https://localhost"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert registry.is_loopback_url(url)


def test_no_pools_folder_means_no_pools() -> None:
    assert registry.list_pools() == []
