"""PoolService: the pool behind the HTTP routes plus what the server adds (token, metrics, metadata).

Transport-free on purpose, so the routes stay thin and a Jupyter server extension can wrap the
same object in its own handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from packrat_lab.serving.http.protocol import DATATYPES, ProtocolError, Tensor, datatype_of

if TYPE_CHECKING:
    from packrat_lab.plan import Plan

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "PoolService", "jsonable"]

INPUT_NAME = "INPUT"
OUTPUT_NAME = "OUTPUT"
_DTYPE_TO_V2 = {"float32": "FP32", "int64": "INT64"}


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of stats/events values (Plans as dicts, NumPy scalars as numbers, inf as None)."""
    from packrat_lab.plan import Plan

    if isinstance(value, Plan):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _event_dict(event: Any) -> dict[str, Any]:
    """One pool Event(time, kind, plan, detail) as JSON, the plan in its text form."""
    from packrat_lab.plan import Plan

    plan = getattr(event, "plan", None)
    return {
        "time": jsonable(getattr(event, "time", None)),
        "kind": str(getattr(event, "kind", "")),
        "plan": plan.text if isinstance(plan, Plan) else jsonable(plan),
        "detail": jsonable(getattr(event, "detail", None)),
    }


class PoolService:
    """Everything a route needs: the pool, its token, metrics, model metadata and a thread pool."""

    def __init__(
        self,
        pool: Any,
        *,
        token: str | None = None,
        profile: Any = None,
        max_threads: int = 8,
    ) -> None:
        self.pool = pool
        self.token = token or secrets.token_urlsafe(24)
        self.profile = profile if profile is not None else getattr(pool, "profile", None)
        self.executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="packrat-http")
        self.on_stop: Callable[[], None] | None = None  # set by the server: stops itself
        self._output: tuple[str, tuple[int, ...]] | None = None  # (datatype, per-sample shape)
        self._output_lock = threading.Lock()
        from packrat_lab.serving.http.metrics import ServerMetrics

        self.metrics = ServerMetrics()

    # ---- identity and metadata
    @property
    def model_name(self) -> str:
        """The one model this server serves (the workload name)."""
        return str(self.pool.workload.name)

    @property
    def input_datatype(self) -> str:
        """v2 datatype the model takes: FP32 or INT64."""
        return _DTYPE_TO_V2.get(self.pool.workload.dtype, "FP32")

    def check_token(self, headers: Mapping[str, str]) -> bool:
        """Whether a request carries the pool's token (Bearer or X-Packrat-Token)."""
        given = headers.get("X-Packrat-Token") or ""
        auth = headers.get("Authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and secrets.compare_digest(given.encode(), self.token.encode())

    def output_info(self) -> tuple[str, tuple[int, ...]]:
        """Output datatype and per-sample shape, learned from one probe inference (blocking, cached)."""
        with self._output_lock:
            if self._output is None:
                probe = self.pool.infer(self.pool.workload.example_input(1))
                out = _to_numpy(probe)
                self._output = (datatype_of(out.dtype), tuple(out.shape[1:]))
            return self._output

    def model_metadata(self) -> dict[str, Any]:
        """v2 model metadata: one input of shape [-1, *sample_shape], one output (blocking on first call)."""
        out_type, out_shape = self.output_info()
        return {
            "name": self.model_name,
            "versions": ["1"],
            "platform": "pytorch_libtorch",
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "datatype": self.input_datatype,
                    "shape": [-1, *self.pool.workload.sample_shape],
                }
            ],
            "outputs": [{"name": OUTPUT_NAME, "datatype": out_type, "shape": [-1, *out_shape]}],
        }

    def model_config(self) -> dict[str, Any]:
        """A Triton-style model config, enough for clients that ask for it."""
        meta = self.model_metadata()
        plan = self.pool.plan
        return {
            "name": self.model_name,
            "platform": meta["platform"],
            "max_batch_size": plan.total_batch,
            "input": [
                {
                    "name": INPUT_NAME,
                    "data_type": f"TYPE_{meta['inputs'][0]['datatype']}",
                    "dims": list(self.pool.workload.sample_shape),
                }
            ],
            "output": [
                {
                    "name": OUTPUT_NAME,
                    "data_type": f"TYPE_{meta['outputs'][0]['datatype']}",
                    "dims": meta["outputs"][0]["shape"][1:],
                }
            ],
            "instance_group": [
                {"count": c, "kind": "KIND_CPU", "threads": i.threads, "batch": i.batch}
                for c, i in plan.groups()
            ],
            "dynamic_batching": {"max_batch_size": plan.total_batch},
        }

    # ---- inference
    def check_input(self, inputs: tuple[Tensor, ...]) -> np.ndarray:
        """The one input array, after checking name, datatype and shape against the model."""
        shape = tuple(self.pool.workload.sample_shape)
        example = f'{{"name": "{INPUT_NAME}", "datatype": "{self.input_datatype}", "shape": {[1, *shape]}}}'
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            names = [t.name for t in inputs]
            msg = f"model {self.model_name!r} takes one input named {INPUT_NAME!r}, got {names}; example: {example}"
            raise ProtocolError(msg)
        array = inputs[0].array
        if inputs[0].datatype != self.input_datatype:
            msg = (
                f"input {INPUT_NAME!r} has datatype {inputs[0].datatype} but model {self.model_name!r} "
                f"takes {self.input_datatype}; example: {example}"
            )
            raise ProtocolError(msg)
        if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape or array.shape[0] < 1:
            msg = (
                f"input {INPUT_NAME!r} has shape {list(array.shape)} but model {self.model_name!r} "
                f"takes [N, {', '.join(map(str, shape))}] with N >= 1; example: {example}"
            )
            raise ProtocolError(msg)
        return array

    async def infer(self, array: np.ndarray, arrived: float) -> np.ndarray:
        """Run checked rows through the pool without blocking the event loop.

        One row goes through `pool.submit` so concurrent single requests meet in the pool's dynamic
        batcher (Packrat's B comes from that queue); a client-formed batch goes through
        `pool.infer`, which splits it by the plan.
        """
        import torch

        tensor = torch.from_numpy(array)
        self.metrics.request_rows.observe(array.shape[0])
        if array.shape[0] == 1:
            future = self.pool.submit(tensor[0])
            self.metrics.queue_seconds.observe(time.perf_counter() - arrived)
            out = await asyncio.wrap_future(future)
            return _to_numpy(out)[None, ...]

        def run() -> Any:
            self.metrics.queue_seconds.observe(time.perf_counter() - arrived)
            return self.pool.infer(tensor)

        out = await asyncio.get_running_loop().run_in_executor(self.executor, run)
        return _to_numpy(out)

    def remember_output(self, out: np.ndarray) -> None:
        """Cache output datatype/shape from a real answer, so metadata needs no probe later."""
        if self._output is None and out.ndim >= 1 and out.dtype in DATATYPES.values():
            self._output = (datatype_of(out.dtype), tuple(out.shape[1:]))

    # ---- management
    def plan_dict(self) -> dict[str, Any]:
        """The plan being served, with the pool's state."""
        return {"plan": self.pool.plan.to_dict(), "state": str(self.pool.state), "model": self.model_name}

    def resolve_plan(self, body: Mapping[str, Any]) -> Plan:
        """The plan a management request asks for: {"plan": "2x1x4"} or {"batch": B} (needs a profile)."""
        from packrat_lab.plan import Plan

        if "plan" in body:
            raw = body["plan"]
            if isinstance(raw, Mapping):
                return Plan.from_dict(raw)
            if isinstance(raw, str):
                return Plan.parse(raw)
            msg = f"'plan' must be text like '2x1x4' or a plan object, got {raw!r}; example: {{\"plan\": \"2x1x4\"}}"
            raise ValueError(msg)
        if "batch" in body:
            batch = body["batch"]
            if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
                msg = f"'batch' must be a positive integer, got {batch!r}; example: {{\"batch\": 8}}"
                raise ValueError(msg)
            if self.profile is None:
                msg = 'setting a plan by batch needs a profile; start the server with --profile FILE, or send {"plan": "2x1x4"}'
                raise ValueError(msg)
            from packrat_lab.host import detect_host
            from packrat_lab.optimizer import optimize

            return optimize(self.profile, detect_host().usable_cores, batch)
        msg = f"body needs 'plan' or 'batch', got keys {sorted(body)}; example: {{\"plan\": \"2x1x4\"}}"
        raise ValueError(msg)

    def set_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Reconfigure the pool (blocking until switched); errors leave the old plan serving."""
        self.pool.reconfigure(self.resolve_plan(body))
        return self.plan_dict()

    def stats(self) -> dict[str, Any]:
        """pool.stats() as JSON, plus the plan text and the server's request counts."""
        data: dict[str, Any] = jsonable(self.pool.stats())
        data["plan"] = self.pool.plan.text
        data["state"] = str(self.pool.state)
        data["http_requests"] = {f"{r} {c}": n for (r, c), n in sorted(self.metrics.requests().items())}
        return data

    def events(self) -> list[dict[str, Any]]:
        """The pool's timeline as JSON."""
        return [_event_dict(e) for e in self.pool.events()]

    def metrics_text(self) -> str:
        """The whole Prometheus exposition: the server's metrics then the pool's."""
        from packrat_lab.serving.http.metrics import render_pool

        plan = self.pool.plan
        lines = self.metrics.render()
        lines += render_pool(self.pool.stats(), plan.text, str(plan), str(self.pool.state))
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Stop the thread pool (the pool itself belongs to whoever made it)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _to_numpy(out: Any) -> np.ndarray:
    """A model output (tensor, or a tuple/ModelOutput whose first item is the tensor) as a NumPy array."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    elif isinstance(out, Mapping):
        out = next(iter(out.values()))
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.asarray(out)
