"""Faults with real processes: a worker killed mid-batch, a parent killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from proc_utils import alive, wait_for

from packrat_lab import Pool
from packrat_lab.serving.transport import leftover_segments
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp")


def test_a_killed_worker_is_replaced_and_its_work_rerun() -> None:
    x = MLP.example_input(2000, seed=5)  # 250 pieces per worker: a kill lands mid-batch
    with torch.inference_mode():
        expected = MLP.build()(x)
    with Pool("mlp", "2x1x4", warmup=1) as pool:
        victim = pool.stats()["workers"][0]
        future = pool._dispatch(x)
        assert wait_for(lambda: pool.stats()["workers"][0]["served"] > 5, 30)
        os.kill(victim["pid"], signal.SIGKILL)
        out = future.result(timeout=90)  # rerun on the replacement, never a hang
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
        kinds = [e.kind for e in pool.events()]
        assert "worker-failed" in kinds
        assert wait_for(lambda: "worker-replaced" in [e.kind for e in pool.events()], 60)
        failed = next(e for e in pool.events() if e.kind == "worker-failed")
        assert failed.detail["pid"] == victim["pid"]
        replaced = next(e for e in pool.events() if e.kind == "worker-replaced")
        assert replaced.detail["old_pid"] == victim["pid"] and replaced.detail["rerun"] > 0
        workers = pool.stats()["workers"]
        assert workers[0]["pid"] != victim["pid"] and workers[0]["cores"] == victim["cores"]
        assert [w["state"] for w in workers] == ["ready", "ready"]
        assert not alive(victim["pid"])
        assert len(leftover_segments(pool._prefix)) == 4  # the dead worker's pair is gone
        y = MLP.example_input(8, seed=9)
        with torch.inference_mode():
            torch.testing.assert_close(pool.infer(y), MLP.build()(y), rtol=1e-5, atol=1e-5)


CHILD = """
import json, sys, time
from packrat_lab import Pool

if __name__ == "__main__":
    pool = Pool("mlp", "2x1x4", warmup=1)
    pool.infer(pool.workload.example_input(8))
    pids = [w["pid"] for w in pool.stats()["workers"]]
    print(json.dumps({"pids": pids, "prefix": pool._prefix}), flush=True)
    time.sleep(600)
"""


def test_a_killed_parent_leaves_no_workers_and_no_segments(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(CHILD)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        info = json.loads(line)
        assert all(alive(pid) for pid in info["pids"])
        assert len(leftover_segments(info["prefix"])) == 4
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: not any(alive(pid) for pid in info["pids"]), 10)
        assert wait_for(lambda: leftover_segments(info["prefix"]) == [], 10)
    finally:
        if parent.poll() is None:
            parent.kill()
