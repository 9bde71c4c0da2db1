"""A worker whose backend is compiled for one batch shape runs the whole slice for a smaller piece (issue 14).

torch.compile(dynamic=False) recompiles for every new input shape (16-22 s here); with
work-conserving dispatch a worker gets pieces of 1..b rows, so a compiled backend must always
see its slice's shape. Runs the worker's own runner in this process with a recording model.
"""

from __future__ import annotations

import os

import torch

from packrat_lab.serving.transport import new_prefix, remove_segments
from packrat_lab.serving.worker import WorkerConfig, _Runner
from packrat_lab.settings import DEFAULT
from packrat_lab.workloads.registry import get_workload


class Recording:
    """A stand-in backend runner: remembers the shapes it was called with; output = 3x + 1 per row."""

    def __init__(self) -> None:
        self.shapes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(int(x.shape[0]))
        return x * 3 + 1


def runner_for(batch: int, prefix: str) -> _Runner:
    workload = get_workload("mlp")
    config = WorkerConfig(
        worker_id=1,
        threads=1,
        batch=batch,
        cores=(0,),
        env=(),
        setting=DEFAULT,
        spec=workload.spec,
        workload_name=workload.name,
        warmup=1,
        prefix=prefix,
        parent_pid=os.getpid(),
    )
    return _Runner(config)


def test_a_fixed_shape_backend_always_sees_its_slice_and_answers_only_the_rows_asked() -> None:
    prefix = new_prefix()
    runner = runner_for(4, prefix)
    try:
        assert runner.inp is not None and runner.out is not None
        recording = Recording()
        runner.model, runner.fixed_batch = recording, True
        x = torch.arange(4 * 1024, dtype=torch.float32).reshape(4, 1024)
        runner.inp.tensor[:4].copy_(x)
        runner.run(1)
        runner.run(3)
        assert recording.shapes == [4, 4]  # never a new shape to compile
        assert torch.equal(runner.out.tensor[:3], x[:3] * 3 + 1)
        runner.fixed_batch = False  # eager and the other runtimes run just the rows asked
        runner.run(2)
        assert recording.shapes == [4, 4, 2]
    finally:
        runner.close()
        remove_segments(prefix)
