"""Latency objectives (issue 10) on fakes: prediction, admission, drops, AIMD on a fake clock, the cache."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from fake_workers import FakeWorld, fake_model
from proc_utils import wait_for

from packrat_lab import FailurePolicy, Pool, Rejected
from packrat_lab.errors import DeadlineDropped, PackratError
from packrat_lab.profiling.table import profile_from_latencies
from packrat_lab.serving.admission import SlotLoad, batch_ms, predict_infer_ms, predict_submit_ms, refusal
from packrat_lab.serving.aimd import AIMDBatchSize
from packrat_lab.serving.cache import PredictionCache
from packrat_lab.serving.estimator import RefusedDemand
from packrat_lab.serving.prediction import ErrorWindow, LatencyModel, profile_prior
from packrat_lab.serving.stats import RequestStats

POLICY = FailurePolicy(tick_s=0.01, backoff_s=0.01, max_backoff_s=0.05, drain_timeout_s=2.0)


def rows(*uids: float) -> torch.Tensor:
    return torch.stack([torch.full((1024,), u) for u in uids])


def fake_pool(world: FakeWorld, plan: str = "1x1x1", **kwargs: object) -> Pool:
    return Pool("mlp", plan, channels=world.factory, announce=False, warmup=0, policy=POLICY, **kwargs)  # type: ignore[arg-type]


# -- prediction -----------------------------------------------------------------------------------


def test_profile_prior_reads_l_t_b_and_interpolates_between_batches() -> None:
    prof = profile_from_latencies("mlp", {(1, 1): 2.0, (1, 4): 5.0, (2, 4): 3.0})
    prior = profile_prior(prof, 1)
    assert prior(1) == 2.0
    assert prior(4) == 5.0
    assert prior(2) == pytest.approx(3.0)  # linear between b=1 and b=4
    assert prior(8) == pytest.approx(10.0)  # beyond the grid: the largest batch's per-row cost
    assert profile_prior(prof, 2)(4) == 3.0
    assert profile_prior(None, 1)(4) is None


def test_latency_model_corrects_the_prior_online() -> None:
    model = LatencyModel(lambda rows: 10.0 * rows, alpha=0.5)
    assert model.expect_ms(2) == 20.0
    model.observe(2, 40.0)  # twice slower than the profile said
    assert model.expect_ms(2) == 40.0
    assert model.expect_ms(4) == pytest.approx(80.0)  # unmeasured rows scale with the ratio
    model.observe(2, 20.0)
    assert model.expect_ms(2) == pytest.approx(30.0)  # EWMA with alpha 0.5


def test_latency_model_without_prior_uses_the_warm_batch_then_measurements() -> None:
    model = LatencyModel()
    assert model.expect_ms(4) == 0.0
    model.seed(4, 8.0)
    assert model.expect_ms(4) == 8.0
    assert model.expect_ms(2) == pytest.approx(6.0)  # half fixed, half per row
    model.observe(4, 12.0)
    assert model.expect_ms(4) == 12.0


def test_prediction_error_window() -> None:
    window = ErrorWindow()
    assert window.percentiles() == (None, None)
    for predicted, actual in [(10, 11), (10, 12), (10, 30)]:
        window.add(predicted, actual)
    assert window.percentiles() == (2.0, 20.0)


def test_the_admission_margin_is_the_tail_of_underestimates() -> None:
    now = [0.0]
    window = ErrorWindow(quantile=50.0, every=1, window_s=2.0, clock=lambda: now[0])
    assert window.margin_ms() == 0.0
    for predicted, actual in [(10, 5), (10, 14), (10, 30)]:  # over by 5, under by 4 and 20
        window.add(predicted, actual)
    assert window.margin_ms() == 4.0  # median of (0, 4, 20): overestimates count as 0
    now[0] = 3.0
    assert window.margin_ms() == 0.0  # nothing recent (everything was refused): no margin
    assert refusal(30.0, 40.0, 1, margin_ms=4.0) is None
    refused = refusal(37.0, 40.0, 1, margin_ms=4.0)
    assert refused is not None and "+4.0 ms margin" in str(refused)


# -- admission ------------------------------------------------------------------------------------


def slot(batch: int, wait: float, per_row: float = 1.0, fixed: float = 4.0) -> SlotLoad:
    return SlotLoad(batch, wait, lambda n: fixed + per_row * n)


def test_infer_prediction_queues_each_piece_behind_its_worker() -> None:
    slots = [slot(2, 10.0), slot(2, 0.0)]
    assert predict_infer_ms(slots, 4) == 10.0 + 6.0  # the busy worker decides
    assert predict_infer_ms(slots, 8) == 10.0 + 12.0  # two chunks of B back to back
    assert predict_infer_ms([], 1) == math.inf


def test_submit_prediction_counts_full_batches_ahead_and_the_queue_delay() -> None:
    slots = [slot(4, 3.0)]
    assert batch_ms(slots, 4) == 8.0
    # nothing ahead, batch not full: waits the queue delay (5 ms) rather than the 3 ms of work
    assert predict_submit_ms(slots, ahead=0, max_batch=4, max_delay_ms=5.0, oldest_age_ms=0.0) == 5.0 + 5.0
    # 9 ahead with B=4: two full batches, then its own batch of 2
    assert (
        predict_submit_ms(slots, ahead=9, max_batch=4, max_delay_ms=5.0, oldest_age_ms=0.0)
        == 3.0 + 2 * 8.0 + 6.0
    )


def test_refusal_names_prediction_and_deadline() -> None:
    assert refusal(9.0, 10.0, 1) is None
    refused = refusal(12.5, 10.0, 3)
    assert isinstance(refused, Rejected) and isinstance(refused, PackratError)
    assert "12.5 ms" in str(refused) and "10 ms deadline" in str(refused)
    assert (refused.predicted_ms, refused.deadline_ms) == (12.5, 10.0)
    assert "no serving worker" in str(refusal(math.inf, 10.0, 1))


# -- AIMD -----------------------------------------------------------------------------------------


def test_aimd_converges_to_the_largest_batch_under_the_objective_on_a_fake_clock() -> None:
    now = [0.0]
    aimd = AIMDBatchSize(20.0, start=1, step=1, backoff=0.9, interval_s=0.05, clock=lambda: now[0])
    latency = lambda b: 2.0 + 1.0 * b  # L(b) ≤ 20 ms up to b* = 18
    seen = []
    for _ in range(2000):
        b = aimd.batch
        now[0] += latency(b) / 1000.0  # the fake clock advances by the batch's run time
        aimd.observe(b, latency(b))
        seen.append(aimd.batch)
    tail = seen[-500:]
    assert max(tail) <= 19  # it probes one step past b*, never further
    assert min(tail) >= math.floor(19 * 0.9)  # and backs off by 10 % at most
    assert 18 in tail and aimd.decreases > 0


def test_aimd_does_not_grow_on_batches_smaller_than_b() -> None:
    aimd = AIMDBatchSize(20.0, start=4)
    for _ in range(50):
        aimd.observe(1, 1.0)  # a quiet queue: batches of one, far under the objective
    assert aimd.batch == 4
    aimd.observe(1, 50.0)
    assert aimd.batch == 3


def test_aimd_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="example: AIMDBatchSize"):
        AIMDBatchSize(0.0)


# -- cache ----------------------------------------------------------------------------------------


def test_cache_is_an_lru_keyed_by_bytes_dtype_shape_and_model() -> None:
    cache = PredictionCache(2, "mlp")
    a, b, c = torch.zeros(4), torch.ones(4), torch.full((4,), 2.0)
    for x in (a, b):
        cache.put(cache.key(x), x + 1)
    assert cache.key(a) != cache.key(a.double()) and cache.key(a) != cache.key(torch.zeros(2, 2))
    got = cache.get(cache.key(a))
    assert got is not None and torch.equal(got, a + 1)
    got.add_(100)  # a caller cannot change the cached answer
    assert torch.equal(cache.get(cache.key(a)), a + 1)  # type: ignore[arg-type]
    cache.put(cache.key(c), c + 1)  # evicts b, the least recently used
    assert cache.get(cache.key(b)) is None
    assert cache.snapshot()["cache_entries"] == 2
    cache.clear(model="resnet50")
    assert cache.get(cache.key(a)) is None
    assert cache.key(a)[0] == "resnet50"


# -- stats ----------------------------------------------------------------------------------------


def test_stats_sort_answers_into_on_time_late_rejected_and_dropped() -> None:
    now = [100.0]
    stats = RequestStats(clock=lambda: now[0])
    t = stats.begin(offered=True)
    now[0] += 0.01
    stats.end(t, "ok", deadline=t + 0.02)  # on time
    t = stats.begin(offered=True)
    now[0] += 0.03
    stats.end(t, "ok", deadline=t + 0.02)  # late
    stats.end(stats.begin(offered=True), "rejected")
    stats.end(stats.begin(offered=True), "dropped")
    stats.end(stats.begin(), "ok")  # no deadline: good, not offered
    snap = stats.snapshot()
    assert (snap["admitted"], snap["rejected"], snap["dropped"], snap["late"], snap["lost"]) == (
        3,
        1,
        1,
        1,
        0,
    )
    assert snap["slo_attainment"] == 0.25
    assert snap["goodput_rps"] > 0


# -- the pool on fake workers ---------------------------------------------------------------------


def test_an_overloaded_pool_refuses_at_once_and_never_runs_the_refused() -> None:
    world = FakeWorld(run_s=0.05)
    with fake_pool(world, "1x1x1", slo_ms=120.0, max_queue_delay_ms=0.0) as pool:
        pool.infer(rows(1.0))  # one measured run: the model learns 50 ms
        futures = [pool.submit(rows(100.0 + k)[0]) for k in range(8)]
        refused = [k for k, f in enumerate(futures) if f.done() and isinstance(f.exception(), Rejected)]
        assert refused, "eight 50 ms requests against a 120 ms objective on one worker: some must be refused"
        assert "predicted" in str(futures[refused[0]].exception())
        answered = [k for k in range(8) if k not in refused]
        for k in answered:
            try:
                assert torch.equal(futures[k].result(5), fake_model(rows(100.0 + k))[0])
            except DeadlineDropped:
                pass
        stats = pool.stats()
    assert all(world.runs[100.0 + k] == 0 for k in refused)
    assert stats["rejected"] == len(refused) and stats["lost"] == 0
    assert stats["slo_ms"] == 120.0 and stats["admitted"] == 9 - len(refused)  # the first infer too
    assert stats["prediction_error_p50_ms"] is not None


def test_refused_demand_counts_as_queued_until_its_predicted_wait_ends() -> None:
    demand = RefusedDemand(cap=3)
    demand.add(10.0, 0.5)
    demand.add(10.0, 0.1)
    assert demand.count(10.05) == 2
    assert demand.count(10.2) == 1  # the 0.1 s one would have left the queue by now
    for _ in range(5):
        demand.add(11.0, 1.0)
    assert demand.count(11.5) == 3  # never more than the cap


def test_the_estimator_sees_the_demand_admission_refused() -> None:
    """Refused requests never queue; without counting them B would be planned for what was let in."""
    world = FakeWorld(run_s=0.05)
    with fake_pool(world, "1x1x1", slo_ms=60.0) as pool:
        pool.infer(rows(1.0))  # one measured run: the model learns 50 ms
        blocker = pool.submit(rows(2.0)[0])  # keeps the worker busy: what follows is predicted late
        futures = [pool.submit(rows(100.0 + k)[0]) for k in range(40)]
        refused = sum(1 for f in futures if f.done() and isinstance(f.exception(), Rejected))
        assert refused >= 30, refused
        assert wait_for(lambda: pool.estimator.estimate >= 4, timeout=2.0), pool.estimator.recent
        blocker.exception(5)  # answered, or dropped on a slow host: either way it has settled


def test_a_queued_infer_past_its_window_is_dropped_and_never_reaches_the_worker() -> None:
    world = FakeWorld(run_s=0.01)
    with fake_pool(world, "1x1x1") as pool:
        pool.infer(rows(1.0))
        channel = world.channels[0]
        channel.pause()  # SIGSTOP: the next piece sits on the worker
        blocker = threading.Thread(target=pool.infer, args=(rows(2.0),))
        blocker.start()
        assert wait_for(lambda: pool.stats()["workers"][0]["queued"] == 1)
        outcome: list[BaseException] = []

        def late() -> None:
            try:
                pool.infer(rows(3.0), deadline_ms=100.0)
            except PackratError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=late)
        caller.start()
        time.sleep(0.2)  # its deadline passes while it waits behind the stopped worker
        channel.resume()
        caller.join(5)
        blocker.join(5)
        stats = pool.stats()
    assert len(outcome) == 1 and isinstance(outcome[0], DeadlineDropped), outcome
    assert world.runs[3.0] == 0 and world.runs[2.0] == 1
    assert stats["dropped"] == 1 and stats["workers"][0]["dropped"] == 1 and stats["lost"] == 0


def test_a_queued_submit_past_its_deadline_is_dropped_by_the_batcher() -> None:
    world = FakeWorld(run_s=0.01)
    with fake_pool(world, "1x1x1", max_queue_delay_ms=0.0) as pool:
        pool.infer(rows(1.0))
        world.channels[0].pause()
        first = pool.submit(rows(2.0)[0])  # goes out and sits on the stopped worker: the batcher waits
        assert wait_for(lambda: pool.stats()["workers"][0]["queued"] == 1)
        doomed = [pool.submit(rows(10.0 + k)[0], deadline_ms=80.0) for k in range(3)]
        time.sleep(0.15)
        world.channels[0].resume()
        assert torch.equal(first.result(5), fake_model(rows(2.0))[0])
        for f in doomed:
            assert isinstance(f.exception(5), DeadlineDropped)
        stats = pool.stats()
    assert all(world.runs[10.0 + k] == 0 for k in range(3))
    assert stats["dropped"] == 3 and stats["lost"] == 0


def test_predict_ms_grows_with_the_queue_and_stats_show_it() -> None:
    world = FakeWorld(run_s=0.02)
    with fake_pool(world, "1x1x2") as pool:
        pool.infer(rows(1.0, 2.0))
        idle = pool.predict_ms(2)
        assert 0 < idle < math.inf
        world.channels[0].pause()
        callers = [
            threading.Thread(target=pool.infer, args=(rows(10.0 + 2 * k, 11.0 + 2 * k),)) for k in range(3)
        ]
        for t in callers:
            t.start()
        assert wait_for(lambda: pool.stats()["workers"][0]["queued"] == 3)
        busy = pool.predict_ms(2)
        assert busy >= idle + 1.5 * pool.stats()["workers"][0]["expected_ms"]
        world.channels[0].resume()
        for t in callers:
            t.join(5)
        with pytest.raises(ValueError, match="example: pool.predict_ms"):
            pool.predict_ms(0)


def test_aimd_pool_drives_the_batcher_and_the_cache_answers_repeats() -> None:
    world = FakeWorld(run_s=0.005)
    # an objective far above a busy host's scheduling noise: this test is about AIMD and the cache, not admission
    with fake_pool(
        world, "1x1x2", slo_ms=6000.0, batching="aimd", cache_size=8, max_queue_delay_ms=1.0
    ) as pool:
        assert pool.stats()["aimd_batch"] == 2
        futures = [pool.submit(rows(float(k))[0]) for k in range(1, 41)]
        for f in futures:
            f.result(30)
        assert pool.stats()["aimd_batch"] > 2  # full batches far under the 2 s target: it grew
        assert wait_for(lambda: pool.stats()["served"] == 40)  # answers are kept by a done-callback
        before = world.runs[40.0]
        again = pool.submit(rows(40.0)[0]).result(30)
        assert torch.equal(again, fake_model(rows(40.0))[0]) and world.runs[40.0] == before
        assert pool.stats()["cache_hits"] == 1


def test_bad_slo_arguments_fail_with_an_example() -> None:
    world = FakeWorld()
    with pytest.raises(ValueError, match="example: Pool"):
        fake_pool(world, slo_ms=-1)
    with pytest.raises(ValueError, match="needs a latency objective"):
        fake_pool(world, batching="aimd")
    with fake_pool(world) as pool:
        with pytest.raises(ValueError, match="deadline_ms must be"):
            pool.submit(rows(1.0)[0], deadline_ms=0)
        with pytest.raises(ValueError, match="example: pool.set_slo"):
            pool.set_slo(float("nan"))
        pool.set_slo(25)
        assert pool.stats()["slo_ms"] == 25.0
        pool.set_slo(None)
        assert pool.stats()["slo_ms"] is None


def test_in_auto_mode_the_aimd_batch_is_what_the_optimizer_plans_for() -> None:
    world = FakeWorld(run_s=0.001)
    prof = profile_from_latencies("mlp", {(t, b): 1.0 + b / t for t in (1, 2) for b in (1, 2, 4, 8, 16)})
    aimd = AIMDBatchSize(100.0, start=8)  # as if AIMD had found B = 8 (no traffic: it stays there)
    with fake_pool(
        world,
        "1x1x2",
        profile=prof,
        auto=True,
        batching="aimd",
        aimd=aimd,
        auto_hysteresis_s=0.0,
        auto_min_interval_s=0.0,
    ) as pool:
        assert wait_for(lambda: pool.plan.total_batch == 8 and pool.state == "serving", timeout=10)
        assert any(e.kind == "auto-reconfigure" and e.detail["estimated_batch"] == 8 for e in pool.events())


def test_an_idle_pool_on_stale_numbers_forgets_them_instead_of_refusing_for_ever() -> None:
    """Regression (bench_slo): after an overload measured 500 ms batches, an idle pool refused everything for ever."""
    world = FakeWorld(run_s=0.002)
    with fake_pool(world, "1x1x1", slo_ms=50.0, max_queue_delay_ms=0.0) as pool:
        pool.infer(rows(1.0))
        handle = pool._supervisor.active.slots[0].handle  # type: ignore[union-attr]
        with handle._lock:
            for _ in range(5):
                handle.latency.observe(1, 500.0)  # what a starved host measured a moment ago
        with pytest.raises(Rejected):
            pool.infer(rows(2.0))  # answered a moment ago: the numbers count
        time.sleep(1.1)  # nothing answered for a second while idle: the numbers are stale
        answers = [pool.infer(rows(10.0 + k)) for k in range(5)]
        assert all(torch.equal(a, fake_model(rows(10.0 + k))) for k, a in enumerate(answers))
        assert pool.predict_ms(1, path="infer") < 50.0
        stats = pool.stats()
        events = [e.kind for e in pool.events()]
    assert stats["rejected"] == 1 and stats["dropped"] == 0 and world.runs[2.0] == 0
    assert "slo-models-reset" in events


def test_auto_mode_never_asks_for_a_batch_the_profile_cannot_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deep queue once made the estimate 256 on a profile measured to b=4: 'auto-failed' every 5 ms."""
    monkeypatch.setattr("packrat_lab.host.usable_core_count", lambda: 2)
    prof = profile_from_latencies("mlp", {(t, b): b / t + 0.5 for t in (1, 2) for b in (1, 2, 4)})
    world = FakeWorld(run_s=0.01)
    pool = fake_pool(world, "1x1x1", profile=prof, auto=True, auto_hysteresis_s=0.05, auto_min_interval_s=0.0)
    with pool:
        assert pool.estimator.max_batch == 8  # b=4 on each of 2 cores
        world.channels[0].pause()
        futures = [pool.submit(rows(float(k))[0]) for k in range(200)]
        assert wait_for(lambda: pool.estimator.estimate == 8, timeout=5.0), pool.estimator.recent
        time.sleep(0.3)
        assert not [e for e in pool.events() if e.kind == "auto-failed"]
        for channel in world.channels:
            channel.resume()
        for k, future in enumerate(futures):
            assert torch.equal(future.result(10), fake_model(rows(float(k)))[0])
