"""Child-process entry: measure one group of points in isolation (`python -m packrat_lab.profiling.point`).

Reads a PointGroup as JSON on stdin and writes one JSON line per finished point on stdout, then a
final `{"ok": true, "done": true}`. The process applies its ChildEnvironment (variables, affinity,
threads) before torch is imported; the parent started it with that environment already in place,
because OpenMP and the dynamic loader read it only once.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from packrat_lab.profiling.spec import PointGroup

__all__ = ["main", "measure_group"]

Emit = Callable[[dict[str, Any]], object]


def measure_group(group: PointGroup, emit: Emit) -> None:
    """Pin, build once, warm each batch, time the batches by turns; emit each Measurement as it ends."""
    environment = group.environment
    environment.apply_in_child()

    import torch

    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.stopping import TimedRun, run_interleaved, run_warmup
    from packrat_lab.workloads.base import Workload

    started = time.perf_counter()
    workload = Workload(group.workload.target, group.workload)
    model = workload.build()
    build_s = time.perf_counter() - started

    def stepper(inputs: Any) -> Callable[[], object]:
        return lambda: model(inputs)

    with torch.inference_mode():
        inputs = [workload.example_input(b, seed=group.seed) for b in group.batches]
        steps = [stepper(x) for x in inputs]
        outputs: list[Any] = []
        warm: list[tuple[int, float]] = []
        for k, (x, step) in enumerate(zip(inputs, steps, strict=True)):
            warm_start = time.perf_counter()
            outputs.append(model(x))  # a shape's first call makes its kernels
            cap = group.rule.time_cap_s / 4
            if k == 0:  # the first size warms the process: allocator, weights in cache
                done = run_warmup(
                    step, min_iters=group.warmup_min, max_iters=group.warmup_max, time_cap_s=cap
                )
            else:  # later sizes run in that warm process: more calls only while the first fits the warm-up time
                spent = time.perf_counter() - warm_start
                done = run_warmup(step, min_iters=0, max_iters=group.warmup_max, time_cap_s=cap - spent)
            warm.append((done, time.perf_counter() - warm_start))
        seen = environment.observed()

        def finished(i: int, timed: TimedRun) -> None:
            output = outputs[i]
            meta = {
                **seen,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "build_s": round(build_s, 4),
                "warmup_s": round(warm[i][1], 4),
                "output_shape": list(output.shape) if isinstance(output, torch.Tensor) else None,
                "pid": os.getpid(),
                "group_batches": list(group.batches),
            }
            measurement = Measurement(
                threads=group.threads,
                batch=group.batches[i],
                setting=group.setting.name,
                samples_ms=timed.samples_ms,
                warmup=warm[i][0],
                stop_reason=timed.stop_reason,
                wall_s=timed.wall_s,
                target_precision=group.rule.precision,
                meta=meta,
            )
            emit({"ok": True, "measurement": measurement.to_dict()})

        run_interleaved(steps, group.rule, slice_s=group.slice_s, on_done=finished)


def _reply_channel() -> IO[str]:
    """Keep the real stdout for the reply; anything the model prints goes to stderr instead."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return reply


def main() -> int:
    """Read a group on stdin, measure, answer one line per point; a last line says done or the error."""
    reply = _reply_channel()

    def emit(answer: dict[str, Any]) -> None:
        reply.write(json.dumps(answer) + "\n")
        reply.flush()

    try:
        group = PointGroup.from_dict(json.loads(sys.stdin.read()))
        measure_group(group, emit)
        emit({"ok": True, "done": True})
        return 0
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about any failure, even KeyboardInterrupt
        traceback.print_exc(file=sys.stderr)
        emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1


if __name__ == "__main__":
    sys.exit(main())
