"""PUT /packrat/slo (issue 10, Lab part): a served pool's latency objective changed live over HTTP.

Real tornado server and a real HTTP client; behind it a real Pool on fake workers (tests/fake_workers.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fake_workers import FakeWorld
from test_http_app import call

from packrat_lab import FailurePolicy, Pool
from packrat_lab.serving.http import Server, serve_pool

TOKEN = "slo-secret"
AUTH = {"X-Packrat-Token": TOKEN}
POLICY = FailurePolicy(tick_s=0.01, backoff_s=0.01, max_backoff_s=0.05, drain_timeout_s=2.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    world = FakeWorld(run_s=0.03)  # every batch takes 30 ms
    with Pool("mlp", "1x1x1", channels=world.factory, announce=False, warmup=0, policy=POLICY) as p:  # type: ignore[arg-type]
        yield p


@pytest.fixture(scope="module")
def server(pool: Pool) -> Iterator[Server]:
    with serve_pool(pool, token=TOKEN) as s:
        yield s


def infer(server: Server) -> tuple[int, str]:
    """One single-row request (the pool's submit path, where admission applies); status and error text."""
    x = np.ones((1, 1024), np.float32)
    body = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, 1024], "data": x.ravel().tolist()}]}
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
    return status, json.loads(raw).get("error", "") if status != 200 else ""


def put_slo(server: Server, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, raw = call(f"{server.url}/packrat/slo", "PUT", body, AUTH if headers is None else headers)
    return status, json.loads(raw)


def test_slo_is_read_openly_and_set_live_with_the_token(server: Server, pool: Pool) -> None:
    assert pool.slo_ms is None
    status, _, raw = call(f"{server.url}/packrat/slo")
    assert status == 200 and json.loads(raw) == {"model": "mlp", "slo_ms": None}
    for _ in range(3):  # the pool learns its 30 ms batches
        assert infer(server) == (200, "")
    status, answer = put_slo(server, {"slo_ms": 5}, {})
    assert status == 403 and "token" in answer["error"]
    assert pool.slo_ms is None
    status, answer = put_slo(server, {"slo_ms": 5})
    assert status == 200 and answer == {"model": "mlp", "slo_ms": 5.0}
    assert pool.slo_ms == 5.0
    status, error = infer(server)  # predicted ~30 ms against a 5 ms objective: refused at once
    assert status == 429 and "5 ms deadline" in error
    stats = json.loads(call(f"{server.url}/packrat/stats")[2])
    assert stats["slo_ms"] == 5.0 and stats["rejected"] >= 1
    assert call(f"{server.url}/packrat/slo", "POST", {"slo_ms": 2000}, AUTH)[0] == 200  # POST = PUT
    assert pool.slo_ms == 2000.0
    assert infer(server) == (200, "")
    status, answer = put_slo(server, {"slo_ms": None})  # off
    assert status == 200 and answer["slo_ms"] is None and pool.slo_ms is None
    assert json.loads(call(f"{server.url}/packrat/slo")[2])["slo_ms"] is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"slo_ms": -5}, "got -5"),
        ({"slo_ms": 0}, "got 0"),
        ({"slo_ms": "fast"}, "got 'fast'"),
        ({"slo_ms": True}, "got True"),
        ({"slo_ms": [50]}, "got [50]"),
        (b'{"slo_ms": 1e400}', "got inf"),
        ({"slo": 50}, "got keys ['slo']"),
        ({"slo_ms": 50, "auto": True}, "got keys ['auto', 'slo_ms']"),
        (b"[50]", "JSON object"),
        (b"{not json", "JSON"),
    ],
)
def test_bad_objective_is_a_one_line_400_naming_it_and_the_pool_keeps_serving(
    server: Server, pool: Pool, body: Any, named: str
) -> None:
    before = pool.slo_ms
    status, answer = put_slo(server, body)
    assert status == 400
    error = answer["error"]
    assert named in error and "example" in error and "\n" not in error
    if isinstance(body, dict):
        assert '{"slo_ms": 50}' in error
    assert pool.slo_ms == before
    assert infer(server) == (200, "")


def test_an_aimd_pool_refuses_to_turn_its_objective_off() -> None:
    world = FakeWorld(run_s=0.001)
    with (
        Pool(  # type: ignore[arg-type]
            "mlp",
            "1x1x2",
            channels=world.factory,
            announce=False,
            warmup=0,
            policy=POLICY,
            batching="aimd",
            slo_ms=100,
        ) as pool,
        serve_pool(pool, token=TOKEN) as server,
    ):
        status, answer = put_slo(server, {"slo_ms": None})
        assert status == 400 and "AIMD" in answer["error"] and '{"slo_ms": 50}' in answer["error"]
        assert pool.slo_ms == 100.0
        assert put_slo(server, {"slo_ms": 60})[0] == 200 and pool.slo_ms == 60.0


def test_metadata_answers_under_an_objective_the_model_cannot_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the output-shape probe behind /v2/models/{m} was refused by the pool's SLO (a 500),
    so `packrat-lab load` (and tritonclient's metadata call) died against `serve --slo-ms`."""
    world = FakeWorld(run_s=0.03)
    with (
        Pool(
            "mlp", "1x1x1", channels=world.factory, announce=False, warmup=1, policy=POLICY, slo_ms=5
        ) as pool,  # type: ignore[arg-type]
        serve_pool(pool, token=TOKEN) as server,
    ):
        # the probe's input: the fake workers die on negative values, the example input has some
        monkeypatch.setattr(type(pool.workload), "example_input", lambda self, n, seed=0: torch.ones(n, 1024))
        assert pool.predict_ms(1) > 5  # the warm batch taught it 30 ms
        status, _, raw = call(f"{server.url}/v2/models/mlp")
        assert status == 200, raw
        assert json.loads(raw)["outputs"][0]["shape"] == [-1, 1024]
        status, error = infer(server)  # requests themselves are still refused
        assert status == 429 and "5 ms deadline" in error
