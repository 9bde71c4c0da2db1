"""The real HTTP server and real clients (tritonclient, urllib) against an in-process fake pool."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

tritonclient_http = pytest.importorskip("tritonclient.http")
from http_call import call
from http_fakes import FakePool
from test_http_metrics import assert_exposition, parse_samples

from packrat_lab.serving.http import Server, serve_pool


@pytest.fixture(scope="module")
def pool() -> Iterator[FakePool]:
    p = FakePool("mlp", "2x1x4", width=16, layers=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def server(pool: FakePool) -> Iterator[Server]:
    s = serve_pool(pool, token="secret-token")
    yield s
    s.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[Any]:
    c = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


def expected(pool: FakePool, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return pool.module(torch.from_numpy(x)).numpy()


def test_server_binds_loopback_and_reports_url_and_token(server: Server) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert server.port > 0
    assert server.token == "secret-token"


def test_default_token_is_random(pool: FakePool) -> None:
    with serve_pool(pool) as a, serve_pool(pool) as b:
        assert len(a.token) >= 20
        assert a.token != b.token


def test_health_and_metadata_through_tritonclient(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    meta = client.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata("mlp")
    assert model["inputs"] == [{"name": "INPUT", "datatype": "FP32", "shape": [-1, 16]}]
    assert model["outputs"] == [{"name": "OUTPUT", "datatype": "FP32", "shape": [-1, 16]}]
    config = client.get_model_config("mlp")
    assert config["max_batch_size"] == 8
    assert client.get_model_repository_index() == [{"name": "mlp", "version": "1", "state": "READY"}]


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("binary", [True, False])
def test_infer_equals_model_output(client: Any, pool: FakePool, rows: int, binary: bool) -> None:
    x = np.random.default_rng(rows).standard_normal((rows, 16)).astype(np.float32)
    inp = tritonclient_http.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = None if binary else [tritonclient_http.InferRequestedOutput("OUTPUT", binary_data=False)]
    result = client.infer("mlp", [inp], outputs=outputs, request_id="r1")
    response = result.get_response()
    assert response["id"] == "r1"
    assert ("data" in response["outputs"][0]) is (not binary)
    np.testing.assert_allclose(result.as_numpy("OUTPUT"), expected(pool, x), rtol=1e-5, atol=1e-6)


def test_unknown_model_is_404(client: Any, server: Server) -> None:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="unknown model 'resnet'") as info:
        client.get_model_metadata("resnet")
    assert info.value.status() == "404"
    status, _, body = call(f"{server.url}/v2/models/resnet/infer", "POST", b"{}")
    assert status == 404
    assert "this server serves 'mlp'" in json.loads(body)["error"]


def _good_infer(server: Server, pool: FakePool) -> None:
    x = np.ones((2, 16), np.float32)
    body = {"inputs": [{"name": "INPUT", "shape": [2, 16], "datatype": "FP32", "data": x.ravel().tolist()}]}
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
    assert status == 200
    out = np.array(json.loads(raw)["outputs"][0]["data"], np.float32).reshape(2, 16)
    np.testing.assert_allclose(out, expected(pool, x), rtol=1e-5, atol=1e-6)


def _tensor(shape: list[int], datatype: str = "FP32", name: str = "INPUT") -> dict[str, Any]:
    count = int(np.prod(shape))
    data = [1] * count if datatype.startswith(("INT", "UINT")) else [0.5] * count
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


def test_a_plan_with_a_backend_is_set_and_shown_over_http(server: Server, pool: FakePool) -> None:
    before = pool.plan.text
    token = {"X-Packrat-Token": "secret-token"}
    status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": "1x1x2:onnxruntime+1x1x2"}, token)
    assert status == 200, raw
    assert pool.plan.text == "1x1x2:onnxruntime+1x1x2"
    shown = json.loads(call(f"{server.url}/packrat/plan")[2])["plan"]
    assert shown["plan"] == "1x1x2:onnxruntime+1x1x2"
    assert sorted(i["backend"] for i in shown["instances"]) == ["eager", "onnxruntime"]
    assert call(f"{server.url}/packrat/plan", "PUT", {"plan": before}, token)[0] == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_tensor([2, 15]), "shape [2, 15] but model 'mlp' takes [N, 16]"),
        (_tensor([16]), "shape [16] but model 'mlp' takes [N, 16]"),
        (_tensor([0, 16]), "with N >= 1"),
        (_tensor([1, 16], "INT64"), "datatype INT64 but model 'mlp' takes FP32"),
        (_tensor([1, 16], "FP64"), "datatype FP64 but model 'mlp' takes FP32"),
        (_tensor([1, 16], name="x"), "one input named 'INPUT', got ['x']"),
        (b'{"inputs": [', "not valid JSON"),
        ({"inputs": []}, "non-empty 'inputs'"),
        ({**_tensor([1, 16]), "outputs": [{"name": "LOGITS"}]}, "no output 'LOGITS'"),
    ],
)
def test_bad_request_is_400_and_the_pool_keeps_serving(
    server: Server, pool: FakePool, body: Any, message: str
) -> None:
    status, headers, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert message in json.loads(raw)["error"]
    _good_infer(server, pool)


def test_wrong_binary_size_is_400(server: Server, pool: FakePool) -> None:
    x = np.ones((1, 16), np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT",
                    "shape": [1, 16],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 60},
                }
            ]
        }
    ).encode()
    for raw_bytes, length in (
        (x.tobytes(), str(len(head))),
        (x.tobytes(), "abc"),
        (x.tobytes()[:60], "9999"),
    ):
        status, _, raw = call(
            f"{server.url}/v2/models/mlp/infer",
            "POST",
            head + raw_bytes,
            {"Inference-Header-Content-Length": length},
        )
        assert status == 400
        assert (
            "Inference-Header-Content-Length" in json.loads(raw)["error"]
            or "binary_data_size 60" in json.loads(raw)["error"]
        )
    _good_infer(server, pool)


def test_tritonclient_wrong_shape_raises_with_server_message(client: Any) -> None:
    from tritonclient.utils import InferenceServerException

    inp = tritonclient_http.InferInput("INPUT", [1, 8], "FP32")
    inp.set_data_from_numpy(np.ones((1, 8), np.float32))
    with pytest.raises(InferenceServerException, match="takes \\[N, 16\\]") as info:
        client.infer("mlp", [inp])
    assert info.value.status() == "400"


def test_plan_read_is_open_and_set_needs_the_token(server: Server, pool: FakePool) -> None:
    status, _, raw = call(f"{server.url}/packrat/plan")
    assert status == 200
    assert json.loads(raw)["plan"]["plan"] == pool.plan.text
    before = pool.plan.text
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Packrat-Token": ""}):
        status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": "1x1x4"}, headers)
        assert status == 403
        assert "token" in json.loads(raw)["error"]
    assert pool.plan.text == before
    status, _, raw = call(
        f"{server.url}/packrat/plan", "PUT", {"plan": "1x1x4"}, {"Authorization": "Bearer secret-token"}
    )
    assert status == 200
    assert json.loads(raw)["plan"]["plan"] == "1x1x4" == pool.plan.text
    status, _, raw = call(
        f"{server.url}/packrat/plan", "POST", {"plan": "2x1x2"}, {"X-Packrat-Token": "secret-token"}
    )
    assert status == 200
    assert pool.plan.text == "2x1x2"
    events = json.loads(call(f"{server.url}/packrat/events")[2])["events"]
    assert [e["plan"] for e in events if e["kind"] == "switch"][-2:] == ["1x1x4", "2x1x2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"plan": "8x1x4"}, "needs 8 cores"),
        ({"plan": "2by4"}, "not of the form COUNTxTHREADSxBATCH"),
        ({"batch": 8}, "needs a profile"),
        ({"batch": 0}, "positive integer"),
        ({"size": 3}, "exactly one of 'plan' or 'batch'"),
        ({"plan": "1x1x4:tensorrt"}, "unknown backend 'tensorrt'"),
        (b"[1]", "JSON object"),
    ],
)
def test_refused_plan_is_400_and_old_plan_keeps_serving(
    server: Server, pool: FakePool, body: Any, message: str
) -> None:
    before = pool.plan.text
    status, _, raw = call(f"{server.url}/packrat/plan", "PUT", body, {"X-Packrat-Token": "secret-token"})
    assert status == 400
    assert message in json.loads(raw)["error"]
    assert pool.plan.text == before
    _good_infer(server, pool)


def test_stats_and_metrics_count_requests(server: Server, pool: FakePool) -> None:
    stats = json.loads(call(f"{server.url}/packrat/stats")[2])
    assert stats["plan"] == pool.plan.text
    assert stats["p99_ms"] is None  # inf is not JSON
    status, headers, raw = call(f"{server.url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    before = parse_samples(raw.decode().splitlines())
    assert_exposition(raw.decode().splitlines())
    _good_infer(server, pool)
    _good_infer(server, pool)
    after_lines = call(f"{server.url}/metrics")[2].decode().splitlines()
    assert_exposition(after_lines)
    after = parse_samples(after_lines)
    key = 'packrat_http_requests_total{code="200",route="infer"}'
    assert after[key] == before.get(key, 0) + 2
    assert (
        after["packrat_request_duration_seconds_count"]
        == before["packrat_request_duration_seconds_count"] + 2
    )
    assert after["packrat_pool_served_total"] == before["packrat_pool_served_total"] + 4
    assert any(k.startswith("packrat_plan_info{") for k in after)


def test_auto_route(server: Server, pool: FakePool) -> None:
    assert call(f"{server.url}/packrat/auto", "PUT", {"auto": True})[0] == 403
    status, _, _ = call(
        f"{server.url}/packrat/auto", "PUT", {"auto": True}, {"X-Packrat-Token": "secret-token"}
    )
    assert status == 200
    assert pool.auto is True
    assert (
        call(f"{server.url}/packrat/auto", "PUT", {"auto": "yes"}, {"X-Packrat-Token": "secret-token"})[0]
        == 400
    )


def test_unknown_route_is_json_404(server: Server) -> None:
    status, _, raw = call(f"{server.url}/v3/things")
    assert status == 404
    assert "no route GET /v3/things" in json.loads(raw)["error"]


def test_stop_route_needs_token_then_closes_pool_and_server() -> None:
    pool = FakePool("mlp", "1x1x1", width=8, layers=1)
    server = serve_pool(pool, token="t0k")
    assert call(f"{server.url}/packrat/stop", "POST", b"")[0] == 403
    assert pool.state == "serving"
    status, _, raw = call(f"{server.url}/packrat/stop", "POST", b"", {"Authorization": "Bearer t0k"})
    assert status == 200
    assert json.loads(raw) == {"stopped": True}
    assert pool.state == "closed"
    deadline = time.monotonic() + 10
    while server.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{server.url}/v2/health/live", timeout=5)
    server.stop()


def test_plan_by_batch_uses_the_optimizer_on_the_profile() -> None:
    from packrat_lab.host import detect_host
    from packrat_lab.optimizer import optimize
    from packrat_lab.profiling.table import profile_from_latencies

    cores = detect_host().usable_cores
    latencies = {(t, b): 2.0 + b * 3.0 / t**0.7 for t in range(1, cores + 1) for b in (1, 2, 4, 8)}
    profile = profile_from_latencies("mlp", latencies)
    pool = FakePool("mlp", "1x1x1", max_threads=cores, width=8, layers=1)
    with serve_pool(pool, token="k", profile=profile) as server:
        status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"batch": 8}, {"X-Packrat-Token": "k"})
    pool.close()
    assert status == 200, raw
    want = optimize(profile, cores, 8)
    assert pool.plan.text == want.text == json.loads(raw)["plan"]["plan"]
    assert pool.plan.total_batch == 8


class _DyingPool(FakePool):
    """A pool whose workers die on every request."""

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        from packrat_lab.errors import WorkerFailedError

        self._check(batch)
        msg = "worker 0 (pid 123) died with SIGKILL"
        raise WorkerFailedError(msg)


def test_worker_failure_is_a_500_with_the_reason_not_a_hang() -> None:
    pool = _DyingPool("mlp", "1x1x1", width=8, layers=1)
    with serve_pool(pool) as server:
        for rows in (1, 3):
            body = {
                "inputs": [
                    {"name": "INPUT", "shape": [rows, 8], "datatype": "FP32", "data": [0.0] * 8 * rows}
                ]
            }
            status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
            assert status == 500
            assert (
                json.loads(raw)["error"]
                == "inference failed: WorkerFailedError: worker 0 (pid 123) died with SIGKILL"
            )
    pool.close()


def test_closed_pool_is_not_ready_and_refuses_inference() -> None:
    pool = FakePool("mlp", "1x1x1", width=8, layers=1)
    with serve_pool(pool) as server:
        assert call(f"{server.url}/v2/health/ready")[0] == 200
        pool.close()
        assert call(f"{server.url}/v2/health/ready")[0] == 503
        assert call(f"{server.url}/v2/models/mlp/ready")[0] == 503
        assert call(f"{server.url}/v2/health/live")[0] == 200
        body = {"inputs": [{"name": "INPUT", "shape": [1, 8], "datatype": "FP32", "data": [0.0] * 8}]}
        status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
        assert status == 503
        assert "not serving" in json.loads(raw)["error"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_through_tritonclient(client: Any, pool: FakePool, algorithm: str) -> None:
    x = np.random.default_rng(5).standard_normal((2, 16)).astype(np.float32)
    inp = tritonclient_http.InferInput("INPUT", [2, 16], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer(
        "mlp", [inp], request_compression_algorithm=algorithm, response_compression_algorithm=algorithm
    )
    np.testing.assert_allclose(result.as_numpy("OUTPUT"), expected(pool, x), rtol=1e-5, atol=1e-6)


def test_corrupt_or_unknown_encoding_is_400(server: Server) -> None:
    url = f"{server.url}/v2/models/mlp/infer"
    status, _, raw = call(url, "POST", b"not gzip at all", {"Content-Encoding": "gzip"})
    assert status == 400
    assert "not valid gzip data" in json.loads(raw)["error"]
    status, _, raw = call(url, "POST", b"{}", {"Content-Encoding": "br"})
    assert status == 400
    assert "Content-Encoding 'br' is not supported" in json.loads(raw)["error"]


def test_foreground_serve_returns_after_stop_route() -> None:
    import socket
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = FakePool("mlp", "1x1x1", width=8, layers=1)
    done: list[Server] = []
    thread = threading.Thread(
        target=lambda: done.append(serve_pool(pool, port=port, token="fg", background=False))
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if call(f"{url}/v2/health/live")[0] == 200:
                break
        except urllib.error.URLError:
            time.sleep(0.05)
    assert call(f"{url}/packrat/stop", "POST", b"", {"X-Packrat-Token": "fg"})[0] == 200
    thread.join(10)
    assert not thread.is_alive()
    assert done and not done[0].running
    assert pool.state == "closed"


def test_port_in_use_is_a_clear_error(server: Server, pool: FakePool) -> None:
    with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        serve_pool(pool, port=server.port)
    with pytest.raises(ValueError, match="port must be 0..65535"):
        serve_pool(pool, port=70000)


class _DeadWorkerPool(FakePool):
    """A pool whose every inference fails the way a pool with a dead worker does."""

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        from packrat_lab import WorkerFailedError

        msg = "worker 0 is failed; retry the request\nsecond line"
        raise WorkerFailedError(msg)


@pytest.mark.parametrize("path", ["/v2/models/mlp", "/v2/models/mlp/config"])
def test_metadata_that_cannot_be_probed_is_a_one_line_503_naming_the_cause(path: str) -> None:
    """The metadata probe met a dead worker: it used to answer a bare 500 with no reason."""
    pool = _DeadWorkerPool("mlp", "2x1x4", width=16, layers=2)
    with serve_pool(pool, token="t") as server:
        status, _, body = call(server.url + path)
    pool.close()
    assert status == 503
    error = json.loads(body)["error"]
    assert "unavailable: WorkerFailedError: worker 0 is failed; retry the request" in error
    assert "\n" not in error and "second line" not in error
