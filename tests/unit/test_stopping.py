"""The adaptive stopping rule, driven exactly by a fake clock and synthetic sample streams."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pytest

from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.stopping import (
    StoppingRule,
    half_width_ratio,
    run_interleaved,
    run_timed,
    run_warmup,
)


class FakeClock:
    """A clock that moves only when a fake step 'takes' time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stepper(clock: FakeClock, durations_s: Iterable[float]) -> tuple[list[int], object]:
    """A step function that advances the clock by the next duration and counts its calls."""
    calls: list[int] = []
    stream = iter(durations_s)

    def step() -> None:
        calls.append(1)
        clock.now += next(stream)

    return calls, step


def test_constant_latency_stops_for_precision_at_min_samples() -> None:
    clock = FakeClock()
    calls, step = stepper(clock, [0.005] * 1000)
    run = run_timed(step, StoppingRule(precision=0.02, min_samples=10, max_samples=100, time_cap_s=60), clock)
    assert run.stop_reason == "precision"
    assert len(run.samples_ms) == 10 == len(calls)
    assert run.samples_ms == pytest.approx([5.0] * 10)
    assert run.wall_s == pytest.approx(0.05)


def test_spread_latency_runs_to_max_samples() -> None:
    clock = FakeClock()
    _, step = stepper(clock, [0.001, 0.1] * 100)
    run = run_timed(step, StoppingRule(precision=0.02, min_samples=5, max_samples=30, time_cap_s=60), clock)
    assert run.stop_reason == "max-samples"
    assert len(run.samples_ms) == 30
    assert run.samples_ms[:2] == pytest.approx((1.0, 100.0))


def test_time_cap_stops_after_the_sample_that_crosses_it() -> None:
    clock = FakeClock()
    _, step = stepper(clock, [1.0, 2.0] * 10)  # noisy: never precise
    run = run_timed(step, StoppingRule(precision=0.02, min_samples=2, max_samples=100, time_cap_s=3.5), clock)
    assert run.stop_reason == "time-cap"
    assert run.samples_ms == pytest.approx((1000.0, 2000.0, 1000.0))  # elapsed 1, 3, then 4 >= 3.5
    assert run.wall_s == pytest.approx(4.0)


def test_one_slow_iteration_is_kept_even_past_the_cap() -> None:
    clock = FakeClock()
    _, step = stepper(clock, [20.0])
    run = run_timed(step, StoppingRule(min_samples=10, time_cap_s=10), clock)
    assert (run.stop_reason, run.samples_ms) == ("time-cap", (20000.0,))


def test_precision_needs_min_samples_first() -> None:
    rule = StoppingRule(precision=0.02, min_samples=10, max_samples=100, time_cap_s=60)
    assert rule.decide([5.0] * 9, elapsed_s=0.1) is None
    assert rule.decide([5.0] * 10, elapsed_s=0.1) == "precision"


def test_half_width_from_order_statistics_by_hand() -> None:
    # n=10: the exact 95 % CI runs from the 2nd to the 9th order statistic
    assert half_width_ratio([100.0] * 5 + [102.0] * 5) == pytest.approx(1.0 / 101.0)
    assert half_width_ratio([100.0] * 5 + [106.0] * 5) == pytest.approx(3.0 / 103.0)
    assert half_width_ratio([float(v) for v in range(1, 11)]) == pytest.approx(3.5 / 5.5)
    assert half_width_ratio([]) == math.inf


def test_decision_at_the_precision_boundary() -> None:
    rule = StoppingRule(precision=0.02, min_samples=10, max_samples=100, time_cap_s=60)
    assert rule.decide([100.0] * 5 + [102.0] * 5, elapsed_s=1.0) == "precision"  # ±0.99 %
    assert rule.decide([100.0] * 5 + [106.0] * 5, elapsed_s=1.0) is None  # ±2.9 %
    assert rule.decide([100.0] * 5 + [106.0] * 5, elapsed_s=60.0) == "time-cap"


def test_narrowing_stream_stops_once_ci_is_tight() -> None:
    # ten spread samples, then a steady 50 ms: the CI tightens only when the steady ones dominate
    clock = FakeClock()
    spread = [0.040, 0.060] * 5
    _, step = stepper(clock, spread + [0.050] * 200)
    rule = StoppingRule(precision=0.02, min_samples=10, max_samples=200, time_cap_s=600)
    run = run_timed(step, rule, clock)
    assert run.stop_reason == "precision"
    n = len(run.samples_ms)
    assert rule.decide(run.samples_ms[: n - 1], 0.0) is None  # one sample earlier it was not tight
    assert half_width_ratio(run.samples_ms) <= 0.02 < half_width_ratio(run.samples_ms[: n - 1])


@pytest.mark.parametrize(
    ("step_s", "cap_s", "expected"),
    [(1.0, 2.5, 3), (1.0, 5.5, 6), (0.001, 5.0, 10), (10.0, 0.1, 3)],
)
def test_warmup_between_min_and_max_iterations(step_s: float, cap_s: float, expected: int) -> None:
    clock = FakeClock()
    calls, step = stepper(clock, [step_s] * 100)
    done = run_warmup(step, min_iters=3, max_iters=10, time_cap_s=cap_s, clock=clock)
    assert done == expected == len(calls)


def test_zero_warmup_runs_nothing() -> None:
    clock = FakeClock()
    calls, step = stepper(clock, [1.0])
    assert run_warmup(step, min_iters=0, max_iters=0, clock=clock) == 0 and not calls


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": 0.0}, "precision must be in"),
        ({"min_samples": 20, "max_samples": 10}, "min_samples <= max_samples"),
        ({"time_cap_s": 0.0}, "time cap must be positive"),
    ],
)
def test_bad_rules_are_rejected(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StoppingRule(**kwargs)  # type: ignore[arg-type]


def test_rule_round_trips_through_json_dict() -> None:
    rule = StoppingRule(0.05, 7, 70, 3.0)
    assert StoppingRule.from_dict(rule.to_dict()) == rule


def test_measurement_of_a_timed_run_is_noisy_only_when_imprecise() -> None:
    clock = FakeClock()
    _, step = stepper(clock, [1.0, 2.0] * 10)
    run = run_timed(step, StoppingRule(min_samples=2, time_cap_s=3.5), clock)
    m = Measurement(1, 1, "default", run.samples_ms, stop_reason=run.stop_reason)
    assert m.noisy and m.warnings == ["only 3 samples (time cap reached); the median is rough"]
    assert (m.median, m.mean) == (1000.0, pytest.approx(4000.0 / 3))
    clean = Measurement(1, 1, "default", tuple([5.0] * 9 + [5.05]), stop_reason="precision")
    assert not clean.noisy and clean.warnings == []
    assert clean.p99 == pytest.approx(5.0 + 0.05 * 0.91)


def test_interleaved_steps_take_turns_and_stop_as_they_would_alone() -> None:
    clock = FakeClock()
    order: list[str] = []

    def make(name: str, seconds: float) -> Callable[[], None]:
        def step() -> None:
            order.append(name)
            clock.now += seconds

        return step

    rule = StoppingRule(precision=0.02, min_samples=4, max_samples=4, time_cap_s=60)
    done: list[int] = []
    runs = run_interleaved(
        [make("a", 0.1), make("b", 0.3)], rule, slice_s=0.15, clock=clock, on_done=lambda i, r: done.append(i)
    )
    # a's turn ends once 0.15 s have passed (2 calls); b's single call exceeds the slice
    assert order == ["a", "a", "b", "a", "a", "b", "b", "b"]
    assert done == [0, 1] and [r.stop_reason for r in runs] == ["max-samples"] * 2
    alone = [run_timed(make(name, s), rule, clock) for name, s in (("a", 0.1), ("b", 0.3))]
    assert [r.samples_ms for r in runs] == [pytest.approx(r.samples_ms) for r in alone]
    assert [r.wall_s for r in runs] == [pytest.approx(r.wall_s) for r in alone]  # own time only


def test_time_cap_counts_only_a_steps_own_calls_when_interleaved() -> None:
    clock = FakeClock()
    noisy = iter([1.0, 2.0] * 50)

    def fast() -> None:
        clock.now += next(noisy)

    def slow() -> None:
        clock.now += 50.0

    rule = StoppingRule(precision=0.02, min_samples=2, max_samples=100, time_cap_s=3.5)
    first, second = run_interleaved([fast, slow], rule, slice_s=0.0, clock=clock)
    assert first.stop_reason == "time-cap" and first.samples_ms == pytest.approx((1000.0, 2000.0, 1000.0))
    assert second.samples_ms == pytest.approx((50000.0,))


def test_warmup_with_no_minimum_and_no_time_left_runs_nothing() -> None:
    clock = FakeClock()
    calls, step = stepper(clock, [1.0] * 10)
    assert run_warmup(step, min_iters=0, max_iters=10, time_cap_s=-0.5, clock=clock) == 0 and not calls
    assert run_warmup(step, min_iters=0, max_iters=10, time_cap_s=2.5, clock=clock) == 3 == len(calls)
