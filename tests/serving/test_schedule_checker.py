"""The schedule checker against the in-process fake transport: hundreds of seeded interleavings."""

from __future__ import annotations

import os
import re
import threading

import pytest
import torch
from fake_workers import FakeWorld, fake_model
from schedule import check_seeds, random_schedule, run_schedule, shrink

from packrat_lab import FailurePolicy, Pool

FAST_POLICY = FailurePolicy(
    hang_timeout_s=0.15, tick_s=0.01, backoff_s=0.01, max_backoff_s=0.05, drain_timeout_s=0.3
)
SEEDS = int(os.environ.get("PACKRAT_CHECKER_SEEDS", "100"))  # more: PACKRAT_CHECKER_SEEDS=1000


class FakeTarget:
    """Pools over fake workers; `kill`/`stop`/`cont` act on live fake workers by index."""

    settle_s = 10.0

    def __init__(self) -> None:
        self.world = FakeWorld(run_s=0.001)

    def make_pool(self, plan: str) -> Pool:
        self.world = FakeWorld(run_s=0.001)
        return Pool("mlp", plan, channels=self.world.factory, announce=False, warmup=0, policy=FAST_POLICY)

    def oracle(self, x: torch.Tensor) -> torch.Tensor:
        return fake_model(x)

    def same(self, got: torch.Tensor, want: torch.Tensor) -> bool:
        return bool(torch.equal(got, want))

    def row(self, uid: float) -> torch.Tensor:
        return torch.full((1024,), uid)

    def hurt(self, pool: Pool, how: str, pick: int) -> None:
        alive = self.world.alive()
        if how == "cont-all":
            for channel in alive:
                channel.resume()
            return
        if not alive:
            return
        channel = alive[pick % len(alive)]
        {"kill": channel.kill, "stop": channel.pause, "cont": channel.resume}[how]()

    def ran(self, uid: float) -> int | None:
        return self.world.runs[uid]

    def leftovers(self, pool: Pool) -> list[str]:
        return [f"fake worker {c.pid}" for c in self.world.alive()]


def test_random_schedules_keep_every_promise() -> None:
    check_seeds(FakeTarget(), range(SEEDS))


def test_random_schedules_with_deadlines_keep_every_promise() -> None:
    """Deadline'd submits and infers join the mix: a refused or dropped request is named and never ran."""
    check_seeds(FakeTarget(), range(1000, 1000 + SEEDS // 2), deadlines=True)


def test_the_checker_sees_a_dropped_request_that_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted bug (pieces past their window are sent anyway, then reported dropped) must be caught."""
    from packrat_lab.serving import dispatcher

    real_begin = dispatcher.Job.begin_piece

    def send_then_drop(self: dispatcher.Job, now: float, expect_s: float) -> str:
        verdict = real_begin(self, now, expect_s)
        if verdict == "drop":
            from packrat_lab.errors import DeadlineDropped

            threading.Timer(0.0, self.settle_claimed, [DeadlineDropped("planted")]).start()
            return "run"  # the bug: sent to the worker all the same
        return verdict

    monkeypatch.setattr(dispatcher.Job, "begin_piece", send_then_drop)
    ops = [
        ("stop", 0),
        ("infer", 1),  # one row goes to the first worker, which is stopped
        ("infer_deadline", 1, 30.0),  # admitted (the worker looks free), then stuck past its window
        ("sleep", 0.1),
        ("cont", 0),
        ("sleep", 0.1),
        ("close",),
    ]
    problems = run_schedule(FakeTarget(), ops, seed=5)
    assert any("DeadlineDropped request" in p and "ran" in p for p in problems), problems


def test_the_checker_finds_a_broken_pool_and_shrinks_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted bug (answers off by one) must be caught, named by seed, with a shorter schedule."""
    from packrat_lab.serving import dispatcher

    real_fill = dispatcher.Job.fill

    def off_by_one(self: dispatcher.Job, start: int, rows: torch.Tensor) -> bool:
        return real_fill(self, start, rows + 1)

    monkeypatch.setattr(dispatcher.Job, "fill", off_by_one)
    # Several seeds: on a loaded host one schedule's faults may leave it no answer to get wrong.
    with pytest.raises(AssertionError) as caught:
        check_seeds(FakeTarget(), [3, 4, 6, 8])
    found = re.search(
        r"(?s)seed (\d+) failed: .*differs from the oracle.*shrunk schedule \((\d+) ops\)", str(caught.value)
    )
    assert found is not None, str(caught.value)[:500]
    assert int(found.group(2)) < len(random_schedule(int(found.group(1)))), "the schedule was not shrunk"


def test_shrink_keeps_only_what_the_failure_needs() -> None:
    ops = random_schedule(11, 12)
    marker = ("kill", 99)
    planted = [*ops[:5], marker, *ops[5:]]
    small = shrink(lambda o: marker in o, planted, budget=200)
    assert small == [marker, ("close",)]


def test_a_schedule_that_breaks_a_promise_is_reported() -> None:
    """run_schedule's oracle sees a pool that answers wrongly (a fake model that drifts)."""
    target = FakeTarget()
    problems = run_schedule(target, [("infer", 3), ("close",)], seed=1)
    assert problems == []
    target.same = lambda got, want: False  # type: ignore[method-assign]
    problems = run_schedule(target, [("infer", 3), ("close",)], seed=1)
    assert any("differs from the oracle" in p for p in problems)
