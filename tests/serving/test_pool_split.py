"""Fast unit tests for the pool's pure parts: splitting, worker reuse, request accounting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from packrat_lab.plan import Instance, Plan
from packrat_lab.serving.dispatcher import Job, Piece, proportional_split, split_rows
from packrat_lab.serving.inputs import check_input
from packrat_lab.serving.reuse import match_reuse
from packrat_lab.serving.stats import RequestStats, percentile
from packrat_lab.serving.transport import Layout
from packrat_lab.settings import PASSIVE


def test_full_batch_goes_by_the_plan() -> None:
    assert split_rows(16, [8, 4, 4]) == [(0, 0, 8), (1, 8, 4), (2, 12, 4)]


@pytest.mark.parametrize(
    ("rows", "batches", "shares"),
    [
        (4, [4, 4], [2, 2]),
        (3, [4, 4], [2, 1]),
        (1, [4, 4], [1, 0]),
        (5, [8, 4, 4], [3, 1, 1]),
        (6, [2, 6], [2, 4]),
        (0, [2, 2], [0, 0]),
    ],
)
def test_proportional_split(rows: int, batches: list[int], shares: list[int]) -> None:
    got = proportional_split(rows, batches)
    assert got == shares
    assert sum(got) == rows and all(s <= b for s, b in zip(got, batches, strict=True))


def test_larger_batches_are_chunked_and_cover_every_row_once() -> None:
    parts = split_rows(19, [4, 4])
    assert parts[:4] == [(0, 0, 4), (1, 4, 4), (0, 8, 4), (1, 12, 4)]
    assert parts[4:] == [(0, 16, 2), (1, 18, 1)]
    covered = [r for _, start, n in parts for r in range(start, start + n)]
    assert covered == list(range(19))


@pytest.mark.parametrize("rows", [0, -1])
def test_empty_batch_is_refused(rows: int) -> None:
    with pytest.raises(ValueError, match="example"):
        split_rows(rows, [4])


def test_job_reassembles_in_order_and_fails_once() -> None:
    job = Job(4, Layout((2,), "float32"), pieces=2)
    src = torch.arange(8, dtype=torch.float32).view(4, 2)
    second, first = Piece(job, src[2:], 2), Piece(job, src[:2], 0)
    second.complete(src[2:] * 2)
    assert not job.future.done()
    first.complete(src[:2] * 2)
    assert torch.equal(job.future.result(), src * 2)
    failing = Job(2, Layout((1,), "float32"), pieces=2)
    failing.fail(RuntimeError("one"))
    failing.fail(RuntimeError("two"))
    Piece(failing, torch.zeros(1, 1), 0).complete(torch.zeros(1, 1))
    with pytest.raises(RuntimeError, match="one"):
        failing.future.result()


@dataclass
class FakeWorker:
    cores: tuple[int, ...]
    instance: Instance


def placed(text: str, cores: list[tuple[int, ...]]) -> tuple[Instance, ...]:
    return Plan.parse(text).with_cores(cores).instances


def test_reuse_when_only_the_count_changes() -> None:
    running = [FakeWorker(i.cores, i) for i in placed("2x1x4", [(0,), (1,)])]
    assert match_reuse(running, placed("1x1x8", [(0,)])) == [0]
    assert match_reuse(running[:1], placed("2x1x4", [(0,), (1,)])) == [0, None]


def test_no_reuse_across_threads_setting_or_cores() -> None:
    running = [FakeWorker(i.cores, i) for i in placed("2x1x4", [(0,), (1,)])]
    assert match_reuse(running, placed("1x2x8", [(0, 1)])) == [None]
    passive = Plan((Instance(1, 8, PASSIVE, (0,)),))
    assert match_reuse(running, passive.instances) == [None]
    assert match_reuse(running, placed("1x1x8", [(3,)])) == [None]
    assert match_reuse(running, placed("2x1x2", [(1,), (0,)])) == [1, 0]  # one worker per instance


def test_request_stats_accounting() -> None:
    now = [0.0]
    stats = RequestStats(window_s=10.0, clock=lambda: now[0])
    a, b, c = stats.begin(), stats.begin(), stats.begin()
    now[0] = 0.5
    stats.end(a, "ok")
    now[0] = 1.0
    stats.end(b, "failed")
    snap = stats.snapshot()
    assert (snap["submitted"], snap["served"], snap["failed"], snap["in_flight"], snap["lost"]) == (
        3,
        1,
        1,
        1,
        0,
    )
    assert snap["p50_ms"] == pytest.approx(500.0)
    assert snap["throughput_rps"] == pytest.approx(1.0)
    stats.end(c, "ok")
    now[0] = 20.0
    assert stats.snapshot()["p99_ms"] is None  # outside the window


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


@pytest.mark.parametrize(
    ("value", "batched", "fragment"),
    [
        (torch.zeros(2, 5), True, r"shape \(N, 1024\).*got shape \(2, 5\)"),
        (torch.zeros(2, 1024, dtype=torch.int64), True, "dtype float32, got shape.*int64"),
        (torch.zeros(1024), True, r"got shape \(1024,\)"),
        (torch.zeros(0, 1024), True, r"got shape \(0, 1024\)"),
        ([1.0], True, "got list"),
        (torch.zeros(1, 1024), False, r"shape \(1024,\).*got shape \(1, 1024\)"),
    ],
)
def test_check_input_names_expected_and_got(value: object, batched: bool, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment + ".*example"):
        check_input(value, (1024,), "float32", batched=batched)


def test_check_input_accepts_good_tensors() -> None:
    check_input(torch.zeros(3, 1024), (1024,), "float32", batched=True)
    check_input(torch.zeros(1024), (1024,), "float32", batched=False)
    check_input(torch.zeros(2, 3, 8, 8), (3, 8, 8), "float32", batched=True)
    check_input(torch.zeros(4, 16, dtype=torch.int64), (16,), "int64", batched=True)
