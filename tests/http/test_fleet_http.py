"""One OIP v2 server for a Fleet: per-model routes, management, selection groups with feedback.

The fast part runs on fake workers; the slow part is the real thing (worker processes, tritonclient).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fake_workers import FakeWorld, fake_model
from http_call import call

from packrat_lab.fleet import Fleet, Selection
from packrat_lab.host import HostInfo
from packrat_lab.serving.http.fleet import serve_fleet
from packrat_lab.serving.http.server import Server
from packrat_lab.serving.lifecycle import FailurePolicy

TOKEN = "fleet-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def infer_body(x: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]
    }


def output_of(body: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    obj = json.loads(body)
    out = obj["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"]), obj


@pytest.fixture(scope="module")
def fake_fleet() -> Iterator[Fleet]:
    world = FakeWorld(run_s=0.001)
    models = {
        "a": ("mlp", "1x1x4"),
        "b": ("mlp", "2x1x2"),
        "pick": Selection(("a", "b"), seed=1),
        "ens": Selection(("a", "b"), policy="ensemble", slo_ms=500),
    }
    host = HostInfo("fake 6-core", tuple(range(6)), None)
    policy = FailurePolicy(tick_s=0.01, backoff_s=0.02)
    with Fleet(models, host=host, channels=world.factory, announce=False, warmup=0, policy=policy) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def server(fake_fleet: Fleet) -> Iterator[Server]:
    with serve_fleet(fake_fleet, token=TOKEN) as s:
        yield s


def test_every_model_and_group_is_served_under_its_name(server: Server) -> None:
    x = np.arange(2 * 1024, dtype=np.float32).reshape(2, 1024)
    for name in ("a", "b", "pick", "ens"):
        status, _, body = call(f"{server.url}/v2/models/{name}/infer", "POST", infer_body(x))
        assert status == 200, body
        out, obj = output_of(body)
        assert obj["model_name"] == name
        np.testing.assert_array_equal(out, fake_model(torch.from_numpy(x)).numpy())
    status, _, body = call(f"{server.url}/v2/repository/index", "POST", {})
    assert status == 200
    assert [e["name"] for e in json.loads(body)] == ["a", "b", "pick", "ens"]
    assert call(f"{server.url}/v2/health/ready")[0] == 200
    assert call(f"{server.url}/v2/models/a/ready")[0] == 200


def test_unknown_model_is_a_one_line_404_and_the_server_keeps_serving(server: Server) -> None:
    status, _, body = call(
        f"{server.url}/v2/models/zz/infer", "POST", infer_body(np.zeros((1, 1024), np.float32))
    )
    assert status == 404
    assert "unknown model 'zz'" in json.loads(body)["error"]
    status, _, body = call(
        f"{server.url}/v2/models/a/infer", "POST", infer_body(np.zeros((1, 3), np.float32))
    )
    assert status == 400
    assert call(f"{server.url}/v2/models/a/ready")[0] == 200


def test_group_answers_carry_a_request_id_that_feedback_takes_once(server: Server) -> None:
    x = np.ones((1, 1024), np.float32)
    status, _, body = call(f"{server.url}/v2/models/pick/infer", "POST", infer_body(x))
    assert status == 200
    params = json.loads(body)["parameters"]
    assert params["members"][0] in ("a", "b")
    url = f"{server.url}/v2/models/pick/feedback"
    status, _, body = call(url, "POST", {"request_id": params["request_id"], "reward": 1.0})
    assert status == 200 and json.loads(body)["group"] == "pick"
    assert call(url, "POST", {"request_id": params["request_id"], "reward": 1.0})[0] == 404
    status, _, body = call(url, "POST", {"request_id": "x", "reward": "lots"})
    assert status == 400 and "'reward' must be a number" in json.loads(body)["error"]
    assert call(f"{server.url}/v2/models/a/feedback", "POST", {"request_id": "x", "reward": 1.0})[0] == 400


def test_fleet_management_moves_cores_with_the_token_only(server: Server, fake_fleet: Fleet) -> None:
    status, _, body = call(f"{server.url}/packrat/fleet")
    assert status == 200
    view = json.loads(body)
    assert {n: len(m["cores"]) for n, m in view["models"].items()} == {"a": 1, "b": 2}
    assert view["groups"]["ens"] == {"policy": "ensemble", "members": ["a", "b"]}
    plans = {"plans": {"a": "1x3x4", "b": "1x1x2"}}
    assert call(f"{server.url}/packrat/fleet", "PUT", plans)[0] == 403
    status, _, body = call(f"{server.url}/packrat/fleet", "PUT", plans, AUTH)
    assert status == 200, body
    assert {n: len(m["cores"]) for n, m in json.loads(body)["models"].items()} == {"a": 3, "b": 1}
    assert fake_fleet.plans["a"].text == "1x3x4"
    status, _, body = call(f"{server.url}/packrat/fleet", "PUT", {"plans": {"a": "9x1x4"}}, AUTH)
    assert status == 400 and "cores but this host has 6" in json.loads(body)["error"]
    status, _, body = call(f"{server.url}/packrat/models/b/plan", "PUT", {"plan": "2x1x2"}, AUTH)
    assert status == 200, body
    assert len(json.loads(body)["cores"]) == 2
    status, _, body = call(f"{server.url}/packrat/models/b/stats")
    assert status == 200 and json.loads(body)["plan"] == "2x1x2"
    status, _, body = call(f"{server.url}/packrat/fleet/stats")
    assert set(json.loads(body)) == {"a", "b", "pick", "ens"}
    status, _, body = call(f"{server.url}/packrat/fleet/events")
    kinds = [e["kind"] for e in json.loads(body)["events"]]
    assert kinds.count("cores") >= 3


def test_a_member_objective_is_set_live_through_the_shared_management_route(
    server: Server, fake_fleet: Fleet
) -> None:
    url = f"{server.url}/packrat/models/a/slo"
    status, _, body = call(url)
    assert status == 200 and json.loads(body) == {"model": "a", "slo_ms": None}
    assert call(url, "PUT", {"slo_ms": 40})[0] == 403
    status, _, body = call(url, "PUT", {"slo_ms": 40}, AUTH)
    assert status == 200 and json.loads(body)["slo_ms"] == 40.0
    try:
        assert fake_fleet.pools["a"].slo_ms == 40.0 and fake_fleet.pools["b"].slo_ms is None
        assert json.loads(call(f"{server.url}/packrat/models/a/stats")[2])["slo_ms"] == 40.0
        status, _, body = call(url, "PUT", {"slo_ms": "soon"}, AUTH)
        assert status == 400 and "got 'soon'" in json.loads(body)["error"]
        status, _, body = call(f"{server.url}/packrat/models/zz/slo", "PUT", {"slo_ms": 40}, AUTH)
        assert status == 404 and "unknown model 'zz'" in json.loads(body)["error"]
        status, _, body = call(f"{server.url}/packrat/models/ens/slo", "PUT", {"slo_ms": 40}, AUTH)
        assert status == 400 and "selection group" in json.loads(body)["error"]
        assert fake_fleet.pools["a"].slo_ms == 40.0
    finally:
        status, _, body = call(url, "PUT", {"slo_ms": None}, AUTH)
    assert status == 200 and fake_fleet.pools["a"].slo_ms is None


@pytest.mark.slow
def test_real_fleet_server_with_tritonclient_mlp_and_tiny_cnn() -> None:
    tritonclient_http = pytest.importorskip("tritonclient.http")
    from packrat_lab.workloads.registry import get_workload

    mlp = get_workload("mlp", width=64, layers=2)
    cnn = get_workload("tiny-cnn")
    with Fleet({"mlp": (mlp, "1x1x2"), "cnn": (cnn, "1x1x2")}, announce=False, warmup=1) as fleet:
        assert set(fleet.shares["mlp"]).isdisjoint(fleet.shares["cnn"])
        with serve_fleet(fleet, token=TOKEN) as server:
            client = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
            try:
                assert client.is_server_ready()
                for name, workload in (("mlp", mlp), ("cnn", cnn)):
                    assert client.is_model_ready(name)
                    meta = client.get_model_metadata(name)
                    assert meta["inputs"][0]["shape"] == [-1, *workload.sample_shape]
                    x = workload.example_input(3).numpy()
                    inp = tritonclient_http.InferInput("INPUT", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x, binary_data=True)
                    got = client.infer(name, [inp]).as_numpy("OUTPUT")
                    with torch.no_grad():
                        want = workload.build().eval()(torch.from_numpy(x)).numpy()
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
                status, _, body = call(
                    f"{server.url}/packrat/models/mlp/plan", "PUT", {"plan": "1x1x4"}, AUTH
                )
                assert status == 200, body
                assert fleet.plans["mlp"].text == "1x1x4"
                assert fleet.shares["mlp"] == tuple(json.loads(body)["cores"])
            finally:
                client.close()


def test_the_one_pool_plan_and_stats_routes_describe_the_whole_fleet(
    server: Server, fake_fleet: Fleet
) -> None:
    status, _, body = call(f"{server.url}/packrat/plan")
    assert status == 200
    data = json.loads(body)
    assert data["model"] == "fleet"
    assert data["plan"]["plan"] == " ".join(f"{n}={p.text}" for n, p in fake_fleet.plans.items())
    assert {m["name"]: m["cores"] for m in data["members"]} == {
        n: list(c) for n, c in fake_fleet.shares.items()
    }
    status, _, body = call(f"{server.url}/packrat/stats")
    stats = json.loads(body)
    assert status == 200 and stats["name"] == "fleet" and set(stats["models"]) == {"a", "b", "pick", "ens"}
    status, _, body = call(f"{server.url}/packrat/plan", "PUT", {"plan": "1x1x4"}, AUTH)
    assert status == 400 and "PUT /packrat/fleet" in json.loads(body)["error"]
