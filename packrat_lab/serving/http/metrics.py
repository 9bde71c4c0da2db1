"""Prometheus metrics of one server through prometheus_client, in its own CollectorRegistry (never the global one).

Base units: seconds for time (pool.stats() keys ending in `_ms` are exported as `_seconds`).

    packrat_http_requests_total{route,code}   counter    HTTP requests answered, by route and status code
    packrat_request_duration_seconds          histogram  inference request latency, arrival to answer
    packrat_request_queue_seconds             histogram  arrival until the pool took the request
    packrat_request_batch_size                histogram  rows (samples) per inference request
    packrat_pool_{submitted,served,failed,lost}_total  counter  samples, from pool.stats()
    packrat_pool_{admitted,rejected,dropped,late}_total  counter  latency objective: refused (429), dropped unrun, late
    packrat_pool_{slo_attainment,goodput_rps}  gauge  answered within deadline / offered; on-time answers per second
    packrat_pool_prediction_error_p{50,99}_seconds  gauge  |predicted − actual| latency of admitted requests
    packrat_plan_changes_total                counter    plan switches so far
    packrat_pool_<key>[_seconds]              gauge      every other numeric pool.stats() value
    packrat_pool_batches_total{size}          counter    batches the pool ran, by batch size
    packrat_plan_info{plan,display,state}     gauge      the plan being served (value 1)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# pool.stats() keys exported as counters
_POOL_COUNTERS = {
    "submitted": ("packrat_pool_submitted", "Samples submitted to the pool."),
    "served": ("packrat_pool_served", "Samples the pool answered."),
    "failed": ("packrat_pool_failed", "Samples that failed in the pool."),
    "lost": ("packrat_pool_lost", "Samples the pool lost (must stay 0)."),
    "admitted": ("packrat_pool_admitted", "Samples with a deadline the pool admitted."),
    "rejected": (
        "packrat_pool_rejected",
        "Samples refused at once: predicted to miss their deadline (HTTP 429).",
    ),
    "dropped": (
        "packrat_pool_dropped",
        "Admitted samples dropped before they ran: they could no longer finish in time.",
    ),
    "late": ("packrat_pool_late", "Samples answered after their deadline."),
    "reconfigurations": ("packrat_plan_changes", "Plan changes (active-passive switches) so far."),
}
_HISTOGRAM_KEYS = ("batch_sizes", "batch_histogram", "batch_size_histogram", "batches")


class ServerMetrics:
    """What the HTTP front measures itself, plus a collector that reads pool.stats() at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_seconds = Histogram(
            "packrat_request_duration_seconds",
            "Inference request latency from arrival to answer.",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "packrat_request_queue_seconds",
            "Time from a request's arrival until the pool took it (decoding, server thread queue); "
            "the pool's batcher queue shows as packrat_pool_queue_depth.",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.request_rows = Histogram(
            "packrat_request_batch_size",
            "Rows (samples) per inference request.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._requests: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.registry.register(_RequestCollector(self))

    def count_request(self, route: str, code: int) -> None:
        """Count one answered request."""
        with self._lock:
            key = (route, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1

    def requests(self) -> dict[tuple[str, str], int]:
        """(route, status code) -> count, a snapshot."""
        with self._lock:
            return dict(self._requests)

    def watch_pool(self, service: Any) -> None:
        """Export `service.pool`'s stats and plan at every scrape."""
        self.registry.register(_PoolCollector(service))

    def render(self) -> bytes:
        """The text exposition of every metric in this server's registry."""
        return generate_latest(self.registry)


class _RequestCollector(Collector):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "packrat_http_requests",
            "HTTP requests answered, by route and status code.",
            labels=["route", "code"],
        )
        for (route, code), n in sorted(self.metrics.requests().items()):
            family.add_metric([route, code], n)
        yield family


class _PoolCollector(Collector):
    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        stats = self.service.pool.stats()
        plan = self.service.pool.plan
        seen: set[str] = set()
        for key, (name, help_text) in _POOL_COUNTERS.items():
            value = stats.get(key)
            if _number(value):
                seen.add(name)
                yield CounterMetricFamily(name, help_text, value=float(value))
        for key, value in sorted(stats.items()):
            if key in _POOL_COUNTERS or not _number(value):
                continue
            name, scale = _gauge_name(key)
            if name in seen:
                continue
            seen.add(name)
            yield GaugeMetricFamily(
                name,
                f"pool.stats()['{key}']" + (" in seconds." if scale != 1 else "."),
                value=float(value) * scale,
            )
        histogram = _batch_histogram(stats)
        if histogram:
            batches = CounterMetricFamily(
                "packrat_pool_batches", "Batches the pool ran, by batch size.", labels=["size"]
            )
            for size, n in sorted(histogram.items()):
                batches.add_metric([str(size)], n)
            yield batches
        info = GaugeMetricFamily(
            "packrat_plan_info", "The plan being served (value 1).", labels=["plan", "display", "state"]
        )
        info.add_metric([plan.text, str(plan), self.service.state], 1)
        yield info


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _gauge_name(key: str) -> tuple[str, float]:
    """Metric name and scale of a pool.stats() key: `p99_ms` -> packrat_pool_p99_seconds, x0.001."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in key.lower())
    if safe.endswith("_ms"):
        return f"packrat_pool_{safe[:-3]}_seconds", 0.001
    return f"packrat_pool_{safe}", 1.0


def _batch_histogram(stats: Mapping[str, Any]) -> dict[int, int]:
    """The pool's batch size histogram, whatever key it uses ('batch_sizes' or 'batch_histogram')."""
    for key in _HISTOGRAM_KEYS:
        value = stats.get(key)
        if isinstance(value, Mapping):
            try:
                return {int(k): int(v) for k, v in value.items()}
            except (TypeError, ValueError):
                return {}
    return {}
