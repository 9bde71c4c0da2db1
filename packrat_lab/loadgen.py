"""Open-loop load generator: requests at a fixed or Poisson rate against a v2 URL or a Pool.

Open loop means send times are fixed in advance and latency counts from the scheduled time, so a
slow server cannot slow the offered load down (no coordinated omission). It is bounded in count
(`max_requests`) and time (`duration_s` + `timeout_s`) and always stops by itself.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["LoadReport", "arrival_times", "run_load"]

_MODEL_IN_URL = re.compile(r"^(?P<base>.*?)/v2/models/(?P<model>[^/]+)")


@dataclass(frozen=True)
class LoadReport:
    """What one run of offered load produced; latencies in ms from each request's scheduled time."""

    target: str
    rate: float
    duration_s: float
    poisson: bool
    scheduled: int
    sent: int
    completed: int
    errors: int
    elapsed_s: float
    latencies_ms: tuple[float, ...] = field(default=(), repr=False)
    error_samples: tuple[str, ...] = ()

    def _percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else math.nan

    @property
    def p50_ms(self) -> float:
        """Median latency of completed requests."""
        return self._percentile(50)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency of completed requests."""
        return self._percentile(99)

    @property
    def mean_ms(self) -> float:
        """Mean latency of completed requests."""
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else math.nan

    @property
    def throughput_rps(self) -> float:
        """Completed requests per second of wall time."""
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the raw latencies)."""
        data = asdict(self)
        data.pop("latencies_ms")
        data["error_samples"] = list(self.error_samples)
        for key in ("p50_ms", "p99_ms", "mean_ms"):
            value = getattr(self, key)
            data[key] = value if math.isfinite(value) else None  # JSON has no NaN
        data["throughput_rps"] = self.throughput_rps
        return data

    def __str__(self) -> str:
        kind = "poisson" if self.poisson else "uniform"
        lines = [
            f"target      {self.target}",
            f"offered     {self.rate:g} req/s ({kind}) for {self.duration_s:g} s: {self.scheduled} scheduled",
            f"sent        {self.sent}",
            f"completed   {self.completed}",
            f"errors      {self.errors}",
            f"throughput  {self.throughput_rps:.1f} req/s",
            f"latency     p50 {self.p50_ms:.2f} ms   p99 {self.p99_ms:.2f} ms   mean {self.mean_ms:.2f} ms",
        ]
        lines += [f"error       {e}" for e in self.error_samples]
        return "\n".join(lines)


def arrival_times(
    rate: float, duration_s: float, *, poisson: bool = True, seed: int = 0, max_requests: int = 100_000
) -> np.ndarray:
    """Send offsets in seconds within [0, duration_s): exponential gaps if poisson, else evenly spaced."""
    if not (isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate)):
        msg = f"rate must be a positive number of requests per second, got {rate!r}; example: 50"
        raise ValueError(msg)
    if not (isinstance(duration_s, (int, float)) and duration_s > 0 and math.isfinite(duration_s)):
        msg = f"duration must be a positive number of seconds, got {duration_s!r}; example: 10"
        raise ValueError(msg)
    expected = rate * duration_s
    if poisson:
        rng = np.random.default_rng(seed)
        count = min(max_requests, int(expected + 10 * math.sqrt(expected) + 10))
        times = np.cumsum(rng.exponential(1.0 / rate, size=count))
        times = times[times < duration_s]
    else:
        times = np.arange(min(max_requests, math.ceil(expected))) / rate
        times = times[times < duration_s]
    return times[:max_requests]


Sender = Callable[[int], None]  # sends request i and raises on failure


def _http_sender_factory(
    url: str, model: str | None, batch: int, seed: int, allow_remote: bool, timeout_s: float
) -> tuple[str, Callable[[], Sender]]:
    """A per-thread sender for a v2 URL, after looking up the model's input once."""
    from packrat_lab.serving.http.client import V2Client, check_local_url, random_input

    check_local_url(url, allow_remote)
    match = _MODEL_IN_URL.match(url.rstrip("/"))
    base = match.group("base") if match else url.rstrip("/")
    probe = V2Client(base, allow_remote=allow_remote, timeout=timeout_s)
    try:
        name = model or (match.group("model") if match else None) or probe.model_name()
        input_name, datatype, shape = probe.model_input(name)
    finally:
        probe.close()
    rng = np.random.default_rng(seed)
    inputs = [random_input(datatype, (batch, *shape), rng) for _ in range(8)]

    def make() -> Sender:
        client = V2Client(base, allow_remote=allow_remote, timeout=timeout_s)

        def send(i: int) -> None:
            outputs = client.infer(name, input_name, inputs[i % len(inputs)])
            first = next(iter(outputs.values()))
            if first.shape[:1] != (batch,):
                msg = f"answer has shape {list(first.shape)}, expected {batch} rows"
                raise RuntimeError(msg)

        return send

    return f"{base}/v2/models/{name}", make


def _pool_sender_factory(
    pool: Any, batch: int, seed: int, timeout_s: float
) -> tuple[str, Callable[[], Sender]]:
    """A sender for an in-process Pool: pool.submit for one sample, pool.infer for a batch."""
    inputs = [pool.workload.example_input(batch, seed=seed + k) for k in range(8)]

    def make() -> Sender:
        def send(i: int) -> None:
            x = inputs[i % len(inputs)]
            if batch == 1:
                pool.submit(x[0]).result(timeout=timeout_s)
            else:
                pool.infer(x)

        return send

    return f"pool {pool.workload.name} {pool.plan.text}", make


def run_load(
    target: Any,
    *,
    rate: float,
    duration_s: float = 10.0,
    poisson: bool = True,
    concurrency: int = 16,
    seed: int = 0,
    batch: int = 1,
    model: str | None = None,
    timeout_s: float = 30.0,
    max_requests: int = 100_000,
    allow_remote: bool = False,
) -> LoadReport:
    """Offer `rate` requests/s for `duration_s` to a v2 URL or a Pool; at most `concurrency` in flight.

    URL targets go through a stdlib keep-alive client with binary tensors (no tritonclient needed
    at run time); only 127.0.0.1/localhost unless allow_remote. A Pool target gets one sample per
    request through pool.submit (batch=1) so its dynamic batcher forms batches.
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        msg = f"concurrency must be a positive integer, got {concurrency!r}; example: 16"
        raise ValueError(msg)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        msg = f"batch must be a positive integer, got {batch!r}; example: 1"
        raise ValueError(msg)
    times = arrival_times(rate, duration_s, poisson=poisson, seed=seed, max_requests=max_requests)
    if isinstance(target, str):
        label, make_sender = _http_sender_factory(target, model, batch, seed, allow_remote, timeout_s)
    elif hasattr(target, "submit") and hasattr(target, "workload"):
        label, make_sender = _pool_sender_factory(target, batch, seed, timeout_s)
    else:
        msg = f"target must be a URL or a Pool, got {type(target).__name__}; example: 'http://127.0.0.1:8000'"
        raise ValueError(msg)
    return _drive(label, make_sender, times, rate, duration_s, poisson, concurrency, timeout_s)


def _drive(
    label: str,
    make_sender: Callable[[], Sender],
    times: np.ndarray,
    rate: float,
    duration_s: float,
    poisson: bool,
    concurrency: int,
    timeout_s: float,
) -> LoadReport:
    """Release requests at their scheduled times to `concurrency` sender threads and collect results."""
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    counts = {"sent": 0, "errors": 0}
    stop = threading.Event()

    def worker() -> None:
        try:
            send = make_sender()
        except Exception as exc:  # noqa: BLE001 - e.g. cannot connect: every request this thread takes fails
            send = _failing(exc)
        while True:
            job = jobs.get()
            if job is None or stop.is_set():
                return
            i, due = job
            with lock:
                counts["sent"] += 1
            try:
                send(i)
            except Exception as exc:  # noqa: BLE001 - any failure is one error in the report
                with lock:
                    counts["errors"] += 1
                    text = f"{type(exc).__name__}: {exc}"[:300]
                    if len(errors) < 5 and text not in errors:  # distinct samples
                        errors.append(text)
            else:
                done = time.perf_counter()
                with lock:
                    latencies.append((done - due) * 1000.0)

    threads = [threading.Thread(target=worker, daemon=True, name=f"loadgen-{k}") for k in range(concurrency)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i, offset in enumerate(times):
        due = start + float(offset)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((i, due))
    for _ in threads:
        jobs.put(None)
    deadline = start + duration_s + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
    stop.set()
    elapsed = time.perf_counter() - start
    with lock:
        sent, n_errors, done = counts["sent"], counts["errors"], list(latencies)
    stuck = sent - n_errors - len(done)  # still in flight at the deadline: counted as errors
    if stuck > 0:
        errors.append(f"{stuck} request(s) unanswered after {timeout_s:g} s")
    return LoadReport(
        label,
        float(rate),
        float(duration_s),
        poisson,
        len(times),
        sent,
        len(done),
        n_errors + max(stuck, 0),
        elapsed,
        tuple(done),
        tuple(errors),
    )


def _failing(exc: Exception) -> Sender:
    def send(i: int) -> None:
        raise exc

    return send
