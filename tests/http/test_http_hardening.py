"""The HTTP front probed as an attacker would (issue 8, items 9-13): each bad request fails alone, the server keeps serving.

Real tornado server, real clients (urllib, raw sockets), an in-process fake pool.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from http_call import call
from http_fakes import BlockingPool, FakePool, RecordingPool

from packrat_lab.serving.http import Server, serve_pool

TOKEN = "hardening-token"
AUTH = {"X-Packrat-Token": TOKEN}


@pytest.fixture(scope="module")
def pool() -> Iterator[FakePool]:
    p = FakePool("mlp", "2x1x4", width=16, layers=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def server(pool: FakePool) -> Iterator[Server]:
    s = serve_pool(pool, token=TOKEN)
    yield s
    s.stop()


def _body(rows: int = 2, width: int = 16) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "INPUT", "shape": [rows, width], "datatype": "FP32", "data": [0.5] * rows * width}
        ]
    }


def good_infer(server: Server) -> None:
    """A good request after a bad one: the server still serves."""
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", _body())
    assert status == 200, raw
    assert len(json.loads(raw)["outputs"][0]["data"]) == 32


def raw_exchange(server: Server, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def strict_loads(raw: bytes) -> Any:
    def refuse(token: str) -> Any:
        msg = f"non-standard JSON token {token}"
        raise AssertionError(msg)

    return json.loads(raw, parse_constant=refuse)


# ---- item 9: decompression capped like bodies


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_bomb_is_413_naming_the_limit(server: Server, encoding: str) -> None:
    import zlib

    plain = b"\0" * (101 * 1024 * 1024)  # past the default 100 MiB body limit once inflated
    packed = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    del plain
    assert len(packed) < 1024 * 1024
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", packed, {"Content-Encoding": encoding})
    assert status == 413
    error = json.loads(raw)["error"]
    assert "100 MiB body limit" in error
    assert len(error.splitlines()) == 1
    good_infer(server)


# ---- item 10: decoding off the event loop, vectorised checks


def test_live_answers_while_a_json_request_is_being_decoded(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder is held inside json.loads until /v2/health/live has answered: an ordering check."""
    from packrat_lab.serving.http import protocol

    entered, release = threading.Event(), threading.Event()
    real = json

    class SlowJson:
        JSONDecodeError = real.JSONDecodeError

        @staticmethod
        def loads(data: Any, **kwargs: Any) -> Any:
            if len(data) > 100_000:
                entered.set()
                release.wait(30)
            return real.loads(data, **kwargs)

        dumps = staticmethod(real.dumps)

    monkeypatch.setattr(protocol, "json", SlowJson)
    big = _body(rows=2000)  # ~ 160 kB of JSON
    answer: list[int] = []
    sender = threading.Thread(
        target=lambda: answer.append(call(f"{server.url}/v2/models/mlp/infer", "POST", big)[0])
    )
    sender.start()
    try:
        assert entered.wait(30), "the big request never reached the decoder"
        with urllib.request.urlopen(f"{server.url}/v2/health/live", timeout=10) as response:
            live = response.status
    finally:
        release.set()
        sender.join(30)
    assert live == 200
    assert answer == [200]


@pytest.mark.parametrize(
    ("data", "datatype", "message"),
    [
        ([300, 1], "UINT8", "outside UINT8's range"),
        ([1.5, 2.0], "INT32", "1.5 that is not INT32"),
        ([True, False], "FP32", "true/false value True that is not FP32"),
        ([[1.0], [2.0, 3.0]], "FP32", "not a rectangular list"),
        ([1e39, 0.0], "FP32", "beyond the range of FP32"),
        ([None, 1.0], "FP32", "null, objects"),
    ],
)
def test_json_data_is_checked_as_a_whole(data: list[Any], datatype: str, message: str) -> None:
    from packrat_lab.serving.http.protocol import ProtocolError, decode_infer_request

    body = {"inputs": [{"name": "INPUT", "shape": [2], "datatype": datatype, "data": data}]}
    with pytest.raises(ProtocolError, match=message) as info:
        decode_infer_request(json.dumps(body).encode())
    assert info.value.status == 400


# ---- item 11: stalled uploads and stalled headers are closed


@pytest.fixture(scope="module")
def impatient(pool: FakePool) -> Iterator[Server]:
    from packrat_lab.serving.http import Limits

    s = serve_pool(pool, token=TOKEN, limits=Limits(body_timeout_s=0.5, idle_timeout_s=0.5))
    yield s
    s.stop()


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60000000\r\n\r\n"
        + b"{" * 1000,
        b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # slowloris: headers never end
    ],
    ids=["stalled-body", "stalled-headers"],
)
def test_stalled_connections_are_closed(impatient: Server, head: bytes) -> None:
    """The client claims more than it sends, then stalls: the server closes the connection (recv sees EOF)."""
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=20) as sock:
        sock.sendall(head.replace(b"127.0.0.1", f"127.0.0.1:{impatient.port}".encode()))
        assert sock.recv(65536) == b""  # closed by the server, long before our 20 s timeout
    good_infer(impatient)


# ---- item 12: plans are text with setting names; settings are the server's


@pytest.fixture()
def recording() -> Iterator[tuple[RecordingPool, Server]]:
    p = RecordingPool("mlp", "1x1x1", max_threads=4, width=8, layers=1)
    with serve_pool(p, token=TOKEN) as s:
        yield p, s
    p.close()


def test_plan_object_carrying_env_cannot_reach_the_workers(recording: tuple[RecordingPool, Server]) -> None:
    pool, server = recording
    evil = {
        "plan": {
            "name": "evil",
            "all_instances": [
                {
                    "threads": 1,
                    "batch": 2,
                    "setting": {
                        "name": "passive",
                        "env": {"PYTHONPATH": "/tmp/evil", "OMP_WAIT_POLICY": "PASSIVE"},
                    },
                }
            ],
        }
    }
    status, _, raw = call(f"{server.url}/packrat/plan", "PUT", evil, AUTH)
    assert status == 400
    assert "plan text with setting names" in json.loads(raw)["error"]
    assert pool.asked == []
    assert pool.plan.text == "1x1x1"
    envs = [dict(i.setting.env) for p in pool.asked for i in p.instances]
    assert not any("PYTHONPATH" in env for env in envs)


def test_setting_names_resolve_to_the_servers_own_settings(recording: tuple[RecordingPool, Server]) -> None:
    from packrat_lab.settings import PASSIVE

    pool, server = recording
    status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": "2x1x2@passive"}, AUTH)
    assert status == 200, raw
    assert [i.setting for i in pool.asked[-1].instances] == [PASSIVE, PASSIVE]
    good = json.loads(call(f"{server.url}/packrat/plan")[2])
    assert good["plan"]["plan"] == "2x1x2@passive"


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("1x1x4@nosuch", "unknown runtime setting 'nosuch'"),
        ("1x1x4@PASSIVE", "unknown runtime setting 'PASSIVE'"),
        ("1x1x100000", "above this server's limit of 4096"),
        ("100000x1x1", "above this server's limit of 4096"),
    ],
)
def test_unknown_settings_and_huge_batches_are_one_line_400s(
    recording: tuple[RecordingPool, Server], plan: str, message: str
) -> None:
    pool, server = recording
    status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": plan}, AUTH)
    assert status == 400
    error = json.loads(raw)["error"]
    assert message in error
    assert len(error.splitlines()) == 1
    assert pool.asked == []


def test_max_batch_limit_is_configurable(pool: FakePool) -> None:
    from packrat_lab.serving.http import Limits

    with serve_pool(pool, token=TOKEN, limits=Limits(max_batch=16)) as server:
        status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": "1x1x32"}, AUTH)
        assert status == 400
        assert "limit of 16" in json.loads(raw)["error"]
        status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"batch": 17}, AUTH)
        assert status == 400
        assert "limit of 16" in json.loads(raw)["error"]


# ---- item 13: Host header, strict JSON, absurd nesting


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v2/health/live", None),
        ("GET", "/v2/models/mlp", None),
        ("POST", "/v2/models/mlp/infer", _body()),
        ("GET", "/packrat/stats", None),
        ("GET", "/metrics", None),
        ("GET", "/no/such/route", None),
    ],
)
def test_foreign_host_header_is_refused_on_every_route(
    server: Server, method: str, path: str, body: Any
) -> None:
    status, _, raw = call(f"{server.url}{path}", method, body, {"Host": f"attacker.example:{server.port}"})
    assert status == 403
    assert "Host 'attacker.example" in json.loads(raw)["error"]
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert call(f"{server.url}/v2/health/live", headers={"Host": host})[0] == 200
    assert call(f"{server.url}/v2/health/live", headers={"Host": "127.0.0.1:1"})[0] == 403


def test_non_loopback_bind_warns_loudly(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from packrat_lab.serving.http.hosts import is_loopback, warn_if_exposed

    assert warn_if_exposed("0.0.0.0", 8000)
    assert "reachable from other machines" in capsys.readouterr().err
    assert "reachable from other machines" in caplog.text
    assert not warn_if_exposed("127.0.0.1", 8000)
    assert capsys.readouterr().err == ""
    assert [
        is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "", "10.0.0.1")
    ] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


class _NanPool(FakePool):
    """A model whose outputs hold NaN and Infinity."""

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        out = super().infer(batch)
        out[0, 0] = float("nan")
        out[0, 1] = float("inf")
        return out


def test_non_finite_outputs_never_become_non_standard_json() -> None:
    pool = _NanPool("mlp", "1x1x1", width=8, layers=1)
    body = {**_body(2, 8), "outputs": [{"name": "OUTPUT", "parameters": {"binary_data": False}}]}
    with serve_pool(pool) as server:
        status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
        assert status == 500
        error = strict_loads(raw)["error"]
        assert "2 NaN/Infinity values" in error
        assert '"binary_data": true' in error
        import tritonclient.http as tc

        client = tc.InferenceServerClient(server.url.removeprefix("http://"))
        inp = tc.InferInput("INPUT", [2, 8], "FP32")
        inp.set_data_from_numpy(np.ones((2, 8), np.float32))
        out = client.infer("mlp", [inp]).as_numpy("OUTPUT")  # binary answers carry them
        client.close()
        assert np.isnan(out[0, 0]) and np.isinf(out[0, 1])
        stats = strict_loads(call(f"{server.url}/packrat/stats")[2])
        assert stats["p99_ms"] is None  # non-finite stats are null
    pool.close()


def test_non_standard_json_tokens_in_a_request_are_400(server: Server) -> None:
    raw_body = (
        b'{"inputs": [{"name": "INPUT", "shape": [1, 16], "datatype": "FP32", "data": [NaN'
        + b", 0" * 15
        + b"]}]}"
    )
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", raw_body)
    assert status == 400
    assert "non-standard number NaN" in json.loads(raw)["error"]
    good_infer(server)


@pytest.mark.parametrize(("path", "method"), [("/v2/models/mlp/infer", "POST"), ("/packrat/plan", "PUT")])
def test_absurd_nesting_is_400_not_500(server: Server, path: str, method: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    status, _, raw = call(f"{server.url}{path}", method, deep, AUTH)
    assert status == 400
    assert "nested too deeply" in json.loads(raw)["error"]
    good_infer(server)


# ---- item 7 (HTTP half): management never waits behind inference


def test_management_answers_while_inference_fills_its_executor() -> None:
    pool = BlockingPool("mlp", "1x1x2", max_threads=4, width=8, layers=1)
    server = serve_pool(pool, token=TOKEN)
    threads = [
        threading.Thread(target=call, args=(f"{server.url}/v2/models/mlp/infer", "POST", _body(3, 8)))
        for _ in range(10)
    ]
    try:
        for t in threads:
            t.start()
        for _ in range(8):  # the inference executor's 8 threads are all stuck in pool.infer
            assert pool.entered.acquire(timeout=30)
        assert call(f"{server.url}/packrat/stats")[0] == 200
        status, _, raw = call(f"{server.url}/packrat/plan", "PUT", {"plan": "2x1x2"}, AUTH)
        assert status == 200, raw
        assert pool.plan.text == "2x1x2"
        assert call(f"{server.url}/metrics")[0] == 200
    finally:
        pool.release.set()
        for t in threads:
            t.join(30)
        server.stop()
        pool.close()


# ---- readiness


@pytest.mark.parametrize(
    ("state", "ready"),
    [("serving", True), ("switching", True), ("starting", False), ("degraded", False), ("closed", False)],
)
def test_ready_only_while_serving_or_switching(state: str, ready: bool) -> None:
    pool = FakePool("mlp", "1x1x1", width=8, layers=1)
    with serve_pool(pool) as server:
        pool.state = state
        want = 200 if ready else 503
        assert call(f"{server.url}/v2/health/ready")[0] == want
        assert call(f"{server.url}/v2/models/mlp/ready")[0] == want
        assert call(f"{server.url}/v2/health/live")[0] == 200
    pool.close()


# ---- shutdown: in-flight requests are cut off with a 503, the pool's futures are left alone


def test_stop_cuts_off_in_flight_requests_without_cancelling_pool_futures() -> None:
    pool = BlockingPool("mlp", "1x1x1", width=8, layers=1)
    server = serve_pool(pool)
    answers: list[tuple[int, str]] = []

    def one_row() -> None:
        try:
            status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", _body(1, 8))
            answers.append((status, json.loads(raw)["error"]))
        except (urllib.error.URLError, ConnectionError) as exc:
            answers.append((0, str(exc)))

    sender = threading.Thread(target=one_row)
    sender.start()
    assert pool.entered.acquire(timeout=30)
    server.stop()
    sender.join(30)
    assert answers and answers[0][0] == 503, answers
    assert "cut off" in answers[0][1]
    assert not pool.submitted[0].cancelled()  # the pool may still settle it: no InvalidStateError
    pool.submitted[0].set_result(torch.zeros(8))
    pool.close()


# ---- an attacker's other probes: each fails alone with a one-line 4xx


@pytest.mark.parametrize(
    ("shape", "extra", "message"),
    [
        ([-1, 16], {}, "negative dimension"),
        ([10**9, 16], {}, "values in 'data' but shape"),
        ([10**30, 16], {}, "has a dimension above"),
        ([1] * 40, {}, "at most 32 are accepted"),
        ([2**39, 16], {"parameters": {"binary_data_size": 64}}, "binary_data_size 64 but shape"),
        ([0, 10**400], {}, "has a dimension above"),
        ([0, 16], {}, "with N >= 1"),
    ],
)
def test_lying_shapes_fail_alone(
    server: Server, shape: list[int], extra: dict[str, Any], message: str
) -> None:
    entry: dict[str, Any] = {"name": "INPUT", "shape": shape, "datatype": "FP32", **extra}
    if "parameters" not in extra:
        entry["data"] = [0.5] * 16 if shape[0] else []
    head = json.dumps({"inputs": [entry]}).encode()
    headers = {"Inference-Header-Content-Length": str(len(head))} if extra else {}
    status, _, raw = call(
        f"{server.url}/v2/models/mlp/infer", "POST", head + (b"\0" * 64 if extra else b""), headers
    )
    assert status in (400, 413), raw
    error = json.loads(raw)["error"]
    assert message in error
    assert len(error.splitlines()) == 1
    good_infer(server)


def test_wrong_content_type_is_a_400(server: Server) -> None:
    for kind, payload in (
        ("multipart/form-data; boundary=xx", b"--xx\r\ngarbage"),
        ("application/x-www-form-urlencoded", b"a=1&b=2"),
        ("text/plain", b"hello"),
    ):
        status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", payload, {"Content-Type": kind})
        assert status == 400
        error = json.loads(raw)["error"]  # tornado refuses a broken form body itself, we refuse non-JSON
        assert "not valid JSON" in error or "Invalid multipart/form-data" in error
        assert len(error.splitlines()) == 1
    good_infer(server)


def test_huge_headers_fail_alone(server: Server) -> None:
    request = (
        f"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Big: {'a' * 200_000}\r\n\r\n"
    ).encode()
    try:
        answer = raw_exchange(server, request)
    except (BrokenPipeError, ConnectionResetError):
        answer = b""
    assert not answer.startswith(b"HTTP/1.1 200")  # refused or closed, never served
    good_infer(server)


def test_content_length_above_the_body_limit_fails_alone(server: Server) -> None:
    request = (
        f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, request)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"above this route's 100 MiB limit" in answer
    good_infer(server)


def test_management_bodies_are_small_and_never_form_parsed(server: Server, pool: FakePool) -> None:
    """Tornado would parse a form body on the event loop before any handler runs: bodies are streamed instead."""
    head = (  # headers only: the server answers from Content-Length before reading the body
        f"PUT /packrat/plan HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"above this route's 1 MiB limit" in answer
    form = b"plan=1x1x1&" + b"&".join(b"k%d=v" % i for i in range(2000))
    status, _, raw = call(
        f"{server.url}/packrat/plan",
        "PUT",
        form,
        {"Content-Type": "application/x-www-form-urlencoded", **AUTH},
    )
    assert status == 400
    assert "not valid JSON" in json.loads(raw)["error"]
    good_infer(server)


def test_requests_beyond_the_in_flight_limit_are_503() -> None:
    from packrat_lab.serving.http import Limits

    pool = BlockingPool("mlp", "1x1x1", width=8, layers=1)
    server = serve_pool(pool, limits=Limits(max_in_flight=2))
    threads = [
        threading.Thread(target=call, args=(f"{server.url}/v2/models/mlp/infer", "POST", _body(1, 8)))
        for _ in range(2)
    ]
    try:
        for t in threads:
            t.start()
        for _ in range(2):
            assert pool.entered.acquire(timeout=30)
        status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", _body(1, 8))
        assert status == 503
        assert "holds 2 inference requests" in json.loads(raw)["error"]
        assert call(f"{server.url}/v2/health/live")[0] == 200
    finally:
        for future in pool.submitted:
            future.set_result(torch.zeros(8))
        for t in threads:
            t.join(30)
        server.stop()
        pool.close()


@pytest.mark.slow
def test_big_json_is_decoded_in_the_helper_process_with_the_same_answers(
    server: Server, pool: FakePool
) -> None:
    """Above 1 MiB of JSON the decoding runs in a spawned process: same arrays, same one-line 400s."""
    x = np.random.default_rng(7).standard_normal((4000, 16)).astype(np.float32)
    body = {
        "inputs": [{"name": "INPUT", "shape": [4000, 16], "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    assert len(json.dumps(body)) > 1024 * 1024
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
    assert status == 200, raw[:200]
    out = np.asarray(json.loads(raw)["outputs"][0]["data"], np.float32).reshape(4000, 16)
    with torch.no_grad():
        np.testing.assert_allclose(out, pool.module(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    body["inputs"][0]["data"] = ["x"] * 64000
    status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", body)
    assert status == 400
    assert "string value 'x' that is not FP32" in json.loads(raw)["error"]
    good_infer(server)


def test_small_bodies_are_coded_on_the_loop_with_the_same_answers(pool: FakePool) -> None:
    """Below Limits.inline_codec_bytes no thread hop (decode, encode); above it, and with 0, the executor."""
    from packrat_lab.serving.http.limits import Limits

    answers: dict[str, list[Any]] = {}
    hops: dict[str, int] = {}
    for name, limits in (("inline", Limits()), ("executor", Limits(inline_codec_bytes=0))):
        server = serve_pool(pool, token=TOKEN, limits=limits)
        used = [0]
        real_submit = server.service.codec_executor.submit

        def counting(fn: Any, *args: Any, used: list[int] = used, real: Any = real_submit) -> Any:
            used[0] += 1
            return real(fn, *args)

        server.service.codec_executor.submit = counting  # type: ignore[method-assign]
        try:
            status, _, raw = call(f"{server.url}/v2/models/mlp/infer", "POST", _body(rows=3))
            assert status == 200, raw
            answers[name] = json.loads(raw)["outputs"][0]["data"]
            hops[name] = used[0]
            big_status, _, _ = call(f"{server.url}/v2/models/mlp/infer", "POST", _body(rows=1000))
            assert big_status == 200
            hops[name + "+big"] = used[0] - hops[name]
        finally:
            server.stop()
    assert answers["inline"] == answers["executor"]
    assert hops == {"inline": 0, "inline+big": 1, "executor": 2, "executor+big": 2}
