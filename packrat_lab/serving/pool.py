"""Pool: serve a Plan with one pinned worker process per instance, and switch plans live."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.errors import InfeasiblePlanError, WorkerFailedError
from packrat_lab.plan import Instance, Plan
from packrat_lab.serving.autoscale import AutoPolicy, optimizer_planner
from packrat_lab.serving.batcher import DynamicBatcher
from packrat_lab.serving.cleanup import shutdown
from packrat_lab.serving.dispatcher import Job, Piece, split_rows
from packrat_lab.serving.estimator import BatchSizeEstimator
from packrat_lab.serving.events import Event, EventLog
from packrat_lab.serving.handle import WorkerHandle
from packrat_lab.serving.inputs import check_input
from packrat_lab.serving.reuse import match_reuse
from packrat_lab.serving.stats import RequestStats
from packrat_lab.serving.transport import new_prefix
from packrat_lab.serving.worker import WorkerConfig, WorkerState

if TYPE_CHECKING:
    import torch

    from packrat_lab.profiling.table import Profile
    from packrat_lab.workloads.base import Workload

__all__ = ["Pool"]

READY_TIMEOUT_S = 300.0


@dataclass
class _Generation:
    """The plan being dispatched to and its workers, in instance order."""

    plan: Plan
    handles: list[WorkerHandle]


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
    `auto_hysteresis_s` and `auto_min_interval_s` has passed since the last change. With
    `announce=True` the pool serves its management routes on 127.0.0.1 and registers itself for
    JupyterLab's Packrat sidebar. Use as a context manager, or call `close()`; an unclosed pool is
    cleaned up at interpreter exit. Workers are spawned, so a script (not a notebook) must create
    pools under `if __name__ == "__main__":`.
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
        self.state = "starting"
        self._prefix = new_prefix()
        self._ctx = multiprocessing.get_context("spawn")
        self._events = EventLog()
        self._stats = RequestStats()
        self._lock = threading.RLock()  # dispatch vs switch: pieces of one batch go to one generation
        self._switch_lock = threading.Lock()  # one reconfiguration at a time
        self._ids = itertools.count()
        self._all: list[WorkerHandle] = []  # every handle not yet exited (for cleanup)
        self._closed = False
        self._closing = False
        self.reconfigurations = 0
        self._finalizer = weakref.finalize(self, shutdown, self._all, self._prefix)
        placed = place(Plan.coerce(plan))
        self._events.record("start", placed.text, prefix=self._prefix)
        handles = self._start_workers(placed.instances)
        try:
            self._wait_ready(handles)
        except BaseException:  # a failed start or a KeyboardInterrupt in the notebook: leave nothing behind
            self.close()
            raise
        self._out_layout = handles[0].output_layout
        self._active = _Generation(placed, handles)
        self._events.record("warm", placed.text, workers=[h.pid for h in handles])
        self._batcher = DynamicBatcher(
            self._dispatch, lambda: self._active.plan.total_batch, max_queue_delay_ms / 1000.0
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
        self.state = "serving"
        self._events.record("serving", placed.text)
        if announce:  # JupyterLab's Packrat sidebar; PACKRAT_LAB_ANNOUNCE=0 opts out everywhere
            from packrat_lab.serving.announce import announce as announce_pool

            self._announcement = announce_pool(self)

    # -- public API ---------------------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        """The plan requests are dispatched to now (with cores filled in)."""
        return self._active.plan

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        """Run a batch of N ≥ 1 samples split by the plan (chunks of B when N > B); output rows in order."""
        self._check(batch, batched=True)
        started = self._stats.begin()
        try:
            out = self._dispatch(batch).result()
        except BaseException:
            self._stats.end(started, ok=False)
            raise
        self._stats.end(started, ok=True)
        return out

    def submit(self, sample: torch.Tensor) -> Future[torch.Tensor]:
        """Queue one sample (no batch dimension) for the dynamic batcher; the future gets its output row."""
        self._check(sample, batched=False)
        started = self._stats.begin()
        future = self._batcher.submit(sample)
        future.add_done_callback(lambda f: self._stats.end(started, ok=f.exception() is None))
        return future

    def reconfigure(self, plan: Plan | str, *, wait: bool = True) -> None:
        """Switch to `plan` active-passive: start new workers passive, warm them, switch, drain, stop.

        Workers whose threads, setting and cores stay the same are reused (only their batch slice
        changes). The new plan must fit the host on its own (InfeasiblePlanError otherwise, and the
        old plan keeps serving); it does not need to fit beside the old one: during the switch
        new and old workers may share cores for a moment on a small host. With `wait=False` the
        switch runs in a background thread and this returns at once (feasibility is still
        checked first).
        """
        target = Plan.coerce(plan)
        try:
            placed = place(target)
        except InfeasiblePlanError as exc:
            self._events.record("reconfigure-refused", target.text, reason=str(exc))
            raise
        if self._closed:
            msg = f"pool {self.name!r} is closed; start a new Pool to serve {target.text!r}"
            raise WorkerFailedError(msg)
        if wait:
            self._switch(placed)
        else:
            threading.Thread(
                target=self._switch_logged, args=(placed,), name="packrat-switch", daemon=True
            ).start()

    def stats(self) -> dict[str, Any]:
        """Counters (served, failed, lost, in_flight), queue, latency window, batches, workers."""
        with self._lock:
            handles = list(self._active.handles)
            retiring = [h for h in self._all if h not in handles and h.state is not WorkerState.STOPPED]
        return {
            "name": self.name,
            "state": self.state,
            "plan": self.plan.text,
            **self._stats.snapshot(),
            "queue_depth": self._batcher.depth(),
            "batch_histogram": dict(sorted(self._batcher.histogram.items())),
            "estimated_batch": self.estimator.estimate,
            "reconfigurations": self.reconfigurations,
            "auto": self._auto,
            "workers": [h.describe() for h in handles],
            "retiring_workers": [h.describe() for h in retiring],
        }

    def events(self) -> list[Event]:
        """The timeline: start, warm, passive-start, switch, drained, stopped, worker-failed, worker-replaced, closed, ..."""
        return self._events.snapshot()

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call `callback(event)` from the pool's threads for every future event."""
        self._events.subscribe(callback)

    def set_auto(self, enabled: bool) -> None:
        """Turn auto mode on or off; on needs the pool to have been given a profile."""
        if enabled and self._policy is None:
            msg = "auto mode needs a profile to plan from; example: Pool('mlp', '2x1x4', profile=prof, auto=True)"
            raise ValueError(msg)
        self._auto = bool(enabled)
        self._events.record("auto-on" if self._auto else "auto-off", self.plan.text)

    def close(self) -> None:
        """Finish queued work, stop every worker, remove every segment; safe to call twice."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if hasattr(self, "_stop"):
            self._stop.set()
            self._batcher.close()  # queued single requests still run
            self._sampler.join(5)
        with self._lock:
            self._closed = True
        shutdown(list(self._all), self._prefix)
        self.state = "closed"
        self._events.record(
            "closed", self._active.plan.text if hasattr(self, "_active") else "", pool=self.name
        )
        if hasattr(self, "_announcement"):
            self._announcement.close()  # withdraw from the sidebar (idempotent)
        self._finalizer.detach()

    def __enter__(self) -> Pool:  # noqa: PYI034 - typing_extensions is not a dependency
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pool({self.workload.name!r}, {self.plan.text!r}, state={self.state!r})"

    # -- dispatch -----------------------------------------------------------------------------

    def _check(self, tensor: Any, *, batched: bool) -> None:
        check_input(tensor, tuple(self.workload.sample_shape), self.workload.dtype, batched=batched)

    def _dispatch(self, batch: torch.Tensor) -> Future[torch.Tensor]:
        """Split one batch over the active generation's workers; all pieces go to one generation."""
        batch = batch.contiguous()
        with self._lock:
            if self._closed:
                msg = f"pool {self.name!r} is closed; start a new Pool to serve requests"
                raise WorkerFailedError(msg)
            generation = self._active
            parts = split_rows(int(batch.shape[0]), [i.batch for i in generation.plan.instances])
            job = Job(int(batch.shape[0]), self._out_layout, len(parts))
            for k, start, rows in parts:
                generation.handles[k].enqueue(Piece(job, batch[start : start + rows], start))
        return job.future

    # -- workers ------------------------------------------------------------------------------

    def _start_workers(self, instances: tuple[Instance, ...] | list[Instance]) -> list[WorkerHandle]:
        return [self._start_worker(inst) for inst in instances]

    def _start_worker(self, instance: Instance) -> WorkerHandle:
        config = WorkerConfig(
            worker_id=next(self._ids),
            threads=instance.threads,
            batch=instance.batch,
            cores=instance.cores,
            env=instance.setting.env,
            spec=self.workload.spec,
            workload_name=self.workload.name,
            warmup=self.warmup,
            prefix=self._prefix,
            parent_pid=os.getpid(),
        )
        handle = WorkerHandle(self._ctx, config, instance, self._on_worker_exit)
        with self._lock:
            self._all.append(handle)
        handle.start()
        return handle

    def _wait_ready(self, handles: list[WorkerHandle]) -> None:
        for handle in handles:
            handle.wait_ready(READY_TIMEOUT_S)

    def _on_worker_exit(self, handle: WorkerHandle, orphans: list[Piece]) -> None:
        """A worker process ended: expected (stopped) or not (replace it and rerun what it held)."""
        with self._lock:
            if handle in self._all:
                self._all.remove(handle)
            generation = getattr(self, "_active", None)
            active = generation is not None and handle in generation.handles
            unexpected = handle.state is WorkerState.FAILED
            if unexpected:
                self._events.record(
                    "worker-failed",
                    generation.plan.text if generation else "",
                    pid=handle.pid,
                    worker=handle.config.worker_id,
                    error=handle.error or "process died",
                )
            # replace only a worker that had served (one that failed to start would fail again)
            if not (unexpected and active and handle.was_ready and not self._closed):
                error = WorkerFailedError(
                    f"worker {handle.config.worker_id} (pid {handle.pid}) ended: {handle.error or 'killed'}; retry the request"
                )
                for piece in orphans:
                    piece.fail(error)
                return
            assert generation is not None
            successor = self._start_worker(handle.instance)
            generation.handles[generation.handles.index(handle)] = successor
            successor.adopt(orphans)  # queued until the successor is warm, then rerun
        threading.Thread(
            target=self._announce_replacement, args=(handle, successor, len(orphans)), daemon=True
        ).start()

    def _announce_replacement(self, old: WorkerHandle, new: WorkerHandle, rerun: int) -> None:
        try:
            new.wait_ready(READY_TIMEOUT_S)
        except WorkerFailedError as exc:
            self._events.record("worker-failed", self.plan.text, worker=new.config.worker_id, error=str(exc))
            return
        self._events.record(
            "worker-replaced",
            self.plan.text,
            old_pid=old.pid,
            pid=new.pid,
            worker=new.config.worker_id,
            rerun=rerun,
        )

    # -- reconfiguration ----------------------------------------------------------------------

    def _switch_logged(self, placed: Plan) -> None:
        try:
            self._switch(placed)
        except Exception as exc:  # noqa: BLE001 - background switch: the timeline says what went wrong
            self._events.record("reconfigure-failed", placed.text, error=f"{type(exc).__name__}: {exc}")

    def _switch(self, placed: Plan) -> None:
        """The active-passive switch itself (one at a time)."""
        with self._switch_lock:
            old = self._active
            self.state = "switching"
            try:
                healthy = [h for h in old.handles if h.state is WorkerState.READY]
                reuse = match_reuse(healthy, placed.instances)
                kept = [healthy[k] for k in reuse if k is not None]
                self._events.record(
                    "passive-start",
                    placed.text,
                    previous=old.plan.text,
                    reused=[h.pid for h in kept],
                    starting=reuse.count(None),
                )
                fresh = {
                    k: self._start_worker(inst) for k, inst in enumerate(placed.instances) if reuse[k] is None
                }
                try:
                    self._wait_ready(list(fresh.values()))
                except WorkerFailedError:
                    for handle in fresh.values():
                        handle.stop()
                    raise
                handles = [fresh[k] if r is None else healthy[r] for k, r in enumerate(reuse)]
                self._events.record("warm", placed.text, workers=[h.pid for h in fresh.values()])
                with self._lock:
                    for handle, inst in zip(handles, placed.instances, strict=True):
                        if handle in kept and handle.batch != inst.batch:
                            handle.resize(inst.batch)  # queued ahead of every piece of the new plan
                        handle.instance, handle.batch = inst, inst.batch
                    self._active = _Generation(placed, handles)
                    self.reconfigurations += 1
                self._events.record("switch", placed.text, previous=old.plan.text)
                self._drain([h for h in old.handles if h not in kept], placed)
            finally:
                self.state = "closed" if self._closed else "serving"
            if self._policy is not None:
                self._policy.mark_changed()

    def _drain(self, retired: list[WorkerHandle], placed: Plan) -> None:
        """Let retired workers finish what they hold, then stop them, with an event for each step."""
        for handle in retired:
            handle.stop()
        for handle in retired:
            handle.drained.wait(READY_TIMEOUT_S)
        self._events.record("drained", placed.text, workers=[h.pid for h in retired])
        for handle in retired:
            if not handle.exited.wait(10.0):
                handle.kill()
                handle.exited.wait(5.0)
            handle.join()
        self._events.record("stopped", placed.text, workers=[h.pid for h in retired])

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
            if not (self._auto and self._policy is not None and self.state == "serving"):
                continue
            try:
                target = self._policy.step(self.plan.total_batch, estimate)
            except Exception as exc:  # noqa: BLE001 - a planner failure is an event, not a crash
                self._events.record("auto-failed", self.plan.text, error=f"{type(exc).__name__}: {exc}")
                continue
            if target is not None:
                self._events.record("auto-reconfigure", target.text, estimated_batch=estimate)
                try:
                    self.reconfigure(target, wait=False)
                except InfeasiblePlanError:
                    pass  # recorded as reconfigure-refused
