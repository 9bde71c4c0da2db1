"""Server extension routes under /packrat-lab/, against a real Jupyter server and a stand-in pool.

The stand-in pool is a small HTTP server that answers the pool's management routes and, like the
real one, refuses mutating requests without its bearer token: it lets these tests check what the
extension forwards without starting worker processes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient

from packrat_lab import registry
from packrat_lab.plan import Plan
from packrat_lab.profiling.table import profile_from_latencies

POOL_TOKEN = "pool-secret-token"


@dataclass
class StandInPool:
    """State of the stand-in pool and what it was asked."""

    plan: str = "2x1x4"
    state: str = "serving"
    auto: bool = False
    calls: list[tuple[str, str, str | None, Any]] = field(default_factory=list)
    url: str = ""


def _handler(pool: StandInPool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            pool.calls.append((self.command, self.path, self.headers.get("Authorization"), body))
            return body

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {POOL_TOKEN}":
                self._send(401, {"message": "missing or wrong bearer token"})
                return False
            return True

        def do_GET(self) -> None:
            self._record()
            plan = Plan.parse(pool.plan).with_cores(
                [[i] for i in range(len(Plan.parse(pool.plan).instances))]
            )
            if self.path == "/packrat/plan":
                self._send(200, {"plan": plan.to_dict(), "state": pool.state})
            elif self.path == "/packrat/stats":
                self._send(
                    200,
                    {
                        "state": pool.state,
                        "throughput_rps": 812.5,
                        "p50_ms": 4.5,
                        "p99_ms": 9.25,
                        "usable_cores": 4,
                        "auto": pool.auto,
                        "token": "leak",
                    },
                )
            else:
                self._send(404, {"message": "no route"})

        def do_PUT(self) -> None:
            body = self._record()
            if not self._authorised():
                return
            if self.path == "/packrat/plan":
                pool.plan = body["plan"] if "plan" in body else f"{body['batch'] // 4}x1x4"
                self._send(200, {"plan": Plan.parse(pool.plan).to_dict(), "state": "serving"})
            elif self.path == "/packrat/auto":
                pool.auto = bool(body["auto"])
                self._send(200, {"auto": pool.auto})
            else:
                self._send(404, {"message": "no route"})

        def do_POST(self) -> None:
            self._record()
            if not self._authorised():
                return
            pool.state = "stopped"
            self._send(200, {"state": "stopped"})

    return Handler


@pytest.fixture
def stand_in(jp_environ: None) -> Iterator[StandInPool]:
    """A stand-in pool on 127.0.0.1, registered in the test's own runtime dir."""
    pool = StandInPool()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(pool))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pool.url = f"http://127.0.0.1:{server.server_address[1]}"
    entry = registry.register(model="mlp", plan=pool.plan, url=pool.url, token=POOL_TOKEN)
    yield pool
    registry.unregister(entry.id)
    server.shutdown()
    server.server_close()


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"packrat_lab": True}}}


def _pool_id() -> str:
    (entry,) = registry.list_pools()
    return entry.id


async def test_pools_lists_the_registered_pool_with_stats_and_no_token(
    jp_fetch: Any, stand_in: StandInPool
) -> None:
    response = await jp_fetch("packrat-lab", "pools")
    assert response.code == 200
    text = response.body.decode()
    assert POOL_TOKEN not in text and "leak" not in text
    (pool,) = json.loads(text)["pools"]
    assert pool["model"] == "mlp"
    assert pool["plan"] == "2x1x4"
    assert pool["state"] == "serving"
    assert pool["throughput"] == 812.5 and pool["p50_ms"] == 4.5 and pool["p99_ms"] == 9.25
    assert pool["cores"] == 4
    assert [(i["threads"], i["batch"], i["cores"]) for i in pool["instances"]] == [(1, 4, [0]), (1, 4, [1])]
    assert pool["reachable"] is True and pool["error"] is None
    # the extension read the pool's status routes and sent the pool's token, not the user's
    assert ("GET", "/packrat/stats", f"Bearer {POOL_TOKEN}", None) in stand_in.calls


async def test_unauthenticated_requests_are_refused(
    http_server_client: Any, jp_base_url: str, stand_in: StandInPool
) -> None:
    for method, path, body in (
        ("GET", "packrat-lab/pools", None),
        ("POST", f"packrat-lab/pools/{_pool_id()}/stop", b""),
        ("POST", f"packrat-lab/pools/{_pool_id()}/plan", b'{"plan": "1x2x8"}'),
    ):
        response = await http_server_client.fetch(
            jp_base_url + path, method=method, body=body, raise_error=False
        )
        assert response.code == 403, (method, path, response.code)
    assert stand_in.state == "serving" and stand_in.plan == "2x1x4"
    assert not stand_in.calls  # nothing was forwarded


async def test_switch_plan_forwards_with_the_pools_token(jp_fetch: Any, stand_in: StandInPool) -> None:
    pool_id = _pool_id()
    response = await jp_fetch(
        "packrat-lab", "pools", pool_id, "plan", method="POST", body=json.dumps({"plan": "1x2x8"})
    )
    assert response.code == 200
    assert stand_in.plan == "1x2x8"
    assert list(stand_in.calls[-1]) == ["PUT", "/packrat/plan", f"Bearer {POOL_TOKEN}", {"plan": "1x2x8"}]
    entry = registry.get_pool(pool_id)
    assert entry is not None and entry.plan == "1x2x8"  # the registry follows the switch
    response = await jp_fetch(
        "packrat-lab", "pools", pool_id, "plan", method="POST", body=json.dumps({"batch": 8})
    )
    assert response.code == 200 and stand_in.plan == "2x1x4"
    method, _, _, body = stand_in.calls[-1]
    assert (method, body) == ("PUT", {"batch": 8})


async def test_a_sidebar_switch_pauses_auto_first(jp_fetch: Any, stand_in: StandInPool) -> None:
    """Regression (issue 9 #4): Auto silently undid a manual sidebar switch within 5 s."""
    stand_in.auto = True
    response = await jp_fetch(
        "packrat-lab", "pools", _pool_id(), "plan", method="POST", body=json.dumps({"plan": "1x2x8"})
    )
    assert json.loads(response.body)["auto_paused"] is True
    puts = [(path, body) for method, path, _, body in stand_in.calls if method == "PUT"]
    assert puts == [("/packrat/auto", {"auto": False}), ("/packrat/plan", {"plan": "1x2x8"})]
    assert stand_in.auto is False and stand_in.plan == "1x2x8"


async def test_pools_name_their_owner(jp_fetch: Any, stand_in: StandInPool) -> None:
    (pool,) = json.loads((await jp_fetch("packrat-lab", "pools")).body)["pools"]
    owner = pool["owner"]
    assert owner["group"] == "other"  # registered by this test process, not by one of the server's kernels
    assert owner["pid"] == os.getpid() and f"(pid {os.getpid()})" in owner["label"]


def test_owner_of_a_kernel_child_names_the_notebook() -> None:
    from packrat_lab.jupyter_server.owners import owner_view, parent_chain

    assert parent_chain(os.getpid())[:2] == [os.getpid(), os.getppid()]
    owner = owner_view(os.getpid(), {os.getppid(): "abcdef123456"}, {"abcdef123456": "work/02.ipynb"})
    assert owner["group"] == "kernel" and owner["notebook"] == "work/02.ipynb"
    assert owner["label"] == f"notebook work/02.ipynb (kernel pid {os.getppid()}, server pid {os.getpid()})"


@pytest.mark.parametrize(
    "body", ['{"plan": "2x1"}', '{"batch": 0}', '{"batch": "8"}', "[1]", "not json", "{}"]
)
async def test_bad_plan_requests_are_refused_before_reaching_the_pool(
    jp_fetch: Any, stand_in: StandInPool, body: str
) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "pools", _pool_id(), "plan", method="POST", body=body)
    assert info.value.code == 400
    assert not any(call[0] == "PUT" for call in stand_in.calls)


async def test_stop_forwards_and_unknown_pools_are_404(jp_fetch: Any, stand_in: StandInPool) -> None:
    response = await jp_fetch("packrat-lab", "pools", _pool_id(), "stop", method="POST", body=b"")
    assert response.code == 200 and stand_in.state == "stopped"
    assert stand_in.calls[-1][:3] == ("POST", "/packrat/stop", f"Bearer {POOL_TOKEN}")
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "pools", "999-deadbeef", "stop", method="POST", body=b"")
    assert info.value.code == 404


async def test_a_pool_that_refuses_the_token_is_reported_not_obeyed(
    jp_fetch: Any, stand_in: StandInPool
) -> None:
    entry = registry.list_pools()[0]
    registry.update(entry.id, token="wrong")
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "pools", entry.id, "stop", method="POST", body=b"")
    assert info.value.code == 401
    assert stand_in.state == "serving"


async def test_a_pool_url_off_the_loopback_never_gets_the_token(jp_fetch: Any, stand_in: StandInPool) -> None:
    entry = registry.list_pools()[0]
    path = registry.pools_dir() / f"{entry.id}.json"
    path.write_text(path.read_text().replace("127.0.0.1", "10.1.2.3"))
    (pool,) = json.loads((await jp_fetch("packrat-lab", "pools")).body)["pools"]
    assert pool["reachable"] is False and "loopback" in pool["error"]
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "pools", entry.id, "stop", method="POST", body=b"")
    assert info.value.code == 502
    assert stand_in.calls == []


async def test_an_unreachable_pool_is_listed_as_unreachable(jp_fetch: Any, jp_environ: None) -> None:
    registry.register(model="mlp", plan="2x1x4", url="http://127.0.0.1:9", token="t")
    (pool,) = json.loads((await jp_fetch("packrat-lab", "pools")).body)["pools"]
    assert pool["reachable"] is False
    assert pool["state"] == "unreachable"
    assert "not reachable" in pool["error"]
    assert [i["batch"] for i in pool["instances"]] == [4, 4]  # from the registered plan text


async def test_profile_route_returns_surface_and_plan_map(jp_fetch: Any, jp_root_dir: Path) -> None:
    latencies = {(t, b): 2.0 * b / t**0.5 + 1.0 for t in (1, 2) for b in (1, 2, 4)}
    del latencies[(2, 1)]
    profile_from_latencies("mlp", latencies).save(jp_root_dir / "mlp.packrat.json")
    response = await jp_fetch("packrat-lab", "profile", params={"path": "mlp.packrat.json"})
    view = json.loads(response.body)
    assert view["model"] == "mlp"
    assert view["threads"] == [1, 2] and view["batches"] == [1, 2, 4]
    assert view["latency_ms"][0][2] == pytest.approx(9.0)
    assert view["latency_ms"][1][0] is None
    assert view["cores"] == 2
    assert view["plan_map_note"] is None
    rows = {r["batch"]: r for r in view["plan_map"]}
    assert sorted(rows) == [1, 2, 4]
    # B=4 on 2 cores: two 1-thread instances of batch 2 (5 ms) beat one 2-thread instance (6.66 ms)
    assert rows[4]["plan"] == "2x1x2"
    assert rows[4]["expected_ms"] == pytest.approx(5.0)
    assert rows[4]["fat_ms"] == pytest.approx(8 / 2**0.5 + 1)
    assert rows[4]["speedup"] == pytest.approx((8 / 2**0.5 + 1) / 5.0)


async def test_profile_route_warns_when_measured_on_another_host(jp_fetch: Any, jp_root_dir: Path) -> None:
    from packrat_lab.host import fingerprint

    profile = profile_from_latencies("mlp", {(1, 1): 2.0, (1, 2): 3.0})
    profile.host = fingerprint()
    profile.save(jp_root_dir / "here.packrat.json")
    profile.host = {**fingerprint(), "cpu_model": "Imaginary CPU 9000"}
    profile.save(jp_root_dir / "elsewhere.packrat.json")
    here = json.loads((await jp_fetch("packrat-lab", "profile", params={"path": "here.packrat.json"})).body)
    assert here["host_differences"] == []
    away = json.loads(
        (await jp_fetch("packrat-lab", "profile", params={"path": "elsewhere.packrat.json"})).body
    )
    (difference,) = away["host_differences"]
    assert "Imaginary CPU 9000" in difference


@pytest.mark.parametrize(
    ("path", "code"),
    [("../outside.packrat.json", 403), ("missing.packrat.json", 404), ("", 400), ("bad.packrat.json", 422)],
)
async def test_profile_route_refuses_bad_paths(
    jp_fetch: Any, jp_root_dir: Path, path: str, code: int
) -> None:
    (jp_root_dir / "bad.packrat.json").write_text('{"format": "something-else"}')
    (jp_root_dir.parent / "outside.packrat.json").write_text("{}")
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "profile", params={"path": path})
    assert info.value.code == code


@pytest.mark.slow
async def test_a_real_pool_is_listed_switched_and_stopped_through_the_extension(
    jp_fetch: Any, jp_environ: None
) -> None:
    """Real worker processes and the pool's real management server: a Pool announces itself on start."""
    from packrat_lab.serving.pool import Pool

    pool = Pool("mlp", "2x1x4", name="ext-test")
    try:
        (entry,) = registry.list_pools()
        (listed,) = json.loads((await jp_fetch("packrat-lab", "pools")).body)["pools"]
        assert (listed["name"], listed["plan"], listed["state"]) == ("ext-test", "2x1x4", "serving")
        cores = [c for i in listed["instances"] for c in i["cores"]]
        assert len(cores) == len(set(cores)) == 2  # each instance pinned to its own core
        assert entry.token not in json.dumps(listed)

        body = json.dumps({"plan": "1x2x4"})
        response = await jp_fetch("packrat-lab", "pools", listed["id"], "plan", method="POST", body=body)
        assert response.code == 200
        assert pool.plan.text == "1x2x4"
        assert registry.list_pools()[0].plan == "1x2x4"
        (listed,) = json.loads((await jp_fetch("packrat-lab", "pools")).body)["pools"]
        assert (listed["plan"], listed["reconfigurations"], listed["auto"]) == ("1x2x4", 1, False)

        response = await jp_fetch("packrat-lab", "pools", listed["id"], "stop", method="POST", body=b"")
        assert response.code == 200
        assert pool.state == "closed"
        assert registry.list_pools() == []  # withdrawn when the pool closed
    finally:
        pool.close()
