"""The profiler: grid, specs, child processes pinned per point, progress, cancellation, failures."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest
import torch

from packrat_lab.errors import InfeasiblePlanError, PackratError
from packrat_lab.host import HostInfo, detect_host
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.profiling.profiler import profile, resolve_threads
from packrat_lab.profiling.runner import PointFailedError, _raise_failure, child_environment, run_point
from packrat_lab.profiling.spec import PointGroup, PointSpec, ProfileGrid, default_batches
from packrat_lab.profiling.stopping import StoppingRule
from packrat_lab.settings import DEFAULT, PASSIVE, RuntimeSetting
from packrat_lab.workloads.base import WorkloadSpec
from packrat_lab.workloads.registry import get_workload

FOUR_CORES = HostInfo("fake cpu", (0, 1, 2, 3), None, {c: (c,) for c in range(4)}, {0: (0, 1, 2, 3)})
needs_two_cores = pytest.mark.skipif(detect_host().usable_cores < 2, reason="needs 2 usable cores")


def mlp_point(threads: int = 1, batch: int = 1, setting: RuntimeSetting = DEFAULT) -> PointSpec:
    return PointSpec(
        get_workload("mlp").spec, threads, batch, setting, tuple(range(threads)), StoppingRule(time_cap_s=1.0)
    )


def test_default_batches_are_powers_of_two_plus_named_sizes() -> None:
    assert default_batches() == [1, 2, 4, 8, 16]
    assert default_batches(8, extra=(3, 12)) == [1, 2, 3, 4, 8, 12]
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        default_batches(0)


def test_grid_order_puts_small_batches_first_and_validates() -> None:
    grid = ProfileGrid((1, 2), (1, 4), (DEFAULT, PASSIVE))
    assert len(grid) == 8
    assert [(t, b, s.name) for t, b, s in grid][:4] == [
        (1, 1, "default"),
        (1, 1, "passive"),
        (2, 1, "default"),
        (2, 1, "passive"),
    ]
    with pytest.raises(ValueError, match=r"batch sizes must be positive integers, got \[0, 2\]"):
        ProfileGrid((1,), (0, 2), (DEFAULT,))
    with pytest.raises(ValueError, match="at least one runtime setting"):
        ProfileGrid((1,), (1,), ())


def test_threads_are_checked_against_usable_cores() -> None:
    assert resolve_threads(None, None, FOUR_CORES) == (1, 2, 3, 4)
    assert resolve_threads(None, 2, FOUR_CORES) == (1, 2)
    assert resolve_threads([4, 1, 1], None, FOUR_CORES) == (1, 4)
    with pytest.raises(InfeasiblePlanError, match="cores=6 is more than the 4 usable cores"):
        resolve_threads(None, 6, FOUR_CORES)
    with pytest.raises(InfeasiblePlanError, match="threads=5 needs 5 cores but only 4 are usable"):
        resolve_threads([1, 5], None, FOUR_CORES)
    with pytest.raises(ValueError, match="cores must be a positive integer"):
        resolve_threads(None, 0, FOUR_CORES)


def test_profile_refuses_more_threads_than_usable_before_starting_anything() -> None:
    usable = detect_host().usable_cores
    with pytest.raises(
        InfeasiblePlanError, match=f"threads={usable + 1} needs {usable + 1} cores but only {usable}"
    ):
        profile("mlp", threads=[usable + 1])
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        profile("nope", threads=[1])


def test_point_spec_round_trips_as_json_dict() -> None:
    spec = PointSpec(
        get_workload("bert", seq_len=16).spec, 2, 4, PASSIVE, (0, 1), StoppingRule(0.05, 5, 50, 2.0), 2, 6, 3
    )
    assert PointSpec.from_dict(spec.to_dict()) == spec
    assert spec.label == "threads=2 batch=4 setting=passive"


def test_point_group_round_trips_and_splits_into_its_points() -> None:
    spec = PointSpec(
        get_workload("mlp").spec,
        2,
        4,
        PASSIVE,
        (0, 1),
        StoppingRule(0.05, 5, 50, 2.0),
        2,
        6,
        3,
        cache_dir="/c",
    )
    group = PointGroup(spec.workload, 2, (1, 4), PASSIVE, (0, 1), spec.rule, 2, 6, 3, 0.5, cache_dir="/c")
    assert PointGroup.from_dict(group.to_dict()) == group
    assert group.points[1] == spec and group.points[0].batch == 1
    assert PointGroup.of(spec).points == (spec,)


def test_child_environment_carries_the_setting_and_thread_count() -> None:
    env = child_environment(mlp_point(2, 4, PASSIVE))
    assert (
        env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "2" and env["TQDM_DISABLE"] == "1"
    )
    assert child_environment(mlp_point(1, 1, DEFAULT)).get("OMP_WAIT_POLICY") == os.environ.get(
        "OMP_WAIT_POLICY"
    )


def test_bad_reply_names_point_and_stderr_tail() -> None:
    spec = mlp_point(1, 8)
    with pytest.raises(
        PointFailedError,
        match=r"threads=1 batch=8 setting=default .*exit code 3\); child stderr: noise \| boom$",
    ):
        _raise_failure(PointGroup.of(spec), 3, None, "noise\nboom\n")
    with pytest.raises(PointFailedError, match=r"failed \(OSError: no such file\)"):
        _raise_failure(PointGroup.of(spec), 1, {"ok": False, "error": "OSError: no such file"}, "")


@pytest.mark.slow
@needs_two_cores
def test_real_profile_of_mlp_pins_each_thread_and_setting_in_a_fresh_process() -> None:
    seen: list[tuple[int, int, Measurement]] = []
    result = profile(
        "mlp",
        threads=[1, 2],
        batches=[1, 4],
        point_time_s=0.5,
        max_samples=30,
        warmup=3,
        progress=lambda done, total, m: seen.append((done, total, m)),
    )
    assert [(d, t) for d, t, _ in seen] == [(i, 8) for i in range(1, 9)]
    assert len(result.measurements) == 8 and result.meta["cancelled"] is False
    assert {(m.threads, m.batch, m.setting) for m in result.measurements} == {
        (t, b, s) for t in (1, 2) for b in (1, 4) for s in ("default", "passive")
    }
    usable = set(detect_host().primary_cpus)
    pids = set()
    for m in result.measurements:
        assert len(m.meta["affinity"]) == m.threads and set(m.meta["affinity"]) <= usable
        assert m.meta["torch_threads"] == m.threads and m.meta["interop_threads"] == 1
        assert m.meta["omp_wait_policy"] == ("PASSIVE" if m.setting == "passive" else None)
        assert m.meta["output_shape"] == [m.batch, 1024]
        assert m.stop_reason in ("precision", "time-cap", "max-samples") and 1 <= m.n <= 30
        # the first size warms the process (3 calls at least); later sizes may need no call beyond their first
        assert (m.warmup == 3 if m.batch == 1 else 0 <= m.warmup <= 3) and m.target_precision == 0.02
        pids.add(m.meta["pid"])
    assert len(pids) == 4  # a fresh process per (threads, setting), shared by its batch sizes
    for m in result.measurements:
        same = [o for o in result.measurements if (o.threads, o.setting) == (m.threads, m.setting)]
        assert {o.meta["pid"] for o in same} == {m.meta["pid"]} and m.meta["group_batches"] == [1, 4]
    assert result.host is not None and result.host["usable_cores"] == detect_host().usable_cores
    assert result.meta["grid"] == {"threads": [1, 2], "batches": [1, 4], "settings": ["default", "passive"]}
    assert result.meta["workload"]["spec"]["target"] == "mlp" and result.meta["wall_s"] > 0
    assert result.grid().latency_ms.shape == (2, 2)


@pytest.mark.slow
def test_cancel_between_points_returns_the_partial_profile() -> None:
    cancel = threading.Event()
    result = profile(
        "mlp",
        threads=[1],
        batches=[1, 2, 4],
        settings=["passive"],
        point_time_s=0.5,
        warmup=1,
        progress=lambda done, total, m: cancel.set(),
        cancel=cancel,
    )
    assert len(result.measurements) == 1 and result.meta["cancelled"] is True
    assert result.meta["stopped"] == "cancelled" and result.meta["points_planned"] == 3


@pytest.mark.slow
def test_cancel_during_a_point_kills_the_child() -> None:
    started = time.monotonic()
    # precision 1e-9 and 10**6 samples: the point would run its full 60 s cap unless killed
    result = profile(
        "mlp",
        threads=[1],
        batches=[1],
        settings=["default"],
        point_time_s=60.0,
        precision=1e-9,
        max_samples=10**6,
        cancel=lambda: time.monotonic() - started > 3.0,
    )
    assert result.measurements == [] and result.meta["cancelled"] is True


@pytest.mark.slow
def test_time_budget_stops_starting_new_points() -> None:
    result = profile(
        "mlp",
        threads=[1],
        batches=[1, 2, 4, 8],
        settings=["passive"],
        point_time_s=0.3,
        warmup=1,
        time_budget_s=0.6,
    )
    assert 1 <= len(result.measurements) < 4 and result.meta["stopped"] == "time-budget"


@pytest.mark.slow
def test_crashing_child_gives_a_clear_error() -> None:
    missing = WorkloadSpec("torchscript", "/nonexistent/model.pt", (), (4,), "float32")
    spec = PointSpec(missing, 1, 2, DEFAULT, (0,), StoppingRule(time_cap_s=1.0))
    with pytest.raises(
        PackratError,
        match=r"profiling point threads=1 batch=2 setting=default .*failed.*child stderr: .*model\.pt",
    ):
        run_point(spec)


class Chatty(torch.nn.Module):
    """A user module that prints on every call: the child's reply channel must survive it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("forward called")
        return torch.relu(self.linear(x))


@pytest.mark.slow
def test_user_module_that_prints_profiles_in_child_processes() -> None:
    result = profile(
        Chatty(),
        example_input=torch.randn(1, 16),
        threads=[1],
        batches=[2],
        settings=["passive"],
        point_time_s=0.5,
        warmup=1,
    )
    (m,) = result.measurements
    assert result.meta["workload"]["spec"]["kind"] == "saved"  # the child imported this test module
    assert m.meta["output_shape"] == [2, 16] and result.model == "Chatty"


@pytest.mark.slow
def test_torchscript_option_profiles_the_traced_model() -> None:
    result = profile(
        "mlp", torchscript=True, threads=[1], batches=[1], settings=["passive"], point_time_s=0.5, warmup=1
    )
    assert result.model == "mlp[torchscript]" and result.meta["workload"]["spec"]["kind"] == "torchscript"
    assert result.measurements[0].meta["output_shape"] == [1, 1024]


def test_time_budget_counts_each_points_measured_start_up_cost() -> None:
    """Regression (issue 9 #7): a 30 s budget took 63 s: start-up cost per point was not counted."""
    from packrat_lab.profiling.profiler import _Budget

    now = [0.0]
    budget = _Budget(10.0, 0.0, clock=lambda: now[0])
    assert budget.cap(1.0) == 1.0  # nothing measured yet: the cap alone
    now[0] = 4.0
    budget.record(4.0, 1.0)  # the first point took 4 s for 1 s of timing: 3 s start-up
    assert budget.overhead_s == 3.0
    assert budget.cap(1.0) == 1.0  # 4 + 3 + 1 fits in 10
    now[0] = 6.0
    assert budget.cap(5.0) == pytest.approx(1.0)  # shortened to fit: 6 + 3 + 1 = 10
    now[0] = 8.0
    assert budget.cap(1.0) is None  # 8 + 3 would already overrun: not started (old code started it)
    assert _Budget(None, 0.0).cap(2.5) == 2.5


def test_progress_bar_counts_points(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from packrat_lab.profiling.measurement import Measurement
    from packrat_lab.profiling.profiler import _bar

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    bar = _bar("mlp", 4, disable=False)  # CI sets TQDM_DISABLE=1, which tqdm reads at import
    bar(1, 4, Measurement(1, 2, "default", (1.5,) * 5))
    bar.close()
    err = capsys.readouterr().err
    assert "profile mlp" in err and "1/4" in err and "t=1 b=2 default 1.50 ms" in err


def fake_latency(threads: int, batch: int, setting: str) -> float:
    return batch * 10.0 / threads + (1.0 if setting == "passive" else 0.0)


class FakeRunner:
    """Stands in for the child process: answers every point of a group from a latency table."""

    def __init__(self) -> None:
        self.groups: list[PointGroup] = []

    def __call__(
        self, group: PointGroup, cancelled: object, on_point: Callable[[Measurement], object]
    ) -> list[Measurement]:
        self.groups.append(group)
        out = []
        for spec in group.points:
            ms = fake_latency(spec.threads, spec.batch, spec.setting.name)
            m = Measurement(spec.threads, spec.batch, spec.setting.name, (ms,) * 10, stop_reason="precision")
            on_point(m)
            out.append(m)
        return out


def test_grouped_profiling_yields_the_same_points_as_one_process_per_point() -> None:
    grouped, single = FakeRunner(), FakeRunner()
    seen: list[tuple[int, int]] = []
    kwargs = {"threads": [1, 2], "batches": [1, 2, 4], "point_time_s": 1.0}
    a = profile("mlp", runner=grouped, progress=lambda d, t, m: seen.append((d, t)), **kwargs)  # type: ignore[arg-type]
    b = profile("mlp", runner=single, group_batches=False, **kwargs)  # type: ignore[arg-type]
    key = sorted((m.threads, m.batch, m.setting, m.samples_ms) for m in a.measurements)
    assert key == sorted((m.threads, m.batch, m.setting, m.samples_ms) for m in b.measurements)
    assert len(key) == 12 and seen == [(i, 12) for i in range(1, 13)]
    assert len(grouped.groups) == 4 and all(g.batches == (1, 2, 4) for g in grouped.groups)
    assert len(single.groups) == 12 and all(len(g.batches) == 1 for g in single.groups)
    by_point = {(p.threads, p.batch, p.setting.name): p for g in single.groups for p in g.points}
    for g in grouped.groups:  # same cores, rule and setting per point either way
        for p in g.points:
            assert by_point[(p.threads, p.batch, p.setting.name)] == p
    assert a.meta["grouped"] is True and b.meta["grouped"] is False


def _point_children(parent: int) -> list[int]:
    """Pids of profiling-point processes whose parent is `parent` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == parent and b"packrat_lab.profiling.point" in cmd:
            found.append(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_point_child_dies_with_its_killed_parent() -> None:
    """A restarted kernel (SIGKILL) left its profiling child measuring for its whole time cap."""
    import contextlib
    import signal
    import subprocess
    import sys

    script = (
        "from packrat_lab.profiling.profiler import profile\n"
        "profile('mlp', threads=[1], batches=[1], settings=['default'], point_time_s=120.0,"
        " precision=1e-9, max_samples=10**7)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        children: list[int] = []
        while not children and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            children = _point_children(parent.pid)
        assert children, "the profiler never started its point process"
        # hold the child wherever it is (before or after it asked to die with its parent), so the
        # parent's death can come first: the race a slow host runs into
        for c in children:
            os.kill(c, signal.SIGSTOP)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c, signal.SIGCONT)
        gone = time.monotonic() + 20
        while time.monotonic() < gone and any(os.path.exists(f"/proc/{c}") for c in children):
            time.sleep(0.1)
        left = [c for c in children if os.path.exists(f"/proc/{c}")]
        for c in left:  # clean up before failing, so the suite's later measurements are not disturbed
            os.kill(c, signal.SIGKILL)
        assert not left, f"point process {left} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
