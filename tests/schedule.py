"""A schedule-exploring checker for the pool (the DS2 idea): seeded random interleavings, an oracle, a shrinker.

A schedule is a list of operations (submit, infer, infer with a timeout, cancel, reconfigure with
and without waiting, kill / stop / continue a worker, poison, close; with `deadlines=True` also
submits and infers with a deadline) run by a few driver threads
with seeded pauses between them. After it runs, the checker asserts:
- every answer equals the oracle's for its own input (inputs are unique, so a misrouted or
  duplicated answer shows), and a cancelled, refused (Rejected) or dropped request never ran;
- every future settled (a result or a named error) within a bound;
- the pool's state transitions were legal, and the supervisor never hit a bug;
- after close, no worker, pool thread or segment is left.
A failure names its seed and a shrunk schedule (ops removed while it still fails).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from packrat_lab import Pool
from packrat_lab.errors import PoolClosedError, Rejected, RequestTimeoutError, WorkerFailedError
from packrat_lab.serving.lifecycle import PoolState, is_legal

NAMED_ERRORS = (WorkerFailedError, PoolClosedError, RequestTimeoutError, CancelledError, Rejected)
DEADLINES_MS = (0.5, 3.0, 30.0, 1000.0)
PLANS_2_CORES = ("1x1x4", "2x1x2", "1x2x4", "2x1x3", "1x1x2", "1x1x4@passive")

Op = tuple[Any, ...]


class Target(Protocol):
    """What the checker drives: a pool factory, the oracle, and a way to hurt workers."""

    settle_s: float

    def make_pool(self, plan: str) -> Pool: ...

    def oracle(self, x: torch.Tensor) -> torch.Tensor: ...

    def same(self, got: torch.Tensor, want: torch.Tensor) -> bool: ...

    def row(self, uid: float) -> torch.Tensor: ...

    def hurt(self, pool: Pool, how: str, pick: int) -> None: ...

    def ran(self, uid: float) -> int | None: ...

    def leftovers(self, pool: Pool) -> list[str]: ...


def random_schedule(seed: int, length: int = 18, *, poison: bool = True, deadlines: bool = False) -> list[Op]:
    """A seeded list of operations; close is always last (and sometimes earlier too)."""
    rng = random.Random(seed)
    kinds = [
        "submit",
        "submit",
        "infer",
        "infer",
        "infer_timeout",
        "cancel",
        "reconfigure",
        "kill",
        "stop",
        "cont",
        "sleep",
    ]
    if poison:
        kinds.append("poison")
    if deadlines:
        kinds += ["submit_deadline", "submit_deadline", "infer_deadline", "infer_deadline"]
    ops: list[Op] = []
    for _ in range(length):
        kind = rng.choice(kinds)
        if kind == "submit":
            ops.append(("submit", rng.randint(1, 6)))
        elif kind in ("infer", "poison"):
            ops.append((kind, rng.randint(1, 9)))
        elif kind == "submit_deadline":
            ops.append(("submit_deadline", rng.randint(1, 6), rng.choice(DEADLINES_MS)))
        elif kind == "infer_deadline":
            ops.append(("infer_deadline", rng.randint(1, 9), rng.choice(DEADLINES_MS)))
        elif kind == "infer_timeout":
            ops.append(("infer_timeout", rng.randint(1, 6), rng.choice([0.001, 0.05, 1.0])))
        elif kind == "cancel":
            ops.append(("cancel", rng.randint(0, 5)))
        elif kind == "reconfigure":
            ops.append(("reconfigure", rng.choice(PLANS_2_CORES), rng.random() < 0.5))
        elif kind in ("kill", "stop"):
            ops.append((kind, rng.randint(0, 3)))
        elif kind == "cont":
            ops.append(("cont", rng.randint(0, 3)))
        else:
            ops.append(("sleep", rng.choice([0.0, 0.005, 0.02, 0.1])))
    if rng.random() < 0.1:
        ops.insert(rng.randint(0, len(ops)), ("close",))
    ops.append(("close",))
    return ops


@dataclass
class _Request:
    uids: list[float]
    x: torch.Tensor
    future: Future[Any] | None = None
    outcome: Any = None
    cancelled: bool = False


@dataclass
class _Run:
    requests: list[_Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_schedule(target: Target, ops: Sequence[Op], seed: int, *, first_plan: str = "2x1x2") -> list[str]:
    """Run one schedule against a fresh pool; the list of problems found (empty: it passed)."""
    rng = random.Random(seed * 7919 + 1)
    threads_before = {t.ident for t in threading.enumerate()}
    pool = target.make_pool(first_plan)
    run = _Run()
    uid = [float(seed % 100) * 100_000 + 1]  # exact in float32 (< 2**24)

    def fresh(rows: int, poison: bool = False) -> _Request:
        uids = []
        for _ in range(rows):
            uids.append(-uid[0] if poison else uid[0])
            uid[0] += 1
        x = torch.stack([target.row(u) for u in uids])
        request = _Request(uids, x)
        with run.lock:
            run.requests.append(request)
        return request

    def call_infer(request: _Request, timeout: float | None, deadline_ms: float | None = None) -> None:
        try:
            request.outcome = pool.infer(request.x, timeout=timeout, deadline_ms=deadline_ms)
        except Exception as exc:  # noqa: BLE001 - checked below
            request.outcome = exc

    workers: list[threading.Thread] = []
    submitted: list[_Request] = []
    for op in ops:
        time.sleep(rng.choice([0.0, 0.0, 0.001, 0.003]))
        kind = op[0]
        try:
            if kind in ("submit", "submit_deadline"):
                for _ in range(op[1]):
                    request = fresh(1)
                    try:
                        deadline_ms = op[2] if kind == "submit_deadline" else None
                        request.future = pool.submit(request.x[0], deadline_ms=deadline_ms)
                    except Exception as exc:  # noqa: BLE001
                        request.outcome = exc
                    submitted.append(request)
            elif kind in ("infer", "infer_timeout", "poison", "infer_deadline"):
                request = fresh(op[1], poison=kind == "poison")
                timeout = op[2] if kind == "infer_timeout" else None
                deadline_ms = op[2] if kind == "infer_deadline" else None
                t = threading.Thread(
                    target=call_infer, args=(request, timeout, deadline_ms), name="checker-infer"
                )
                t.start()
                workers.append(t)
            elif kind == "cancel" and submitted:
                request = submitted[-1 - op[1] % len(submitted)]
                if request.future is not None and request.future.cancel():
                    request.cancelled = True
            elif kind == "reconfigure":
                try:
                    future = pool.reconfigure(op[1], wait=op[2])
                    if not op[2]:
                        workers.append(_waiter(future))
                except NAMED_ERRORS:
                    pass
            elif kind in ("kill", "stop", "cont"):
                target.hurt(pool, kind, op[1])
            elif kind == "sleep":
                time.sleep(op[1])
            elif kind == "close":
                pool.close()
        except Exception as exc:  # noqa: BLE001 - an op that raised something unnamed is a finding
            run.problems.append(f"{op} raised {type(exc).__name__}: {exc}")
    target.hurt(pool, "cont-all", 0)
    pool.close()
    deadline = time.monotonic() + target.settle_s
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            run.problems.append(f"a caller thread ({t.name}) did not return within {target.settle_s} s")
    for request in run.requests:
        _check_request(target, request, deadline, run.problems)
    _check_states(pool, run.problems)
    left = target.leftovers(pool)
    if left:
        run.problems.append(f"left after close: {left}")
    stray = _stray_threads(threads_before)
    if stray:
        run.problems.append(f"pool threads alive after close: {stray}")
    return run.problems


def _stray_threads(before: set[int | None], grace_s: float = 1.0) -> list[str]:
    """Pool threads started since `before` still alive after a grace period (readers end just after close)."""
    deadline = time.monotonic() + grace_s
    while True:
        stray = [
            t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("packrat-")
        ]
        if not stray or time.monotonic() > deadline:
            return stray
        time.sleep(0.005)


def _waiter(future: Future[Any]) -> threading.Thread:
    def wait() -> None:
        try:
            future.result(timeout=30)
        except NAMED_ERRORS:
            pass

    t = threading.Thread(target=wait, name="checker-switch")
    t.start()
    return t


def _check_request(target: Target, request: _Request, deadline: float, problems: list[str]) -> None:
    if request.future is not None:
        try:
            request.outcome = request.future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            problems.append(f"request {request.uids[:2]} never settled")
            return
        except BaseException as exc:  # noqa: BLE001 - CancelledError is a BaseException subclass here
            request.outcome = exc
    outcome = request.outcome
    if request.cancelled:
        runs = target.ran(request.uids[0])
        if runs:
            problems.append(f"cancelled request {request.uids[0]} ran {runs} time(s)")
        return
    if outcome is None:
        problems.append(f"request {request.uids[:2]} has no outcome")
    elif isinstance(outcome, BaseException):
        if not isinstance(outcome, NAMED_ERRORS):
            problems.append(
                f"request {request.uids[:2]} failed with unnamed {type(outcome).__name__}: {outcome}"
            )
        if isinstance(outcome, Rejected):  # refused at admission or dropped before it started
            ran = [u for u in request.uids if target.ran(u)]
            if ran:
                problems.append(f"{type(outcome).__name__} request {request.uids[:2]}: rows {ran[:3]} ran")
        if any(u < 0 for u in request.uids):
            return
    else:
        want = target.oracle(request.x if request.future is None else request.x[0])
        if not target.same(outcome, want):
            problems.append(f"request {request.uids[:2]}: answer differs from the oracle")
    for u in request.uids:
        runs = target.ran(u)
        if runs is not None and runs > 2:
            problems.append(f"row {u} ran {runs} times (the policy reruns once)")


def _check_states(pool: Pool, problems: list[str]) -> None:
    if pool.state is not PoolState.CLOSED:
        problems.append(f"pool state after close is {pool.state}")
    for event in pool.events():
        if event.kind == "supervisor-error":
            problems.append(f"supervisor error: {event.detail}")
        if event.kind == "state":
            old, new = PoolState(event.detail["previous"]), PoolState(event.detail["state"])
            if not is_legal(old, new):
                problems.append(f"illegal transition {old} → {new}")


def shrink(failing: Callable[[Sequence[Op]], bool], ops: Sequence[Op], budget: int = 40) -> list[Op]:
    """Drop operations one at a time while the schedule still fails (greedy; `budget` reruns at most)."""
    current = list(ops)
    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        for k in range(len(current) - 1):  # keep the final close
            candidate = current[:k] + current[k + 1 :]
            tries += 1
            if failing(candidate):
                current, changed = candidate, True
                break
            if tries >= budget:
                break
    return current


def check_seeds(
    target: Target, seeds: Sequence[int], *, length: int = 18, poison: bool = True, deadlines: bool = False
) -> None:
    """Run each seed's schedule; raise AssertionError naming the first failing seed and its shrunk schedule."""
    for seed in seeds:
        ops = random_schedule(seed, length, poison=poison, deadlines=deadlines)
        problems = run_schedule(target, ops, seed)
        if problems:
            small = shrink(lambda o, s=seed: bool(run_schedule(target, o, s)), ops)
            msg = f"seed {seed} failed: {problems[:5]}\nshrunk schedule ({len(small)} ops): {small}"
            raise AssertionError(msg)
