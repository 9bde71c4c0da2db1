"""A real Fleet (worker processes): re-planning under load loses nothing and every answer is its own model's."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import torch

from packrat_lab.fleet import Fleet
from packrat_lab.host import usable_core_count
from packrat_lab.plan import Plan
from packrat_lab.workloads.base import Workload
from packrat_lab.workloads.registry import get_workload

pytestmark = pytest.mark.slow

MLP = get_workload("mlp", width=64, layers=2)
CNN = get_workload("tiny-cnn")


def run_under_load(
    fleet: Fleet, switch: Callable[[Callable[[int], None]], None]
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Mixed traffic to both models while `switch` runs; returns (model, input, answer) of every request."""
    stop = threading.Event()
    answers: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    errors: list[BaseException] = []
    workloads: dict[str, Workload] = {"mlp": MLP, "cnn": CNN}

    def load(name: str, seed: int) -> None:
        torch.manual_seed(seed)
        k = 0
        while not stop.is_set() or k < 5:
            k += 1
            x = workloads[name].example_input(1 + k % 3)
            try:
                if k % 2:
                    out = fleet.infer(name, x)
                else:
                    x = x[:1]
                    out = fleet.submit(name, x[0]).result(30)[None]
                answers.append((name, x, out))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=load, args=(n, s)) for s, n in enumerate(["mlp", "cnn", "mlp", "cnn"])]
    for t in threads:
        t.start()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(answers) < count and time.monotonic() < deadline and not errors:
            time.sleep(0.01)

    try:
        switch(wait_for)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    return answers


def check_answers(answers: list[tuple[str, torch.Tensor, torch.Tensor]]) -> None:
    models = {"mlp": MLP.build().eval(), "cnn": CNN.build().eval()}
    with torch.no_grad():
        for name, x, out in answers:
            torch.testing.assert_close(out, models[name](x), rtol=1e-4, atol=1e-5)


def test_replanning_both_models_under_load_loses_nothing_and_answers_are_each_models_own() -> None:
    with Fleet({"mlp": (MLP, "1x1x2"), "cnn": (CNN, "1x1x2")}, announce=False, warmup=1) as fleet:
        assert set(fleet.shares["mlp"]).isdisjoint(fleet.shares["cnn"])

        def switch(wait_for: Callable[[int], None]) -> None:
            wait_for(15)
            fleet.reconfigure({"mlp": "1x1x4", "cnn": "1x1x1"})
            wait_for(30)
            fleet.reconfigure({"mlp": "1x1x1", "cnn": "1x1x4"})
            wait_for(45)

        answers = run_under_load(fleet, switch)
        stats = fleet.stats()
    assert len(answers) >= 45
    check_answers(answers)
    for name in ("mlp", "cnn"):
        assert stats[name]["lost"] == 0 and stats[name]["failed"] == 0
        assert stats[name]["reconfigurations"] == 2


@pytest.mark.skipif(usable_core_count() < 3, reason="moving cores between two models needs 3 or more cores")
def test_cores_move_between_real_models_under_load() -> None:
    with Fleet({"mlp": (MLP, "2x1x2"), "cnn": (CNN, "1x1x2")}, announce=False, warmup=1) as fleet:
        before = fleet.shares

        def switch(wait_for: Callable[[int], None]) -> None:
            wait_for(15)
            fleet.reconfigure({"mlp": "1x1x2", "cnn": "2x1x2"})
            wait_for(30)

        answers = run_under_load(fleet, switch)
        after = fleet.shares
        stats = fleet.stats()
    assert (len(before["mlp"]), len(after["mlp"]), len(after["cnn"])) == (2, 1, 2)
    assert set(after["mlp"]) <= set(before["mlp"])
    assert set(after["mlp"]).isdisjoint(after["cnn"])
    check_answers(answers)
    assert stats["mlp"]["lost"] == 0 and stats["cnn"]["lost"] == 0


@pytest.mark.skipif(
    usable_core_count() < 2, reason="a co-run needs a core for the model and one for the others"
)
def test_corun_profile_measures_inside_the_share_while_another_model_serves() -> None:
    from packrat_lab.fleet.corun import corun_profile
    from packrat_lab.host import detect_host
    from packrat_lab.serving.pool import Pool

    first, second = detect_host().primary_cpus[:2]
    other = Pool(CNN, Plan.parse("1x1x2").with_cores([(second,)]), announce=False, warmup=1)
    try:
        prof = corun_profile(
            MLP, (first,), [(other, 30.0)], batches=(1, 2), interference=0.4, point_time_s=0.5
        )
        served = other.stats()["served"]
    finally:
        other.close()
    assert sorted((m.threads, m.batch) for m in prof.measurements) == [(1, 1), (1, 2)]
    assert all(m.meta["corun"] and m.meta["interference"] == 0.4 for m in prof.measurements)
    assert all(m.median > 0 for m in prof.measurements)
    assert served > 0  # the other model really served while the points were measured
