"""What one JSON inference request costs the HTTP front, and how long /v2/health/live waits meanwhile.

Part 1, in-process: a 1x3x224x224 FP32 JSON body: json.loads, the value-by-value isinstance check the
server used before (a baseline written here), and the NumPy check it uses now, side by side.
Part 2, a real server (stub pool: answers zeros at once) in this process: the event loop's lag (how
late a 1 ms sleep on it wakes), alone and while requests are sent one after another. json.loads
holds the GIL while it parses, so JSON still pauses the loop in proportion to its size even off
the loop; binary tensors do not.

    python benchmarks/bench_http_decode.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import urllib.request
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from hostinfo import host_description

from packrat_lab.plan import Plan
from packrat_lab.serving.http import serve_pool
from packrat_lab.serving.http.protocol import (
    DATATYPES,
    HEADER_LENGTH,
    Tensor,
    _json_tensor,
    decode_infer_request,
    encode_infer_request,
)

SHAPE = (1, 3, 224, 224)


def per_value_check(values: list[Any]) -> None:
    """The baseline: one isinstance test per value, as the server did before."""
    for v in values:
        if not (isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise TypeError(v)


def best_of(fn: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def part1() -> list[str]:
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    body = json.dumps(
        {"inputs": [{"name": "INPUT", "shape": list(SHAPE), "datatype": "FP32", "data": x.ravel().tolist()}]}
    ).encode()
    parsed = json.loads(body)["inputs"][0]["data"]
    t_json = best_of(lambda: json.loads(body))
    t_loop = best_of(lambda: per_value_check(parsed))
    entry = json.loads(body)["inputs"][0]
    t_numpy = best_of(lambda: _json_tensor(entry, SHAPE, DATATYPES["FP32"], "input"))
    assert decode_infer_request(body).inputs[0].array.shape == SHAPE
    return [
        f"JSON body {len(body) / 1e6:.1f} MB ({'x'.join(map(str, SHAPE))} FP32), best of 5:",
        "",
        "| step | ms |",
        "|---|---|",
        f"| json.loads | {1000 * t_json:.1f} |",
        f"| value-by-value isinstance check (before) | {1000 * t_loop:.1f} |",
        f"| NumPy check + conversion (now: protocol._json_tensor) | {1000 * t_numpy:.1f} |",
        f"| ratio before/now for the check | {t_loop / max(t_numpy, 1e-9):.1f}x |",
    ]


class _Workload:
    name = "stub"
    dtype = "float32"
    sample_shape = SHAPE[1:]

    def example_input(self, n: int) -> Any:
        import torch

        return torch.zeros((n, *self.sample_shape))


class StubPool:
    """Answers every row with 10 zeros at once: only the HTTP front is measured."""

    workload = _Workload()
    plan = Plan.parse("1x1x1")
    state = "serving"
    profile = None

    def infer(self, batch: Any) -> Any:
        import torch

        return torch.zeros((batch.shape[0], 10))

    def submit(self, sample: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(self.infer(sample[None])[0])
        return future

    def stats(self) -> dict[str, Any]:
        return {}

    def events(self) -> list[Any]:
        return []


async def _ticker(stop: threading.Event, gaps: list[float]) -> None:
    """On the server's loop: how late a 1 ms sleep wakes up (the loop's lag)."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        gaps.append(time.perf_counter() - start - 0.001)


def _request(rows: int, binary: bool) -> tuple[bytes, dict[str, str]]:
    x = np.random.default_rng(1).standard_normal((rows, *SHAPE[1:])).astype(np.float32)
    body, header = encode_infer_request([Tensor("INPUT", x)], binary=binary)
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(header)}
    return body, headers


def part2() -> list[str]:
    rows = [
        "| requests sent one after another, 5 s | requests | loop lag p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    cases = [("none", 0, False, 1 << 20)]
    for where, threshold in (("decoded in a thread", 1 << 62), ("decoded in the helper process", 1 << 20)):
        cases += [
            (f"JSON 1x3x224x224 (3 MB), {where}", 1, False, threshold),
            (f"JSON 5x3x224x224 (15 MB), {where}", 5, False, threshold),
        ]
    cases += [("binary 5x3x224x224 (3 MB)", 5, True, 1 << 20)]
    with serve_pool(StubPool()) as server:
        loop = server._loop
        assert loop is not None
        warm, headers = _request(5, False)  # start the helper process before measuring
        warm_request = urllib.request.Request(
            f"{server.url}/v2/models/stub/infer", data=warm, headers=headers
        )
        with urllib.request.urlopen(warm_request, timeout=60) as response:
            response.read()
        for label, n_rows, binary, threshold in cases:
            server.service.decoder.threshold = threshold
            stop, gaps = threading.Event(), []
            ticking = asyncio.run_coroutine_threadsafe(_ticker(stop, gaps), loop)
            sent = 0
            deadline = time.monotonic() + 5.0
            if n_rows:
                body, headers = _request(n_rows, binary)
                while time.monotonic() < deadline:
                    request = urllib.request.Request(
                        f"{server.url}/v2/models/stub/infer", data=body, method="POST", headers=headers
                    )
                    with urllib.request.urlopen(request, timeout=60) as response:
                        assert response.status == 200
                    sent += 1
            else:
                time.sleep(5.0)
            stop.set()
            ticking.result(10)
            lag = np.asarray(gaps) * 1000
            rows.append(
                f"| {label} | {sent} | {np.median(lag):.2f} | {np.percentile(lag, 99):.1f} | {lag.max():.1f} |"
            )
    return rows


def main() -> None:
    print(host_description())
    print()
    print("\n".join(part1()))
    print()
    print("\n".join(part2()))


if __name__ == "__main__":
    main()
