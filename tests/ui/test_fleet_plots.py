"""Fleet figures and the notebook Fleet view on fake workers: core map per model, cores over time, moves by hand."""

from __future__ import annotations

import pytest
from fake_workers import FakeWorld

from packrat_lab.fleet import Fleet
from packrat_lab.host import HostInfo
from packrat_lab.plots.fleet import (
    fleet_core_map,
    fleet_members,
    fleet_timeline,
    plot_fleet_core_map,
    plot_fleet_timeline,
)
from packrat_lab.serving.lifecycle import FailurePolicy

HOST = HostInfo("fake 4-core", (0, 1, 2, 3), None)


@pytest.fixture
def fleet() -> Fleet:
    world = FakeWorld(run_s=0.001)
    models = {"a": ("mlp", "1x1x4"), "b": ("mlp", "1x2x4")}
    f = Fleet(
        models, host=HOST, channels=world.factory, announce=False, warmup=0, policy=FailurePolicy(tick_s=0.01)
    )
    yield f
    f.close()


def test_core_map_lists_each_models_cores_and_free_ones(fleet: Fleet) -> None:
    info = fleet_core_map(fleet_members(fleet), HOST.affinity)
    assert info.cores_of("a") == fleet.shares["a"] and info.cores_of("b") == fleet.shares["b"]
    assert [c.label for c in info.cells if not c.model] == ["free"]
    fig = plot_fleet_core_map(info)
    assert [t.name for t in fig.data] == ["a: 1x1x4", "b: 1x2x4", "free"]
    with pytest.raises(ValueError, match="core 0 is held by both 'x' and 'y'"):
        fleet_core_map([{"name": "x", "cores": [0]}, {"name": "y", "cores": [0, 1]}])


def test_timeline_follows_core_moves(fleet: Fleet) -> None:
    fleet.reconfigure({"a": "1x2x4", "b": "1x1x4"})
    info = fleet_timeline(fleet.events())
    assert [p[1] for p in info.series["a"]] == [1, 2]
    assert [p[1] for p in info.series["b"]] == [2, 1]
    assert info.series["a"][-1][2] == "1x2x4"
    fig = plot_fleet_timeline(info, until_s=60.0)
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[0].x)[-1] == 60.0
    dicts = fleet_timeline([e.to_dict() for e in fleet.events()])
    assert dicts == info


def test_fleet_view_moves_cores_by_hand_and_shows_refusals(fleet: Fleet) -> None:
    pytest.importorskip("ipywidgets")
    from packrat_lab.ui.fleet_view import FleetView

    view = FleetView(fleet)
    assert view.changed_plans() == {}
    view.boxes["a"].value = "1x3x4"
    view.boxes["b"].value = "1x1x2"
    assert view.apply_plans()
    assert (len(fleet.shares["a"]), len(fleet.shares["b"])) == (3, 1)
    assert "switched" in view.message.value
    view.boxes["a"].value = "4x1x4"
    assert not view.apply_plans()
    assert "cores but this host has 4" in view.message.value
    assert view.boxes["a"].value == "1x3x4"  # reset to what is served
