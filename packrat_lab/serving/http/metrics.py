"""Prometheus text exposition (format 0.0.4), written by hand so serving needs no extra dependency."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CONTENT_TYPE", "Histogram", "ServerMetrics", "render_pool"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _escape(value: str) -> str:
    """Label value escaping: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Family:
    """Lines of one metric family: HELP, TYPE, then samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.name = name

    def sample(self, value: float, labels: Mapping[str, str] | None = None, suffix: str = "") -> None:
        self.lines.append(f"{self.name}{suffix}{_labels(labels or {})} {_number(value)}")


class Histogram:
    """A cumulative histogram with fixed upper bounds (thread-safe)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # last: above every bound
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count one observation."""
        with self._lock:
            self.counts[bisect.bisect_left(self.bounds, value)] += 1
            self.total += value

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self.counts)

    def render(self, family: _Family, labels: Mapping[str, str] | None = None) -> None:
        """Append _bucket, _sum and _count samples to `family`."""
        with self._lock:
            counts, total = list(self.counts), self.total
        running = 0
        for bound, n in zip(self.bounds, counts, strict=False):
            running += n
            family.sample(running, {**(labels or {}), "le": _number(bound)}, "_bucket")
        running += counts[-1]
        family.sample(running, {**(labels or {}), "le": "+Inf"}, "_bucket")
        family.sample(total, labels, "_sum")
        family.sample(running, labels, "_count")


class ServerMetrics:
    """What the HTTP front end measures itself: requests by route and outcome, latency, queue time, rows."""

    def __init__(self) -> None:
        self.request_seconds = Histogram(LATENCY_BUCKETS_S)
        self.queue_seconds = Histogram(LATENCY_BUCKETS_S)
        self.request_rows = Histogram(BATCH_BUCKETS)
        self._requests: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def count_request(self, route: str, code: int) -> None:
        """Count one answered request."""
        with self._lock:
            key = (route, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1

    def requests(self) -> dict[tuple[str, str], int]:
        """(route, status code) -> count, a snapshot."""
        with self._lock:
            return dict(self._requests)

    def render(self) -> list[str]:
        """Exposition lines for the server's own metrics."""
        fams = []
        req = _Family(
            "packrat_http_requests_total", "counter", "HTTP requests answered, by route and status code."
        )
        for (route, code), n in sorted(self.requests().items()):
            req.sample(n, {"route": route, "code": code})
        fams.append(req)
        lat = _Family(
            "packrat_request_duration_seconds",
            "histogram",
            "Inference request latency from arrival to answer.",
        )
        self.request_seconds.render(lat)
        fams.append(lat)
        queue = _Family(
            "packrat_request_queue_seconds",
            "histogram",
            "Time from a request's arrival until the pool took it (parsing, server thread queue); "
            "the pool's batcher queue shows as packrat_pool_queue_depth.",
        )
        self.queue_seconds.render(queue)
        fams.append(queue)
        rows = _Family("packrat_request_batch_size", "histogram", "Rows (samples) per inference request.")
        self.request_rows.render(rows)
        fams.append(rows)
        return [line for fam in fams for line in fam.lines]


# pool.stats() keys exported with a known type; other numeric scalars become gauges
_POOL_COUNTERS = {
    "submitted": "Samples submitted to the pool.",
    "served": "Samples the pool answered.",
    "failed": "Samples that failed in the pool.",
    "lost": "Samples the pool lost (must stay 0).",
    "reconfigurations": "Plan changes (active-passive switches) so far.",
}


def _gauge_name(key: str) -> str:
    safe = "".join(ch if ch.isalnum() else "_" for ch in key.lower())
    return f"packrat_pool_{safe}"


def render_pool(stats: Mapping[str, Any], plan_text: str, plan_display: str, state: str) -> list[str]:
    """Exposition lines for the pool: counters, gauges from stats, batch sizes, current plan."""
    fams: list[_Family] = []
    for key, help_text in _POOL_COUNTERS.items():
        value = stats.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            name = "packrat_plan_changes_total" if key == "reconfigurations" else f"packrat_pool_{key}_total"
            fam = _Family(name, "counter", help_text)
            fam.sample(float(value))
            fams.append(fam)
    for key, value in sorted(stats.items()):
        if key in _POOL_COUNTERS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        fam = _Family(_gauge_name(key), "gauge", f"pool.stats()['{key}'].")
        fam.sample(float(value))
        fams.append(fam)
    histogram = _batch_histogram(stats)
    if histogram:
        fam = _Family("packrat_pool_batches_total", "counter", "Batches the pool ran, by batch size.")
        for size, n in sorted(histogram.items()):
            fam.sample(n, {"size": str(size)})
        fams.append(fam)
    info = _Family("packrat_plan_info", "gauge", "The plan being served (value 1).")
    info.sample(1, {"plan": plan_text, "display": plan_display, "state": state})
    fams.append(info)
    return [line for fam in fams for line in fam.lines]


def _batch_histogram(stats: Mapping[str, Any]) -> dict[int, int]:
    """The pool's batch size histogram, whatever key it uses ('batch_sizes' or 'batch_histogram')."""
    for key in ("batch_sizes", "batch_histogram", "batch_size_histogram", "batches"):
        value = stats.get(key)
        if isinstance(value, Mapping):
            try:
                return {int(k): int(v) for k, v in value.items()}
            except (TypeError, ValueError):
                return {}
    return {}
