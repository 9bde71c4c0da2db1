"""Prometheus exposition written by hand: every line parses, histograms are cumulative."""

from __future__ import annotations

import math
import re

from packrat_lab.serving.http.metrics import Histogram, ServerMetrics, render_pool

# one sample line: name{label="value",...} number
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? '
    r"(-?[0-9.]+(e[+-]?[0-9]+)?|NaN|[+-]Inf)$"
)
COMMENT = re.compile(
    r"^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$"
)


def assert_exposition(lines: list[str]) -> None:
    """Each line is a HELP/TYPE comment or a sample; each family's TYPE precedes its samples."""
    typed: set[str] = set()
    for line in lines:
        assert COMMENT.match(line) or SAMPLE.match(line), f"bad exposition line: {line!r}"
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            base = re.sub(r"_(bucket|sum|count|total)$", "", name)
            assert name in typed or base in typed or f"{base}_total" in typed, f"sample before TYPE: {line!r}"


def parse_samples(lines: list[str]) -> dict[str, float]:
    """'name{labels}' -> value for sample lines."""
    out = {}
    for line in lines:
        if not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    h = Histogram((0.01, 0.1, 1.0))
    for v in (0.005, 0.05, 0.05, 5.0):
        h.observe(v)
    from packrat_lab.serving.http.metrics import _Family

    fam = _Family("x_seconds", "histogram", "test.")
    h.render(fam)
    samples = parse_samples(fam.lines)
    assert samples['x_seconds_bucket{le="0.01"}'] == 1
    assert samples['x_seconds_bucket{le="0.1"}'] == 3
    assert samples['x_seconds_bucket{le="1"}'] == 3
    assert samples['x_seconds_bucket{le="+Inf"}'] == 4
    assert samples["x_seconds_count"] == 4
    assert math.isclose(samples["x_seconds_sum"], 5.105)


def test_server_metrics_render_parses_and_counts_routes() -> None:
    m = ServerMetrics()
    m.count_request("infer", 200)
    m.count_request("infer", 200)
    m.count_request("infer", 400)
    m.request_seconds.observe(0.003)
    m.request_rows.observe(4)
    lines = m.render()
    assert_exposition(lines)
    samples = parse_samples(lines)
    assert samples['packrat_http_requests_total{route="infer",code="200"}'] == 2
    assert samples['packrat_http_requests_total{route="infer",code="400"}'] == 1
    assert samples['packrat_request_batch_size_bucket{le="4"}'] == 1
    assert samples['packrat_request_batch_size_bucket{le="2"}'] == 0


def test_pool_render_exports_counters_gauges_batches_and_plan_info() -> None:
    stats = {
        "served": 10,
        "failed": 1,
        "lost": 0,
        "reconfigurations": 2,
        "queue_depth": 3,
        "p99_ms": float("inf"),
        "batch_sizes": {4: 2, 1: 2},
        "workers": [{"pid": 1}],
        "ok": True,
    }
    lines = render_pool(stats, "2x1x4", "⟨2,1,4⟩", 'serving "hot"\n')
    assert_exposition(lines)
    samples = parse_samples(lines)
    assert samples["packrat_pool_served_total"] == 10
    assert samples["packrat_plan_changes_total"] == 2
    assert samples["packrat_pool_queue_depth"] == 3
    assert samples["packrat_pool_p99_ms"] == math.inf
    assert samples['packrat_pool_batches_total{size="4"}'] == 2
    info = [line for line in lines if line.startswith("packrat_plan_info")]
    assert info == ['packrat_plan_info{plan="2x1x4",display="⟨2,1,4⟩",state="serving \\"hot\\"\\n"} 1']
    assert not any("workers" in line or "_ok" in line for line in lines)
