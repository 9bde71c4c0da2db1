"""Batch-size estimator and auto policy: exact, with fake clocks and planners."""

from __future__ import annotations

import pytest

from packrat_lab.plan import Plan
from packrat_lab.serving.autoscale import AutoPolicy
from packrat_lab.serving.estimator import BatchSizeEstimator, floor_pow2


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 1), (0.9, 1), (1, 1), (1.99, 1), (2, 2), (3.7, 2), (4, 4), (15.9, 8), (16, 16), (1000, 512)],
)
def test_floor_pow2(value: float, expected: int) -> None:
    assert floor_pow2(value) == expected


def test_ewma_follows_alpha_exactly() -> None:
    est = BatchSizeEstimator(alpha=0.5, window=1)
    assert est.update(8) == 8  # first sample seeds the EWMA
    assert est.ewma == 8
    assert est.update(0) == 4  # 0.5*0 + 0.5*8
    assert est.update(0) == 2
    assert est.update(0) == 1
    assert est.ewma == pytest.approx(1.0)


def test_mode_of_last_window_and_ties_go_to_recent() -> None:
    est = BatchSizeEstimator(alpha=1.0, window=5)  # alpha 1: EWMA is the sample itself
    for depth in (4, 4, 4, 16, 16):
        est.update(depth)
    assert est.recent == [4, 4, 4, 16, 16]
    assert est.estimate == 4
    est.update(16)  # window drops the first 4: [4, 4, 16, 16, 16]
    assert est.estimate == 16
    est.update(4)  # [4, 16, 16, 16, 4]
    assert est.estimate == 16
    est2 = BatchSizeEstimator(alpha=1.0, window=4)
    for depth in (2, 8, 2, 8):
        est2.update(depth)
    assert est2.estimate == 8


def test_defaults_match_the_paper_and_cap() -> None:
    est = BatchSizeEstimator(max_batch=12)
    assert (est.alpha, est.window, est.interval_s) == (0.1, 10, 0.005)
    assert est.estimate == 1
    for _ in range(200):
        est.update(100)
    assert est.estimate == 8  # capped at floor_pow2(12)
    est.reset()
    assert est.ewma is None and est.recent == []


@pytest.mark.parametrize("kwargs", [{"alpha": 0}, {"alpha": 1.5}, {"window": 0}, {"interval_s": 0}])
def test_bad_parameters_name_the_value(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="example"):
        BatchSizeEstimator(**kwargs)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_policy_waits_for_hysteresis_and_min_interval() -> None:
    clock = FakeClock()
    asked: list[int] = []

    def planner(batch: int) -> Plan:
        asked.append(batch)
        return Plan.parse(f"1x1x{batch}")

    policy = AutoPolicy(planner, hysteresis_s=1.0, min_interval_s=5.0, clock=clock)
    assert policy.step(8, 8) is None
    assert policy.step(8, 16) is None  # divergence starts at t=0
    clock.now = 0.9
    assert policy.step(8, 16) is None
    clock.now = 1.0
    plan = policy.step(8, 16)
    assert plan is not None and plan.total_batch == 16 and asked == [16]
    # right after a change: the new divergence must last 1 s AND 5 s must pass since the change
    clock.now = 1.5
    assert policy.step(16, 4) is None
    clock.now = 3.0
    assert policy.step(16, 4) is None  # hysteresis met, interval not
    clock.now = 6.0
    plan = policy.step(16, 4)
    assert plan is not None and plan.total_batch == 4 and asked == [16, 4]


def test_policy_resets_when_estimate_returns_or_changes() -> None:
    clock = FakeClock()
    policy = AutoPolicy(lambda b: Plan.parse(f"1x1x{b}"), hysteresis_s=1.0, min_interval_s=0.0, clock=clock)
    policy.step(8, 16)
    clock.now = 0.8
    assert policy.step(8, 8) is None  # back to the plan's B: timer cleared
    clock.now = 1.2
    assert policy.step(8, 16) is None  # a fresh divergence
    clock.now = 1.9
    assert policy.step(8, 32) is None  # a different target restarts the timer
    clock.now = 2.8
    assert policy.step(8, 32) is None
    clock.now = 2.9
    assert policy.step(8, 32) is not None


def test_manual_change_counts_for_the_interval() -> None:
    clock = FakeClock()
    policy = AutoPolicy(lambda b: Plan.parse(f"1x1x{b}"), hysteresis_s=0.0, min_interval_s=5.0, clock=clock)
    policy.mark_changed()
    policy.step(8, 16)
    clock.now = 4.0
    assert policy.step(8, 16) is None
    clock.now = 5.0
    assert policy.step(8, 16) is not None


def test_skipping_idle_zeros_equals_sampling_them() -> None:
    sampled, skipped = BatchSizeEstimator(window=3), BatchSizeEstimator(window=3)
    for est in (sampled, skipped):
        est.update(5)
    assert not sampled.settled
    for _ in range(40):
        sampled.update(0)
    skipped.skip_zeros(40)
    assert sampled.settled and skipped.settled
    assert skipped.ewma == pytest.approx(sampled.ewma)
    assert skipped.recent == sampled.recent == [1, 1, 1]
    assert sampled.update(30) == skipped.update(30)


def test_reading_while_the_sampler_writes_never_raises() -> None:
    """Issue 8 item 6: stats() read the estimate while the sampler appended ('deque mutated during iteration')."""
    import threading

    estimator = BatchSizeEstimator(window=64)
    stop = threading.Event()

    def sample() -> None:
        depth = 0
        while not stop.is_set():
            estimator.update(depth % 37)
            depth += 1

    writer = threading.Thread(target=sample)
    writer.start()
    try:
        for _ in range(20_000):
            assert estimator.estimate >= 1
            assert len(estimator.recent) <= 64
    finally:
        stop.set()
        writer.join()
