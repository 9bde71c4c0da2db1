"""Run a group of points in a fresh child process and turn its streamed replies into Measurements."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from packrat_lab.errors import PackratError
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.point import PARENT_PID_ENV
from packrat_lab.profiling.spec import PointGroup, PointSpec

__all__ = ["GroupRunner", "PointCancelled", "PointFailedError", "child_environment", "run_group", "run_point"]

POLL_S = 0.05
STARTUP_ALLOWANCE_S = 300.0  # importing torch/transformers and building a big model

GroupRunner = Callable[[PointGroup, Callable[[], bool], Callable[[Measurement], object]], list[Measurement]]


class PointFailedError(PackratError, RuntimeError):
    """A profiling child crashed, hung or answered nonsense."""


class PointCancelled(Exception):
    """The user cancelled while a point was running; its child was killed."""


def child_environment(spec: PointSpec | PointGroup) -> dict[str, str]:
    """The child's full environment: ours, its ChildEnvironment, and our import path."""
    env = spec.environment.launch_env()
    stock = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    paths = [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p) and not p.startswith(stock)]
    if os.getcwd() not in paths:
        paths.insert(0, os.getcwd())
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # user modules import as they do here
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env["TQDM_DISABLE"] = "1"
    env[PARENT_PID_ENV] = str(os.getpid())  # the child dies with us (point.py), even if we die first
    return env


def _tail(text: str, lines: int = 8) -> str:
    tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "(no stderr)"


def _pump(stream: IO[str], sink: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def run_point(
    spec: PointSpec,
    *,
    cancelled: Callable[[], bool] = lambda: False,
    timeout_s: float | None = None,
) -> Measurement:
    """Measure one point in a fresh interpreter; kill it on cancel or timeout."""
    return run_group(PointGroup.of(spec), cancelled, timeout_s=timeout_s)[0]


def run_group(
    group: PointGroup,
    cancelled: Callable[[], bool] = lambda: False,
    on_point: Callable[[Measurement], object] = lambda m: None,
    *,
    timeout_s: float | None = None,
) -> list[Measurement]:
    """Measure a group in one fresh interpreter, handing each point to `on_point` as it finishes."""
    n = len(group.batches)
    limit = timeout_s if timeout_s is not None else STARTUP_ALLOWANCE_S + 3 * n * group.rule.time_cap_s
    proc = subprocess.Popen(
        [sys.executable, "-m", "packrat_lab.profiling.point"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(group),
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True),
        threading.Thread(target=errors.extend, args=(proc.stderr,), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        proc.stdin.write(json.dumps(group.to_dict()))
        proc.stdin.close()
    except BrokenPipeError:  # the child died at start; its stderr says why
        pass
    results: list[Measurement] = []
    answer: dict[str, object] | None = None
    started = time.monotonic()
    try:
        while True:
            try:
                line = lines.get(timeout=POLL_S)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line.strip():
                answer = _parse_line(line)
                if answer is not None and answer.get("ok") and "measurement" in answer:
                    measurement = Measurement.from_dict(answer["measurement"])  # type: ignore[arg-type]
                    results.append(measurement)
                    on_point(measurement)
            if cancelled():
                raise PointCancelled(group.label)
            if time.monotonic() - started > limit:
                msg = f"profiling point {group.label} did not finish within {limit:.0f} s; example: lower point_time_s or the batch size"
                raise PointFailedError(msg)
    except BaseException:
        _kill(proc)
        raise
    code = proc.wait()
    readers[1].join(timeout=10)
    if answer is None or not answer.get("done") or len(results) != n:
        _raise_failure(group, code, answer, "".join(errors))
    return results


def _parse_line(line: str) -> dict[str, object] | None:
    try:
        answer = json.loads(line)
    except json.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps SIGKILLed children
        pass


def _raise_failure(group: PointGroup, code: int, answer: dict[str, object] | None, err: str) -> None:
    reason = answer.get("error") if answer is not None and not answer.get("ok") else f"exit code {code}"
    msg = f"profiling point {group.label} of {group.workload.target!r} failed ({reason}); child stderr: {_tail(err)}"
    raise PointFailedError(msg)
