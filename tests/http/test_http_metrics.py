"""Prometheus metrics through prometheus_client: one registry per server, seconds, parsed by its own parser."""

from __future__ import annotations

import math
from typing import Any

from http_fakes import FakePool
from prometheus_client.parser import text_string_to_metric_families

from packrat_lab.serving.http.service import PoolService


def families(lines: list[str]) -> dict[str, Any]:
    """name -> Metric, parsed by prometheus_client (raises on a malformed exposition)."""
    return {f.name: f for f in text_string_to_metric_families("\n".join(lines) + "\n")}


def assert_exposition(lines: list[str]) -> None:
    """The exposition parses and has the server's families with their types."""
    found = {name: f.type for name, f in families(lines).items()}
    assert found["packrat_http_requests"] == "counter"
    assert found["packrat_request_duration_seconds"] == "histogram"
    assert found["packrat_plan_info"] == "gauge"


def parse_samples(lines: list[str]) -> dict[str, float]:
    """'name{label="value",...}' -> value for every sample, labels sorted as prometheus_client writes them."""
    out = {}
    for family in families(lines).values():
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def _service(**stats: Any) -> PoolService:
    pool = FakePool("mlp", "2x1x4", width=8, layers=1)
    if stats:
        pool.stats = lambda: stats  # type: ignore[method-assign]
    return PoolService(pool, cores=2)


def test_each_server_has_its_own_registry_and_counts_routes() -> None:
    a, b = _service(), _service()
    a.metrics.count_request("infer", 200)
    a.metrics.count_request("infer", 200)
    a.metrics.count_request("infer", 400)
    a.metrics.request_seconds.observe(0.003)
    a.metrics.request_rows.observe(4)
    samples = parse_samples(a.metrics_text().decode().splitlines())
    assert samples['packrat_http_requests_total{code="200",route="infer"}'] == 2
    assert samples['packrat_http_requests_total{code="400",route="infer"}'] == 1
    assert samples['packrat_request_batch_size_bucket{le="4.0"}'] == 1
    assert samples['packrat_request_batch_size_bucket{le="2.0"}'] == 0
    assert samples["packrat_request_duration_seconds_count"] == 1
    other = parse_samples(b.metrics_text().decode().splitlines())
    assert other["packrat_request_duration_seconds_count"] == 0
    assert not any(k.startswith("packrat_http_requests_total{") for k in other)
    a.close()
    b.close()


def test_pool_stats_export_in_base_units_with_plan_info() -> None:
    service = _service(
        served=10,
        failed=1,
        lost=0,
        reconfigurations=2,
        queue_depth=3,
        p50_ms=4.0,
        p99_ms=float("inf"),
        batch_histogram={4: 2, 1: 2},
        workers=[{"pid": 1}],
        auto=True,
    )
    lines = service.metrics_text().decode().splitlines()
    fams = families(lines)
    samples = parse_samples(lines)
    assert fams["packrat_pool_served"].type == "counter"
    assert samples["packrat_pool_served_total"] == 10
    assert samples["packrat_plan_changes_total"] == 2
    assert fams["packrat_pool_queue_depth"].type == "gauge"
    assert samples["packrat_pool_queue_depth"] == 3
    assert samples["packrat_pool_p50_seconds"] == 0.004
    assert samples["packrat_pool_p99_seconds"] == math.inf
    assert not any(name.endswith("_ms") for name in fams)
    assert samples['packrat_pool_batches_total{size="4"}'] == 2
    info = [k for k in samples if k.startswith("packrat_plan_info{")]
    assert info == ['packrat_plan_info{display="⟨2,1,4⟩",plan="2x1x4",state="serving"}']
    assert not any("workers" in k or "_auto" in k for k in samples)
    service.close()
