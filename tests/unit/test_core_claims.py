"""Core claims: two claimers on one host get disjoint cores; a freed or crashed claim frees its cores."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.serving.claims import claim_cores, pin_process


def _hold(folder: str, ready: mp.synchronize.Event, done: mp.synchronize.Event) -> None:
    claim_cores(1, among=(0, 1), folder=Path(folder))
    ready.set()
    done.wait(30)


def test_claims_are_disjoint_and_released(tmp_path: Path) -> None:
    first = claim_cores(1, among=(4, 5), folder=tmp_path)
    second = claim_cores(1, among=(4, 5), folder=tmp_path)
    assert (first.cores, second.cores) == ((4,), (5,))
    with pytest.raises(InfeasiblePlanError, match="only 0 of 2 cores on this host are free but 1 are needed"):
        claim_cores(1, among=(4, 5), folder=tmp_path)
    first.release()
    assert claim_cores(1, among=(4, 5), folder=tmp_path).cores == (4,)


def test_a_claim_dies_with_its_process(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready, done))
    holder.start()
    assert ready.wait(60)
    assert claim_cores(1, among=(0, 1), folder=tmp_path).cores == (1,)  # 0 is the other process's
    holder.kill()
    holder.join(30)
    assert claim_cores(1, among=(0,), folder=tmp_path).cores == (0,)


def test_bad_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive integer, got 0"):
        claim_cores(0, folder=tmp_path)


def test_pin_process_restricts_every_thread() -> None:
    import threading

    original = os.sched_getaffinity(0)
    seen: list[set[int]] = []
    started, stop = threading.Event(), threading.Event()

    def worker() -> None:
        started.set()
        stop.wait(10)
        seen.append(os.sched_getaffinity(0))

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(10)
    one = min(original)
    try:
        pin_process((one,))
        stop.set()
        thread.join(10)
        assert seen == [{one}] and os.sched_getaffinity(0) == {one}
    finally:
        pin_process(tuple(original))
