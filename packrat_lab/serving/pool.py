"""Pool: serve a Plan with one pinned worker process per instance, and switch plans live.

Threads and what they own (the lifecycle itself is `supervisor.py`'s, see its docstring):
- callers (`infer`, `submit`, HTTP handlers): check input, then `_dispatch` reads the serving
  generation under `supervisor.dispatch_lock` and enqueues pieces on its workers' handles;
- packrat-batcher: forms batches from `submit`ted samples and dispatches them;
- packrat-estimator: samples queue depth; in auto mode asks the supervisor for a switch;
- packrat-supervisor: the only writer of workers, generations and `state`;
- packrat-reader-N: one per worker, turns replies into answers and posts worker news;
- packrat-events: calls `on_event` observers (they may do anything but block for long).
Lock order: dispatch_lock → handle lock → job lock; futures are settled with no lock held, so a
done-callback may call back into the pool (but `close()` from a callback of this pool's own
future would wait on itself: don't).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypedDict

from packrat_lab.child_env import child_environment
from packrat_lab.errors import InfeasiblePlanError, PoolClosedError, RequestTimeoutError, WorkerFailedError
from packrat_lab.plan import Instance, Plan
from packrat_lab.serving.autoscale import AutoPolicy, optimizer_planner
from packrat_lab.serving.batcher import DynamicBatcher
from packrat_lab.serving.channel import ChannelFactory, process_channels
from packrat_lab.serving.cleanup import shutdown
from packrat_lab.serving.dispatcher import Job, Piece, split_rows
from packrat_lab.serving.estimator import BatchSizeEstimator
from packrat_lab.serving.events import Event, EventLog
from packrat_lab.serving.handle import WorkerHandle
from packrat_lab.serving.inputs import check_input
from packrat_lab.serving.lifecycle import FailurePolicy, PoolState
from packrat_lab.serving.plan_check import check_plan
from packrat_lab.serving.stats import RequestStats
from packrat_lab.serving.supervisor import Supervisor
from packrat_lab.serving.transport import Layout, new_prefix, remove_segments
from packrat_lab.serving.worker import WorkerConfig

if TYPE_CHECKING:
    import torch

    from packrat_lab.profiling.table import Profile
    from packrat_lab.settings import RuntimeSetting
    from packrat_lab.workloads.base import Workload

__all__ = ["Pool", "PoolStats"]


class PoolStats(TypedDict):
    """What `Pool.stats()` returns (and the HTTP /v2/stats route serves)."""

    name: str
    state: str
    plan: str
    submitted: int
    served: int
    failed: int
    cancelled: int
    in_flight: int
    lost: int
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
    """The plan with disjoint cores from `assign_cores`; InfeasiblePlanError if it doesn't fit the host."""
    from packrat_lab.host import assign_cores

    return plan.with_cores(assign_cores([i.threads for i in plan.instances]))


class Pool:
    """A plan served in the background by pinned worker processes (Packrat §3.7–3.8).

    `Pool(model, plan)` returns once every instance's worker is loaded and warm. Each worker is a
    spawned process pinned to its own cores from `assign_cores`, with the instance's threads and
    runtime setting. `infer(batch)` splits a batch by the plan; `submit(sample)` goes through the
    dynamic batcher (max batch = the plan's B, `max_queue_delay_ms`). `reconfigure(plan)` is an
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
    ) -> None:
        from packrat_lab.workloads.registry import get_workload

        if auto and profile is None:
            msg = "auto mode needs a profile to plan from; example: Pool('mlp', '2x1x4', profile=prof, auto=True)"
            raise ValueError(msg)
        if max_queue_delay_ms < 0 or warmup < 0:
            msg = f"max_queue_delay_ms and warmup must be ≥ 0, got {max_queue_delay_ms!r}, {warmup!r}; example: Pool('mlp', '2x1x4', max_queue_delay_ms=5.0, warmup=2)"
            raise ValueError(msg)
        self.workload: Workload = get_workload(model)
        self.name = name or f"pool-{self.workload.name}"
        self.profile = profile
        self.warmup = warmup
        self.policy = policy or FailurePolicy()
        self._settings = _known_settings(profile, settings)
        self._max_instance_batch = max_instance_batch or _profile_max_batch(profile) or 4096
        placed = place(self._checked(plan))
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
        self._batcher = DynamicBatcher(
            self._dispatch, lambda: self.plan.total_batch, max_queue_delay_ms / 1000.0
        )
        self.estimator = estimator or BatchSizeEstimator()
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

    def infer(self, batch: torch.Tensor, *, timeout: float | None = None) -> torch.Tensor:
        """Run a batch of N ≥ 1 samples split by the plan (chunks of B when N > B); output rows in order.

        With `timeout` (seconds), a batch not answered in time is withdrawn (its pieces that have
        not started never run) and RequestTimeoutError is raised.
        """
        self._check(batch, batched=True)
        if self._closing:
            msg = f"pool {self.name!r} is closed; start a new Pool to serve requests"
            raise PoolClosedError(msg)
        if timeout is not None and not timeout > 0:
            msg = f"timeout must be a positive number of seconds, got {timeout!r}; example: pool.infer(x, timeout=2.0)"
            raise ValueError(msg)
        started = self._stats.begin()
        outcome = "failed"
        try:
            job = self._dispatch_job(batch)
            try:
                out = job.future.result(timeout)
            except TimeoutError:
                rows = int(batch.shape[0])
                error = RequestTimeoutError(
                    f"no answer to a {rows}-row batch within {timeout:g} s; it was withdrawn"
                )
                if job.fail(error):
                    raise error from None
                out = job.future.result()  # answered in the instant between the two
            outcome = "ok"
            return out
        finally:
            self._stats.end(started, outcome)

    def submit(self, sample: torch.Tensor) -> Future[torch.Tensor]:
        """Queue one sample (no batch dimension) for the dynamic batcher; the future gets its output row.

        Cancelling the future (or an asyncio timeout on `asyncio.wrap_future`) withdraws the
        sample if it has not gone out yet; the pool keeps serving.
        """
        self._check(sample, batched=False)
        started = self._stats.begin()
        future = self._batcher.submit(sample)
        future.add_done_callback(lambda f: self._stats.end(started, _outcome(f)))
        return future

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
        """Counters (served, failed, cancelled, lost, in_flight), queue, latency window, batches, workers."""
        with self._supervisor.dispatch_lock:
            active = self._supervisor.active
            handles = [] if active is None else [slot.handle for slot in active.slots]
        retiring = [h for h in self._supervisor.live_handles() if h not in handles]
        supervisor = self._supervisor
        return {
            "name": self.name,
            "state": self.state.value,
            "plan": "" if active is None else active.plan.text,
            **self._stats.snapshot(),  # type: ignore[typeddict-item]
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

    def _checked(self, plan: Plan | str) -> Plan:
        return check_plan(plan, self._settings, self._max_instance_batch)

    def _dispatch(self, batch: torch.Tensor) -> Future[torch.Tensor]:
        """The batcher's way in: dispatch and return the batch's future."""
        return self._dispatch_job(batch).future

    def _dispatch_job(self, batch: torch.Tensor) -> Job:
        """Split one batch over the serving workers; all pieces go to one generation."""
        batch = batch.contiguous()
        refused: list[tuple[Piece, WorkerHandle]] = []
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
            job = Job(int(batch.shape[0]), self._out_layout, len(parts))
            for k, start, rows in parts:
                piece = Piece(job, batch[start : start + rows], start)
                if not slots[k].handle.enqueue(piece):
                    refused.append((piece, slots[k].handle))
        for piece, handle in refused:  # settled outside the lock: futures run callbacks
            piece.fail(handle.refusal())
        return job

    def _request_switch(self, plan: Plan | str, *, source: str) -> Future[Plan]:
        target = self._checked(plan)
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
        return WorkerHandle(self._channels(config), config, instance, self._on_worker_news)

    def _on_worker_news(self, news: Any) -> None:
        from packrat_lab.serving.handle import WorkerReady

        if isinstance(news, WorkerReady) and self._out_layout is None:
            self._out_layout = news.handle.output_layout
        self._supervisor.post(news)

    def _remove_segments(self) -> None:
        remove_segments(self._prefix)

    # -- estimator and auto mode --------------------------------------------------------------

    def _sample_loop(self) -> None:
        """Sample queue depth every estimator.interval_s; in auto mode, let the policy decide."""
        interval = self.estimator.interval_s
        while not self._stop.is_set():
            if not self._auto and self._batcher.depth() == 0 and self.estimator.settled:
                # idle: sleep until the next submit instead of waking every 5 ms (which costs
                # request latency on small hosts), then apply the zero samples it skipped
                idle_from = time.monotonic()
                self._batcher.activity.wait()
                self._batcher.activity.clear()
                self.estimator.skip_zeros(int((time.monotonic() - idle_from) / interval))
                continue
            if self._stop.wait(interval):
                return
            estimate = self.estimator.update(self._batcher.depth())
            if not (self._auto and self._policy is not None and self.state is PoolState.SERVING):
                continue
            try:
                target = self._policy.step(self.plan.total_batch, estimate)
            except Exception as exc:  # noqa: BLE001 - a planner failure is an event, not a crash
                self._events.record("auto-failed", self.plan.text, error=f"{type(exc).__name__}: {exc}")
                continue
            if target is not None:
                self._events.record("auto-reconfigure", target.text, estimated_batch=estimate)
                try:
                    self._request_switch(target, source="auto")
                except (InfeasiblePlanError, ValueError, PoolClosedError) as exc:
                    self._events.record("auto-failed", target.text, error=str(exc))


def _outcome(future: Future[Any]) -> str:
    """ok / failed / cancelled, without raising for a cancelled future."""
    if future.cancelled():
        return "cancelled"
    return "ok" if future.exception() is None else "failed"


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


def _profile_max_batch(profile: Profile | None) -> int | None:
    batches = getattr(profile, "batches", None) if profile is not None else None
    return max(batches) if batches else None
