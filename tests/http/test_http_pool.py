"""The real HTTP server in front of the real Pool (worker processes), driven by tritonclient and the load generator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

tritonclient_http = pytest.importorskip("tritonclient.http")
from http_call import call
from test_http_metrics import assert_exposition, parse_samples

from packrat_lab.loadgen import run_load
from packrat_lab.serving.http import Server, serve_pool
from packrat_lab.workloads.base import Workload
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workload() -> Workload:
    return get_workload("mlp", width=64, layers=2)


@pytest.fixture(scope="module")
def pool(workload: Workload) -> Iterator[Any]:
    from packrat_lab.serving.pool import Pool

    with Pool(workload, "2x1x2") as p:
        yield p


@pytest.fixture(scope="module")
def server(pool: Any) -> Iterator[Server]:
    with serve_pool(pool) as s:
        yield s


@pytest.fixture(scope="module")
def model(workload: Workload) -> torch.nn.Module:
    return workload.build()


@pytest.fixture()
def client(server: Server) -> Iterator[Any]:
    c = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


def _infer(client: Any, x: np.ndarray, binary: bool) -> np.ndarray:
    inp = tritonclient_http.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = None if binary else [tritonclient_http.InferRequestedOutput("OUTPUT", binary_data=False)]
    return client.infer("mlp", [inp], outputs=outputs).as_numpy("OUTPUT")


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    meta = client.get_model_metadata("mlp")
    assert meta["inputs"][0] == {"name": "INPUT", "datatype": "FP32", "shape": [-1, 64]}
    assert meta["outputs"][0]["shape"] == [-1, 64]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("rows", [1, 3, 7])
def test_infer_equals_model_output(client: Any, model: torch.nn.Module, binary: bool, rows: int) -> None:
    x = np.random.default_rng(rows).standard_normal((rows, 64)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_infer(client, x, binary), want, rtol=1e-4, atol=1e-5)


def test_bad_requests_get_400_and_the_pool_keeps_serving(
    server: Server, client: Any, model: torch.nn.Module
) -> None:
    url = f"{server.url}/v2/models/mlp/infer"
    bad_shape = {"inputs": [{"name": "INPUT", "shape": [1, 63], "datatype": "FP32", "data": [0.0] * 63}]}
    bad_dtype = {"inputs": [{"name": "INPUT", "shape": [1, 64], "datatype": "INT64", "data": [1] * 64}]}
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT",
                    "shape": [1, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 100},
                }
            ]
        }
    ).encode()
    cases = [
        (bad_shape, {}, "takes [N, 64]"),
        (bad_dtype, {}, "takes FP32"),
        (b'{"inputs": [{"name": ', {}, "not valid JSON"),
        (head + bytes(256), {"Inference-Header-Content-Length": str(len(head))}, "needs 256 bytes"),
    ]
    x = np.ones((2, 64), np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for body, headers, message in cases:
        status, _, raw = call(url, "POST", body, headers)
        assert status == 400, raw
        assert message in json.loads(raw)["error"]
        np.testing.assert_allclose(_infer(client, x, True), want, rtol=1e-4, atol=1e-5)


def test_set_plan_needs_token_and_reconfigures_the_pool(
    server: Server, pool: Any, client: Any, model: torch.nn.Module
) -> None:
    url = f"{server.url}/packrat/plan"
    assert call(url, "PUT", {"plan": "1x1x4"})[0] == 403
    assert pool.plan.text == "2x1x2"
    status, _, raw = call(url, "PUT", {"plan": "1x1x4"}, {"Authorization": f"Bearer {server.token}"})
    assert status == 200, raw
    assert json.loads(raw)["plan"]["plan"] == "1x1x4" == pool.plan.text
    status, _, raw = call(url, "PUT", {"plan": "3x1x1"}, {"X-Packrat-Token": server.token})
    assert status == 400
    assert pool.plan.text == "1x1x4"
    x = np.random.default_rng(9).standard_normal((5, 64)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_infer(client, x, True), want, rtol=1e-4, atol=1e-5)
    kinds = [e["kind"] for e in json.loads(call(f"{server.url}/packrat/events")[2])["events"]]
    assert "switch" in kinds
    assert "reconfigure-refused" in kinds


def test_metrics_parse_and_counters_grow_under_load(server: Server) -> None:
    first = call(f"{server.url}/metrics")[2].decode().splitlines()
    assert_exposition(first)
    before = parse_samples(first)
    report = run_load(server.url, rate=60, duration_s=2.0, seed=3)
    assert report.errors == 0, report.error_samples
    assert report.completed == report.sent == report.scheduled > 60
    assert report.p50_ms <= report.p99_ms
    after_lines = call(f"{server.url}/metrics")[2].decode().splitlines()
    assert_exposition(after_lines)
    after = parse_samples(after_lines)
    key = 'packrat_http_requests_total{code="200",route="infer"}'
    assert after[key] - before.get(key, 0) == report.completed
    assert after["packrat_pool_served_total"] - before["packrat_pool_served_total"] == report.completed
    assert after["packrat_request_duration_seconds_count"] > before["packrat_request_duration_seconds_count"]
    assert after["packrat_pool_lost_total"] == 0
    stats = json.loads(call(f"{server.url}/packrat/stats")[2])
    assert stats["lost"] == 0
    assert stats["http_requests"]["infer 200"] == after[key]


def test_plan_switch_under_http_load_loses_nothing(server: Server, pool: Any) -> None:
    import threading

    reports: list[Any] = []
    loader = threading.Thread(
        target=lambda: reports.append(run_load(server.url, rate=50, duration_s=3.0, seed=7))
    )
    loader.start()
    headers = {"X-Packrat-Token": server.token}
    new = "2x1x1" if pool.plan.text != "2x1x1" else "1x1x2"
    status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": new}, headers)
    loader.join(60)
    assert status == 200, raw
    assert pool.plan.text == new
    (report,) = reports
    assert report.errors == 0, report.error_samples
    assert report.completed == report.sent == report.scheduled > 0
    assert json.loads(call(f"{server.url}/packrat/stats")[2])["lost"] == 0


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_plan_requests_name_settings_and_never_set_worker_env(server: Server, pool: Any) -> None:
    """Issue 8 item 12 where a user meets it: a PUT can pick 'passive', never define PYTHONPATH."""
    url = f"{server.url}/packrat/plan"
    token = {"X-Packrat-Token": server.token}
    evil_setting = {
        "name": "passive",
        "env": {"PYTHONPATH": "/tmp/packrat-evil", "OMP_WAIT_POLICY": "PASSIVE"},
    }
    evil = {"plan": {"all_instances": [{"threads": 1, "batch": 2, "setting": evil_setting}]}}
    before = pool.plan.text
    status, _, raw = call(url, "PUT", evil, token)
    assert status == 400, raw
    assert pool.plan.text == before
    for bad in ("1x1x2@nosuch", "1x1x100000"):
        assert call(url, "PUT", {"plan": bad}, token)[0] == 400
    status, _, raw = call(url, "PUT", {"plan": "2x1x1@passive"}, token)
    assert status == 200, raw
    assert pool.plan.text == "2x1x1@passive"
    pids = [w["pid"] for w in json.loads(call(f"{server.url}/packrat/stats")[2])["workers"]]
    assert len(pids) == 2
    for pid in pids:
        env = _environ(pid)
        assert env.get("OMP_WAIT_POLICY") == "PASSIVE"
        assert "/tmp/packrat-evil" not in env.get("PYTHONPATH", "")
