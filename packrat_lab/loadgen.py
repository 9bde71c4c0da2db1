"""Open-loop load generator: requests at a fixed or Poisson rate against a v2 URL or a Pool.

Open loop means send times are fixed in advance and latency counts from the scheduled time, so a
slow server cannot slow the offered load down (no coordinated omission). One seeded arrival process
(`Arrivals`) drives every user: `run_load` (CLI, benchmarks) takes a bounded stretch of it and
`LoadProcess` (the Lab) runs it continuously in its own process, its rate changeable on the fly.
A bounded run always stops by itself (`max_requests`, `duration_s` + `timeout_s`).
"""

from __future__ import annotations

import math
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Arrivals", "LoadProcess", "LoadReport", "arrival_times", "pace", "run_load"]

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


def _check_rate(rate: float) -> float:
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and rate > 0 and math.isfinite(rate)):
        msg = f"rate must be a positive number of requests per second, got {rate!r}; example: 50"
        raise ValueError(msg)
    return float(rate)


class Arrivals:
    """One continuous seeded arrival process: exponential gaps (Poisson) or even gaps at the current rate.

    The first arrival is at 0 for evenly spaced load and one random gap in for Poisson; changing the
    rate affects the gaps drawn from then on, so the process never restarts (no repeated bursts).
    """

    def __init__(self, rate: float, *, poisson: bool = True, seed: int = 0) -> None:
        self.rate = _check_rate(rate)
        self.poisson = poisson
        self._rng = np.random.default_rng(seed)
        self._next = 0.0 if not poisson else float(self._rng.exponential(1.0 / self.rate))
        self._base, self._steps = self._next, 0  # even gaps: base + k / rate, no float drift
        self.count = 0

    def set_rate(self, rate: float) -> None:
        """Requests per second for the gaps drawn from now on."""
        self.rate = _check_rate(rate)
        self._base, self._steps = self._next, 0

    def __next__(self) -> float:
        """Offset (s) of the next arrival from the start of the process."""
        due = self._next
        if self.poisson:
            self._next = due + float(self._rng.exponential(1.0 / self.rate))
        else:
            self._steps += 1
            self._next = self._base + self._steps / self.rate
        self.count += 1
        return due

    def __iter__(self) -> Arrivals:
        return self


def arrival_times(
    rate: float, duration_s: float, *, poisson: bool = True, seed: int = 0, max_requests: int = 100_000
) -> np.ndarray:
    """Send offsets in seconds within [0, duration_s): the first stretch of Arrivals(rate, poisson, seed)."""
    _check_rate(rate)
    if not (isinstance(duration_s, (int, float)) and duration_s > 0 and math.isfinite(duration_s)):
        msg = f"duration must be a positive number of seconds, got {duration_s!r}; example: 10"
        raise ValueError(msg)
    process = Arrivals(rate, poisson=poisson, seed=seed)
    out: list[float] = []
    while len(out) < max_requests:
        due = next(process)
        if due >= duration_s:
            break
        out.append(due)
    return np.asarray(out, dtype=float)


class _Stop(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def pace(
    arrivals: Iterator[float],
    release: Callable[[int, float], None],
    stop: _Stop,
    *,
    until_s: float | None = None,
    max_requests: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """Call release(i, due) at each arrival's due time (open loop: a late release keeps its due time).

    Runs until `stop` is set, the next arrival lies at or past `until_s`, or `max_requests` were
    released; returns how many were released. Waiting uses stop.wait, so a stop is prompt.
    """
    start = clock()
    released = 0
    while not stop.is_set() and (max_requests is None or released < max_requests):
        offset = next(arrivals)
        if until_s is not None and offset >= until_s:
            break
        due = start + offset
        delay = due - clock()
        if delay > 0 and stop.wait(delay):
            break
        release(released, due)
        released += 1
    return released


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
    _check_rate(rate)
    if not (isinstance(duration_s, (int, float)) and duration_s > 0 and math.isfinite(duration_s)):
        msg = f"duration must be a positive number of seconds, got {duration_s!r}; example: 10"
        raise ValueError(msg)
    label, make_sender = _sender_factory(target, model, batch, seed, allow_remote, timeout_s)
    senders = _Senders(make_sender, concurrency)
    start = time.perf_counter()
    scheduled = pace(
        Arrivals(rate, poisson=poisson, seed=seed),
        senders.release,
        threading.Event(),
        until_s=duration_s,
        max_requests=max_requests,
    )
    sent, done, n_errors, errors = senders.finish(start + duration_s + timeout_s)
    stuck = sent - n_errors - len(done)  # still in flight at the deadline: counted as errors
    if stuck > 0:
        errors.append(f"{stuck} request(s) unanswered after {timeout_s:g} s")
    return LoadReport(
        label,
        float(rate),
        float(duration_s),
        poisson,
        scheduled,
        sent,
        len(done),
        n_errors + max(stuck, 0),
        time.perf_counter() - start,
        tuple(done),
        tuple(errors),
    )


def _sender_factory(
    target: Any, model: str | None, batch: int, seed: int, allow_remote: bool, timeout_s: float
) -> tuple[str, Callable[[], Sender]]:
    if isinstance(target, str):
        return _http_sender_factory(target, model, batch, seed, allow_remote, timeout_s)
    if hasattr(target, "submit") and hasattr(target, "workload"):
        return _pool_sender_factory(target, batch, seed, timeout_s)
    msg = f"target must be a URL or a Pool, got {type(target).__name__}; example: 'http://127.0.0.1:8000'"
    raise ValueError(msg)


class _Senders:
    """`concurrency` sender threads taking released requests from a queue; counts and latencies."""

    def __init__(
        self, make_sender: Callable[[], Sender], concurrency: int, keep_latencies: bool = True
    ) -> None:
        self._jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._keep = keep_latencies
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.sent = self.completed = self.failed = 0
        self._make = make_sender
        self._threads = [
            threading.Thread(target=self._work, daemon=True, name=f"loadgen-{k}") for k in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def release(self, i: int, due: float) -> None:
        """Hand request i (scheduled at perf_counter time `due`) to a free sender."""
        self._jobs.put((i, due))

    def _work(self) -> None:
        try:
            send = self._make()
        except Exception as exc:  # noqa: BLE001 - e.g. cannot connect: every request this thread takes fails
            send = _failing(exc)
        while True:
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            i, due = job
            with self._lock:
                self.sent += 1
            try:
                send(i)
            except Exception as exc:  # noqa: BLE001 - any failure is one error in the report
                with self._lock:
                    self.failed += 1
                    text = f"{type(exc).__name__}: {exc}"[:300]
                    if len(self.errors) < 5 and text not in self.errors:  # distinct samples
                        self.errors.append(text)
            else:
                latency = (time.perf_counter() - due) * 1000.0
                with self._lock:
                    self.completed += 1
                    if self._keep:
                        self.latencies.append(latency)

    def finish(self, deadline: float) -> tuple[int, list[float], int, list[str]]:
        """Let queued requests finish until perf_counter `deadline`; (sent, latencies, errors, samples)."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.perf_counter()))
        self._stop.set()
        with self._lock:
            return self.sent, list(self.latencies), self.failed, list(self.errors)


def _failing(exc: Exception) -> Sender:
    def send(i: int) -> None:
        raise exc

    return send


_RELEASED, _SENT, _COMPLETED, _FAILED = range(4)


class _LiveRate:
    """Arrivals whose rate follows a shared value (the Lab's rate slider) from the next gap on."""

    def __init__(self, arrivals: Arrivals, rate: Any) -> None:
        self.arrivals, self.rate = arrivals, rate

    def __iter__(self) -> _LiveRate:
        return self

    def __next__(self) -> float:
        rate = float(self.rate.value)
        if rate != self.arrivals.rate:
            self.arrivals.set_rate(rate)
        return next(self.arrivals)


def _continuous_load(
    url: str,
    rate: Any,
    counts: Any,
    started: Any,
    error: Any,
    stop: Any,
    poisson: bool,
    seed: int,
    concurrency: int,
    timeout_s: float,
) -> None:
    """Child process body of LoadProcess: pace arrivals to a v2 URL until `stop` is set."""
    try:
        _, make_sender = _http_sender_factory(url, None, 1, seed, False, timeout_s)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        error.value = f"{type(exc).__name__}: {exc}"[:299].encode(errors="replace")
        sys.exit(1)
    senders = _Senders(make_sender, concurrency, keep_latencies=False)

    def release(i: int, due: float) -> None:
        senders.release(i, due)
        counts[_RELEASED] = i + 1
        counts[_SENT], counts[_COMPLETED], counts[_FAILED] = senders.sent, senders.completed, senders.failed
        if senders.errors:
            error.value = senders.errors[-1][:299].encode(errors="replace")

    started.value = time.time()  # the arrival process starts now (after this process's own start-up)
    pace(_LiveRate(Arrivals(float(rate.value), poisson=poisson, seed=seed), rate), release, stop)
    senders.finish(time.perf_counter() + min(timeout_s, 5.0))
    counts[_SENT], counts[_COMPLETED], counts[_FAILED] = senders.sent, senders.completed, senders.failed


class LoadProcess:
    """Continuous open-loop load on a v2 URL from its own process (never the kernel serving or drawing).

    The rate can change while it runs (`set_rate`); `counts()` reports released, sent, completed and
    failed requests and the achieved release rate, so a UI can show that load is what it says.
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        poisson: bool = True,
        seed: int = 0,
        concurrency: int = 16,
        timeout_s: float = 30.0,
    ) -> None:
        import multiprocessing

        from packrat_lab.serving.http.client import check_local_url

        check_local_url(url)
        ctx = multiprocessing.get_context("spawn")
        self._rate = ctx.Value("d", _check_rate(rate))
        self._counts = ctx.Array("q", 4)
        self._started = ctx.Value("d", 0.0)
        self._error = ctx.Array("c", 300)
        self._stop = ctx.Event()
        self.poisson = poisson
        self.process = ctx.Process(
            target=_continuous_load,
            args=(
                url,
                self._rate,
                self._counts,
                self._started,
                self._error,
                self._stop,
                poisson,
                seed,
                concurrency,
                timeout_s,
            ),
            daemon=True,
            name="packrat-load",
        )
        self.process.start()
        self.stopped: float | None = None

    @property
    def rate(self) -> float:
        """The asked rate (requests per second)."""
        return float(self._rate.value)

    def set_rate(self, rate: float) -> None:
        """Change the asked rate; gaps drawn from now on use it."""
        self._rate.value = _check_rate(rate)

    @property
    def alive(self) -> bool:
        """The load process runs."""
        return self.process.is_alive()

    @property
    def died(self) -> bool:
        """It ended without being asked to (a crash, or it could not reach the server)."""
        return self.stopped is None and not self.process.is_alive() and self.process.exitcode is not None

    @property
    def error(self) -> str | None:
        """The last error the senders met, if any."""
        text = bytes(self._error[:]).split(b"\0")[0].decode(errors="replace")
        return text or None

    def counts(self) -> dict[str, float]:
        """released, sent, completed, failed so far, and the achieved release rate since arrivals began."""
        released, sent, completed, failed = (int(v) for v in self._counts[:])
        began = float(self._started.value)
        elapsed = (self.stopped or time.time()) - began if began else 0.0
        return {
            "released": released,
            "sent": sent,
            "completed": completed,
            "failed": failed,
            "achieved_rps": released / elapsed if elapsed > 0 else 0.0,
        }

    def stop(self, timeout: float = 10.0) -> None:
        """Stop releasing, let requests in flight finish briefly, and end the process."""
        if self.stopped is None:
            self.stopped = time.time()
        self._stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
