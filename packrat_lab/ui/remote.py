"""The Lab's pool as its own `packrat-lab serve` process; the widget is a client of its management routes.

Serving never shares the kernel with the widget: the kernel only polls GET /packrat/stats and
/packrat/events (as the JupyterLab sidebar does) and sends PUT /packrat/plan, PUT /packrat/auto,
PUT /packrat/slo and POST /packrat/stop with the pool's token. So what the Lab shows is the pool's own latency, and it
follows every change made elsewhere (Auto, the sidebar, another notebook, a stop).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.serving.http.client import V2Client

__all__ = ["TOKEN_ENV", "RemotePool", "model_argument", "start_server"]

TOKEN_ENV = "PACKRAT_LAB_TOKEN"
_SWITCH_TIMEOUT_S = 300.0  # a live switch warms new workers first: seconds for big models


class RemotePool:
    """The part of the Pool API the Lab drives, spoken over HTTP to a pool served by another process."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        process: subprocess.Popen[str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.process = process
        self.timeout_s = timeout_s
        self._local = threading.local()  # V2Client is one connection: one per thread
        self.last_stats: dict[str, Any] = {}

    def _client(self, timeout: float | None = None) -> V2Client:
        from packrat_lab.serving.http.client import V2Client

        if timeout is not None:  # long calls (a switch) get their own connection
            return V2Client(self.url, timeout=timeout, token=self.token)
        client: V2Client | None = getattr(self._local, "client", None)
        if client is None:
            client = V2Client(self.url, timeout=self.timeout_s, token=self.token)
            self._local.client = client
        return client

    @property
    def pid(self) -> int | None:
        """Process id of the server when this Lab started it."""
        return self.process.pid if self.process is not None else None

    def stats(self) -> dict[str, Any]:
        """GET /packrat/stats: the pool's own counters, latency window, plan, state and auto flag."""
        data = self._client().get_json("/packrat/stats")
        if not isinstance(data, dict):
            msg = f"/packrat/stats at {self.url} answered {type(data).__name__}, not a JSON object"
            raise RuntimeError(msg)  # noqa: TRY004 - a protocol fault, reported as a status line
        self.last_stats = data
        return data

    def events(self) -> list[dict[str, Any]]:
        """GET /packrat/events: the pool's timeline."""
        data = self._client().get_json("/packrat/events")
        events = data.get("events", []) if isinstance(data, dict) else []
        return [e for e in events if isinstance(e, dict)]

    @property
    def state(self) -> str:
        """The pool's state at the last stats read."""
        return str(self.last_stats.get("state", "starting"))

    def reconfigure(self, plan: Plan | str) -> dict[str, Any]:
        """PUT /packrat/plan: a live active-passive switch, answered once switched (or refused)."""
        text = plan if isinstance(plan, str) else plan.text
        client = self._client(timeout=_SWITCH_TIMEOUT_S)
        try:
            result: dict[str, Any] = client.send_json("PUT", "/packrat/plan", {"plan": text})
        finally:
            client.close()
        return result

    def set_auto(self, enabled: bool) -> None:
        """PUT /packrat/auto."""
        self._client().send_json("PUT", "/packrat/auto", {"auto": bool(enabled)})

    def set_slo(self, slo_ms: float | None) -> None:
        """PUT /packrat/slo: the pool's latency objective in ms, changed live (None: off)."""
        self._client().send_json("PUT", "/packrat/slo", {"slo_ms": slo_ms})

    def close(self, timeout: float = 30.0) -> None:
        """POST /packrat/stop (the server closes the pool and exits); a server we started is reaped."""
        try:
            self._client(timeout=timeout).send_json("POST", "/packrat/stop", {})
        except Exception:  # noqa: BLE001, S110 - already stopped (e.g. from the sidebar): nothing to stop
            pass
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(5)
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()


def model_argument(model: Any, folder: Path) -> str:
    """What `packrat-lab serve` takes for this model: a zoo name, a file, or a saved workload recipe."""
    from packrat_lab.workloads.registry import get_workload

    if isinstance(model, str):
        return model
    workload = get_workload(model)
    spec = workload.spec
    if spec.kind == "zoo" and not spec.options:
        return spec.target
    path = folder / f"{workload.name.replace('/', '-')[:40] or 'model'}.workload.json"
    path.write_text(json.dumps(workload.to_dict()))
    return str(path)


def _registry_token(pid: int) -> tuple[str | None, str | None]:
    """(url, token) that the server process announced in the pool registry, if it did."""
    from packrat_lab.registry import list_pools

    for entry in list_pools(clean=False):
        if entry.pid == pid:
            return entry.url, entry.token
    return None, None


def start_server(
    model: Any,
    plan: Plan,
    profile: Profile | None = None,
    *,
    auto: bool = False,
    slo_ms: float | None = None,
    timeout_s: float = 300.0,
    python: str = sys.executable,
) -> RemotePool:
    """Start `packrat-lab serve MODEL --plan P --port 0 [--slo-ms MS]` with a fresh token; wait until it serves."""
    folder = Path(tempfile.mkdtemp(prefix="packrat-lab-serve-"))
    # the child ends itself when this process (the kernel) is gone, however it died
    argv = [python, "-m", "packrat_lab.ui._serve_child", str(os.getpid()), "serve"]
    argv += [model_argument(model, folder), "--plan", plan.text]
    argv += ["--port", "0", "--host", "127.0.0.1"]
    if slo_ms is not None:
        argv += ["--slo-ms", repr(float(slo_ms))]
    if profile is not None:
        argv += ["--profile", str(profile.save(folder / "lab.packrat.json"))]
        if auto:
            argv.append("--auto")
    token = secrets.token_urlsafe(24)
    env = {**os.environ, TOKEN_ENV: token, "PYTHONUNBUFFERED": "1"}
    stderr = (folder / "serve.log").open("w")
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, start_new_session=True
    )
    stderr.close()
    url, printed_token = _read_banner(process, timeout_s)
    if url is None:
        process.kill()
        process.wait(5)
        log = (folder / "serve.log").read_text(errors="replace").strip().splitlines()
        why = next(
            (line for line in reversed(log) if "error" in line.lower()), log[-1] if log else "no output"
        )
        msg = f"the pool server did not start: {why}"
        raise RuntimeError(msg)
    threading.Thread(target=_drain, args=(process,), daemon=True, name="packrat-serve-stdout").start()
    announced_url, announced_token = _registry_token(process.pid)
    pool = RemotePool(announced_url or url, announced_token or printed_token or token, process=process)
    weakref.finalize(pool, _terminate, process)  # also at interpreter exit: a kernel's pool ends with it
    return pool


def _terminate(process: subprocess.Popen[str]) -> None:
    """SIGTERM a server we started (it closes its pool cleanly) unless it already exited."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _read_banner(process: subprocess.Popen[str], timeout_s: float) -> tuple[str | None, str | None]:
    """The url (and a printed token) from the serve banner; None if the process ends first."""
    found: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        if process.stdout is not None:
            for line in process.stdout:
                key, _, value = line.strip().partition(" ")
                if key in ("url", "token") and value.strip():
                    found[key] = value.strip()
                if line.startswith("Ctrl-C"):  # the banner's last line
                    break
        done.set()

    threading.Thread(target=read, daemon=True, name="packrat-serve-banner").start()
    done.wait(timeout_s)
    return found.get("url"), found.get("token")


def _drain(process: subprocess.Popen[str]) -> None:
    """Read the server's stdout to its end so it never blocks on a full pipe."""
    if process.stdout is not None:
        for _ in process.stdout:
            pass
