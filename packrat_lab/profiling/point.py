"""Child-process entry: measure one point in isolation (`python -m packrat_lab.profiling.point`).

Reads a PointSpec as JSON on stdin and writes one JSON reply on stdout. The process pins itself
to its cores before torch is imported, and the parent sets the runtime setting's environment
(e.g. OMP_WAIT_POLICY) before the process starts, because OpenMP reads it only once.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import IO, Any

from packrat_lab.profiling.spec import PointSpec

__all__ = ["main", "measure"]


def measure(spec: PointSpec) -> dict[str, Any]:
    """Pin, build, warm up, time: the Measurement of one point as a dict."""
    if spec.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, spec.cores)  # before torch starts its thread pools

    import torch

    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.stopping import run_timed, run_warmup
    from packrat_lab.workloads.base import Workload

    torch.set_num_threads(spec.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already started by an import-time parallel op; keep going
        pass
    started = time.perf_counter()
    workload = Workload(spec.workload.target, spec.workload)
    model = workload.build()
    inputs = workload.example_input(spec.batch, seed=spec.seed)
    build_s = time.perf_counter() - started

    with torch.inference_mode():
        output = model(inputs)

        def step() -> object:
            return model(inputs)

        warm_start = time.perf_counter()
        warmup = run_warmup(
            step, min_iters=spec.warmup_min, max_iters=spec.warmup_max, time_cap_s=spec.rule.time_cap_s / 4
        )
        warmup_s = time.perf_counter() - warm_start
        timed = run_timed(step, spec.rule)

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    meta = {
        "affinity": affinity,
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "env": {k: os.environ.get(k) for k in spec.setting.env_dict},
        "build_s": round(build_s, 4),
        "warmup_s": round(warmup_s, 4),
        "output_shape": list(output.shape) if isinstance(output, torch.Tensor) else None,
        "pid": os.getpid(),
    }
    measurement = Measurement(
        threads=spec.threads,
        batch=spec.batch,
        setting=spec.setting.name,
        samples_ms=timed.samples_ms,
        warmup=warmup,
        stop_reason=timed.stop_reason,
        wall_s=timed.wall_s,
        target_precision=spec.rule.precision,
        meta=meta,
    )
    return measurement.to_dict()


def _reply_channel() -> IO[str]:
    """Keep the real stdout for the reply; anything the model prints goes to stderr instead."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return reply


def main() -> int:
    """Read a request on stdin, measure, answer on stdout; exit 1 with the error on failure."""
    reply = _reply_channel()
    try:
        spec = PointSpec.from_dict(json.loads(sys.stdin.read()))
        answer: dict[str, Any] = {"ok": True, "measurement": measure(spec)}
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about any failure, even KeyboardInterrupt
        traceback.print_exc(file=sys.stderr)
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    reply.write(json.dumps(answer))
    reply.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
