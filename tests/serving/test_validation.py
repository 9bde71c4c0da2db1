"""validate(): plans measured side by side; identical configurations share one measurement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from typing_extensions import Self

from packrat_lab.plan import Plan, parse_plan
from packrat_lab.validation import validate


class FakeClock:
    """Each call advances by the latency the running fake pool charges."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakePool:
    """Stands in for the serving pool: infer() costs a fixed time per plan on the fake clock."""

    opened: ClassVar[list[str]] = []
    cost_ms: ClassVar[dict[str, float]] = {}
    clock: ClassVar[FakeClock] = FakeClock()

    def __init__(self, workload: Any, plan: Plan, *, announce: bool = True) -> None:
        self.plan = plan
        FakePool.opened.append(plan.text)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def infer(self, batch: Any) -> Any:
        FakePool.clock.now += FakePool.cost_ms[self.plan.text] / 1000.0
        return batch


@pytest.fixture
def fake_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePool]]:
    import packrat_lab.serving.pool as pool_module

    FakePool.opened = []
    FakePool.clock = FakeClock()
    monkeypatch.setattr(pool_module, "Pool", FakePool)
    yield FakePool


def named(text: str, name: str, expected: float) -> Plan:
    plan = parse_plan(text)
    return Plan(plan.instances, expected, name)


def test_speedups_and_gap_from_measured_medians(fake_pool: type[FakePool]) -> None:
    fake_pool.cost_ms = {"2x1x4": 10.0, "1x2x8": 25.0}
    plans = [named("2x1x4", "packrat", 8.0), named("1x2x8", "fat", 25.0)]
    report = validate("mlp", plans, repeats=3, warmup=1, clock=fake_pool.clock)
    assert report.by_name("packrat").median_ms == pytest.approx(10.0)
    assert report.speedup("packrat") == pytest.approx(2.5)
    assert report.by_name("packrat").gap == pytest.approx(0.25)
    assert report.by_name("fat").gap == pytest.approx(0.0)
    assert "2.50×" in report.to_markdown()


def test_identical_configurations_are_measured_once(fake_pool: type[FakePool]) -> None:
    fake_pool.cost_ms = {"1x2x8": 20.0, "2x1x4": 12.0}
    plans = [named("1x2x8", "packrat", 20.0), named("1x2x8", "fat", 20.0), named("2x1x4", "thin", 11.0)]
    report = validate("mlp", plans, repeats=2, warmup=0, rounds=2, clock=fake_pool.clock)
    assert fake_pool.opened == ["1x2x8", "2x1x4", "1x2x8", "2x1x4"]  # alternated, fat not rerun
    assert report.by_name("packrat").samples_ms == report.by_name("fat").samples_ms
    assert report.speedup("packrat") == pytest.approx(1.0)
    assert len(report.by_name("thin").samples_ms) == 4


@pytest.mark.parametrize(
    ("plans", "match"),
    [([], "at least one plan"), (["1x2x8", "2x1x2"], "different batch sizes")],
)
def test_bad_arguments(plans: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate("mlp", plans)


@pytest.mark.slow
def test_real_pools_measure_each_plan() -> None:
    report = validate("mlp", ["1x1x4", "2x1x2"], repeats=3, warmup=1)
    assert [len(r.samples_ms) for r in report.results] == [3, 3]
    assert all(s > 0 for r in report.results for s in r.samples_ms)


def test_plans_differing_only_in_backend_are_measured_apart(fake_pool: type[FakePool]) -> None:
    fake_pool.cost_ms = {"1x2x8": 25.0, "1x2x8:onnxruntime": 5.0}
    plans = [named("1x2x8:onnxruntime", "packrat", 5.0), named("1x2x8", "fat", 25.0)]
    report = validate("mlp", plans, repeats=3, warmup=1, clock=fake_pool.clock)
    assert sorted(fake_pool.opened) == ["1x2x8", "1x2x8:onnxruntime"]
    assert report.speedup("packrat") == pytest.approx(5.0)
    assert [row["backends"] for row in report.rows()] == ["onnxruntime", "eager"]
    assert "⟨1,2,8⟩ onnxruntime" in report.to_markdown()
