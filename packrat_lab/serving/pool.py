"""Pool: serve a Plan with one pinned worker process per instance, and switch plans live.

Threads and what they own (the lifecycle itself is `supervisor.py`'s, see its docstring):
- callers (`infer`, `submit`, HTTP handlers): check input, then `_dispatch` reads the serving
  generation under `supervisor.dispatch_lock` and enqueues pieces on its workers' handles; an
  `infer` whose batch is one piece for an idle worker then reads that worker's answer from its
  direct pipe itself (the fast path, no reader-thread hop; handle.py says who owns what);
- packrat-batcher: forms batches from `submit`ted samples and dispatches them: work-conserving
  (default) it sends each worker its next slice (≤ b_k) the moment that worker is free (a worker
  starting or being replaced gets none while another serves), reading the serving workers
  (`_lanes`, dispatch_lock) with no batcher lock held; lockstep keeps one
  batch of B in flight and splits it by the plan; a `submit` that finds nothing queued and a
  worker free is sent on the caller's own thread (the batcher's fast path, same locks, same order);
- packrat-estimator: samples queue depth; in auto mode asks the supervisor for a switch;
- packrat-supervisor: the only writer of workers, generations and `state`;
- packrat-reader-N: one per worker, turns replies into answers and posts worker news;
- packrat-events: calls `on_event` observers (they may do anything but block for long).
Latency SLOs add no thread: admission (`predict_ms`, refusals) runs on the caller's thread and
reads each serving handle's queue and latency model under dispatch_lock → handle lock; drops
happen where a piece would be sent (handle lock, then job lock) or where the batcher takes a
batch (its condition lock), and are settled after the lock is released. New locks, each a leaf
held for a few operations: the prediction cache's, the AIMD controller's, the error window's,
and `_cycle_lock` (the batcher's measured batch cycle, read by the batcher under its condition).
The batcher puts each answer into the prediction cache (`before_answer`, no batcher lock held)
before it settles that request, so a repeat asked right after the answer hits the cache.
Lock order: dispatch_lock → handle lock → job lock, and the batcher's condition comes after all of
them (a settled piece's callback takes it, sometimes under dispatch_lock), so the batcher never takes
a pool lock while holding it; futures are settled with no lock held, so a
done-callback may call back into the pool (but `close()` from a callback of this pool's own
future would wait on itself: don't).
"""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from packrat_lab._numbers import positive_number
from packrat_lab.child_env import child_environment
from packrat_lab.errors import (
    DeadlineDropped,
    InfeasiblePlanError,
    PoolClosedError,
    Rejected,
    RequestTimeoutError,
    WorkerFailedError,
)
from packrat_lab.plan import Instance, Plan
from packrat_lab.serving.admission import (
    SlotLoad,
    predict_conserving_ms,
    predict_infer_ms,
    predict_submit_ms,
    refusal,
)
from packrat_lab.serving.aimd import AIMDBatchSize
from packrat_lab.serving.autoscale import AutoPolicy, optimizer_planner
from packrat_lab.serving.batcher import DynamicBatcher, Lane
from packrat_lab.serving.cache import PredictionCache
from packrat_lab.serving.channel import ChannelFactory, process_channels
from packrat_lab.serving.cleanup import shutdown
from packrat_lab.serving.dispatcher import Job, Piece, lane_capacity, split_rows
from packrat_lab.serving.estimator import BatchSizeEstimator, RefusedDemand, floor_pow2
from packrat_lab.serving.events import Event, EventLog
from packrat_lab.serving.handle import WorkerHandle
from packrat_lab.serving.inputs import check_input
from packrat_lab.serving.lifecycle import FailurePolicy, PoolState
from packrat_lab.serving.plan_check import check_plan
from packrat_lab.serving.prediction import ErrorWindow, LatencyModel, profile_prior
from packrat_lab.serving.stats import RequestStats
from packrat_lab.serving.supervisor import Supervisor
from packrat_lab.serving.transport import Layout, new_prefix, remove_segments
from packrat_lab.serving.worker import WorkerConfig, WorkerState

if TYPE_CHECKING:
    import torch

    from packrat_lab.profiling.table import Profile
    from packrat_lab.settings import RuntimeSetting
    from packrat_lab.workloads.base import Workload

__all__ = ["Pool", "PoolStats"]

STALE_AFTER_S = 1.0  # an idle pool that answered nothing for this long forgets its measured latencies


class PoolStats(TypedDict):
    """What `Pool.stats()` returns (and the HTTP /v2/stats route serves)."""

    name: str
    state: str
    plan: str
    submitted: int
    served: int
    failed: int
    cancelled: int
    rejected: int
    dropped: int
    in_flight: int
    lost: int
    slo_ms: float | None
    admitted: int
    late: int
    slo_attainment: float | None
    goodput_rps: float
    prediction_error_p50_ms: float | None
    prediction_error_p99_ms: float | None
    prediction_margin_ms: float
    predicted_ms: float | None
    batching: str
    aimd_batch: int | None
    cache_size: int
    cache_entries: int
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    throughput_rps: float
    queue_depth: int
    batch_histogram: dict[int, int]
    estimated_batch: int
    reconfigurations: int
    worker_restarts: int
    reruns: int
    hung_workers: int
    auto: bool
    workers: list[dict[str, Any]]
    retiring_workers: list[dict[str, Any]]


def place(plan: Plan) -> Plan:
    """The plan with disjoint cores from `assign_cores`; InfeasiblePlanError if it doesn't fit the host.

    A plan whose every instance already names its cores (a Fleet's share of the host) keeps them.
    """
    from packrat_lab.host import assign_cores

    if all(i.cores for i in plan.instances):
        return plan
    return plan.with_cores(assign_cores([i.threads for i in plan.instances]))


class Pool:
    """A plan served in the background by pinned worker processes (Packrat §3.7–3.8).

    `Pool(model, plan)` returns once every instance's worker is loaded and warm. Each worker is a
    spawned process pinned to its own cores from `assign_cores`, with the instance's threads and
    runtime setting. `infer(batch)` splits a batch by the plan; `submit(sample)` goes through the
    dynamic batcher. With `dispatch="work-conserving"` (the default) each instance takes its next
    slice of up to b_k queued samples as soon as it is free, so no instance idles while samples
    wait and lone samples spread over instances; under load this is the plan's split of B, with
    one batch in flight per instance. `dispatch="lockstep"` keeps Packrat's original batcher: one
    batch of up to B in flight, sent when B wait or after `max_queue_delay_ms`. `reconfigure(plan)` is an
    active-passive switch with nothing lost. With `auto=True` (needs `profile=`), the batch-size
    estimator drives reconfiguration through the optimizer once the estimated B has differed for
    `auto_hysteresis_s` and `auto_min_interval_s` has passed since the last change; a manual
    `reconfigure` turns auto off (manual beats auto). Workers that die, hang or fail to start
    are handled by `policy` (see FailurePolicy); `state` says 'degraded' while a worker keeps
    failing. Plan settings are looked up by name among the built-in ones, the profile's and
    `settings=`; an instance batch above `max_instance_batch` (default: the profile's largest
    batch, else 4096) is refused. With `announce=True` the pool serves its management routes on
    127.0.0.1 and registers itself for JupyterLab's Packrat sidebar. Use as a context manager,
    or call `close()`; an unclosed pool is cleaned up at interpreter exit. Workers are spawned, so
    a script (not a notebook) must create pools under `if __name__ == "__main__":`.

    Latency objectives (Clockwork): with `slo_ms` (or `deadline_ms=` per call) a request
    predicted to miss its deadline is refused at once (`Rejected`), and an admitted one that can
    no longer finish in time is dropped before it runs (`DeadlineDropped`, a `Rejected`);
    `predict_ms(rows)` is the prediction for a request arriving now, from the work queued on each
    worker and each worker's latency per batch (the profile's L[t][b], corrected online).
    `batching="aimd"` lets the batcher's max batch follow Clipper's AIMD toward a third of the SLO (in
    auto mode that batch is the B the optimizer plans for); `cache_size=N` keeps the last N
    answers by exact input (Clipper's prediction cache).

    `infer_path="direct"` (the default) is `infer`'s fast path: a batch that goes out as one piece
    to an idle worker is answered on that worker's direct pipe, which the calling thread reads
    itself (one thread wake-up less than a reader thread settling a future); `"reader"` sends every
    answer through the reader thread, kept for A/B runs (benchmarks/bench_transport.py).
    """

    def __init__(
        self,
        model: Any,
        plan: Plan | str,
        *,
        profile: Profile | None = None,
        max_queue_delay_ms: float = 5.0,
        estimator: BatchSizeEstimator | None = None,
        auto: bool = False,
        warmup: int = 2,
        name: str | None = None,
        announce: bool = True,
        auto_hysteresis_s: float = 1.0,
        auto_min_interval_s: float = 5.0,
        policy: FailurePolicy | None = None,
        settings: Mapping[str, RuntimeSetting] | None = None,
        max_instance_batch: int | None = None,
        channels: ChannelFactory | None = None,
        slo_ms: float | None = None,
        batching: Literal["packrat", "aimd"] = "packrat",
        aimd: AIMDBatchSize | None = None,
        cache_size: int = 0,
        dispatch: Literal["work-conserving", "lockstep"] = "work-conserving",
        infer_path: Literal["direct", "reader"] = "direct",
    ) -> None:
        from packrat_lab.workloads.registry import get_workload

        if auto and profile is None:
            msg = "auto mode needs a profile to plan from; example: Pool('mlp', '2x1x4', profile=prof, auto=True)"
            raise ValueError(msg)
        if max_queue_delay_ms < 0 or warmup < 0:
            msg = f"max_queue_delay_ms and warmup must be ≥ 0, got {max_queue_delay_ms!r}, {warmup!r}; example: Pool('mlp', '2x1x4', max_queue_delay_ms=5.0, warmup=2)"
            raise ValueError(msg)
        if slo_ms is not None:
            _check_ms(slo_ms, "slo_ms", "Pool('mlp', '2x1x4', slo_ms=50)")
        if batching not in ("packrat", "aimd"):
            msg = f"batching must be 'packrat' or 'aimd', got {batching!r}; example: Pool('mlp', '2x1x4', batching='aimd', slo_ms=50)"
            raise ValueError(msg)
        if dispatch not in ("work-conserving", "lockstep"):
            msg = f"dispatch must be 'work-conserving' or 'lockstep', got {dispatch!r}; example: Pool('mlp', '2x1x4', dispatch='work-conserving')"
            raise ValueError(msg)
        if infer_path not in ("direct", "reader"):
            msg = f"infer_path must be 'direct' or 'reader', got {infer_path!r}; example: Pool('mlp', '1x1x8', infer_path='direct')"
            raise ValueError(msg)
        if batching == "aimd" and slo_ms is None and aimd is None:
            msg = "batching='aimd' needs a latency objective; example: Pool('mlp', '2x1x4', batching='aimd', slo_ms=50)"
            raise ValueError(msg)
        self.workload: Workload = get_workload(model)
        self.slo_ms = float(slo_ms) if slo_ms is not None else None
        self.batching = batching
        self._cache = PredictionCache(cache_size, self.workload.name)
        self._prediction_errors = ErrorWindow()
        self.name = name or f"pool-{self.workload.name}"
        self.profile = profile
        self.warmup = warmup
        self.policy = policy or FailurePolicy()
        self._settings = _known_settings(profile, settings)
        self._max_instance_batch = max_instance_batch or _profile_max_batch(profile) or 4096
        placed = place(self.check_plan(plan))
        self._prefix = new_prefix()
        self._channels = channels or process_channels(multiprocessing.get_context("spawn"))
        self._events = EventLog()
        self._stats = RequestStats()
        self._ids = itertools.count()
        self._closing = False  # close() began: new infer/submit calls are refused
        self._dispatch_closed = False  # the batcher has drained: nothing more is dispatched
        self._close_lock = threading.Lock()
        self._out_layout: Layout | None = None
        self._supervisor = Supervisor(self._make_handle, self._events, self.policy, self._remove_segments)
        self._finalizer = weakref.finalize(self, shutdown, self._supervisor, self._prefix)
        self._events.record("start", placed.text, prefix=self._prefix)
        try:
            self._supervisor.start(placed).result()
        except BaseException:  # a failed start or a KeyboardInterrupt in the notebook: leave nothing behind
            self.close()
            raise
        self._aimd: AIMDBatchSize | None = None
        if batching == "aimd":
            # a sample waits out the batch in flight, then runs in the next (2T), and T has a tail: T ≤ SLO/3
            target = self.slo_ms / 3 if self.slo_ms is not None else 0.0
            self._aimd = aimd or AIMDBatchSize(
                target, start=self.plan.total_batch, max_batch=self._max_instance_batch
            )
        self._last_answer = time.monotonic()  # when a request was last answered (stale models: see _admit)
        self._cycle = LatencyModel()  # the batcher's dispatch-to-delivery time per batch size
        self._cycle_lock = threading.Lock()
        self.dispatch = dispatch
        self.infer_path = infer_path
        self._batcher = DynamicBatcher(
            self._dispatch,
            self._batch_limit,
            max_queue_delay_ms / 1000.0,
            lanes=self._lanes if dispatch == "work-conserving" else None,
            on_batch=self._observe_batch,
            expect_ms=self._cycle_ms,
            before_answer=self._cache_answer if self._cache.enabled else None,
        )
        self.estimator = estimator or BatchSizeEstimator(max_batch=_plannable_batch(profile))
        self._refused = RefusedDemand()  # refused submits, seen by the estimator as queued demand
        self._policy = (
            AutoPolicy(
                optimizer_planner(profile), hysteresis_s=auto_hysteresis_s, min_interval_s=auto_min_interval_s
            )
            if profile is not None
            else None
        )
        self._auto = False
        self.set_auto(auto)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, name="packrat-estimator", daemon=True)
        self._sampler.start()
        if announce:  # JupyterLab's Packrat sidebar; PACKRAT_LAB_ANNOUNCE=0 opts out everywhere
            from packrat_lab.serving.announce import announce as announce_pool

            self._announcement = announce_pool(self)

    # -- public API ---------------------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        """The plan requests are dispatched to now (with cores filled in)."""
        active = self._supervisor.active
        assert active is not None, "the pool has not started"
        return active.plan

    @property
    def state(self) -> PoolState:
        """starting, serving, switching, degraded, draining or closed."""
        return self._supervisor.state

    @property
    def reconfigurations(self) -> int:
        """Plan switches completed so far."""
        return self._supervisor.reconfigurations

    def infer(
        self, batch: torch.Tensor, *, timeout: float | None = None, deadline_ms: float | None = None
    ) -> torch.Tensor:
        """Run a batch of N ≥ 1 samples split by the plan (chunks of B when N > B); output rows in order.

        With `timeout` (seconds), a batch not answered in time is withdrawn (its pieces that have
        not started never run) and RequestTimeoutError is raised. With `deadline_ms` (default: the
        pool's `slo_ms`), a batch predicted to miss it raises Rejected at once, and one that can no
        longer finish in time before any of it started raises DeadlineDropped (it never ran).
        """
        self._check(batch, batched=True)
        if self._closing:
            msg = f"pool {self.name!r} is closed; start a new Pool to serve requests"
            raise PoolClosedError(msg)
        if timeout is not None and not timeout > 0:
            msg = f"timeout must be a positive number of seconds, got {timeout!r}; example: pool.infer(x, timeout=2.0)"
            raise ValueError(msg)
        budget_ms = self._budget_ms(deadline_ms)
        keys = [self._cache.key(row) for row in batch] if self._cache.enabled else []
        hits = [self._cache.get(k) for k in keys]
        if keys and all(h is not None for h in hits):
            import torch

            self._answered_from_cache(budget_ms)
            return torch.stack(hits)  # type: ignore[arg-type]
        rows = int(batch.shape[0])
        started = self._stats.begin(offered=budget_ms is not None)
        deadline = None if budget_ms is None else started + budget_ms / 1000.0
        predicted: float | None = None
        outcome = "failed"
        try:
            if budget_ms is not None:
                predicted, refused = self._admit(rows, budget_ms, path="infer")
                if refused is not None:
                    outcome = "rejected"
                    raise refused
            job, direct = self._dispatch_job(batch, deadline=deadline, direct=self.infer_path == "direct")
            ends_at = None if timeout is None else time.monotonic() + timeout
            if direct is not None:  # one piece, sent for this thread to read (see handle.py)
                handle, piece = direct
                handle.collect_direct(piece, _left_s(ends_at))
            try:
                out = job.future.result(_left_s(ends_at))
            except TimeoutError:
                error = RequestTimeoutError(
                    f"no answer to a {rows}-row batch within {timeout:g} s; it was withdrawn"
                )
                if job.fail(error):
                    raise error from None
                out = job.future.result()  # answered in the instant between the two
            except DeadlineDropped:
                outcome = "dropped"
                raise
            outcome = "ok"
            self._last_answer = time.monotonic()
            for key, row in zip(keys, out if keys else (), strict=True):
                self._cache.put(key, row)
            return out
        finally:
            latency_ms = self._stats.end(started, outcome, deadline)
            if predicted is not None and outcome == "ok":
                self._prediction_errors.add(predicted, latency_ms)

    def submit(self, sample: torch.Tensor, *, deadline_ms: float | None = None) -> Future[torch.Tensor]:
        """Queue one sample (no batch dimension) for the dynamic batcher; the future gets its output row.

        Cancelling the future (or an asyncio timeout on `asyncio.wrap_future`) withdraws the
        sample if it has not gone out yet; the pool keeps serving. With `deadline_ms` (default:
        the pool's `slo_ms`) the future raises Rejected at once if the sample is predicted to miss
        it, or DeadlineDropped if it could no longer finish in time before it ran.
        """
        self._check(sample, batched=False)
        budget_ms = self._budget_ms(deadline_ms)
        key = self._cache.key(sample) if self._cache.enabled else None
        hit = self._cache.get(key) if key is not None else None
        future: Future[torch.Tensor]
        if hit is not None:
            self._answered_from_cache(budget_ms)
            future = Future()
            future.set_result(hit)
            return future
        started = self._stats.begin(offered=budget_ms is not None)
        deadline = None if budget_ms is None else started + budget_ms / 1000.0
        predicted: float | None = None
        if budget_ms is not None and not self._closing:
            predicted, refused = self._admit(1, budget_ms, path="submit")
            if refused is not None:
                self._stats.end(started, "rejected")
                # demand the estimator must still see: held for its deadline, the longest it could
                # have waited (its prediction may be tiny when a margin or no worker refused it)
                self._refused.add(time.monotonic(), budget_ms / 1000.0)
                self._batcher.activity.set()
                future = Future()
                future.set_exception(refused)
                return future
        future = self._batcher.submit(sample, deadline=deadline)
        future.add_done_callback(
            functools.partial(self._submitted_done, started=started, deadline=deadline, predicted=predicted)
        )
        return future

    def predict_ms(self, rows: int = 1, *, path: Literal["submit", "infer"] | None = None) -> float:
        """Predicted ms from now until a request of `rows` arriving now is answered (inf: no worker can take it).

        `path` is how it arrives: through the batcher (`submit`, the default for one row) or split
        by the plan at once (`infer`, the default for more). The prediction counts the work queued
        on each worker (what is left of the running piece included) and each worker's expected
        time per batch: the profile's L[t][b] (else its warm batch), corrected by measured runs.
        """
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            msg = f"rows must be a positive integer, got {rows!r}; example: pool.predict_ms(rows=1)"
            raise ValueError(msg)
        if (path or ("submit" if rows == 1 else "infer")) == "submit":
            if rows != 1:
                msg = f"submit takes one sample, got rows={rows}; example: pool.predict_ms(8, path='infer')"
                raise ValueError(msg)
            return self._predict(1, "submit", self._loads())
        return self._predict(rows, "infer", self._loads())

    def reconfigure(self, plan: Plan | str, *, wait: bool = True) -> Future[Plan]:
        """Switch to `plan` active-passive: start new workers passive, warm them, switch, drain, stop.

        Workers whose threads, setting and cores stay the same are reused (only their batch slice
        changes). The new plan must fit the host on its own (InfeasiblePlanError otherwise, and the
        old plan keeps serving). A manual switch turns auto mode off. With `wait=False` this
        returns the switch's future at once (feasibility is still checked first); otherwise it
        waits and raises what the switch raised (WorkerFailedError, PoolClosedError).
        """
        future = self._request_switch(plan, source="manual")
        if wait:
            future.result()
        return future

    def stats(self) -> PoolStats:
        """Counters (served, failed, cancelled, rejected, dropped, lost, in_flight), SLO, queue, latency, batches, workers."""
        with self._supervisor.dispatch_lock:
            active = self._supervisor.active
            handles = [] if active is None else [slot.handle for slot in active.slots]
        retiring = [h for h in self._supervisor.live_handles() if h not in handles]
        supervisor = self._supervisor
        error_p50, error_p99 = self._prediction_errors.percentiles()
        predicted = self._predict(1, "submit", self._loads()) if not self._closing else math.inf
        return {
            "name": self.name,
            "state": self.state.value,
            "plan": "" if active is None else active.plan.text,
            **self._stats.snapshot(),  # type: ignore[typeddict-item]
            "slo_ms": self.slo_ms,
            "prediction_error_p50_ms": error_p50,
            "prediction_error_p99_ms": error_p99,
            "prediction_margin_ms": self._prediction_errors.margin_ms(),
            "predicted_ms": None if math.isinf(predicted) else predicted,
            "batching": self.batching,
            "aimd_batch": None if self._aimd is None else self._aimd.batch,
            **self._cache.snapshot(),
            "queue_depth": self._batcher.depth(),
            "batch_histogram": self._batcher.histogram_snapshot(),
            "estimated_batch": self.estimator.estimate,
            "reconfigurations": supervisor.reconfigurations,
            "worker_restarts": supervisor.restarts,
            "reruns": supervisor.reruns,
            "hung_workers": supervisor.hung,
            "auto": self._auto,
            "workers": [h.describe() for h in handles],
            "retiring_workers": [h.describe() for h in retiring],
        }

    def events(self) -> list[Event]:
        """The timeline: start, warm, state, passive-start, switch, drained, stopped, worker-failed, ..."""
        return self._events.snapshot()

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call `callback(event)` for every future event, on the pool's event-delivery thread."""
        self._events.subscribe(callback)

    def set_slo(self, slo_ms: float | None) -> None:
        """Change the default latency objective live (None: off); AIMD then aims at a third of it."""
        if slo_ms is not None:
            _check_ms(slo_ms, "slo_ms", "pool.set_slo(50)")
        if slo_ms is None and self._aimd is not None:
            msg = "batching='aimd' needs a latency objective; example: pool.set_slo(50)"
            raise ValueError(msg)
        self.slo_ms = None if slo_ms is None else float(slo_ms)
        if self._aimd is not None and self.slo_ms is not None:
            self._aimd.target_ms = self.slo_ms / 3

    def set_auto(self, enabled: bool, *, reason: str = "") -> None:
        """Turn auto mode on or off; on needs the pool to have been given a profile."""
        if enabled and self._policy is None:
            msg = "auto mode needs a profile to plan from; example: Pool('mlp', '2x1x4', profile=prof, auto=True)"
            raise ValueError(msg)
        self._auto = bool(enabled)
        detail = {"reason": reason} if reason else {}
        self._events.record("auto-on" if self._auto else "auto-off", self.plan.text, **detail)

    def close(self) -> None:
        """Finish queued work, stop every worker, remove every segment; safe to call twice."""
        with self._close_lock:
            if self._closing:
                return
            self._closing = True
        if hasattr(self, "_stop"):
            self._stop.set()
            self._batcher.activity.set()
            self._sampler.join(5)
        if hasattr(self, "_batcher"):
            self._batcher.close()  # queued single requests still run
        self._dispatch_closed = True
        self._supervisor.close().result(self.policy.drain_timeout_s + 30)
        self._supervisor.join(10)
        if hasattr(self, "_announcement"):  # on this thread: the announcement knows its server's threads
            self._announcement.close()  # withdraw from the sidebar (idempotent)
        plan = self._supervisor.active.plan.text if self._supervisor.active is not None else ""
        self._events.record("closed", plan, pool=self.name)
        self._events.close()
        self._finalizer.detach()

    def __enter__(self) -> Pool:  # noqa: PYI034 - typing_extensions is not a dependency
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        plan = self._supervisor.active.plan.text if self._supervisor.active is not None else "?"
        return f"Pool({self.workload.name!r}, {plan!r}, state={self.state.value!r})"

    # -- dispatch -----------------------------------------------------------------------------

    def _check(self, tensor: Any, *, batched: bool) -> None:
        check_input(tensor, tuple(self.workload.sample_shape), self.workload.dtype, batched=batched)

    def check_plan(self, plan: Plan | str) -> Plan:
        """`plan` as this pool would serve it (settings by name, batch bound); ValueError otherwise."""
        return check_plan(plan, self._settings, self._max_instance_batch)

    def _dispatch(self, batch: torch.Tensor, *, deadline: float | None = None) -> Future[torch.Tensor]:
        """The batcher's way in: dispatch and return the batch's future."""
        return self._dispatch_job(batch, deadline=deadline)[0].future

    def _lanes(self) -> list[Lane]:
        """The batcher's lanes (work-conserving): one per serving worker, taking up to its slice b_k.

        A worker that is starting or being replaced gets no lane while another serves, so requests
        never wait out a restart's backoff behind it (when none serves, all get lanes and queue).

        With AIMD on, each slice is scaled by the controller's B over the plan's (never above
        b_k: a worker's buffers hold b_k rows).
        """
        with self._supervisor.dispatch_lock:
            generation = self._supervisor.active
            if self._dispatch_closed or generation is None:
                return []
            slots = [(slot.handle, slot.instance.batch) for slot in generation.slots if not slot.degraded]
        plan_batch = sum(batch for _, batch in slots)
        serving = [(h, b) for h, b in slots if h.state is WorkerState.READY]
        slots = serving or slots  # a worker being replaced takes no new slice while others serve
        limit = self._batch_limit()
        return [
            Lane(
                handle,
                lane_capacity(batch, limit, plan_batch),
                functools.partial(self._dispatch_to, handle),
            )
            for handle, batch in slots
        ]

    def _dispatch_to(
        self, handle: WorkerHandle, batch: torch.Tensor, deadline: float | None
    ) -> Future[torch.Tensor]:
        """Send a batch to one worker as one piece; split by the plan instead if that worker left the plan."""
        batch = batch.contiguous()
        with self._supervisor.dispatch_lock:
            generation = self._supervisor.active
            slot = (
                None
                if generation is None
                else next((s for s in generation.slots if s.handle is handle and not s.degraded), None)
            )
            if slot is not None and not self._dispatch_closed and int(batch.shape[0]) <= slot.instance.batch:
                assert self._out_layout is not None
                job = Job(int(batch.shape[0]), self._out_layout, 1, deadline=deadline)
                piece = Piece(job, batch, 0)
                if handle.enqueue(piece):
                    return job.future
                refused = handle.refusal()
            else:
                refused = None
        if refused is not None:  # the worker stopped taking work since the lanes were read
            piece.fail(refused)
            return job.future
        return self._dispatch_job(batch, deadline=deadline)[0].future  # a switch moved this slot away

    def _dispatch_job(
        self, batch: torch.Tensor, *, deadline: float | None = None, direct: bool = False
    ) -> tuple[Job, tuple[WorkerHandle, Piece] | None]:
        """Split one batch over the serving workers; all pieces go to one generation.

        With `direct`, a batch that goes out as one piece to an idle worker is sent for the caller
        to collect itself (`WorkerHandle.collect_direct`); the second value names it (else None),
        and the caller must collect it. Only single-piece batches go direct: a caller reads one answer at a time,
        and another worker's answer left unread would hold that worker (and trip its hang deadline).
        """
        batch = batch.contiguous()
        refused: list[tuple[Piece, WorkerHandle]] = []
        collect: tuple[WorkerHandle, Piece] | None = None
        with self._supervisor.dispatch_lock:
            generation = self._supervisor.active
            if self._dispatch_closed or generation is None:
                msg = f"pool {self.name!r} is closed; start a new Pool to serve requests"
                raise PoolClosedError(msg)
            slots = [slot for slot in generation.slots if not slot.degraded]
            if not slots:
                msg = f"pool {self.name!r} is degraded: no worker of {generation.plan.text!r} could be started; see pool.events()"
                raise WorkerFailedError(msg)
            parts = split_rows(int(batch.shape[0]), [slot.instance.batch for slot in slots])
            assert self._out_layout is not None
            job = Job(int(batch.shape[0]), self._out_layout, len(parts), deadline=deadline)
            direct = direct and len(parts) == 1
            for k, start, rows in parts:
                piece = Piece(job, batch[start : start + rows], start)
                handle = slots[k].handle
                sent = handle.enqueue_direct(piece, direct=direct)
                if sent == "refused":
                    refused.append((piece, handle))
                elif sent == "direct":
                    collect = (handle, piece)
        for piece, handle in refused:  # settled outside the lock: futures run callbacks
            piece.fail(handle.refusal())
        return job, collect

    # -- latency objectives -------------------------------------------------------------------

    def _budget_ms(self, deadline_ms: float | None) -> float | None:
        """The call's deadline in ms (its own, else the pool's SLO), checked."""
        if deadline_ms is None:
            return self.slo_ms
        _check_ms(deadline_ms, "deadline_ms", "pool.submit(x, deadline_ms=50)")
        return float(deadline_ms)

    def _answered_from_cache(self, budget_ms: float | None) -> None:
        started = self._stats.begin(offered=budget_ms is not None)
        self._stats.end(started, "ok", None if budget_ms is None else started + budget_ms / 1000.0)

    def _loads(self) -> list[SlotLoad]:
        """The serving workers' queues and latency models, read now (dispatch_lock → handle lock)."""
        now = time.monotonic()
        with self._supervisor.dispatch_lock:
            active = self._supervisor.active
            handles = (
                []
                if active is None
                else [(s.instance.batch, s.handle) for s in active.slots if not s.degraded]
            )
            return [SlotLoad(batch, h.wait_ms(now), h.expect_ms) for batch, h in handles]

    def _admit(self, rows: int, budget_ms: float, *, path: str) -> tuple[float, Rejected | None]:
        """(prediction, the refusal or None) for a request arriving now.

        Latency models learn only from what runs, so a pool that refused everything on numbers
        measured in a bad moment (an overload, a starved host) would never measure again. Hence
        no error margin while nothing is queued, and when an idle pool has answered nothing for
        `STALE_AFTER_S` the measurements are forgotten (the profile's or warm-up's prior is left)
        and the request is judged again on those.
        """
        loads = self._loads()
        predicted = self._predict(rows, path, loads)
        idle = bool(loads) and self._batcher.depth() == 0 and all(load.wait_ms == 0 for load in loads)
        refused = refusal(predicted, budget_ms, rows, 0.0 if idle else self._prediction_errors.margin_ms())
        if refused is not None and idle and time.monotonic() - self._last_answer > STALE_AFTER_S:
            self._forget_measurements()
            predicted = self._predict(rows, path, self._loads())
            refused = refusal(predicted, budget_ms, rows)
        return predicted, refused

    def _forget_measurements(self) -> None:
        """Drop what the latency models measured (they keep their priors), e.g. after an overload."""
        with self._supervisor.dispatch_lock:
            active = self._supervisor.active
            handles = [] if active is None else [slot.handle for slot in active.slots]
        for handle in handles:
            handle.forget_measurements()
        with self._cycle_lock:
            self._cycle = LatencyModel()
        self._events.record(
            "slo-models-reset", self.plan.text, reason=f"idle and nothing answered for {STALE_AFTER_S:g} s"
        )

    def _predict(self, rows: int, path: str, loads: list[SlotLoad]) -> float:
        """Prediction for a request arriving now through `submit` (the batcher) or `infer`."""
        if path == "infer":
            return predict_infer_ms(loads, rows)
        ahead, age_ms, max_batch = self._batcher.backlog()
        if self._batcher.work_conserving:
            plan_batch = sum(load.batch for load in loads) or 1
            capacities = [lane_capacity(load.batch, max_batch, plan_batch) for load in loads]
            return predict_conserving_ms(loads, ahead=ahead, capacities=capacities)
        return predict_submit_ms(
            loads,
            ahead=ahead,
            max_batch=max_batch,
            max_delay_ms=self._batcher.max_delay_s * 1000.0,
            oldest_age_ms=age_ms,
            cycle_ms=self._cycle_ms,
        )

    def _cycle_ms(self, rows: int) -> float:
        with self._cycle_lock:
            return self._cycle.expect_ms(rows)

    def _submitted_done(
        self,
        future: Future[torch.Tensor],
        *,
        started: float,
        deadline: float | None,
        predicted: float | None,
    ) -> None:
        outcome = _outcome(future)
        if outcome == "ok":
            self._last_answer = time.monotonic()
        latency_ms = self._stats.end(started, outcome, deadline)
        if outcome == "ok" and predicted is not None:
            self._prediction_errors.add(predicted, latency_ms)

    def _cache_answer(self, sample: torch.Tensor, answer: torch.Tensor) -> None:
        """Keep a batcher answer in the prediction cache before its caller sees it."""
        self._cache.put(self._cache.key(sample), answer)

    def _batch_limit(self) -> int:
        """The batcher's max batch: the AIMD controller's B, else the plan's B."""
        return self._aimd.batch if self._aimd is not None else self.plan.total_batch

    def _observe_batch(self, rows: int, latency_ms: float, full: bool) -> None:
        """Each delivered batch: the cycle model learns; AIMD (if on) steps, and the timeline gets its B at powers of two."""
        with self._cycle_lock:
            self._cycle.observe(rows, latency_ms)
        if self._aimd is None:
            return
        before = self._aimd.batch
        after = self._aimd.observe(rows, latency_ms, full=full)
        if floor_pow2(after) != floor_pow2(before):
            self._events.record(
                "aimd-batch", self.plan.text, batch=after, previous=before, latency_ms=round(latency_ms, 3)
            )

    def _request_switch(self, plan: Plan | str, *, source: str) -> Future[Plan]:
        target = self.check_plan(plan)
        try:
            placed = place(target)
        except InfeasiblePlanError as exc:
            self._events.record("reconfigure-refused", target.text, reason=str(exc))
            raise
        if self._closing:
            msg = f"pool {self.name!r} is closed; start a new Pool to serve {target.text!r}"
            raise PoolClosedError(msg)
        if source == "manual" and self._auto:
            self.set_auto(False, reason="manual switch")  # manual beats auto
        if self._policy is not None:
            self._policy.mark_changed()
        return self._supervisor.switch(placed)

    # -- workers ------------------------------------------------------------------------------

    def _make_handle(self, instance: Instance) -> WorkerHandle:
        """A handle for one instance (the supervisor starts it); called on the supervisor thread."""
        environment = child_environment(instance.threads, instance.cores, instance.setting, instance.backend)
        config = WorkerConfig(
            worker_id=next(self._ids),
            threads=instance.threads,
            batch=instance.batch,
            cores=instance.cores,
            env=environment.env,
            setting=instance.setting,
            spec=self.workload.spec,
            workload_name=self.workload.name,
            warmup=self.warmup,
            prefix=self._prefix,
            parent_pid=os.getpid(),
            backend=instance.backend,
        )
        prior = profile_prior(self.profile, instance.threads, instance.setting.name) if self.profile else None
        if prior is None and instance.expected_latency_ms:
            latency = LatencyModel()
            latency.seed(instance.batch, instance.expected_latency_ms)
        else:
            latency = LatencyModel(prior)
        return WorkerHandle(self._channels(config), config, instance, self._on_worker_news, latency=latency)

    def _on_worker_news(self, news: Any) -> None:
        from packrat_lab.serving.handle import WorkerReady

        if isinstance(news, WorkerReady) and self._out_layout is None:
            self._out_layout = news.handle.output_layout
        self._supervisor.post(news)

    def _remove_segments(self) -> None:
        remove_segments(self._prefix)

    # -- estimator and auto mode --------------------------------------------------------------

    def _sample_loop(self) -> None:
        """Sample demand (queue depth plus refused requests) every estimator.interval_s; in auto mode, let the policy decide."""
        interval = self.estimator.interval_s
        while not self._stop.is_set():
            idle = self._batcher.depth() == 0 and self._refused.count(time.monotonic()) == 0
            if not self._auto and idle and self.estimator.settled:
                # idle: sleep until the next submit instead of waking every 5 ms (which costs
                # request latency on small hosts), then apply the zero samples it skipped
                idle_from = time.monotonic()
                self._batcher.activity.wait()
                self._batcher.activity.clear()
                self.estimator.skip_zeros(int((time.monotonic() - idle_from) / interval))
                continue
            if self._stop.wait(interval):
                return
            estimate = self.estimator.update(self._batcher.depth() + self._refused.count(time.monotonic()))
            if self._aimd is not None:  # AIMD's B is the batch the optimizer plans for
                estimate = floor_pow2(self._aimd.batch)
            if not (self._auto and self._policy is not None and self.state is PoolState.SERVING):
                continue
            try:
                target = self._policy.step(self.plan.total_batch, estimate)
            except Exception as exc:  # noqa: BLE001 - a planner failure is an event, not a crash
                self._events.record("auto-failed", self.plan.text, error=f"{type(exc).__name__}: {exc}")
                self._policy.mark_changed()  # try again after the minimum interval, not every sample
                continue
            if target is not None:
                self._events.record("auto-reconfigure", target.text, estimated_batch=estimate)
                try:
                    self._request_switch(target, source="auto")
                except (InfeasiblePlanError, ValueError, PoolClosedError) as exc:
                    self._events.record("auto-failed", target.text, error=str(exc))


def _check_ms(value: Any, name: str, example: str) -> None:
    """A positive, finite number of milliseconds, or a one-line ValueError naming it."""
    if not positive_number(value):
        msg = f"{name} must be a positive number of milliseconds, got {value!r}; example: {example}"
        raise ValueError(msg)


def _outcome(future: Future[Any]) -> str:
    """ok / failed / cancelled / rejected / dropped, without raising for a cancelled future."""
    if future.cancelled():
        return "cancelled"
    exc = future.exception()
    if exc is None:
        return "ok"
    if isinstance(exc, DeadlineDropped):
        return "dropped"
    return "rejected" if isinstance(exc, Rejected) else "failed"


def _known_settings(
    profile: Profile | None, extra: Mapping[str, RuntimeSetting] | None
) -> dict[str, RuntimeSetting]:
    """Setting names a plan may use: built-in and installed allocators, the profile's, the caller's (server-side only)."""
    from packrat_lab.settings import known_settings

    known = known_settings()
    if profile is not None:
        known.update(getattr(profile, "settings", None) or {})
    known.update(extra or {})
    return known


def _plannable_batch(profile: Profile | None) -> int | None:
    """The largest B the optimizer can plan from `profile` on this host: its largest batch on every core."""
    from packrat_lab.host import usable_core_count

    largest = _profile_max_batch(profile)
    return None if largest is None else largest * usable_core_count()


def _profile_max_batch(profile: Profile | None) -> int | None:
    batches = getattr(profile, "batches", None) if profile is not None else None
    return max(batches) if batches else None


def _left_s(ends_at: float | None) -> float | None:
    """Seconds left until `ends_at` (monotonic), never negative; None: no limit."""
    return None if ends_at is None else max(0.0, ends_at - time.monotonic())
