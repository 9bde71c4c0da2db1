"""Who owns a pool: one of this Jupyter server's kernels (and its notebook), or another process on the host.

The sidebar groups pools by owner so a user sees "this server's kernels" apart from "other pools on
this host" (a `packrat-lab serve` in a terminal, another user's Jupyter), and names the owner before
stopping a pool it did not start. Linux /proc gives the parent chain and command lines.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["command_line", "kernel_pids", "notebook_paths", "owner_view", "parent_chain"]

_MAX_DEPTH = 32


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def parent_chain(pid: int) -> list[int]:
    """pid, its parent, grandparent, … up to init (what owns a server started from a kernel)."""
    chain = [pid]
    while len(chain) < _MAX_DEPTH:
        parent = _ppid(chain[-1])
        if parent is None or parent <= 1 or parent in chain:
            break
        chain.append(parent)
    return chain


def command_line(pid: int, width: int = 80) -> str:
    """A short command line of a process: 'packrat-lab serve mlp --plan 1x1x1' (python -m folded away)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    args = [a for a in raw.decode(errors="replace").split("\0") if a]
    if args and Path(args[0]).name.startswith("python"):
        args = args[1:]
        if args[:2] in (["-m", "packrat_lab.cli"], ["-m", "packrat_lab"]):
            args = ["packrat-lab", *args[2:]]
        elif args[:2] == ["-m", "packrat_lab.ui._serve_child"]:  # a Lab's server: skip the parent pid
            args = ["packrat-lab", *args[3:]]
        elif args[:1] == ["-m"]:
            args = args[1:]
    if args:
        args[0] = Path(args[0]).name
    text = shlex.join(args)
    return text if len(text) <= width else text[: width - 1] + "…"


def kernel_pids(kernel_manager: Any) -> dict[int, str]:
    """pid -> kernel id for this server's running kernels (local provisioners only)."""
    out: dict[int, str] = {}
    for kernel_id in list(getattr(kernel_manager, "list_kernel_ids", list)()):
        try:
            kernel = kernel_manager.get_kernel(kernel_id)
        except KeyError:
            continue
        provisioner = getattr(kernel, "provisioner", None)
        process = getattr(provisioner, "process", None) or getattr(kernel, "kernel", None)
        pid = getattr(provisioner, "pid", None) or getattr(process, "pid", None)
        if isinstance(pid, int):
            out[pid] = str(kernel_id)
    return out


def notebook_paths(sessions: list[Mapping[str, Any]]) -> dict[str, str]:
    """kernel id -> the notebook (session path) using it."""
    out: dict[str, str] = {}
    for session in sessions:
        kernel = session.get("kernel") or {}
        if isinstance(kernel, Mapping) and kernel.get("id") and session.get("path"):
            out[str(kernel["id"])] = str(session["path"])
    return out


def owner_view(pid: int, kernels: Mapping[int, str], notebooks: Mapping[str, str]) -> dict[str, Any]:
    """{"group": "kernel"|"other", "label": ..., "pid": ..., "kernel_pid": ..., "notebook": ...} for a pool's pid."""
    for ancestor in parent_chain(pid):
        kernel_id = kernels.get(ancestor)
        if kernel_id is None:
            continue
        notebook = notebooks.get(kernel_id)
        via = "" if ancestor == pid else f", server pid {pid}"
        where = f"notebook {notebook}" if notebook else f"kernel {kernel_id[:8]}"
        return {
            "group": "kernel",
            "label": f"{where} (kernel pid {ancestor}{via})",
            "pid": pid,
            "kernel_pid": ancestor,
            "notebook": notebook,
        }
    command = command_line(pid) or "a process"
    return {
        "group": "other",
        "label": f"{command} (pid {pid})",
        "pid": pid,
        "kernel_pid": None,
        "notebook": None,
    }
