"""until_stopped: run a foreground server until Ctrl-C or SIGTERM, then close its parts with both signals ignored."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

__all__ = ["until_stopped"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def until_stopped() -> Iterator[ExitStack]:
    """SIGTERM and Ctrl-C end the block quietly; what it pushed on the stack closes last-first, uninterrupted.

    A second Ctrl-C during the cleanup must not cut it short with a traceback, so both signals are
    ignored until every closer ran; then the previous handlers come back.
    """
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in _SIGNALS}
    closers = ExitStack()
    try:
        yield closers
    except KeyboardInterrupt:
        pass
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            closers.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
