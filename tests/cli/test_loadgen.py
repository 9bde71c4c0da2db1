"""Load generator: exact arrival schedules, bounded runs, honest error counts, local-only URLs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from http_fakes import FakePool

from packrat_lab.cli import main
from packrat_lab.loadgen import Arrivals, LoadProcess, LoadReport, arrival_times, pace, run_load
from packrat_lab.serving.http import Server, serve_pool
from packrat_lab.serving.http.client import check_local_url


def test_uniform_arrivals_are_evenly_spaced() -> None:
    times = arrival_times(10, 1.0, poisson=False)
    np.testing.assert_allclose(times, np.arange(10) / 10)


def test_poisson_arrivals_are_seeded_sorted_and_inside_the_window() -> None:
    a = arrival_times(200, 5.0, seed=1)
    b = arrival_times(200, 5.0, seed=1)
    c = arrival_times(200, 5.0, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:10], c[:10])
    assert np.all(np.diff(a) > 0)
    assert a[0] >= 0 and a[-1] < 5.0
    # 1000 expected; a Poisson count lies within 5 standard deviations (±158)
    assert abs(len(a) - 1000) < 5 * math.sqrt(1000)
    gaps = np.diff(a)
    assert abs(gaps.mean() - 1 / 200) < 0.1 / 200 * 5  # mean gap 1/rate
    assert abs(gaps.std() / gaps.mean() - 1) < 0.15  # exponential: coefficient of variation 1


def test_max_requests_bounds_the_schedule() -> None:
    assert len(arrival_times(1000, 10, poisson=False, max_requests=7)) == 7
    assert len(arrival_times(1000, 10, max_requests=7)) == 7


@pytest.mark.parametrize(
    ("rate", "duration"), [(0, 1), (-1, 1), (float("inf"), 1), (10, 0), (10, float("nan"))]
)
def test_bad_rate_or_duration(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="example"):
        arrival_times(rate, duration)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "localhost:9", "http://[::1]:80/v2", "http://127.1.2.3"]
)
def test_loopback_urls_are_allowed(url: str) -> None:
    check_local_url(url)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://192.168.1.5"])
def test_remote_urls_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ValueError, match="only 127.0.0.1/localhost unless --allow-remote"):
        run_load(url, rate=1, duration_s=0.1)
    assert check_local_url(url, allow_remote=True)[0]


def test_https_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http://HOST:PORT URL"):
        check_local_url("https://127.0.0.1:8000")


def test_load_on_a_pool_completes_everything() -> None:
    pool = FakePool("mlp", width=8, layers=1)
    try:
        report = run_load(pool, rate=200, duration_s=0.5, poisson=False, concurrency=4)
    finally:
        pool.close()
    assert report.scheduled == report.sent == report.completed == 100
    assert report.errors == 0
    assert pool._served == 100
    assert 0 < report.p50_ms <= report.p99_ms
    assert report.throughput_rps > 0


class _BrokenPool(FakePool):
    """Every third request fails; one never answers (to check the drain timeout)."""

    def __init__(self) -> None:
        super().__init__("mlp", width=8, layers=1)
        self.calls = 0

    def submit(self, sample: Any) -> Future[Any]:
        self.calls += 1
        future: Future[Any] = Future()
        if self.calls == 1:
            return future  # never resolves
        if self.calls % 3 == 0:
            future.set_exception(RuntimeError("worker died"))
        else:
            future.set_result(sample)
        return future


def test_errors_and_timeouts_are_counted_not_hidden() -> None:
    pool = _BrokenPool()
    report = run_load(pool, rate=100, duration_s=0.3, poisson=False, concurrency=3, timeout_s=0.5)
    assert report.scheduled == report.sent == 30
    failed = len([k for k in range(2, 31) if k % 3 == 0])
    assert report.errors == failed + 1
    assert report.completed == 30 - failed - 1
    assert any("worker died" in e for e in report.error_samples)
    assert any("TimeoutError" in e for e in report.error_samples)


def test_report_dict_and_text() -> None:
    report = LoadReport("x", 10.0, 1.0, True, 3, 3, 2, 1, 1.0, (1.0, 2.0), ("RuntimeError: boom",))
    data = report.to_dict()
    assert data["p50_ms"] == 1.5
    assert data["throughput_rps"] == 2.0
    assert "latencies_ms" not in data
    json.dumps(data)
    assert "errors      1" in str(report)
    empty = LoadReport("x", 10.0, 1.0, True, 0, 0, 0, 0, 1.0)
    assert empty.to_dict()["p99_ms"] is None  # JSON has no NaN


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    pool = FakePool("mlp", width=8, layers=1)
    with serve_pool(pool) as s:
        yield s
    pool.close()


def test_load_on_a_url_completes_everything(server: Server) -> None:
    report = run_load(server.url, rate=100, duration_s=0.5, seed=4)
    assert report.errors == 0, report.error_samples
    assert report.completed == report.sent == report.scheduled > 0
    assert report.target == f"{server.url}/v2/models/mlp"


def test_load_on_a_wrong_model_reports_errors(server: Server) -> None:
    with pytest.raises(Exception, match="unknown model 'nope'"):
        run_load(f"{server.url}/v2/models/nope", rate=10, duration_s=0.2)


def test_load_on_a_closed_port_counts_errors() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError):
        run_load(f"http://127.0.0.1:{port}", rate=10, duration_s=0.2)


def test_cli_load_prints_the_figures(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", server.url, "--rate", "50", "--duration", "0.4", "--no-poisson"]) == 0
    out = capsys.readouterr().out
    for word in ("p50", "p99", "throughput", "errors      0", "(uniform)"):
        assert word in out


def test_cli_load_refuses_remote_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "http://10.1.1.1:8000", "--rate", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "packrat-lab load: error: refusing to send traffic to '10.1.1.1': only 127.0.0.1/localhost unless --allow-remote"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["load", "--rate", "5"], "give either a URL"),
        (["load", "--pool", "mlp", "--rate", "5"], "is not MODEL:PLAN"),
    ],
)
def test_cli_load_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


class FakeClock:
    """A clock that only moves when someone waits on it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeStop:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.set_ = False

    def is_set(self) -> bool:
        return self.set_

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0.0
        return self.set_


@pytest.mark.parametrize("poisson", [True, False])
def test_paced_arrivals_hold_the_asked_rate_over_30_s(poisson: bool) -> None:
    """Regression (issue 9 #3): the Lab sent 14 of 20 req/s in 1 s chunks; one process sends what it says."""
    clock = FakeClock()
    released: list[float] = []
    stop = FakeStop(clock)
    count = pace(
        Arrivals(20, poisson=poisson, seed=0),
        lambda i, due: released.append(due - 100.0),
        stop,
        until_s=30.0,
        clock=clock,
    )
    assert count == len(released) == len(arrival_times(20, 30.0, poisson=poisson, seed=0))
    if poisson:  # a Poisson count over 30 s at 20/s has a standard deviation of sqrt(600) = 4.1 %
        assert abs(count - 600) <= 3 * math.sqrt(600)
    else:
        assert abs(count / 30.0 - 20) <= 0.05 * 20
    assert released == sorted(released) and released[-1] < 30.0
    np.testing.assert_allclose(released, arrival_times(20, 30.0, poisson=poisson, seed=0))


def test_poisson_seconds_are_not_repeated_bursts() -> None:
    """Regression (issue 9 #3): every second replayed the same unseeded draw; now each second differs."""
    times = arrival_times(20, 30.0, seed=0)
    per_second = [tuple(np.round(times[(times >= s) & (times < s + 1)] - s, 6)) for s in range(30)]
    assert len(set(per_second)) == 30
    counts = [len(p) for p in per_second]
    assert len(set(counts)) > 3  # Poisson counts vary from second to second


def test_poisson_rate_is_right_on_average_over_seeds() -> None:
    rates = [len(arrival_times(20, 30.0, seed=s)) / 30.0 for s in range(200)]
    assert abs(float(np.mean(rates)) - 20) < 0.2  # standard error of the mean is ~0.06


def test_rate_change_applies_from_the_next_gap_without_restarting() -> None:
    process = Arrivals(10, poisson=False)
    first = [next(process) for _ in range(3)]
    process.set_rate(100)
    later = [next(process) for _ in range(3)]
    np.testing.assert_allclose(first + later, [0.0, 0.1, 0.2, 0.3, 0.31, 0.32])


def test_pace_stops_promptly_when_asked() -> None:
    clock = FakeClock()
    stop = FakeStop(clock)
    sent: list[int] = []

    def release(i: int, due: float) -> None:
        sent.append(i)
        if i == 4:
            stop.set_ = True

    assert pace(Arrivals(50, seed=3), release, stop, clock=clock) == 5


@pytest.mark.slow
def test_load_process_sends_the_asked_rate_from_its_own_process(server: Server) -> None:
    import os
    import time

    load = LoadProcess(server.url, rate=40, poisson=False, seed=1)
    try:
        assert load.process.pid != os.getpid()
        time.sleep(3.0)
        load.set_rate(80)
        time.sleep(3.0)
    finally:
        load.stop()
    counts = load.counts()
    assert load.error is None
    # 3 s at 40 + 3 s at 80 = 360 asked (less the child's start-up, well under a second at 40/s)
    assert 0.85 * 360 <= counts["released"] <= 360 + 2
    assert counts["completed"] == counts["sent"] == counts["released"]
    assert counts["failed"] == 0
    assert 40 <= counts["achieved_rps"] <= 80  # measured from the first arrival, not the process start


def test_cli_load_pool_splits_model_and_plan_on_the_last_colon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 9 #9): `--pool mod:fn:1x1x1` split on the first colon ("unknown model 'mod'")."""
    import packrat_lab.loadgen
    import packrat_lab.serving.pool

    made: list[tuple[str, str]] = []

    class RecordingPool:
        def __init__(self, model: str, plan: str) -> None:
            made.append((model, plan))

        def __enter__(self) -> RecordingPool:  # noqa: PYI034 - a local test double
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    report = LoadReport("pool", 5.0, 0.1, True, 0, 0, 0, 0, 0.1)
    monkeypatch.setattr(packrat_lab.serving.pool, "Pool", RecordingPool)
    monkeypatch.setattr(packrat_lab.loadgen, "run_load", lambda pool, **kw: report)
    assert main(["load", "--pool", "mypkg.models:build:1x1x1", "--rate", "5", "--duration", "0.1"]) == 0
    assert made == [("mypkg.models:build", "1x1x1")]


def test_cli_failures_exit_1_and_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Regression (issue 9 #9): runtime failures and usage errors both exited 2."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["load", f"http://127.0.0.1:{port}", "--rate", "5", "--duration", "0.2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach" in err[0] and "Traceback" not in err[0]
    assert main(["load", "--rate", "5"]) == 2  # what was typed is wrong
