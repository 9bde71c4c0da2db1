"""The pool's states, their legal transitions, its event kinds, and the failure policy a user can predict."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

__all__ = ["LEGAL_TRANSITIONS", "EventKind", "FailurePolicy", "PoolState", "is_legal"]


class PoolState(str, enum.Enum):
    """Where the pool is in its life; compares equal to its value ('serving' == PoolState.SERVING)."""

    STARTING = "starting"
    SERVING = "serving"
    SWITCHING = "switching"
    DEGRADED = "degraded"  # some worker keeps failing to start: the rest serve, health says 503
    DRAINING = "draining"  # close() under way: queued work finishes, nothing new is taken
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


LEGAL_TRANSITIONS: dict[PoolState, frozenset[PoolState]] = {
    PoolState.STARTING: frozenset({PoolState.SERVING, PoolState.DRAINING}),
    PoolState.SERVING: frozenset({PoolState.SWITCHING, PoolState.DEGRADED, PoolState.DRAINING}),
    PoolState.SWITCHING: frozenset({PoolState.SERVING, PoolState.DEGRADED, PoolState.DRAINING}),
    PoolState.DEGRADED: frozenset({PoolState.SERVING, PoolState.SWITCHING, PoolState.DRAINING}),
    PoolState.DRAINING: frozenset({PoolState.CLOSED}),
    PoolState.CLOSED: frozenset(),
}


def is_legal(old: PoolState, new: PoolState) -> bool:
    """Whether the state machine may go from `old` to `new` (staying put is always allowed)."""
    return old == new or new in LEGAL_TRANSITIONS[old]


EventKind = Literal[
    "start",
    "warm",
    "serving",
    "state",
    "passive-start",
    "switch",
    "drained",
    "stopped",
    "reconfigure-refused",
    "reconfigure-failed",
    "worker-failed",
    "worker-hung",
    "worker-restart-scheduled",
    "worker-replaced",
    "piece-rerun",
    "piece-failed",
    "auto-on",
    "auto-off",
    "auto-reconfigure",
    "auto-failed",
    "aimd-batch",
    "slo-models-reset",  # an idle pool refusing on stale latency measurements forgot them  # AIMD's batch limit crossed a power of two (detail: batch, previous, latency_ms)
    "supervisor-error",
    "closed",
]


@dataclass(frozen=True)
class FailurePolicy:
    """What the pool does when workers die, hang or fail to start (Pool(..., policy=FailurePolicy(...))).

    A piece whose worker dies under it is rerun on a replacement until it has been running at
    `max_piece_attempts` deaths, then fails alone with an error naming it. A worker that dies
    while starting is restarted after `backoff_s × 2^(failures-1)` (capped at `max_backoff_s`);
    after `degraded_after` failures in a row its slot is degraded: its queued work fails, new
    work goes to the healthy workers, and restarts go on at the capped backoff. A batch that has
    had no answer after `hang_factor × expected batch time + hang_grace_s` (or `hang_timeout_s`
    when given) marks its worker hung: it is killed, replaced, and the piece rerun once.
    """

    max_piece_attempts: int = 2
    degraded_after: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    hang_timeout_s: float | None = None
    hang_factor: float = 10.0
    hang_grace_s: float = 1.0
    start_timeout_s: float = 300.0
    drain_timeout_s: float = 30.0
    tick_s: float = 0.1

    def __post_init__(self) -> None:
        checks = {
            "max_piece_attempts": self.max_piece_attempts >= 1,
            "degraded_after": self.degraded_after >= 1,
            "backoff_s": self.backoff_s >= 0,
            "max_backoff_s": self.max_backoff_s >= self.backoff_s,
            "hang_timeout_s": self.hang_timeout_s is None or self.hang_timeout_s > 0,
            "hang_factor": self.hang_factor > 0,
            "hang_grace_s": self.hang_grace_s >= 0,
            "start_timeout_s": self.start_timeout_s > 0,
            "drain_timeout_s": self.drain_timeout_s > 0,
            "tick_s": self.tick_s > 0,
        }
        for name, ok in checks.items():
            if not ok:
                msg = f"FailurePolicy {name}={getattr(self, name)!r} is out of range; example: FailurePolicy(hang_timeout_s=5.0)"
                raise ValueError(msg)

    def backoff(self, failures: int) -> float:
        """Seconds to wait before restart number `failures` (≥ 1) of a worker that keeps failing."""
        return float(min(self.max_backoff_s, self.backoff_s * 2.0 ** max(0, failures - 1)))

    def hang_deadline_s(self, expected_ms: float) -> float:
        """How long one batch may run before its worker counts as hung."""
        if self.hang_timeout_s is not None:
            return self.hang_timeout_s
        return self.hang_factor * expected_ms / 1000.0 + self.hang_grace_s
