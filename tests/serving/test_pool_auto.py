"""Auto mode with a real pool: a deep queue makes the estimator and optimizer pick a bigger plan."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
import torch

from packrat_lab import Plan, Pool
from packrat_lab.profiling.table import profile_from_latencies
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")
# synthetic profile: latency grows with batch, two threads help a little
PROFILE = profile_from_latencies(
    "mlp", {(t, b): b / t**0.5 + 0.5 for t in (1, 2) for b in (1, 2, 4, 8, 16, 32, 64)}
)


def test_auto_mode_needs_a_profile() -> None:
    with Pool("mlp", "1x1x1", warmup=1) as pool:
        with pytest.raises(ValueError, match="profile"):
            pool.set_auto(True)
        assert pool.stats()["auto"] is False


def test_a_sustained_queue_reconfigures_to_the_estimated_batch() -> None:
    x = MLP.example_input(32, seed=4)
    with Pool(
        "mlp",
        "1x1x1",
        profile=PROFILE,
        auto=True,
        warmup=1,
        max_queue_delay_ms=1.0,
        auto_hysteresis_s=0.3,
        auto_min_interval_s=0.0,
    ) as pool:
        stop = threading.Event()
        outstanding: list[Future[torch.Tensor]] = []

        def keep_queue_full() -> None:  # about 48 samples waiting at all times
            k = 0
            while not stop.is_set():
                outstanding[:] = [f for f in outstanding if not f.done()]
                while len(outstanding) < 48:
                    outstanding.append(pool.submit(x[k % 32]))
                    k += 1
                time.sleep(0.002)

        feeder = threading.Thread(target=keep_queue_full)
        feeder.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and pool.stats()["reconfigurations"] == 0:
                time.sleep(0.1)
        finally:
            stop.set()
            feeder.join(10)
        auto = [e for e in pool.events() if e.kind == "auto-reconfigure"]
        assert auto, [e.kind for e in pool.events()]
        estimated = auto[0].detail["estimated_batch"]
        assert estimated > 1 and estimated & (estimated - 1) == 0  # a power of two above 1
        assert Plan.parse(auto[0].plan).total_batch == estimated  # the optimizer's plan for that B
        switches = [e for e in pool.events() if e.kind == "switch"]
        assert switches and switches[0].plan == auto[0].plan and switches[0].time >= auto[0].time
        assert pool.stats()["failed"] == 0
