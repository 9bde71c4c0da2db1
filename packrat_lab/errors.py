"""Domain errors: each says what was wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "InfeasiblePlanError",
    "PackratError",
    "PoolClosedError",
    "ProfileError",
    "ProfileMissingPointError",
    "Rejected",
    "RequestTimeoutError",
    "WorkerFailedError",
]


class PackratError(Exception):
    """Base class for packrat_lab's domain failures (not programming errors)."""


class InfeasiblePlanError(PackratError, ValueError):
    """No plan fits the requested cores and batch, or a plan does not fit the host."""


class ProfileError(PackratError, ValueError):
    """A profile file is malformed, truncated or of an unknown format."""


class ProfileMissingPointError(ProfileError, KeyError):
    """A plan needs a (threads, batch) point that the profile never measured."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WorkerFailedError(PackratError, RuntimeError):
    """A worker process died or raised while running a request."""


class PoolClosedError(WorkerFailedError):
    """The pool was closed (or is closing): start a new Pool to serve more."""


class RequestTimeoutError(PackratError, TimeoutError):
    """A request had no answer within the caller's timeout; it was withdrawn."""


class Rejected(PackratError):
    """A request refused because it was predicted to miss its deadline (it never ran).

    `predicted_ms` is the predicted latency (None when unknown) and `deadline_ms` the objective.
    """

    def __init__(
        self, message: str, *, predicted_ms: float | None = None, deadline_ms: float | None = None
    ) -> None:
        super().__init__(message)
        self.predicted_ms = predicted_ms
        self.deadline_ms = deadline_ms


class DeadlineDropped(Rejected):
    """An admitted request dropped from the queue: it could no longer finish by its deadline (it never ran)."""
