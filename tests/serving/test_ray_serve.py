"""packrat_lab.ray.deploy on a local Ray cluster this test starts: two replicas, one core each, one switch."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
tritonclient_http = pytest.importorskip("tritonclient.http")

from tritonclient.utils import InferenceServerException

import packrat_lab.ray as packrat_ray
from packrat_lab.errors import InfeasiblePlanError
from packrat_lab.optimizer import optimize
from packrat_lab.profiling.table import profile_from_latencies
from packrat_lab.serving.http.protocol import Tensor, decode_infer_response, encode_infer_request
from packrat_lab.workloads.registry import get_workload


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[None]:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("two replicas on one core each need two cores")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def test_arguments_are_checked_before_ray_starts() -> None:
    with pytest.raises(InfeasiblePlanError, match="needs 2 cores but cores_per_replica=1"):
        packrat_ray.deploy("mlp", "1x2x4", cores_per_replica=1)
    with pytest.raises(ValueError, match="a profile needs cores_per_replica= and batch="):
        packrat_ray.deploy("mlp", "profiles/{hostname}.packrat.json")
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        packrat_ray.deploy("mlp", "1x1x4", num_replicas=0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_replicas_pinned_apart_serve_http_and_switch_active_passive(local_cluster: None) -> None:
    port = _free_port()
    started = time.monotonic()
    deployment = packrat_ray.deploy("mlp", "1x1x2", num_replicas=2, http_port=port, name="packrat-test")
    try:
        status = deployment.status()
        assert len(status) == 2, status
        cores = [tuple(s["cores"]) for s in status.values()]
        assert all(len(c) == 1 for c in cores) and len(set(cores)) == 2  # one core each, never the same
        assert {s["plan"] for s in status.values()} == {"1x1x2"}
        workers = [pid for s in status.values() for pid in s["workers"]]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        for pid, core in zip([s["workers"][0] for s in status.values()], cores, strict=True):
            assert (
                tuple(sorted(os.sched_getaffinity(pid))) == core
            )  # each pool's worker runs on its replica's core

        client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready() and client.is_model_ready("mlp")
        assert client.get_server_metadata()["name"] == "packrat-lab"
        assert client.get_model_metadata("mlp")["inputs"][0]["shape"] == [-1, 1024]
        x = np.random.default_rng(0).standard_normal((3, 1024)).astype(np.float32)
        with torch.no_grad():
            want = get_workload("mlp").build()(torch.from_numpy(x)).numpy()
        inp = tritonclient_http.InferInput("INPUT", [3, 1024], "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_allclose(client.infer("mlp", [inp]).as_numpy("OUTPUT"), want, rtol=1e-4, atol=1e-5)
        bad = tritonclient_http.InferInput("INPUT", [1, 7], "FP32")
        bad.set_data_from_numpy(np.ones((1, 7), np.float32))
        with pytest.raises(InferenceServerException, match=r"shape \[1, 7\]"):
            client.infer("mlp", [bad])
        assert client.is_server_ready()
        deployed_s = time.monotonic() - started

        switched = deployment.reconfigure("1x1x4")
        assert {s["plan"] for s in switched.values()} == {"1x1x4"}
        assert all(s["reconfigurations"] == 1 and s["state"] == "serving" for s in switched.values())
        assert {tuple(s["cores"]) for s in switched.values()} == set(
            cores
        )  # the switch stays inside each claim
        seen: dict[str, str] = {}
        for _ in range(40):  # Serve's router spreads requests: both replicas answer with the new plan
            code, body = _get(f"http://127.0.0.1:{port}/packrat/plan")
            assert code == 200
            seen[body["replica"]] = body["plan"]
            if len(seen) == 2:
                break
        assert seen and set(seen.values()) == {"1x1x4"}
        np.testing.assert_allclose(client.infer("mlp", [inp]).as_numpy("OUTPUT"), want, rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="replicas refused"):
            deployment.reconfigure("1x2x4")  # two threads do not fit a one-core claim: old plan keeps serving
        assert {s["plan"] for s in deployment.status().values()} == {"1x1x4"}
        client.close()
        print(f"deployed in {deployed_s:.1f} s, whole test {time.monotonic() - started:.1f} s")
        workers = [pid for s in deployment.status().values() for pid in s["workers"]]
    finally:
        deployment.shutdown()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(p) for p in workers), "replicas left pool workers behind"


def _post_infer(url: str, x: np.ndarray) -> np.ndarray:
    body, length = encode_infer_request([Tensor("INPUT", x)], binary=True)
    request = urllib.request.Request(url, data=body, headers={"Inference-Header-Content-Length": str(length)})
    with urllib.request.urlopen(request, timeout=60) as answer:
        header = answer.headers.get("Inference-Header-Content-Length")
        return decode_infer_response(answer.read(), int(header) if header else None)["OUTPUT"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_each_replica_plans_from_its_node_profile_under_a_route_prefix(
    local_cluster: None, tmp_path: Path
) -> None:
    # one core fits one 1-thread instance, so the node's plan is 1x1xB: what is tested is that each replica
    # read its node's profile file and planned for its own claim, at deploy and again on reconfigure
    profile = profile_from_latencies("mlp", {(1, b): 1.0 + b for b in (1, 2, 4, 8)})
    profile.save(tmp_path / f"{socket.gethostname()}.packrat.json")
    deployment = packrat_ray.deploy(
        "mlp",
        str(tmp_path / "{hostname}.packrat.json"),
        cores_per_replica=1,
        batch=4,
        num_replicas=2,
        name="packrat-profiled",
        route_prefix="/packrat",
    )
    try:
        assert deployment.url.endswith("/packrat")
        status = deployment.status()
        assert {s["plan"] for s in status.values()} == {optimize(profile, 1, 4).text} == {"1x1x4"}
        code, body = _get(f"{deployment.url}/v2/health/ready")
        assert (code, body) == (200, {"ready": True})
        x = np.random.default_rng(1).standard_normal((2, 1024)).astype(np.float32)
        with torch.no_grad():
            want = get_workload("mlp").build()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(
            _post_infer(f"{deployment.url}/v2/models/mlp/infer", x), want, rtol=1e-4, atol=1e-5
        )
        switched = deployment.reconfigure(batch=8)  # each replica re-plans from its profile for its own core
        assert {s["plan"] for s in switched.values()} == {optimize(profile, 1, 8).text} == {"1x1x8"}
        np.testing.assert_allclose(
            _post_infer(f"{deployment.url}/v2/models/mlp/infer", x), want, rtol=1e-4, atol=1e-5
        )
    finally:
        deployment.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_each_replica_can_profile_its_own_node_first(local_cluster: None, tmp_path: Path) -> None:
    from packrat_lab.profiling.table import load_profile

    saved = tmp_path / "{hostname}.packrat.json"
    options = {"batches": [1, 2], "settings": ["default"], "point_time_s": 0.5, "save": str(saved)}
    deployment = packrat_ray.deploy(
        "mlp",
        "profile",
        cores_per_replica=1,
        batch=2,
        num_replicas=2,
        name="packrat-measured",
        profile_options=options,
    )
    try:
        status = deployment.status()
        assert len(status) == 2 and {s["plan"] for s in status.values()} == {"1x1x2"}
        measured = load_profile(
            str(saved).format(hostname=socket.gethostname()), check_host=False
        )  # 1-core claim
        assert (measured.threads, sorted(measured.batches)) == ([1], [1, 2])  # profiled on one claimed core
        x = np.ones((2, 1024), np.float32)
        assert _post_infer(f"{deployment.url}/v2/models/mlp/infer", x).shape == (2, 1024)
    finally:
        deployment.shutdown()
