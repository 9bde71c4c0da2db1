"""%load_ext packrat_lab in a real IPython shell: subcommands, --help, usage errors, unload and reload."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from ui_fakes import FakeBackend

from packrat_lab.ui.magics import PackratMagics


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    """A real IPython shell with the extension loaded (and unloaded afterwards)."""
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "packrat_lab")
    yield shell
    manager = shell.extension_manager
    if manager is not None and "packrat_lab" in manager.loaded:
        shell.run_line_magic("unload_ext", "packrat_lab")
    InteractiveShell.clear_instance()


def magics(shell: InteractiveShell) -> PackratMagics:
    instance = shell.magics_manager.registry["PackratMagics"]
    assert isinstance(instance, PackratMagics)
    return instance


@pytest.fixture
def fake(ip: InteractiveShell) -> FakeBackend:
    backend = FakeBackend()
    magics(ip).backend = backend
    return backend


def test_loading_is_cheap() -> None:
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell; "
        "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'packrat_lab'); "
        "assert 'packrat' in ip.magics_manager.magics['line']; "
        "print(' '.join(m for m in ('torch', 'plotly', 'ipywidgets', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("sub", ["", "lab", "profile", "plan", "serve", "reconfigure", "status", "stop"])
def test_every_subcommand_has_help(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], sub: str
) -> None:
    assert ip.run_line_magic("packrat", f"{sub} --help".strip()) is None
    out = capsys.readouterr().out
    assert f"usage: %packrat {sub}".strip() in out


def test_no_arguments_prints_the_subcommands(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("packrat", "")
    out = capsys.readouterr().out
    for sub in ("lab", "profile", "plan", "serve", "reconfigure", "status", "stop"):
        assert sub in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bogus", "invalid choice: 'bogus'"),
        ("plan", "--batch"),
        ("plan --batch 0", "0 must be at least 1"),
        ("profile mlp --batches 1,x", "'x' is not an integer"),
        ("profile mlp --budget -3", "must be positive"),
        ("profile no-such-model", "unknown model 'no-such-model'"),
        ("plan --batch 8", "no profile yet"),
        ("status", "no pool running"),
        ("reconfigure 2x1x4", "no pool running"),
        ("serve", "no plan given"),
        ("serve 2x1x4", "which model?"),
        ("profile 'mlp", "No closing quotation"),
    ],
)
def test_usage_errors_are_one_clear_line(ip: InteractiveShell, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("packrat", line)


def test_profile_plan_serve_reconfigure_status_stop(
    ip: InteractiveShell, fake: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("packrat", "profile mlp --cores 2 --batches 2,4")
    assert ip.user_ns["packrat_profile"].batches == [2, 4]
    ip.run_line_magic("packrat", "plan --batch 4")
    assert ip.user_ns["packrat_plan"].text == "2x1x2"
    out = capsys.readouterr().out
    assert "[4/4]" in out and "fat" in out and "× vs fat" in out
    pool = ip.run_line_magic("packrat", "serve")
    assert pool is fake.pools[0] and pool.plan.text == "2x1x2"
    ip.run_line_magic("packrat", "reconfigure 1x2x4")
    assert pool.reconfigured == ["1x2x4"]
    ip.run_line_magic("packrat", "status")
    assert "served=1" in capsys.readouterr().out
    ip.run_line_magic("packrat", "stop")
    assert pool.closed
    with pytest.raises(UsageError, match="no pool running"):
        ip.run_line_magic("packrat", "status")


def test_plan_errors_from_the_optimizer_are_usage_errors(ip: InteractiveShell, fake: FakeBackend) -> None:
    ip.run_line_magic("packrat", "profile mlp --cores 2 --batches 1,2")
    with pytest.raises(UsageError, match="no plan for B=3"):
        ip.run_line_magic("packrat", "plan --batch 3")


def test_serve_uses_a_notebook_variable_as_model(ip: InteractiveShell, fake: FakeBackend) -> None:
    from packrat_lab.workloads.registry import get_workload

    ip.user_ns["net"] = get_workload("tiny-cnn")
    ip.run_line_magic("packrat", "serve 1x1x1 --model net --auto --as p")
    assert ip.user_ns["p"] is fake.pools[0]
    assert fake.pools[0].auto == [True]


def test_lab_subcommand_returns_a_widget_and_stop_closes_it(ip: InteractiveShell, fake: FakeBackend) -> None:
    from packrat_lab.ui.lab import Lab

    lab = ip.run_line_magic("packrat", "lab --model tiny-cnn --cores 1 --batches 1,2 --budget 5")
    assert isinstance(lab, Lab)
    assert lab.profile_step.model.value == "tiny-cnn"
    assert lab.profile_step.batches.value == "1, 2"
    ip.run_line_magic("packrat", "stop")
    assert magics(ip).labs == []


def test_lab_subcommand_says_it_is_loading_at_once(
    ip: InteractiveShell, fake: FakeBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression (issue 9 #7): `%packrat lab` showed nothing for 18 s while it loaded."""
    ip.run_line_magic("packrat", "lab --model tiny-cnn --cores 1 --batches 1,2 --budget 5")
    assert "Loading packrat lab" in capsys.readouterr().out
    ip.run_line_magic("packrat", "stop")


def test_unload_stops_pools_and_removes_the_magic(ip: InteractiveShell, fake: FakeBackend) -> None:
    ip.run_line_magic("packrat", "serve 2x1x1 --model mlp")
    ip.run_line_magic("unload_ext", "packrat_lab")
    assert fake.pools[0].closed
    assert "packrat" not in ip.magics_manager.magics["line"]
    assert "PackratMagics" not in ip.magics_manager.registry
    with pytest.raises(UsageError, match="Line magic function `%packrat` not found"):
        ip.run_line_magic("packrat", "status")


def test_reload_keeps_one_working_magic(ip: InteractiveShell, fake: FakeBackend) -> None:
    ip.run_line_magic("packrat", "serve 2x1x1 --model mlp")
    ip.run_line_magic("reload_ext", "packrat_lab")
    assert fake.pools[0].closed
    assert magics(ip).pools == []
    with pytest.raises(UsageError, match="no pool running"):
        ip.run_line_magic("packrat", "status")


@pytest.mark.slow
def test_real_profile_plan_serve_switch_and_unload(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """The magics over the real API: pinned profiling processes, the DP, a real pool switched live."""
    ip.run_line_magic("packrat", "profile mlp --cores 2 --batches 1,2 --point-time 0.3")
    profile = ip.user_ns["packrat_profile"]
    assert profile.threads == [1, 2] and profile.batches == [1, 2]
    ip.run_line_magic("packrat", "plan --batch 2")
    out = capsys.readouterr().out
    assert "packrat" in out and "fat" in out
    pool = ip.run_line_magic("packrat", "serve")
    assert pool.plan.total_batch == 2
    target = "1x2x2" if pool.plan.text != "1x2x2" else "2x1x1"
    ip.run_line_magic("packrat", f"reconfigure {target}")
    assert pool.plan.text.split("@")[0] == target
    ip.run_line_magic("packrat", "status")
    assert "lost=0" in capsys.readouterr().out
    ip.run_line_magic("unload_ext", "packrat_lab")
    assert pool.state == "closed"
