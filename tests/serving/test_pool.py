"""The pool with real worker processes: answers equal the in-process model, bad input fails alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from packrat_lab import InfeasiblePlanError, Pool
from packrat_lab.host import usable_core_count
from packrat_lab.serving.transport import leftover_segments
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return MLP.build()


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with Pool("mlp", "2x1x4", max_queue_delay_ms=20.0, warmup=1) as p:
        yield p


def test_starts_warm_with_pinned_disjoint_workers(pool: Pool) -> None:
    stats = pool.stats()
    assert pool.state == "serving" and stats["plan"] == "2x1x4"
    workers = stats["workers"]
    assert [w["state"] for w in workers] == ["ready", "ready"]
    assert len({w["pid"] for w in workers}) == 2
    assert workers[0]["cores"] != workers[1]["cores"]
    assert [e.kind for e in pool.events()][:4] == ["start", "warm", "state", "auto-off"]


@pytest.mark.parametrize("rows", [8, 1, 3, 13])
def test_infer_matches_the_in_process_model(pool: Pool, reference: torch.nn.Module, rows: int) -> None:
    x = MLP.example_input(rows, seed=rows)
    with torch.inference_mode():
        expected = reference(x)
    out = pool.infer(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_submit_batches_single_samples(pool: Pool, reference: torch.nn.Module) -> None:
    before = dict(pool.stats()["batch_histogram"])
    x = MLP.example_input(24, seed=7)
    futures = [pool.submit(row) for row in x]
    out = torch.stack([f.result(timeout=60) for f in futures])
    with torch.inference_mode():
        torch.testing.assert_close(out, reference(x), rtol=1e-5, atol=1e-5)
    after = pool.stats()["batch_histogram"]
    new_batches = {
        size: after[size] - before.get(size, 0) for size in after if after[size] != before.get(size, 0)
    }
    assert sum(size * count for size, count in new_batches.items()) == 24
    assert max(new_batches) > 1  # 24 samples queued at once leave in batches, not one by one
    assert max(new_batches) <= pool.plan.total_batch


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(2, 5),
        torch.zeros(2, 1024, dtype=torch.int64),
        torch.zeros(1024),
        torch.zeros(0, 1024),
        "not a tensor",
    ],
    ids=["shape", "dtype", "no-batch-dim", "empty", "type"],
)
def test_bad_input_fails_alone_and_the_pool_keeps_serving(
    pool: Pool, reference: torch.nn.Module, bad: object
) -> None:
    with pytest.raises(
        ValueError, match=r"expected a tensor of shape \(N, 1024\) and dtype float32.*example"
    ):
        pool.infer(bad)  # type: ignore[arg-type]
    x = MLP.example_input(4, seed=1)
    with torch.inference_mode():
        torch.testing.assert_close(pool.infer(x), reference(x), rtol=1e-5, atol=1e-5)


def test_bad_sample_for_submit(pool: Pool) -> None:
    with pytest.raises(ValueError, match=r"shape \(1024,\)"):
        pool.submit(torch.zeros(1, 1024))


def test_a_plan_too_big_is_refused_and_the_old_plan_keeps_serving(
    pool: Pool, reference: torch.nn.Module
) -> None:
    too_big = f"1x{usable_core_count() + 1}x8"
    with pytest.raises(InfeasiblePlanError, match="cores"):
        pool.reconfigure(too_big)
    assert pool.plan.text == "2x1x4" and pool.state == "serving"
    refused = [e for e in pool.events() if e.kind == "reconfigure-refused"]
    assert refused and refused[-1].plan == too_big
    x = MLP.example_input(8, seed=2)
    with torch.inference_mode():
        torch.testing.assert_close(pool.infer(x), reference(x), rtol=1e-5, atol=1e-5)


def test_stats_account_for_every_request(pool: Pool) -> None:
    stats = pool.stats()
    assert stats["lost"] == 0 and stats["failed"] == 0 and stats["in_flight"] == 0
    assert stats["served"] == stats["submitted"] > 0
    assert stats["p50_ms"] is not None and stats["p99_ms"] >= stats["p50_ms"]
    assert sum(w["served"] for w in stats["workers"]) > 0


def test_tiny_cnn_and_close_leaves_nothing() -> None:
    cnn = get_workload("tiny-cnn")
    x = cnn.example_input(5, seed=3)
    with torch.inference_mode():
        expected = cnn.build()(x)
    pool = Pool(cnn, "1x1x4", warmup=1)
    prefix = pool._prefix
    pids = [w["pid"] for w in pool.stats()["workers"]]
    torch.testing.assert_close(pool.infer(x), expected, rtol=1e-5, atol=1e-5)
    assert leftover_segments(prefix)  # the worker's segments exist while it serves
    queued = [pool.submit(row) for row in x]
    pool.close()  # what was queued still runs
    torch.testing.assert_close(
        torch.stack([f.result(timeout=5) for f in queued]), expected, rtol=1e-5, atol=1e-5
    )
    pool.close()
    assert pool.state == "closed"
    assert leftover_segments(prefix) == []
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(Exception, match="closed"):
        pool.infer(x)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
