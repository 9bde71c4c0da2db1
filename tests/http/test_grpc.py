"""OIP v2 over gRPC: tritonclient.grpc against serve_grpc on a fake pool (fast) and `serve --grpc-port` (slow)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

grpcclient = pytest.importorskip("tritonclient.grpc")
grpc = pytest.importorskip("grpc")
from http_fakes import FakePool
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from packrat_lab.serving.grpc import GrpcServer, serve_grpc
from packrat_lab.serving.grpc.server import code_for
from packrat_lab.serving.http.service import PoolService


@pytest.fixture
def served() -> Iterator[tuple[FakePool, GrpcServer, Any]]:
    pool = FakePool("mlp", "2x1x4", width=8, layers=2)
    service = PoolService(pool)
    server = serve_grpc(service)
    client = grpcclient.InferenceServerClient(server.address)
    try:
        yield pool, server, client
    finally:
        client.close()
        server.stop()
        service.close()
        pool.close()


def _input(array: np.ndarray, name: str = "INPUT", datatype: str = "FP32") -> Any:
    inp = grpcclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array)
    return inp


def _expected(pool: FakePool, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return pool.module(torch.from_numpy(x)).numpy()


def test_binds_loopback_and_answers_health_and_metadata(served: tuple[FakePool, GrpcServer, Any]) -> None:
    _, server, client = served
    assert server.address.startswith("127.0.0.1:") and server.port > 0
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mlp")
    assert client.get_server_metadata().name == "packrat-lab"
    meta = client.get_model_metadata("mlp")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("INPUT", "FP32", [-1, 8])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("OUTPUT", "FP32", [-1, 8])]
    config = client.get_model_config("mlp").config
    assert config.max_batch_size == 8 and config.instance_group[0].count == 2


@pytest.mark.parametrize("rows", [1, 3])
def test_infer_raw_contents_matches_the_model(served: tuple[FakePool, GrpcServer, Any], rows: int) -> None:
    pool, _, client = served
    x = np.random.default_rng(rows).standard_normal((rows, 8)).astype(np.float32)
    result = client.infer("mlp", [_input(x)], request_id="r1")
    np.testing.assert_allclose(result.as_numpy("OUTPUT"), _expected(pool, x), rtol=1e-5, atol=1e-6)
    assert result.get_response().id == "r1"


def test_infer_typed_contents(served: tuple[FakePool, GrpcServer, Any]) -> None:
    pool, server, _ = served
    x = np.arange(16, dtype=np.float32).reshape(2, 8) / 16
    request = service_pb2.ModelInferRequest(model_name="mlp")
    tensor = request.inputs.add(name="INPUT", datatype="FP32", shape=[2, 8])
    tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
    with grpc.insecure_channel(server.address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert list(response.outputs[0].shape) == [2, 8]
    out = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 8)
    np.testing.assert_allclose(out, _expected(pool, x), rtol=1e-5, atol=1e-6)


def _status(exc: InferenceServerException) -> str:
    return str(exc.status())


@pytest.mark.parametrize(
    ("array", "name", "datatype", "needle"),
    [
        (np.ones((2, 5), np.float32), "INPUT", "FP32", "shape [2, 5]"),
        (np.ones((2, 8), np.float32), "IMAGE", "FP32", "one input named 'INPUT'"),
        (np.ones((2, 8), np.float64), "INPUT", "FP64", "datatype FP64"),
    ],
)
def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(
    served: tuple[FakePool, GrpcServer, Any], array: np.ndarray, name: str, datatype: str, needle: str
) -> None:
    pool, _, client = served
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp", [_input(array, name, datatype)])
    assert _status(info.value) == "StatusCode.INVALID_ARGUMENT"
    assert needle in info.value.message() and "\n" not in info.value.message()
    x = np.ones((1, 8), np.float32)
    np.testing.assert_allclose(
        client.infer("mlp", [_input(x)]).as_numpy("OUTPUT"), _expected(pool, x), rtol=1e-5
    )


def test_raw_bytes_that_do_not_match_the_shape_are_refused(served: tuple[FakePool, GrpcServer, Any]) -> None:
    _, server, _ = served
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="INPUT", datatype="FP32", shape=[2, 8])
    request.raw_input_contents.append(b"\0" * 12)
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "12 bytes" in info.value.details() and "needs 64" in info.value.details()


def test_unknown_model_is_not_found(served: tuple[FakePool, GrpcServer, Any]) -> None:
    _, _, client = served
    with pytest.raises(InferenceServerException) as info:
        client.infer("resnet50", [_input(np.ones((1, 8), np.float32))])
    assert _status(info.value) == "StatusCode.NOT_FOUND" and "'mlp'" in info.value.message()


@pytest.mark.parametrize("state", ["starting", "degraded", "closed"])
def test_pool_not_serving_is_unavailable(served: tuple[FakePool, GrpcServer, Any], state: str) -> None:
    pool, _, client = served
    pool.state = state
    assert not client.is_server_ready() and not client.is_model_ready("mlp")
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp", [_input(np.ones((1, 8), np.float32))])
    assert _status(info.value) == "StatusCode.UNAVAILABLE" and state in info.value.message()


def test_switching_pool_stays_ready(served: tuple[FakePool, GrpcServer, Any]) -> None:
    pool, _, client = served
    pool.state = "switching"
    assert client.is_server_ready()


def test_a_str_enum_state_reads_as_its_value(served: tuple[FakePool, GrpcServer, Any]) -> None:
    import enum

    class State(str, enum.Enum):  # the pool's state type: str() would give 'State.SWITCHING'
        SWITCHING = "switching"
        DEGRADED = "degraded"

    pool, _, client = served
    pool.state = State.SWITCHING
    assert client.is_server_ready()
    pool.state = State.DEGRADED
    with pytest.raises(InferenceServerException, match="pool state 'degraded'"):
        client.infer("mlp", [_input(np.ones((1, 8), np.float32))])


def test_failed_inference_is_internal_and_counted(
    served: tuple[FakePool, GrpcServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, server, client = served

    def broken(batch: torch.Tensor) -> torch.Tensor:
        msg = "worker 123 died"
        raise RuntimeError(msg)

    monkeypatch.setattr(pool, "infer", broken)
    with pytest.raises(InferenceServerException) as info:
        client.infer("mlp", [_input(np.ones((2, 8), np.float32))])
    assert _status(info.value) == "StatusCode.INTERNAL" and "worker 123 died" in info.value.message()
    counts = server.service.metrics.requests()
    assert counts[("grpc_infer", "500")] == 1


def test_port_in_use_is_a_one_line_error(served: tuple[FakePool, GrpcServer, Any]) -> None:
    _, server, _ = served
    with pytest.raises(ValueError, match="cannot listen for gRPC on 127.0.0.1"):
        serve_grpc(server.service, port=server.port)
    with pytest.raises(ValueError, match="0..65535"):
        serve_grpc(server.service, port=70000)


def test_message_past_the_limit_is_resource_exhausted_and_the_server_keeps_serving() -> None:
    pool = FakePool("mlp", "2x1x4", width=8, layers=2)
    service = PoolService(pool)
    with serve_grpc(service, max_message_bytes=1024) as server:
        client = grpcclient.InferenceServerClient(server.address)
        with pytest.raises(InferenceServerException) as info:
            client.infer("mlp", [_input(np.ones((64, 8), np.float32))])  # 2 KiB of tensor data
        assert _status(info.value) == "StatusCode.RESOURCE_EXHAUSTED"
        assert client.infer("mlp", [_input(np.ones((2, 8), np.float32))]).as_numpy("OUTPUT").shape == (2, 8)
        client.close()
    service.close()


def test_requests_past_the_in_flight_limit_are_unavailable_as_on_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from packrat_lab.serving.http.limits import Limits

    pool = FakePool("mlp", "2x1x4", width=8, layers=2)
    service = PoolService(pool, limits=Limits(max_in_flight=1))
    entered, release = threading.Event(), threading.Event()
    original = pool.infer

    def held(batch: torch.Tensor) -> torch.Tensor:
        entered.set()
        release.wait(30)
        return original(batch)

    monkeypatch.setattr(pool, "infer", held)
    with serve_grpc(service) as server:
        first = grpcclient.InferenceServerClient(server.address)
        second = grpcclient.InferenceServerClient(server.address)
        results: list[Any] = []
        first.async_infer(
            "mlp",
            [_input(np.ones((2, 8), np.float32))],
            lambda result, error: results.append((result, error)),
        )
        assert entered.wait(30)
        with pytest.raises(InferenceServerException) as info:
            second.infer("mlp", [_input(np.ones((2, 8), np.float32))])
        assert _status(info.value) == "StatusCode.UNAVAILABLE" and "limit" in info.value.message()
        release.set()
        deadline = time.monotonic() + 30
        while not results and time.monotonic() < deadline:
            time.sleep(0.05)
        assert results and results[0][1] is None  # the admitted one completes
        assert second.infer("mlp", [_input(np.ones((2, 8), np.float32))]).as_numpy("OUTPUT").shape == (2, 8)
        first.close()
        second.close()
    service.close()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (413, "RESOURCE_EXHAUSTED"),
        (422, "INVALID_ARGUMENT"),
        (503, "UNAVAILABLE"),
        (502, "INTERNAL"),
    ],
)
def test_http_statuses_of_refusals_map_to_grpc_codes(status: int, code: str) -> None:
    assert code_for(status).name == code


@pytest.mark.slow
def test_serve_cli_grpc_port_answers_tritonclient_grpc() -> None:
    cmd = [
        sys.executable,
        "-m",
        "packrat_lab.cli",
        "serve",
        "mlp",
        "--plan",
        "1x1x2",
        "--port",
        "0",
        "--grpc-port",
        "0",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("grpc  127.0.0.1:"), (
            line,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        client = grpcclient.InferenceServerClient(line.split()[1])
        assert client.is_server_ready() and client.is_model_ready("mlp")
        x = np.random.default_rng(0).standard_normal((3, 1024)).astype(np.float32)
        out = client.infer("mlp", [_input(x)]).as_numpy("OUTPUT")
        from packrat_lab.workloads.registry import get_workload

        with torch.no_grad():
            want = get_workload("mlp").build()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
        one = client.infer("mlp", [_input(x[:1])]).as_numpy("OUTPUT")  # through the dynamic batcher
        np.testing.assert_allclose(one, want[:1], rtol=1e-4, atol=1e-5)
        with pytest.raises(InferenceServerException) as info:
            client.infer("mlp", [_input(np.ones((1, 7), np.float32))])
        assert str(info.value.status()) == "StatusCode.INVALID_ARGUMENT"
        assert client.is_server_ready()
        client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
