"""Pool registry: one JSON file per live pool so JupyterLab can find pools started by any process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PoolEntry",
    "get_pool",
    "is_loopback_url",
    "list_pools",
    "pid_alive",
    "pools_dir",
    "register",
    "unregister",
    "update",
]

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID_EXAMPLE = "'12345-a1b2c3d4'"


@dataclass(frozen=True)
class PoolEntry:
    """What a live pool tells the host about itself (the token is a secret: file mode 0600)."""

    id: str
    pid: int
    model: str
    plan: str
    url: str
    token: str
    started: float
    pid_start: str | None = None
    kind: str = "pool"  # "pool", or "fleet": several models, each with its cores in `members`
    members: tuple[dict[str, Any], ...] = ()  # a fleet's models: {name, model, plan, cores, state}

    def public(self) -> dict[str, Any]:
        """The entry without its token, safe to show in a browser."""
        data = asdict(self)
        data.pop("token")
        data.pop("pid_start")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PoolEntry:
        """Inverse of asdict; raises KeyError/TypeError/ValueError on a malformed file."""
        return cls(
            id=str(data["id"]),
            pid=int(data["pid"]),
            model=str(data["model"]),
            plan=str(data["plan"]),
            url=str(data["url"]),
            token=str(data["token"]),
            started=float(data["started"]),
            pid_start=None if data.get("pid_start") is None else str(data["pid_start"]),
            kind=str(data.get("kind", "pool")),
            members=tuple(dict(m) for m in data.get("members", ())),
        )


def _runtime_dir() -> Path:
    """Jupyter's runtime directory (jupyter_core when installed, else its documented default)."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:  # pragma: no cover - jupyter_core ships with every Jupyter install
        env = os.environ.get("JUPYTER_RUNTIME_DIR")
        if env:
            return Path(env)
        base = os.environ.get("JUPYTER_DATA_DIR") or str(Path.home() / ".local" / "share" / "jupyter")
        return Path(base) / "runtime"
    return Path(jupyter_runtime_dir())


def pools_dir(create: bool = False) -> Path:
    """Folder holding one `<id>.json` per live pool (honours JUPYTER_RUNTIME_DIR)."""
    path = _runtime_dir() / "packrat-lab" / "pools"
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _process_start(pid: int) -> str | None:
    """Kernel start time of a process (Linux), so a reused pid is not mistaken for the pool's."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; fields after ')' are plain
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, pid_start: str | None = None) -> bool:
    """True while process `pid` runs (and, when known, is the same process that registered)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    if pid_start is not None:
        now = _process_start(pid)
        if now is not None and now != pid_start:
            return False
    return True


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs on 127.0.0.0/8, ::1 or localhost: pool tokens are only ever sent there."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_id(pool_id: str) -> str:
    if not isinstance(pool_id, str) or not _ID.match(pool_id):
        msg = f"pool id {pool_id!r} is not a registry id; example: {_ID_EXAMPLE}"
        raise ValueError(msg)
    return pool_id


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def register(
    *,
    model: str,
    plan: str,
    url: str,
    token: str,
    pid: int | None = None,
    started: float | None = None,
    kind: str = "pool",
    members: tuple[dict[str, Any], ...] = (),
) -> PoolEntry:
    """Announce a pool: writes `<id>.json` (mode 0600) in pools_dir(); returns the entry."""
    if not is_loopback_url(url):
        msg = f"pool url {url!r} is not an http URL on this machine's loopback; example: 'http://127.0.0.1:8123'"
        raise ValueError(msg)
    pid = os.getpid() if pid is None else int(pid)
    entry = PoolEntry(
        id=f"{pid}-{secrets.token_hex(4)}",
        pid=pid,
        model=str(model),
        plan=str(plan),
        url=url.rstrip("/"),
        token=str(token),
        started=time.time() if started is None else float(started),
        pid_start=_process_start(pid),
        kind=kind,
        members=tuple(members),
    )
    _write_private(pools_dir(create=True) / f"{entry.id}.json", json.dumps(asdict(entry), indent=1))
    return entry


def update(pool_id: str, **changes: Any) -> PoolEntry | None:
    """Rewrite fields of a registered pool (e.g. its plan after a switch); None if it is gone."""
    path = pools_dir() / f"{_check_id(pool_id)}.json"
    entry = _read(path)
    if entry is None:
        return None
    data = {**asdict(entry), **changes}
    new = PoolEntry.from_dict(data)
    _write_private(path, json.dumps(asdict(new), indent=1))
    return new


def unregister(pool_id: str) -> bool:
    """Remove a pool's entry; False if it was already gone."""
    try:
        (pools_dir() / f"{_check_id(pool_id)}.json").unlink()
    except FileNotFoundError:
        return False
    return True


def _read(path: Path) -> PoolEntry | None:
    try:
        return PoolEntry.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _entries() -> Iterator[tuple[Path, PoolEntry | None]]:
    folder = pools_dir()
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        yield path, _read(path)


def list_pools(*, clean: bool = True) -> list[PoolEntry]:
    """Live pools, oldest first; entries of dead processes (and unreadable files) are removed."""
    live = []
    for path, entry in _entries():
        if entry is not None and pid_alive(entry.pid, entry.pid_start):
            live.append(entry)
        elif clean and (entry is not None or time.time() - _mtime(path) > 60):
            # a file we cannot parse may be half-written by a racing writer: give it a minute
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(live, key=lambda e: (e.started, e.id))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def get_pool(pool_id: str) -> PoolEntry | None:
    """The live pool with this id, or None."""
    path = pools_dir() / f"{_check_id(pool_id)}.json"
    entry = _read(path)
    if entry is None or not pid_alive(entry.pid, entry.pid_start):
        return None
    return entry
