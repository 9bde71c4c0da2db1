"""Leave nothing behind: stop workers and remove segments on close, at exit, or after a crash."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from packrat_lab.serving.transport import remove_segments

if TYPE_CHECKING:
    from packrat_lab.serving.handle import WorkerHandle

__all__ = ["shutdown"]


def shutdown(handles: Iterable[WorkerHandle], prefix: str, timeout_s: float = 5.0) -> None:
    """Ask every worker to drain and exit, kill those that don't in time, unlink the pool's segments.

    Used by Pool.close() and by the weakref.finalize/atexit hook, so it must not touch the Pool.
    (A parent killed with SIGKILL runs none of this: workers notice their parent is gone and
    remove their own segments; see worker._serve.)
    """
    handles = list(handles)
    for handle in handles:
        with contextlib.suppress(Exception):
            handle.stop()
    deadline = time.monotonic() + timeout_s
    for handle in handles:
        if not handle.exited.wait(max(0.0, deadline - time.monotonic())):
            handle.kill()
            handle.exited.wait(2.0)
        handle.join(max(0.1, deadline - time.monotonic()))
    remove_segments(prefix)
