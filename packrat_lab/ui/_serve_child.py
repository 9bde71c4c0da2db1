"""`packrat-lab serve` for a Lab, ended (SIGTERM: a clean close) when the kernel that started it is gone.

A kernel killed or shut down would otherwise leave its Lab's pool serving with no owner.
Usage (by ui.remote only): python -m packrat_lab.ui._serve_child PARENT_PID serve MODEL --plan P ...
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

_POLL_S = 1.0


def _watch(parent: int) -> None:
    """SIGTERM this process once it is reparented (the parent exited, however it died)."""
    while True:
        time.sleep(_POLL_S)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str]) -> int:
    """Watch the parent in a daemon thread; run the CLI in the main thread (it owns SIGTERM)."""
    parent = int(argv[0])
    if os.getppid() != parent:  # the parent is already gone
        return 1
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="packrat-parent-watch").start()
    from packrat_lab.cli import main as cli_main

    return cli_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
