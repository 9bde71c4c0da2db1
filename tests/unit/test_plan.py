"""Plan text form, grouping, serialisation and errors."""

from __future__ import annotations

import pytest

from packrat_lab.plan import Instance, Plan, parse_plan
from packrat_lab.settings import DEFAULT, PASSIVE


def test_parse_homogeneous() -> None:
    plan = parse_plan("2x1x4")
    assert [(i.threads, i.batch) for i in plan.instances] == [(1, 4), (1, 4)]
    assert plan.total_batch == 8 and plan.total_threads == 2
    assert plan.text == "2x1x4"
    assert str(plan) == "⟨2,1,4⟩"


def test_parse_heterogeneous_with_setting() -> None:
    plan = parse_plan(" 1x2x8 + 2x1x4@passive ")
    assert plan.total_batch == 16 and plan.total_threads == 4
    assert plan.instances[1].setting == PASSIVE
    assert plan.instances[0].setting == DEFAULT
    assert plan.text == "1x2x8+2x1x4@passive"
    assert str(plan) == "⟨1,2,8⟩ + ⟨2,1,4⟩"


@pytest.mark.parametrize("bad", ["", "2x1", "0x1x4", "2x0x4", "axbxc", "2x1x4+"])
def test_parse_rejects_with_example(bad: str) -> None:
    with pytest.raises(ValueError, match=r"example: '2x1x4'"):
        parse_plan(bad)


def test_round_trip_dict_keeps_cores_and_settings() -> None:
    plan = Plan((Instance(2, 8, PASSIVE), Instance(1, 4)), 12.5, "packrat").with_cores([(0, 1), (2,)])
    again = Plan.from_dict(plan.to_dict())
    assert again == plan
    assert again.instances[0].cores == (0, 1)
    assert plan.to_dict()["instances"] == [
        {"count": 1, "threads": 2, "batch": 8, "setting": "passive", "backend": "eager"},
        {"count": 1, "threads": 1, "batch": 4, "setting": "default", "backend": "eager"},
    ]


def test_throughput_from_latency() -> None:
    plan = Plan((Instance(1, 4), Instance(1, 4)), expected_latency_ms=20.0)
    assert plan.expected_throughput == pytest.approx(400.0)


def test_instance_validates_threads_and_cores() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        Instance(0, 4)
    with pytest.raises(ValueError, match="one core per thread"):
        Instance(2, 4, cores=(0,))
