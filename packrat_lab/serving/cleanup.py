"""Leave nothing behind at interpreter exit when a pool was never closed."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from packrat_lab.serving.transport import remove_segments

if TYPE_CHECKING:
    from packrat_lab.serving.supervisor import Supervisor

__all__ = ["shutdown"]


def shutdown(supervisor: Supervisor, prefix: str, timeout_s: float = 10.0) -> None:
    """Ask the supervisor to drain and stop every worker (it kills stragglers), then unlink the segments.

    The pool's weakref.finalize hook, so it must not touch the Pool. (A parent killed with
    SIGKILL runs none of this: workers notice their parent is gone and remove their own
    segments; see worker._serve.)
    """
    with contextlib.suppress(Exception):
        supervisor.close().result(timeout_s)
    remove_segments(prefix)
