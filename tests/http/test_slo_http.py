"""The latency objective over HTTP (issue 10): the OIP v2 `timeout` parameter from a real Triton client, 429s, metrics."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest
import torch

tritonclient_http = pytest.importorskip("tritonclient.http")
from http_call import call
from test_http_metrics import parse_samples

from packrat_lab.serving.http import serve_pool
from packrat_lab.serving.pool import Pool
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

COUNTING = get_workload("counting_model:build", example_input=torch.ones(1, 8))


def test_timeout_parameter_refuses_with_429_and_metrics_count_it_apart_from_errors() -> None:
    x = np.full((1, 8), 3.0, dtype=np.float32)
    with Pool(COUNTING, "1x1x1", warmup=1, announce=False) as pool, serve_pool(pool) as server:
        name = server.service.model_name
        client = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            inp = tritonclient_http.InferInput("INPUT", [1, 8], "FP32")
            inp.set_data_from_numpy(x)
            for _ in range(2):  # learn the model's 20 ms
                client.infer(name, [inp])
            ok = client.infer(name, [inp], timeout=5_000_000)  # 5 s, in microseconds
            np.testing.assert_array_equal(ok.as_numpy("OUTPUT"), x * 2 + 1)
            with pytest.raises(tritonclient_http.InferenceServerException) as refused:
                client.infer(name, [inp], timeout=5_000)  # 5 ms: the model alone takes 20
            assert refused.value.status() == "429"
            assert "predicted" in refused.value.message() and "ms deadline" in refused.value.message()
            many = np.full((3, 8), 4.0, dtype=np.float32)
            batch = tritonclient_http.InferInput("INPUT", [3, 8], "FP32")
            batch.set_data_from_numpy(many)
            with pytest.raises(tritonclient_http.InferenceServerException) as refused_batch:
                client.infer(name, [batch], timeout=5_000)  # pool.infer's path refuses too
            assert refused_batch.value.status() == "429"
        finally:
            client.close()
        grpcclient = pytest.importorskip("tritonclient.grpc")
        from packrat_lab.serving.grpc import serve_grpc

        grpc_server = serve_grpc(server.service)
        grpc_client = grpcclient.InferenceServerClient(grpc_server.address)
        try:
            grpc_input = grpcclient.InferInput("INPUT", [1, 8], "FP32")
            grpc_input.set_data_from_numpy(x)
            answer = grpc_client.infer(name, [grpc_input], timeout=5_000_000)
            np.testing.assert_array_equal(answer.as_numpy("OUTPUT"), x * 2 + 1)
            with pytest.raises(grpcclient.InferenceServerException) as refused_grpc:
                grpc_client.infer(name, [grpc_input], timeout=5_000)
            assert (
                "RESOURCE_EXHAUSTED" in str(refused_grpc.value.status())
                and "predicted" in refused_grpc.value.message()
            )
        finally:
            grpc_client.close()
            grpc_server.stop()
        status, _, body = call(
            f"{server.url}/v2/models/{urllib.parse.quote(name)}/infer",
            "POST",
            {
                "inputs": [{"name": "INPUT", "shape": [1, 8], "datatype": "FP32", "data": [1.0] * 8}],
                "parameters": {"timeout": "soon"},
            },
        )
        assert status == 400 and b"example" in body and b"timeout" in body
        _, _, text = call(f"{server.url}/metrics")
        samples = parse_samples(text.decode().splitlines())
        stats = pool.stats()
        summary = server.service.summary()
    assert samples['packrat_http_requests_total{code="429",route="infer"}'] == 2
    assert samples["packrat_pool_rejected_total"] == 3  # two over HTTP, one over gRPC
    assert samples["packrat_pool_failed_total"] == 0  # a refusal is not a server error
    assert "packrat_pool_slo_attainment" in samples and "packrat_pool_goodput_rps" in samples
    assert stats["rejected"] == 3 and stats["admitted"] == 2 and stats["failed"] == 0
    assert "2 refused" in summary and "1 failed" in summary  # the 400, not the refusals
