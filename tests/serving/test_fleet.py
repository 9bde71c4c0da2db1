"""Fleet on fake workers: disjoint shares, live core moves under load with nothing lost, selection groups."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import torch
from fake_workers import FakeChannel, FakeWorld, fake_model

from packrat_lab.errors import InfeasiblePlanError, WorkerFailedError
from packrat_lab.fleet import Fleet, Selection
from packrat_lab.host import HostInfo
from packrat_lab.serving.lifecycle import FailurePolicy
from packrat_lab.serving.worker import WorkerConfig

HOST = HostInfo("fake 8-core", tuple(range(8)), None)
POLICY = FailurePolicy(hang_timeout_s=5.0, tick_s=0.01, backoff_s=0.02, max_backoff_s=0.1)


class OverlapWatch:
    """A channel factory that checks, at every worker start, that no other model holds its cores."""

    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.live: list[tuple[str, FakeChannel, tuple[int, ...]]] = []
        self.clashes: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, config: WorkerConfig) -> FakeChannel:
        with self.lock:
            self.live = [x for x in self.live if x[1].running]
            for prefix, _, cores in self.live:
                if prefix != config.prefix and set(cores) & set(config.cores):
                    self.clashes.append(f"{config.cores} of {config.prefix} while {prefix} holds {cores}")
            channel = self.world.factory(config)
            self.live.append((config.prefix, channel, tuple(config.cores)))
        return channel


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)


def rows(n: int, start: float = 1.0) -> torch.Tensor:
    return torch.arange(start, start + n).repeat_interleave(1024).view(n, 1024)


@pytest.fixture
def world() -> Iterator[FakeWorld]:
    yield FakeWorld(run_s=0.002)


def fleet_of(world: FakeWorld, models: dict[str, object], **kw: object) -> Fleet:
    return Fleet(
        models,
        host=HOST,
        channels=world.factory,
        announce=False,
        warmup=0,
        policy=POLICY,
        **kw,  # type: ignore[arg-type]
    )


def test_shares_are_disjoint_and_plans_pinned_inside_them(world: FakeWorld) -> None:
    with fleet_of(world, {"a": ("mlp", "2x1x4"), "b": ("mlp", "1x3x8"), "c": ("mlp", "1x2x2")}) as fleet:
        shares = fleet.shares
        assert sorted(c for s in shares.values() for c in s) == sorted(
            {c for s in shares.values() for c in s}
        )
        assert [len(shares[n]) for n in "abc"] == [2, 3, 2]
        for name, plan in fleet.plans.items():
            assert {c for i in plan.instances for c in i.cores} == set(shares[name])
        x = rows(5)
        assert torch.equal(fleet.infer("b", x), fake_model(x))
        assert torch.equal(fleet.submit("a", x[0]).result(5), fake_model(x[0]))
        assert set(fleet.stats()) == {"a", "b", "c"}
        assert fleet.stats()["b"]["cores"] == list(shares["b"])


def test_plans_that_cannot_fit_are_refused_in_one_line(world: FakeWorld) -> None:
    with pytest.raises(InfeasiblePlanError, match=r"a 4 \+ b 5 = 9 cores but this host has 8") as info:
        fleet_of(world, {"a": ("mlp", "4x1x4"), "b": ("mlp", "1x5x8")})
    assert "\n" not in str(info.value)
    assert world.alive() == []


def test_bad_names_and_entries_are_refused(world: FakeWorld) -> None:
    with pytest.raises(ValueError, match="fleet model name"):
        fleet_of(world, {"a b": ("mlp", "1x1x4")})
    with pytest.raises(ValueError, match=r"must be \(model, plan\)"):
        fleet_of(world, {"a": "mlp"})
    with pytest.raises(ValueError, match="not a model of this fleet"):
        fleet_of(world, {"a": ("mlp", "1x1x4"), "g": Selection(("a", "zz"))})


def test_reconfigure_moves_cores_between_models_under_load_nothing_lost() -> None:
    world = FakeWorld(run_s=0.003)
    watch = OverlapWatch(world)
    fleet = Fleet(
        {"a": ("mlp", "3x1x4"), "b": ("mlp", "1x1x4")},
        host=HostInfo("fake 4-core", (0, 1, 2, 3), None),
        channels=watch,
        announce=False,
        warmup=0,
        policy=POLICY,
    )
    stop = threading.Event()
    results: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    errors: list[BaseException] = []

    def load(name: str, seed: int) -> None:
        k = 0
        while not stop.is_set():
            k += 1
            x = rows(1 + k % 5, start=float(seed * 100000 + k * 10))
            try:
                if k % 2:
                    out = fleet.infer(name, x)
                else:
                    out = fleet.submit(name, x[0]).result(10)[None]
                    x = x[:1]
                results.append((name, x, out))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=load, args=(n, s)) for s, n in enumerate(["a", "b", "a", "b"])]
    for t in threads:
        t.start()
    try:
        for k, plans in enumerate(
            [{"a": "1x1x4", "b": "1x3x8"}, {"a": "2x1x2", "b": "2x1x4"}, {"a": "1x2x4", "b": "1x1x4"}]
        ):
            wait_until(lambda k=k: len(results) >= 20 * (k + 1))  # type: ignore[misc]
            fleet.reconfigure(plans)
            assert [len(fleet.shares[n]) for n in "ab"] == [fleet.plans[n].total_threads for n in "ab"]
        wait_until(lambda: len(results) >= 80)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        stats = fleet.stats()
        fleet.close()
    assert errors == []
    assert watch.clashes == []
    assert len(results) >= 80
    for _, x, out in results:
        assert torch.equal(out, fake_model(x))
    for name in "ab":
        assert stats[name]["lost"] == 0 and stats[name]["failed"] == 0
    kinds = [e.detail.get("model") for e in fleet.events() if e.kind == "cores"]
    assert kinds.count("a") == 3 and kinds.count("b") == 3


def test_an_infeasible_reconfigure_changes_nothing(world: FakeWorld) -> None:
    with fleet_of(world, {"a": ("mlp", "2x1x4"), "b": ("mlp", "2x1x4")}) as fleet:
        before = (fleet.shares, {n: p.text for n, p in fleet.plans.items()})
        with pytest.raises(InfeasiblePlanError, match="cores but this host has 8"):
            fleet.reconfigure({"a": "6x1x4", "b": "1x3x4"})
        with pytest.raises(ValueError, match="unknown model 'zz'"):
            fleet.reconfigure({"zz": "1x1x4"})
        assert (fleet.shares, {n: p.text for n, p in fleet.plans.items()}) == before


def test_exp3_group_prefers_the_rewarded_model_on_a_seeded_run(world: FakeWorld) -> None:
    models = {"a": ("mlp", "1x1x4"), "b": ("mlp", "1x1x4"), "pick": Selection(("a", "b"), seed=7, gamma=0.2)}
    with fleet_of(world, models) as fleet:
        x = rows(1)
        for _ in range(300):
            answer = fleet.ask("pick", x)
            assert torch.equal(answer.output, fake_model(x))
            fleet.feedback(answer.request_id, 1.0 if answer.members == ("b",) else 0.0)
        group = fleet.stats()["pick"]
        assert group["probabilities"]["b"] > 0.85  # type: ignore[index]
        picks = group["picks"]
        assert picks["b"] > 2 * picks["a"]  # type: ignore[index]
        with pytest.raises(ValueError, match="unknown request id"):
            fleet.feedback(answer.request_id, 1.0)  # already rewarded
        with pytest.raises(ValueError, match=r"reward must be a number in \[0, 1\]"):
            fleet.feedback(fleet.ask("pick", x).request_id, 3.0)


class SlowTwoThreaded:
    """A channel factory whose two-thread workers answer slowly (the member planned with t=2)."""

    def __init__(self) -> None:
        self.fast, self.slow = FakeWorld(run_s=0.001), FakeWorld(run_s=0.5)

    def __call__(self, config: WorkerConfig) -> FakeChannel:
        return (self.slow if config.threads == 2 else self.fast).factory(config)


def test_ensemble_leaves_out_a_deliberately_slow_member_and_counts_it() -> None:
    models = {
        "a": ("mlp", "1x1x4"),
        "b": ("mlp", "1x1x4"),
        "slow": ("mlp", "1x2x4"),
        "ens": Selection(("a", "b", "slow"), policy="ensemble", slo_ms=200),
    }
    with Fleet(
        models, host=HOST, channels=SlowTwoThreaded(), announce=False, warmup=0, policy=POLICY
    ) as fleet:
        x = rows(2)
        for _ in range(3):
            answer = fleet.ask("ens", x)
            assert answer.members == ("a", "b")
            assert torch.allclose(answer.output, fake_model(x))  # the average of two equal answers
        fleet.feedback(answer.request_id, {"a": 1.0, "b": 0.0})
        weights = fleet.stats()["ens"]["weights"]
        assert weights["a"] > weights["b"]  # type: ignore[index]
        out = fleet.submit("ens", x[0]).result(5)
        assert torch.allclose(out, fake_model(x[0]))
        group = fleet.stats()["ens"]
        assert group["stragglers"] == {"a": 0, "b": 0, "slow": 4}
        assert group["answered"] == {"a": 4, "b": 4, "slow": 0}
        assert any(e.kind == "ensemble-late" for e in fleet.events())


def test_a_refused_plan_for_one_model_switches_no_model(world: FakeWorld) -> None:
    with fleet_of(world, {"a": ("mlp", "2x1x4"), "b": ("mlp", "2x1x4")}) as fleet:
        before = {n: p.text for n, p in fleet.plans.items()}
        with pytest.raises(ValueError, match="unknown runtime setting 'nosuch'"):
            fleet.reconfigure({"a": "1x1x4", "b": "1x1x4@nosuch"})
        assert {n: p.text for n, p in fleet.plans.items()} == before
        assert fleet.stats()["a"]["reconfigurations"] == 0


def test_a_fleet_whose_pool_fails_to_start_leaves_nothing_running() -> None:
    world = FakeWorld()
    world.clean_start_failures = 100
    policy = FailurePolicy(tick_s=0.01, backoff_s=0.01, max_backoff_s=0.02, degraded_after=2)
    with pytest.raises(WorkerFailedError):
        Fleet(
            {"a": ("mlp", "1x1x4")},
            host=HOST,
            channels=world.factory,
            announce=False,
            warmup=0,
            policy=policy,
        )
    assert world.alive() == []


def test_many_concurrent_ensemble_batches_do_not_starve_their_members(world: FakeWorld) -> None:
    models = {"a": ("mlp", "1x1x4"), "b": ("mlp", "1x1x4"), "ens": Selection(("a", "b"), policy="ensemble")}
    with fleet_of(world, models) as fleet:
        x = rows(2)
        outs: list[torch.Tensor] = []
        threads = [
            threading.Thread(target=lambda: outs.append(fleet.infer("ens", x, timeout=20))) for _ in range(48)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(outs) == 48
        assert all(torch.allclose(o, fake_model(x)) for o in outs)


def test_the_fleet_objective_is_each_member_pool_objective(world: FakeWorld) -> None:
    """slo_ms reaches every member (one for all, or per name): admission, drops and attainment per model."""
    with fleet_of(world, {"a": ("mlp", "1x1x2"), "b": ("mlp", "1x1x2")}, slo_ms={"a": 80.0}) as fleet:
        assert fleet.pools["a"].slo_ms == 80.0
        assert fleet.pools["b"].slo_ms is None
        fleet.infer("a", rows(2))
        assert fleet.stats()["a"]["slo_attainment"] == 1.0
    with fleet_of(world, {"a": ("mlp", "1x1x2")}, slo_ms=50.0) as fleet:
        assert fleet.pools["a"].slo_ms == 50.0
