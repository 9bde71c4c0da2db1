"""Run one point in a fresh child process and turn its reply into a Measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from packrat_lab.errors import PackratError
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.spec import PointSpec

__all__ = ["PointCancelled", "PointFailedError", "child_environment", "run_point"]

POLL_S = 0.05
STARTUP_ALLOWANCE_S = 300.0  # importing torch/transformers and building a big model


class PointFailedError(PackratError, RuntimeError):
    """A profiling child crashed, hung or answered nonsense."""


class PointCancelled(Exception):
    """The user cancelled while a point was running; its child was killed."""


def child_environment(spec: PointSpec) -> dict[str, str]:
    """The child's environment: ours, the setting's variables, and our import path."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(spec.threads)
    env["MKL_NUM_THREADS"] = str(spec.threads)
    env.update(spec.setting.env_dict)
    stock = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    paths = [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p) and not p.startswith(stock)]
    if os.getcwd() not in paths:
        paths.insert(0, os.getcwd())
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # user modules import as they do here
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env["TQDM_DISABLE"] = "1"
    return env


def _tail(text: str, lines: int = 8) -> str:
    tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "(no stderr)"


def run_point(
    spec: PointSpec,
    *,
    cancelled: Callable[[], bool] = lambda: False,
    timeout_s: float | None = None,
) -> Measurement:
    """Measure `spec` in a fresh interpreter; kill it on cancel or timeout."""
    limit = timeout_s if timeout_s is not None else STARTUP_ALLOWANCE_S + 2 * spec.rule.time_cap_s
    proc = subprocess.Popen(
        [sys.executable, "-m", "packrat_lab.profiling.point"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(spec),
        text=True,
    )
    request: str | None = json.dumps(spec.to_dict())
    waited = 0.0
    while True:
        try:
            out, err = proc.communicate(request, timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            request = None  # already sent; communicate keeps collecting output
            waited += POLL_S
            if cancelled():
                _kill(proc)
                raise PointCancelled(spec.label) from None
            if waited > limit:
                _kill(proc)
                msg = f"profiling point {spec.label} did not finish within {limit:.0f} s; example: lower point_time_s or the batch size"
                raise PointFailedError(msg) from None
    return _parse_reply(spec, proc.returncode, out, err)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps SIGKILLed children
        pass


def _parse_reply(spec: PointSpec, code: int, out: str, err: str) -> Measurement:
    try:
        answer = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or not answer.get("ok"):
        reason = answer.get("error") if isinstance(answer, dict) else f"exit code {code}"
        msg = f"profiling point {spec.label} of {spec.workload.target!r} failed ({reason}); child stderr: {_tail(err)}"
        raise PointFailedError(msg)
    return Measurement.from_dict(answer["measurement"])
