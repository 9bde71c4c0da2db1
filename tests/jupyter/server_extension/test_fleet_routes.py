"""The sidebar's fleet routes against a real Jupyter server and a real fleet HTTP server (fake workers).

The fleet is a real `Fleet` announced to the registry and served by `serve_fleet` (its token,
its /packrat/fleet routes); only its workers are the fast in-process fakes of fake_workers.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpclient
from fake_workers import FakeWorld

from packrat_lab import registry
from packrat_lab.errors import PackratError
from packrat_lab.fleet import Fleet
from packrat_lab.host import HostInfo
from packrat_lab.serving.lifecycle import FailurePolicy

HOST = HostInfo("fake 8-core", tuple(range(8)), None)
POLICY = FailurePolicy(hang_timeout_s=5.0, tick_s=0.01, backoff_s=0.02, max_backoff_s=0.1)


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"packrat_lab": True}}}


@pytest.fixture
def fleet(jp_environ: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """Two models on a fake 8-core host, announced (registry entry of kind 'fleet') and served over HTTP."""
    monkeypatch.setenv("PACKRAT_LAB_ANNOUNCE", "1")
    world = FakeWorld(run_s=0.002)
    with Fleet(
        {"a": ("mlp", "2x1x2"), "b": ("mlp", "1x3x4")},
        host=HOST,
        channels=world.factory,
        warmup=0,
        policy=POLICY,
    ) as running:
        yield running


async def _listed(jp_fetch: Any) -> dict[str, Any]:
    (view,) = json.loads((await jp_fetch("packrat-lab", "pools")).body)["pools"]
    return view  # type: ignore[no-any-return]


def _core_map(view: dict[str, Any]) -> dict[str, list[int]]:
    return {m["name"]: m["cores"] for m in view["members"]}


def _instance_cores(view: dict[str, Any]) -> dict[str, list[list[int]]]:
    return {m["name"]: [i["cores"] for i in m["instances"]] for m in view["members"]}


async def test_a_fleet_is_one_card_with_each_models_cores_plan_and_stats(jp_fetch: Any, fleet: Fleet) -> None:
    x = fleet.pools["a"].workload.example_input(2).abs() + 0.1  # fake workers die on negative rows
    for _ in range(3):
        fleet.infer("a", x)
        fleet.infer("b", x)
    (entry,) = registry.list_pools()
    response = await jp_fetch("packrat-lab", "pools")
    assert entry.token not in response.body.decode()
    (view,) = json.loads(response.body)["pools"]
    assert (view["kind"], view["id"], view["reachable"], view["error"]) == ("fleet", entry.id, True, None)
    assert view["host_cores"] == list(range(8))
    assert _core_map(view) == {name: list(cores) for name, cores in fleet.shares.items()}
    assert set(view["members"][0]["cores"]).isdisjoint(view["members"][1]["cores"])
    # each instance's pinned cores, as the member pool runs them, inside its model's share
    assert _instance_cores(view) == {
        name: [list(i.cores) for i in plan.instances] for name, plan in fleet.plans.items()
    }
    a, b = view["members"]
    assert (a["plan"], a["model"], a["state"]) == ("2x1x2", "mlp", "serving")
    assert (b["plan"], b["state"]) == ("1x3x4", "serving")
    assert a["served"] == b["served"] == 3
    assert a["p50_ms"] is not None and a["p99_ms"] >= a["p50_ms"] and a["throughput"] > 0
    assert a["slo"] == dict.fromkeys(
        ("slo_ms", "slo_attainment", "goodput_rps", "rejected", "dropped", "late")
    )
    assert view["owner"]["group"] == "other"
    # the same view by id
    one = json.loads((await jp_fetch("packrat-lab", "fleets", entry.id)).body)
    assert _core_map(one) == _core_map(view)


async def test_a_repartition_shows_the_new_core_map_on_the_next_refresh(jp_fetch: Any, fleet: Fleet) -> None:
    before = _core_map(await _listed(jp_fetch))
    fleet.reconfigure({"a": "1x1x2", "b": "1x5x4"})
    after = await _listed(jp_fetch)
    assert _core_map(after) != before
    assert [len(c) for c in _core_map(after).values()] == [1, 5]
    assert _core_map(after) == {name: list(cores) for name, cores in fleet.shares.items()}
    assert [m["plan"] for m in after["members"]] == ["1x1x2", "1x5x4"]
    assert [m["reconfigurations"] for m in after["members"]] == [1, 1]


async def test_moving_cores_through_the_extension_forwards_with_the_fleets_token(
    jp_fetch: Any, fleet: Fleet
) -> None:
    (entry,) = registry.list_pools()
    body = json.dumps({"plans": {"a": "1x3x2", "b": "1x2x4"}})
    response = await jp_fetch("packrat-lab", "fleets", entry.id, "plans", method="POST", body=body)
    assert response.code == 200  # the fleet server refuses a PUT without its token: it was sent
    assert {n: p.text for n, p in fleet.plans.items()} == {"a": "1x3x2", "b": "1x2x4"}
    view = await _listed(jp_fetch)
    assert [len(c) for c in _core_map(view).values()] == [3, 2]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"plans": {"a": "2x1"}}', "'a'"),
        ('{"plans": {}}', "example"),
        ('{"plan": "1x1x2"}', "example"),
        ("not json", "not JSON"),
    ],
)
async def test_bad_fleet_plans_are_refused_before_reaching_the_fleet(
    jp_fetch: Any, fleet: Fleet, body: str, says: str
) -> None:
    (entry,) = registry.list_pools()
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "fleets", entry.id, "plans", method="POST", body=body)
    assert info.value.code == 400
    assert info.value.response is not None and says in json.loads(info.value.response.body)["message"]
    assert {n: p.text for n, p in fleet.plans.items()} == {"a": "2x1x2", "b": "1x3x4"}


async def test_a_plan_the_fleet_refuses_comes_back_as_its_one_line_message(
    jp_fetch: Any, fleet: Fleet
) -> None:
    (entry,) = registry.list_pools()
    body = json.dumps({"plans": {"a": "1x6x2", "b": "1x3x4"}})  # 9 cores on an 8-core host
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "fleets", entry.id, "plans", method="POST", body=body)
    assert info.value.code == 400
    assert info.value.response is not None
    message = json.loads(info.value.response.body)["message"]
    assert "8 usable" in message and "\n" not in message
    assert {n: p.text for n, p in fleet.plans.items()} == {"a": "2x1x2", "b": "1x3x4"}


async def test_pool_routes_point_a_fleet_to_its_own(jp_fetch: Any, fleet: Fleet) -> None:
    (entry,) = registry.list_pools()
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        body = json.dumps({"plan": "1x1x2"})
        await jp_fetch("packrat-lab", "pools", entry.id, "plan", method="POST", body=body)
    assert info.value.code == 400 and info.value.response is not None
    assert f"/packrat-lab/fleets/{entry.id}/plans" in json.loads(info.value.response.body)["message"]
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("packrat-lab", "fleets", "999-deadbeef")
    assert info.value.code == 404


async def test_member_slo_figures_are_the_pools_own(jp_fetch: Any, fleet: Fleet) -> None:
    """Attainment is on-time answers over requests offered with a deadline; misses are counted."""
    pool = fleet.pools["a"]
    x = pool.workload.example_input(1).abs() + 0.1
    for _ in range(4):
        pool.infer(x, deadline_ms=60_000)  # on time
    misses = 0
    for _ in range(2):
        try:
            pool.infer(x, deadline_ms=0.001)  # cannot be met: refused, dropped, or answered late
        except PackratError:
            pass
        misses += 1
    a, b = (await _listed(jp_fetch))["members"]
    slo = a["slo"]
    assert slo["slo_attainment"] == pytest.approx(4 / 6)
    assert slo["rejected"] + slo["dropped"] + slo["late"] == misses
    assert slo["slo_ms"] is None  # deadlines per request, no default objective
    assert slo["goodput_rps"] is not None and slo["goodput_rps"] > 0
    assert b["slo"]["slo_attainment"] is None and b["slo"]["goodput_rps"] is None  # no objective: no figures


async def test_an_unreachable_fleet_shows_its_announced_core_map(jp_fetch: Any, jp_environ: None) -> None:
    members = (
        {"name": "a", "model": "mlp", "plan": "1x2x4", "state": "serving", "cores": [0, 1]},
        {"name": "b", "model": "tiny-cnn", "plan": "1x1x2", "state": "serving", "cores": [2]},
    )
    registry.register(
        model="fleet: a, b",
        plan="a=1x2x4 b=1x1x2",
        url="http://127.0.0.1:9",
        token="t",
        kind="fleet",
        members=members,
    )
    view = await _listed(jp_fetch)
    assert view["kind"] == "fleet" and view["reachable"] is False and "not reachable" in view["error"]
    assert view["state"] == "unreachable"
    assert _core_map(view) == {"a": [0, 1], "b": [2]}
    assert [len(i) for i in _instance_cores(view)["a"]] == [0]  # the plan text, cores unknown


def test_a_pools_slo_figures_pass_through_and_are_absent_without_an_objective() -> None:
    from packrat_lab.jupyter_server.views import pool_view

    entry = registry.PoolEntry(
        id="1-ab", pid=1, model="mlp", plan="1x1x1", url="http://127.0.0.1:1", token="t", started=0.0
    )
    stats = {
        "slo_ms": 50.0,
        "slo_attainment": 0.9,
        "goodput_rps": 3.5,
        "rejected": 1,
        "dropped": 0,
        "late": 2,
    }
    assert pool_view(entry, None, {**stats, "throughput_rps": 4.0})["slo"] == stats
    # no objective: goodput would only repeat the throughput and the counters are all zero
    none = {**stats, "slo_ms": None, "slo_attainment": None}
    assert set(pool_view(entry, None, none)["slo"].values()) == {None}
