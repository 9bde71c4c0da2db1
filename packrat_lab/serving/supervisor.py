"""The supervisor: the one thread that decides which workers exist and which generation serves.

```
callers (infer/submit/HTTP) ─ dispatch: read `active`, enqueue pieces on slot handles
reader threads ─ WorkerReady / WorkerExited ─┐
pool API ─ start / switch / close (futures) ─┼─▶ inbox ─▶ supervisor thread (state machine)
                                             │              starting → serving ⇄ switching
                                             │              serving ⇄ degraded → draining → closed
                                             └─ every `tick_s`: hung batches, restart backoffs, drain timeouts
```

Ownership: only the supervisor thread writes `_active`, slot handles, `_live`, `_state` and the
switch/close bookkeeping. Callers read `active` under `dispatch_lock` (so all pieces of one batch
go to one generation) and post everything else through `_inbox`. Lock order: dispatch_lock →
handle lock → job lock; the supervisor holds dispatch_lock only to swap a generation or a slot's
handle, and settles futures (which run callbacks) with no lock held. Event observers are called
on the EventLog's own delivery thread, never here: a slow observer cannot stall the pool.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from packrat_lab.errors import PoolClosedError, WorkerFailedError
from packrat_lab.serving.handle import WorkerExited, WorkerHandle, WorkerReady
from packrat_lab.serving.lifecycle import FailurePolicy, PoolState, is_legal
from packrat_lab.serving.reuse import match_reuse
from packrat_lab.serving.worker import WorkerState

if TYPE_CHECKING:
    from packrat_lab.plan import Instance, Plan
    from packrat_lab.serving.dispatcher import Piece
    from packrat_lab.serving.events import EventLog

__all__ = ["Generation", "Slot", "Supervisor"]

HandleFactory = Callable[["Instance"], WorkerHandle]


@dataclass(eq=False)
class Slot:
    """One instance of the serving plan and the worker that currently runs it (replaced on death)."""

    instance: Instance
    handle: WorkerHandle
    failures: int = 0  # start failures in a row (a worker that became ready resets it)
    degraded: bool = False
    restart_at: float | None = None  # when the not-yet-started handle is due to start
    replacing: tuple[int | None, int] | None = None  # (old pid, pieces rerun) until the successor is ready


@dataclass(frozen=True)
class Generation:
    """The plan requests are dispatched to and its slots, in instance order."""

    plan: Plan
    slots: tuple[Slot, ...]


@dataclass(eq=False)
class _Switch:
    plan: Plan
    future: Future[Plan]
    slots: tuple[Slot, ...] = ()
    fresh: set[Slot] = field(default_factory=set)  # new slots whose workers are not ready yet
    retiring: set[WorkerHandle] = field(default_factory=set)
    retire_deadline: float | None = None
    retired_pids: list[int | None] = field(default_factory=list)
    previous: str = ""


@dataclass(frozen=True)
class _StartAsked:
    plan: Plan
    future: Future[Plan]


@dataclass(frozen=True)
class _SwitchAsked:
    plan: Plan
    future: Future[Plan]


@dataclass(frozen=True)
class _CloseAsked:
    future: Future[None]


_Message = Union[WorkerReady, WorkerExited, _StartAsked, _SwitchAsked, _CloseAsked]  # noqa: UP007


class Supervisor:
    """Owns the pool's lifecycle; other threads post to it (see the module docstring)."""

    def __init__(
        self,
        make_handle: HandleFactory,
        events: EventLog,
        policy: FailurePolicy,
        on_closed: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatch_lock = threading.Lock()
        self.policy = policy
        self.reconfigurations = 0
        self.restarts = 0
        self.reruns = 0
        self.hung = 0
        self._make_handle = make_handle
        self._events = events
        self._on_closed = on_closed
        self._clock = clock
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._state = PoolState.STARTING
        self._active: Generation | None = None
        self._start: _Switch | None = None
        self._switch: _Switch | None = None
        self._switches: deque[_SwitchAsked] = deque()
        self._closing: Future[None] | None = None
        self._close_deadline: float | None = None
        self._live: set[WorkerHandle] = set()  # started, not yet exited
        self._ended = False  # the thread has finished: requests are answered at once
        self._ask_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="packrat-supervisor", daemon=True)
        self._thread.start()

    # -- what other threads may call ----------------------------------------------------------

    @property
    def state(self) -> PoolState:
        """The pool's state now (written by the supervisor thread only)."""
        return self._state

    @property
    def active(self) -> Generation | None:
        """The serving generation (read it under dispatch_lock to dispatch)."""
        return self._active

    def post(self, message: WorkerReady | WorkerExited) -> None:
        """A reader thread's news (lock-free)."""
        self._inbox.put(message)

    def start(self, plan: Plan) -> Future[Plan]:
        """Start the first generation; the future settles once every worker is warm (or one failed)."""
        future: Future[Plan] = Future()
        self._ask(_StartAsked(plan, future))
        return future

    def switch(self, plan: Plan) -> Future[Plan]:
        """Queue an active-passive switch; the future settles once the old workers are gone."""
        future: Future[Plan] = Future()
        self._ask(_SwitchAsked(plan, future))
        return future

    def close(self) -> Future[None]:
        """Drain and stop every worker; the future settles once nothing is left."""
        future: Future[None] = Future()
        self._ask(_CloseAsked(future))
        return future

    def _ask(self, message: _StartAsked | _SwitchAsked | _CloseAsked) -> None:
        with self._ask_lock:
            if not self._ended:
                self._inbox.put(message)
                return
        _answer_late(message)

    def join(self, timeout: float) -> None:
        """Wait for the supervisor thread to end (after close)."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def live_handles(self) -> list[WorkerHandle]:
        """A snapshot of the workers not yet exited (for stats and the exit hook)."""
        return list(self._live)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while self._state is not PoolState.CLOSED:
            try:
                message: _Message | None = self._inbox.get(timeout=self.policy.tick_s)
            except queue.Empty:
                message = None
            try:
                if message is not None:
                    self._handle(message)
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any one bug
                self._events.record(
                    "supervisor-error", self._plan_text(), error=f"{type(exc).__name__}: {exc}"
                )
        with self._ask_lock:
            self._ended = True
        while True:  # answer what arrived before the end was marked, so no caller waits for ever
            try:
                late = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(late, (_StartAsked, _SwitchAsked, _CloseAsked)):
                _answer_late(late)

    def _handle(self, message: _Message) -> None:
        if isinstance(message, WorkerReady):
            self._on_ready(message.handle)
        elif isinstance(message, WorkerExited):
            self._live.discard(message.handle)
            message.handle.join(1.0)  # its reader is past its last step: leave no thread behind
            self._on_exit(message)
        elif isinstance(message, _StartAsked):
            self._begin_start(message)
        elif isinstance(message, _SwitchAsked):
            if self._closing is not None:
                _settle_closed(message.future)
            else:
                self._switches.append(message)
                self._next_switch()
        else:
            self._begin_close(message.future)

    def _set_state(self, new: PoolState) -> None:
        old = self._state
        if old == new:
            return
        if not is_legal(old, new):
            self._events.record(
                "supervisor-error", self._plan_text(), error=f"illegal transition {old} → {new}"
            )
        self._state = new
        self._events.record("state", self._plan_text(), previous=old.value, state=new.value)

    def _settle_state(self) -> None:
        """serving / switching / degraded, from the facts (not while starting, draining or closed)."""
        if self._state in (PoolState.STARTING, PoolState.DRAINING, PoolState.CLOSED) or self._active is None:
            return
        if self._switch is not None:
            self._set_state(PoolState.SWITCHING)
        elif any(slot.degraded for slot in self._active.slots):
            self._set_state(PoolState.DEGRADED)
        else:
            self._set_state(PoolState.SERVING)

    def _plan_text(self) -> str:
        return "" if self._active is None else self._active.plan.text

    def _launch(self, handle: WorkerHandle) -> None:
        self._live.add(handle)
        handle.start()

    # -- start --------------------------------------------------------------------------------

    def _begin_start(self, asked: _StartAsked) -> None:
        slots = tuple(Slot(inst, self._make_handle(inst)) for inst in asked.plan.instances)
        self._start = _Switch(asked.plan, asked.future, slots, set(slots))
        for slot in slots:
            self._launch(slot.handle)

    def _start_ready(self, slot: Slot) -> None:
        start = self._start
        assert start is not None
        start.fresh.discard(slot)
        if start.fresh:
            return
        self._start = None
        with self.dispatch_lock:
            self._active = Generation(start.plan, start.slots)
        self._events.record("warm", start.plan.text, workers=[s.handle.pid for s in start.slots])
        self._set_state(PoolState.SERVING)
        start.future.set_result(start.plan)

    def _start_failed(self, handle: WorkerHandle) -> None:
        start = self._start
        assert start is not None
        self._start = None
        why = handle.error or "exited before it was ready"
        if (
            not handle.start_failed and handle.exitcode == 1
        ):  # what a spawned child of an unguarded script does
            why += " (in a script, create pools under if __name__ == '__main__':)"
        for slot in start.slots:
            slot.handle.stop()
        self._begin_close(None)
        start.future.set_exception(
            WorkerFailedError(f"worker {handle.config.worker_id} failed to start: {why}")
        )

    # -- readiness and exits ------------------------------------------------------------------

    def _slot_of(self, handle: WorkerHandle) -> tuple[Slot | None, _Switch | None]:
        """The slot `handle` runs and the start/switch still warming it (None: the serving generation)."""
        for pending in (self._start, self._switch):
            if pending is not None:
                for slot in pending.fresh:
                    if slot.handle is handle:
                        return slot, pending
        for slot in () if self._active is None else self._active.slots:
            if slot.handle is handle:
                return slot, None
        return None, None

    def _on_ready(self, handle: WorkerHandle) -> None:
        slot, pending = self._slot_of(handle)
        if slot is None:
            return
        slot.failures, slot.restart_at = 0, None
        if slot.replacing is not None:
            old_pid, rerun = slot.replacing
            slot.replacing = None
            self._events.record(
                "worker-replaced",
                self._plan_text(),
                old_pid=old_pid,
                pid=handle.pid,
                worker=handle.config.worker_id,
                rerun=rerun,
            )
        if slot.degraded:
            slot.degraded = False
            self._settle_state()
        if pending is not None and pending is self._start:
            self._start_ready(slot)
        elif pending is not None:
            pending.fresh.discard(slot)
            if not pending.fresh:
                self._swap(pending)

    def _on_exit(self, exited: WorkerExited) -> None:
        handle = exited.handle
        if self._switch is not None and handle in self._switch.retiring:
            self._retired(self._switch, handle, exited)
            self._check_closed()
            return
        expected = handle.state is WorkerState.STOPPED
        if not expected:
            self._record_failed(handle)
        slot, pending = self._slot_of(handle)
        if self._closing is not None:
            self._fail_pieces(exited, PoolClosedError("the pool closed while this request was on a worker"))
        elif pending is not None and pending is self._start and not expected:
            self._start_failed(handle)
        elif pending is not None and not expected:
            self._fresh_died(pending, slot, handle)
        elif slot is not None and not expected:
            self._replace(slot, exited)
        elif not expected:
            self._redispatch(exited)
        self._check_closed()

    def _fail_pieces(self, exited: WorkerExited, error: Exception) -> None:
        for piece in ([exited.running] if exited.running else []) + exited.queued:
            piece.fail(error)

    def _rerunnable(self, piece: Piece, handle: WorkerHandle) -> bool:
        """Count one more death under `piece`; False (and the piece failed) once it has used its reruns."""
        piece.attempts += 1
        if piece.attempts < self.policy.max_piece_attempts:
            self.reruns += 1
            self._events.record("piece-rerun", self._plan_text(), rows=piece.rows, attempts=piece.attempts)
            return True
        piece.fail(
            WorkerFailedError(
                f"a {piece.rows}-row request (rows {piece.start}–{piece.start + piece.rows - 1} of its batch) "
                f"was running when its worker died {piece.attempts} times "
                f"(last: worker {handle.config.worker_id}, {handle.error or 'process died'}); not rerun again"
            )
        )
        self._events.record("piece-failed", self._plan_text(), rows=piece.rows, attempts=piece.attempts)
        return False

    def _replace(self, slot: Slot, exited: WorkerExited) -> None:
        """A serving worker died: a successor takes its slot and its pieces (policy: rerun once)."""
        old = exited.handle
        if old.was_ready and not old.start_failed:
            slot.failures = 0
        else:
            slot.failures += 1
        successor = self._make_handle(slot.instance)
        with self.dispatch_lock:
            slot.handle = successor
        pieces = [exited.running] if exited.running and self._rerunnable(exited.running, old) else []
        pieces += exited.queued
        slot.replacing = (old.pid, len(pieces))
        self.restarts += 1
        if slot.failures >= self.policy.degraded_after:
            if not slot.degraded:
                slot.degraded = True
                self._settle_state()
            error = WorkerFailedError(
                f"worker for ⟨{slot.instance.threads},{slot.instance.batch}⟩ on cores {list(slot.instance.cores)} "
                f"failed to start {slot.failures} times (last: {old.error or 'process died'}); the pool is degraded"
            )
            for piece in pieces:
                piece.fail(error)
            pieces = []
        for piece in pieces:
            if not successor.enqueue(piece):
                piece.fail(successor.refusal())
        if slot.failures == 0:
            self._launch(successor)
        else:
            slot.restart_at = self._clock() + self.policy.backoff(slot.failures)
            self._events.record(
                "worker-restart-scheduled",
                self._plan_text(),
                worker=successor.config.worker_id,
                failures=slot.failures,
                delay_s=self.policy.backoff(slot.failures),
            )

    def _redispatch(self, exited: WorkerExited) -> None:
        """A retired (or orphaned) worker died holding work: give it to a serving worker that fits it."""
        pieces = (
            [exited.running] if exited.running and self._rerunnable(exited.running, exited.handle) else []
        )
        pieces += exited.queued
        slots = [] if self._active is None else [s for s in self._active.slots if not s.degraded]
        for piece in pieces:
            fits = [s for s in slots if s.instance.batch >= piece.rows]
            target = max(fits, key=lambda s: s.instance.batch).handle if fits else None
            if target is None or not target.enqueue(piece):
                piece.fail(
                    WorkerFailedError(
                        f"worker {exited.handle.config.worker_id} ended and no worker could take its work"
                    )
                )

    # -- switching ----------------------------------------------------------------------------

    def _next_switch(self) -> None:
        busy = self._switch is not None or self._start is not None or self._closing is not None
        if busy or not self._switches or self._active is None:
            return
        asked = self._switches.popleft()
        old = self._active
        healthy = [s for s in old.slots if not s.degraded and s.handle.state is WorkerState.READY]
        reuse = match_reuse([s.handle for s in healthy], asked.plan.instances)
        slots = tuple(
            Slot(inst, self._make_handle(inst)) if r is None else healthy[r]
            for inst, r in zip(asked.plan.instances, reuse, strict=True)
        )
        fresh = {slot for slot, r in zip(slots, reuse, strict=True) if r is None}
        switch = _Switch(asked.plan, asked.future, slots, fresh, previous=old.plan.text)
        self._switch = switch
        self._set_state(PoolState.SWITCHING)
        self._events.record(
            "passive-start",
            asked.plan.text,
            previous=old.plan.text,
            reused=[healthy[r].handle.pid for r in reuse if r is not None],
            starting=len(fresh),
        )
        for slot in slots:
            if slot in fresh:
                self._launch(slot.handle)
        if not fresh:
            self._swap(switch)

    def _fresh_died(self, switch: _Switch, slot: Slot | None, handle: WorkerHandle) -> None:
        """A passive worker of the new plan died before it was ready: retry with backoff, or give up."""
        assert slot is not None
        slot.failures += 1
        if handle.start_failed or slot.failures >= self.policy.degraded_after:
            self._abort_switch(
                switch,
                WorkerFailedError(
                    f"switch to {switch.plan.text!r} failed: worker {handle.config.worker_id} "
                    f"did not start ({handle.error or 'process died'}); {switch.previous!r} keeps serving"
                ),
            )
            return
        slot.handle = self._make_handle(slot.instance)
        slot.restart_at = self._clock() + self.policy.backoff(slot.failures)

    def _abort_switch(self, switch: _Switch, error: Exception) -> None:
        self._switch = None
        serving = () if self._active is None else self._active.slots
        for slot in [s for s in switch.slots if s not in serving]:
            if slot.handle.started:
                slot.handle.stop()
            else:
                for piece in slot.handle.end_unstarted():
                    piece.fail(error)
        self._events.record("reconfigure-failed", switch.plan.text, error=str(error))
        self._settle_state()
        switch.future.set_exception(error)
        self._next_switch()

    def _swap(self, switch: _Switch) -> None:
        """Every new worker is warm: resize the kept ones, make the new generation serve, drain the rest."""
        old = self._active
        assert old is not None
        kept = set(switch.slots)
        with self.dispatch_lock:
            for slot, inst in zip(switch.slots, switch.plan.instances, strict=True):
                if slot.handle.batch != inst.batch:
                    slot.handle.resize(inst.batch)  # queued ahead of every piece of the new plan
                slot.instance = inst
                slot.handle.instance = inst
            self._active = Generation(switch.plan, switch.slots)
            self.reconfigurations += 1
        self._events.record(
            "warm", switch.plan.text, workers=[s.handle.pid for s in switch.slots if s not in old.slots]
        )
        self._events.record("switch", switch.plan.text, previous=switch.previous)
        for slot in old.slots:
            if slot in kept:
                continue
            if slot.handle.started:
                switch.retiring.add(slot.handle)
                slot.handle.stop()
            else:
                for piece in slot.handle.end_unstarted():
                    self._redispatch(WorkerExited(slot.handle, None, [piece]))
        switch.retire_deadline = self._clock() + self.policy.drain_timeout_s
        switch.retired_pids = [h.pid for h in switch.retiring]
        if not switch.retiring:
            self._switch_done(switch)

    def _record_failed(self, handle: WorkerHandle) -> None:
        """The event for a worker that exited without being asked to (serving or retiring alike)."""
        self._events.record(
            "worker-failed",
            self._plan_text(),
            pid=handle.pid,
            worker=handle.config.worker_id,
            error=handle.error or "process died",
        )

    def _retired(self, switch: _Switch, handle: WorkerHandle, exited: WorkerExited) -> None:
        switch.retiring.discard(handle)
        if handle.state is not WorkerState.STOPPED:
            self._record_failed(handle)
            self._redispatch(exited)
        if not switch.retiring:
            self._switch_done(switch)

    def _switch_done(self, switch: _Switch) -> None:
        self._events.record("drained", switch.plan.text, workers=switch.retired_pids)
        self._events.record("stopped", switch.plan.text, workers=switch.retired_pids)
        self._switch = None
        self._settle_state()
        switch.future.set_result(switch.plan)
        self._next_switch()

    # -- close --------------------------------------------------------------------------------

    def _begin_close(self, future: Future[None] | None) -> None:
        if self._closing is not None:
            if future is not None:
                self._closing.add_done_callback(lambda _: future.set_result(None))
            return
        self._closing = future or Future()
        self._set_state(PoolState.DRAINING)
        if self._switch is not None and self._switch.retire_deadline is None:  # still warming: give up
            self._abort_switch(
                self._switch, PoolClosedError("the pool was closed before this switch finished")
            )
        while self._switches:
            _settle_closed(self._switches.popleft().future)
        slots = [] if self._active is None else list(self._active.slots)
        for slot in slots:
            if not slot.handle.started:
                for piece in slot.handle.end_unstarted():
                    piece.fail(PoolClosedError("the pool closed before this request ran"))
        for handle in list(self._live):
            handle.stop()
        self._close_deadline = self._clock() + self.policy.drain_timeout_s
        self._check_closed()

    def _check_closed(self) -> None:
        if self._closing is None or self._live or self._state is PoolState.CLOSED:
            return
        self._on_closed()
        self._set_state(PoolState.CLOSED)
        closing = self._closing
        if not closing.done():
            closing.set_result(None)

    # -- timers -------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self._clock()
        for handle in list(self._live):
            why = handle.overdue(now, self._deadline_s(handle), self.policy.start_timeout_s)
            if why is not None:
                self.hung += 1
                handle.mark_hung(why)
                self._events.record(
                    "worker-hung", self._plan_text(), pid=handle.pid, worker=handle.config.worker_id, why=why
                )
                handle.kill()
        if self._closing is None:
            for slot in self._restart_candidates():
                if slot.restart_at is not None and now >= slot.restart_at and not slot.handle.started:
                    slot.restart_at = None
                    self._launch(slot.handle)
        switch = self._switch
        if switch is not None and switch.retire_deadline is not None and now > switch.retire_deadline:
            for handle in switch.retiring:
                handle.kill()
        if self._close_deadline is not None and now > self._close_deadline:
            for handle in list(self._live):
                handle.kill()
        self._check_closed()

    def _restart_candidates(self) -> list[Slot]:
        slots = list(self._active.slots) if self._active is not None else []
        if self._switch is not None:
            slots += [s for s in self._switch.slots if s not in slots]
        return slots

    def _deadline_s(self, handle: WorkerHandle) -> float:
        """10× the batch time we know of (worker's warm batch, its mean run, the profile) + grace."""
        known = [handle.warm_ms or 0.0, handle.instance.expected_latency_ms or 0.0]
        if handle.served:
            known.append(handle.run_ms / handle.served)
        return self.policy.hang_deadline_s(max(known))


def _answer_late(message: _StartAsked | _SwitchAsked | _CloseAsked) -> None:
    """A request to a supervisor that has finished: closing again is fine, anything else is refused."""
    if isinstance(message, _CloseAsked):
        if not message.future.done():
            message.future.set_result(None)
    else:
        _settle_closed(message.future)


def _settle_closed(future: Future[Plan] | Future[None]) -> None:
    if not future.done():
        future.set_exception(PoolClosedError("the pool is closed; start a new Pool"))
