"""The Lab's latency objective (issue 10): the Serve step's SLO box and the timeline's SLO marks, on fakes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_lab_state import make_lab
from ui_fakes import FakeBackend, FakePool

from packrat_lab.plots import plot_timeline, timeline_info
from packrat_lab.ui._util import fmt_ms, parse_slo
from packrat_lab.ui.lab import Lab
from packrat_lab.ui.serve_controller import ServeState


@pytest.fixture()
def lab() -> Iterator[Lab]:
    lab = make_lab(FakeBackend(), batches=(1, 2))
    yield lab
    lab.close()


def start(lab: Lab, plan: str = "2x1x1") -> FakePool:
    lab.serve_step.plan.value = plan
    lab.serve_step.start.click()
    lab.serving.join()
    assert lab.serving.state is ServeState.RUNNING
    pool = lab.serving.pool
    assert isinstance(pool, FakePool)
    return pool


# ---- the SLO box -------------------------------------------------------------------------------


def test_slo_text_parses_to_milliseconds_or_off() -> None:
    assert parse_slo("50") == 50.0
    assert parse_slo(" 12.5 ms ") == 12.5
    assert parse_slo("") is None and parse_slo("off") is None
    for value in (50.0, 12.5, 0.1, None):
        assert parse_slo(fmt_ms(value)) == value  # what the box shows reads back unchanged


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("fast", "'fast' is not a number"),
        ("-5", "got -5.0"),
        ("0", "got 0.0"),
        ("inf", "got inf"),
        ("nan", "got nan"),
    ],
)
def test_bad_slo_text_is_a_one_line_error_with_an_example(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="example: 50") as info:
        parse_slo(text)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_the_objective_typed_before_start_is_the_servers_and_changes_live_after(lab: Lab) -> None:
    step = lab.serve_step
    assert "off" in step.slo_note.value
    step.slo.value = "50"
    assert lab.serving.slo_ms == 50.0
    assert "the pool starts with it" in step.slo_note.value
    pool = start(lab)
    assert pool.slo_ms == 50.0 and pool.slo_calls == []  # started with it (--slo-ms), not set after
    assert "SLO 50 ms" in lab.serving.status()
    step.slo.value = "20"
    assert pool.slo_calls == [20.0] and lab.serving.slo_ms == 20.0
    assert "20 ms: a request predicted to miss it is refused" in step.slo_note.value
    step.slo.value = ""
    assert pool.slo_calls == [20.0, None] and lab.serving.slo_ms is None
    assert "off" in step.slo_note.value
    lab.serving.sample()  # the pool's word agrees: nothing more is sent
    assert pool.slo_calls == [20.0, None]


def test_bad_input_or_a_refusal_is_said_beside_the_box_and_changes_nothing(lab: Lab) -> None:
    step = lab.serve_step
    step.slo.value = "50"
    pool = start(lab)
    step.slo.value = "fast"
    assert "'fast' is not a number of milliseconds" in step.slo_note.value
    assert "example: 50" in step.slo_note.value
    lab.serving.sample()  # a poll redraws the step: the error stays until the next valid input
    assert "'fast'" in step.slo_note.value
    step.slo.value = "-3"
    assert "positive" in step.slo_note.value
    assert pool.slo_calls == [] and lab.serving.slo_ms == 50.0 and pool.slo_ms == 50.0
    pool.refuse_slo = "HTTP 400: 'slo_ms' must be a positive number of milliseconds or null (off), got 1"
    step.slo.value = "30"
    assert "HTTP 400" in step.slo_note.value and lab.serving.slo_ms == 50.0
    pool.refuse_slo = None
    step.slo.value = "31"
    assert pool.slo_calls == [31.0] and "color:#b00020" not in step.slo_note.value
    assert not lab.serving.changed.errors


def test_an_objective_changed_elsewhere_is_followed_without_an_echo(lab: Lab) -> None:
    step = lab.serve_step
    pool = start(lab)
    pool.slo_ms = 80.0  # the sidebar or another client: PUT /packrat/slo
    lab.serving.sample()
    assert lab.serving.slo_ms == 80.0 and step.slo.value == "80"
    assert "set to 80 ms elsewhere" in lab.serving.status()
    pool.slo_ms = None
    lab.serving.sample()
    assert lab.serving.slo_ms is None and step.slo.value == ""
    assert pool.slo_calls == []  # following the pool sent nothing back


def test_a_poll_that_overlaps_a_change_does_not_revert_it(lab: Lab) -> None:
    """Stats read before a PUT /packrat/slo landed must not put the old objective back."""
    pool = start(lab)
    plain = pool.stats

    def stats_then_changed() -> dict[str, Any]:
        before = plain()  # slo_ms None: read before the change below
        lab.serving.set_slo(20.0)
        return before

    pool.stats = stats_then_changed  # type: ignore[method-assign]
    lab.serving.sample()
    pool.stats = plain  # type: ignore[method-assign]
    assert lab.serving.slo_ms == 20.0 and pool.slo_ms == 20.0
    lab.serving.sample()
    assert lab.serving.slo_ms == 20.0 and lab.serve_step.slo.value == "20"


# ---- the timeline ------------------------------------------------------------------------------


def _rows(**series: list[Any]) -> list[dict[str, Any]]:
    n = len(next(iter(series.values())))
    return [{"time": 100.0 + k, "p99_ms": 9.0, **{key: v[k] for key, v in series.items()}} for k in range(n)]


def test_counter_rises_between_polls_become_marks() -> None:
    rows = _rows(
        slo_ms=[None, 50.0, 50.0, 50.0, 50.0],
        rejected=[0, 2, 2, 7, 1],  # the last poll is a fresh pool (counter reset): no negative mark
        dropped=[0, 0, 1, 1, 1],
        late=[4, 5, 5, 5, 5],  # the first poll's count has no "before": no mark for it
    )
    info = timeline_info(rows)
    assert [(m.time, m.kind, m.count) for m in info.misses] == [
        (1.0, "rejected", 2),
        (1.0, "late", 1),
        (2.0, "dropped", 1),
        (3.0, "rejected", 5),
    ]
    assert info.slo_ms == (None, 50.0, 50.0, 50.0, 50.0) and info.has_slo
    kept = timeline_info(rows, window_s=1.5)  # rises are counted from the poll before the window
    assert [(m.time, m.kind, m.count) for m in kept.misses] == [(0.0, "rejected", 5)]


def test_without_an_objective_the_timeline_is_unchanged() -> None:
    info = timeline_info(_rows(p50_ms=[1.0, 2.0], rejected=[0, 0]))
    assert not info.has_slo
    names = [t.name for t in plot_timeline(info).data]
    assert names == ["p50", "p99", "throughput", "queue depth", "estimated B"]


def test_timeline_figure_has_slo_line_goodput_attainment_and_marks() -> None:
    rows = _rows(
        slo_ms=[50.0, 50.0, 50.0],
        rejected=[0, 1, 10],
        late=[0, 3, 3],
        slo_attainment=[None, 0.5, 0.75],
        goodput_rps=[0.0, 30.0, 40.0],
    )
    fig = plot_timeline(timeline_info(rows))
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["SLO"].y) == [50.0, 50.0, 50.0] and by_name["SLO"].yaxis == "y"
    assert list(by_name["goodput"].y) == [0.0, 30.0, 40.0] and by_name["goodput"].yaxis == "y2"
    rejected = by_name["rejected"]  # a bar per poll with rejections, stacked with drops and late ones
    assert rejected.type == "bar" and rejected.yaxis == "y3" and fig.layout.barmode == "stack"
    assert list(rejected.x) == [1.0, 2.0] and list(rejected.y) == [1, 9]
    assert list(rejected.hovertext) == ["t=1.0 s: 1 rejected", "t=2.0 s: 9 rejected"]
    assert list(by_name["late"].hovertext) == ["t=1.0 s: 3 late"] and list(by_name["dropped"].x) == []
    attainment = by_name["SLO attainment"]
    assert list(attainment.y) == [None, 50.0, 75.0] and attainment.yaxis == "y4"
    assert by_name["queue depth"].yaxis == "y5"  # the SLO's panels sit between throughput and queue
    assert fig.layout.yaxis4.range == (0, 105)


def test_timeline_shows_aimds_batch_and_the_prediction_error() -> None:
    """Issue 10: the controller's B on the timeline, and admission's prediction error beside latency."""
    rows = _rows(
        slo_ms=[50.0, 50.0, 50.0],
        aimd_batch=[8, 9, 6],
        prediction_error_p99_ms=[None, 3.5, 12.0],
    )
    fig = plot_timeline(timeline_info(rows))
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["AIMD B"].y) == [8, 9, 6] and by_name["AIMD B"].yaxis == "y5"
    assert list(by_name["prediction error p99"].y) == [None, 3.5, 12.0]
    assert by_name["prediction error p99"].yaxis == "y"


def test_serve_step_marks_rejections_from_polled_stats_and_updates_in_place(lab: Lab) -> None:
    step = lab.serve_step
    step.slo.value = "50"
    pool = start(lab)
    lab.serving.sample()
    step.redraw(force=True)
    traces = {t.name: t for t in step.figure.data}
    assert list(traces["rejected"].x) == [] and list(traces["SLO"].y)[-1] == 50.0
    pool.rejected = 3
    lab.serving.sample()
    pool.rejected, pool.late = 5, 1
    lab.serving.sample()
    step.redraw(force=True)
    assert [id(t) for t in step.figure.data] == [id(t) for t in traces.values()]  # updated, not rebuilt
    hover = list(traces["rejected"].hovertext)
    assert len(hover) == 2 and hover[0].endswith(": 3 rejected") and hover[1].endswith(": 2 rejected")
    assert [h.split(": ")[1] for h in traces["late"].hovertext] == ["1 late"]
    assert list(traces["SLO attainment"].y)[-1] == 75.0
    counters = step.counters.value
    assert "packrat-count-rejected" in counters and ">5</span>" in counters
    assert "75.0 %" in counters
