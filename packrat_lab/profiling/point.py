"""Child-process entry: measure one group of points in isolation (`python -m packrat_lab.profiling.point`).

Reads a PointGroup as JSON on stdin and writes one JSON line per finished point on stdout, then a
final `{"ok": true, "done": true}`. The process applies its ChildEnvironment (variables, affinity,
threads) before torch is imported; the parent started it with that environment already in place,
because OpenMP and the dynamic loader read it only once.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from packrat_lab.profiling.spec import PointGroup

__all__ = ["PARENT_PID_ENV", "main", "measure_group"]

Emit = Callable[[dict[str, Any]], object]
ACCURACY_BATCH = 8  # rows of the seeded input each backend is checked on (fewer if the group's batches are)


def measure_group(group: PointGroup, emit: Emit) -> None:
    """Pin, build once, convert to the backend, warm each batch, time the batches by turns; emit each."""
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
    forward, backend_meta = _backend_forward(group, workload, model)

    def stepper(inputs: Any) -> Callable[[], object]:
        return lambda: forward(inputs)

    with torch.inference_mode():
        inputs = [workload.example_input(b, seed=group.seed) for b in group.batches]
        steps = [stepper(x) for x in inputs]
        outputs: list[Any] = []
        warm: list[tuple[int, float]] = []
        for k, (x, step) in enumerate(zip(inputs, steps, strict=True)):
            warm_start = time.perf_counter()
            outputs.append(forward(x))  # a shape's first call makes its kernels
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
        peak_rss_mb = _peak_rss_mb()

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
                "peak_rss_mb": round(peak_rss_mb, 1),
                **backend_meta,
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
                backend=group.backend.backend,
                precision=group.backend.precision,
            )
            emit({"ok": True, "measurement": measurement.to_dict()})

        run_interleaved(steps, group.rule, slice_s=group.slice_s, on_done=finished)


def _backend_forward(
    group: PointGroup, workload: Any, model: Any
) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    """The callable that runs one batch under the group's backend, and what converting it cost.

    Any other runtime than eager fp32 is first checked against eager fp32 on a seeded input that is
    not one of the timed ones; the errors travel with every measurement of the group.
    """
    if group.backend.is_reference:
        return model, {}
    import torch

    from packrat_lab.workloads.backends.accuracy import compare_outputs
    from packrat_lab.workloads.backends.base import first_tensor
    from packrat_lab.workloads.backends.build import prepare_backend

    probe = workload.example_input(min(max(group.batches), ACCURACY_BATCH), seed=group.seed + 1)
    with torch.inference_mode():
        reference = first_tensor(model(probe)).float()
    rss_before_mb = _peak_rss_mb()  # the eager model built and run once: what conversion adds is above this
    prepared = prepare_backend(
        model,
        workload.example_input(2, seed=group.seed),
        group.backend,
        threads=group.threads,
        options=group.environment.backend_options,
        sample_shape=tuple(workload.sample_shape),
        dtype=workload.dtype,
        cache_dir=group.cache_dir,
    )
    convert_peak_mb = _peak_rss_mb()
    with torch.inference_mode():
        accuracy = compare_outputs(reference, prepared.run(probe))
    meta = {
        "accuracy": accuracy.to_dict(),
        "convert_s": round(prepared.convert_s, 4),
        "cache_hit": prepared.cache_hit,
        "rss_before_convert_mb": round(rss_before_mb, 1),
        "convert_peak_rss_mb": round(convert_peak_mb, 1),  # the process's peak right after converting
        "backend_options": dict(group.environment.backend_options),
    }
    return prepared.run, meta


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reply_channel() -> IO[str]:
    """Keep the real stdout for the reply; anything the model prints goes to stderr instead."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return reply


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a restarted kernel must not leave a point
    measuring for minutes beside the next profile); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    # the profiler's pid, from the environment it started us with: a parent that died before
    # this line ran has already made getppid() the reaper's, so getppid() cannot be the reference
    expected = int(os.environ.get(PARENT_PID_ENV, "0") or 0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the point runs to its end
        return
    if expected and os.getppid() != expected:  # the parent died before the request took hold
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_PID_ENV = "PACKRAT_PROFILER_PID"  # set by the runner: the process this one must not outlive


def main() -> int:
    """Read a group on stdin, measure, answer one line per point; a last line says done or the error."""
    _die_with_parent()
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
