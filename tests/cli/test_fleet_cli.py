"""Fleet from text (fleet.toml, --model NAME=MODEL:PLAN), its sidebar entry, and `packrat-lab serve --fleet`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_workers import FakeWorld

from packrat_lab import registry
from packrat_lab.fleet import Fleet, Selection
from packrat_lab.fleet.config import load_fleet_toml, parse_model_specs
from packrat_lab.host import HostInfo
from packrat_lab.serving.lifecycle import FailurePolicy


def test_model_specs_parse_and_bad_ones_are_one_line_errors() -> None:
    config = parse_model_specs(["a=mlp:1x1x4", "b=/models/x:y.pt2:2x1x2"])
    assert config.models == {"a": ("mlp", "1x1x4"), "b": ("/models/x:y.pt2", "2x1x2")}
    for bad in ("mlp:1x1x4", "a=mlp", "a=:1x1x4"):
        with pytest.raises(ValueError, match="is not NAME=MODEL:PLAN; example: --model small=tiny-cnn:1x1x4"):
            parse_model_specs([bad])
    with pytest.raises(ValueError, match="names 'a' twice"):
        parse_model_specs(["a=mlp:1x1x4", "a=mlp:1x1x2"])


def test_fleet_toml_with_models_groups_and_options(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[models.small]\nmodel = "tiny-cnn"\nplan = "1x1x4"\nprofile = "small.json"\n'
        '[models.big]\nmodel = "mlp"\nplan = "1x1x8"\n'
        '[groups.pick]\nmembers = ["small", "big"]\npolicy = "ensemble"\nslo_ms = 50\n'
        "[fleet]\nslo_ms = 100\n"
    )
    config = load_fleet_toml(path)
    assert config.models["small"] == ("tiny-cnn", "1x1x4")
    assert config.models["pick"] == Selection(("small", "big"), policy="ensemble", slo_ms=50)
    assert config.profiles == {"small": str(tmp_path / "small.json")}
    assert config.options == {"slo_ms": 100}
    path.write_text('[model.small]\nmodel = "mlp"\n')
    with pytest.raises(ValueError, match=r"needs \[models.NAME\] tables"):
        load_fleet_toml(path)
    path.write_text('[models.small]\nmodel = "mlp"\n')
    with pytest.raises(ValueError, match=r"\[models.small\] takes model, plan and optionally profile"):
        load_fleet_toml(path)
    with pytest.raises(ValueError, match="cannot read fleet file"):
        load_fleet_toml(tmp_path / "missing.toml")


def test_an_announced_fleet_is_one_sidebar_entry_with_a_core_map_that_follows_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("PACKRAT_LAB_ANNOUNCE", "1")
    world = FakeWorld(run_s=0.001)
    host = HostInfo("fake 4-core", (0, 1, 2, 3), None)
    policy = FailurePolicy(tick_s=0.01, backoff_s=0.02)
    with Fleet(
        {"a": ("mlp", "1x1x4"), "b": ("mlp", "1x2x4")},
        host=host,
        channels=world.factory,
        warmup=0,
        policy=policy,
    ) as fleet:
        [entry] = registry.list_pools()
        assert entry.kind == "fleet"
        assert {m["name"]: len(m["cores"]) for m in entry.members} == {"a": 1, "b": 2}
        assert entry.plan == "a=1x1x4 b=1x2x4"
        assert "members" in entry.public() and "token" not in entry.public()
        fleet.reconfigure({"a": "1x3x4", "b": "1x1x4"})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            [entry] = registry.list_pools()
            if {m["name"]: len(m["cores"]) for m in entry.members} == {"a": 3, "b": 1}:
                break
            time.sleep(0.02)
        assert {m["name"]: m["cores"] for m in entry.members} == {n: list(c) for n, c in fleet.shares.items()}
    assert registry.list_pools() == []


@pytest.mark.slow
def test_serve_with_repeated_model_options_serves_both_then_exits_on_sigint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from http_call import call
    from test_http_serve_cli import _read_until

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    env = {**os.environ, "PACKRAT_LAB_ANNOUNCE": "1"}
    cmd = [
        sys.executable, "-m", "packrat_lab.cli", "serve", "--port", "0",
        "--model", "m=mlp:1x1x2", "--model", "c=tiny-cnn:1x1x2",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    try:
        url = _read_until(proc, "url ", 90)
        status, _, body = call(f"{url}/packrat/fleet")
        assert status == 200
        models = json.loads(body)["models"]
        assert {n: m["model"] for n, m in models.items()} == {"m": "mlp", "c": "tiny-cnn"}
        assert not set(models["m"]["cores"]) & set(models["c"]["cores"])
        for name, shape in (("m", [1, 1024]), ("c", [1, 3, 32, 32])):
            n = 1
            for d in shape:
                n *= d
            request = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": shape, "data": [0.5] * n}]}
            status, _, body = call(f"{url}/v2/models/{name}/infer", "POST", request)
            assert status == 200, body
        [entry] = registry.list_pools()
        assert entry.kind == "fleet" and entry.url == url
        assert [m["name"] for m in entry.members] == ["m", "c"]
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert "stopped: m:" in out
        assert registry.list_pools() == []
    finally:
        if proc.poll() is None:
            proc.kill()
