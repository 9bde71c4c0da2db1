"""One environment for every model process, so a profile point describes exactly what a worker serves.

`child_environment(threads, cores, setting, backend)` is the only place that decides a child's
variables (thread counts, the runtime setting's wait policy or allocator), its core affinity, torch's
thread settings and the backend's own thread knobs (ONNX Runtime intra/inter-op threads, sequential
execution and spinning; OpenVINO threads, streams, hint and precision; inductor's threads).
Profiling points and pool workers both build it and call `apply_in_child()` first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packrat_lab.settings import RuntimeSetting
from packrat_lab.workloads.backends.names import EAGER_FP32, BackendChoice

__all__ = ["ChildEnvironment", "backend_options", "child_environment"]

_EXAMPLE = "child_environment(threads=2, cores=(0, 1), setting=PASSIVE)"
# read by the dynamic loader at exec: setting them inside a running process is too late
LOADER_VARIABLES = ("LD_PRELOAD",)


@dataclass(frozen=True)
class ChildEnvironment:
    """Variables, affinity and torch threads of one model process (threads t, pinned to `cores`)."""

    threads: int
    cores: tuple[int, ...]
    setting: RuntimeSetting
    env: tuple[tuple[str, str], ...]
    backend: BackendChoice = EAGER_FP32

    @property
    def backend_options(self) -> dict[str, Any]:
        """The backend's thread knobs for this instance (what its session or compiler is given)."""
        return backend_options(self.backend, self.threads, self.setting)

    @property
    def env_dict(self) -> dict[str, str]:
        """The variables this environment sets, as a dict."""
        return dict(self.env)

    def launch_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A full environment to exec the child with: `base` (default os.environ) plus ours."""
        out = dict(os.environ if base is None else base)
        out.update(self.env)
        return out

    def apply_in_child(self) -> None:
        """First thing in the child: set variables and affinity, then start torch with our threads."""
        self._check_loader()
        os.environ.update(self.env)  # before torch loads OpenMP, which reads them once
        if self.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, self.cores)
        import torch

        torch.set_num_threads(self.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already started by an earlier parallel op; intra-op threads are what matter
            pass

    def _check_loader(self) -> None:
        """An allocator must have been preloaded at exec; refuse to run silently on glibc malloc."""
        for key in LOADER_VARIABLES:
            wanted = self.env_dict.get(key)
            if wanted and not all(_is_mapped(lib) for lib in wanted.split(":") if lib):
                msg = (
                    f"runtime setting {self.setting.name!r} needs {key}={wanted} at process start but this "
                    f"process was started without it; example: start it with env=environment.launch_env()"
                )
                raise RuntimeError(msg)

    def observed(self) -> dict[str, Any]:
        """What this process really runs with (for checks): our variables, affinity, torch threads."""
        import torch

        seen: dict[str, Any] = {
            "env": {k: os.environ.get(k) for k, _ in self.env},
            "torch_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
            "backend": self.backend.key,
            "backend_options": self.backend_options,
        }
        preload = self.env_dict.get("LD_PRELOAD")
        if preload:
            seen["preloaded"] = all(_is_mapped(lib) for lib in preload.split(":") if lib)
        return seen


def _is_mapped(library: str) -> bool:
    """Whether a shared library is loaded in this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as maps:
            text = maps.read()
    except OSError:  # pragma: no cover - not Linux: cannot tell, trust the loader
        return True
    real = os.path.realpath(library)
    return library in text or real in text


def _passive(setting: RuntimeSetting) -> bool:
    return setting.env_dict.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def backend_options(choice: BackendChoice, threads: int, setting: RuntimeSetting) -> dict[str, Any]:
    """Each backend's own thread knobs from the instance's t (and the setting's wait policy)."""
    if choice.backend == "onnxruntime":
        return {
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1,
            "execution_mode": "sequential",
            "allow_spinning": "0" if _passive(setting) else "1",
        }
    if choice.backend == "openvino":
        return {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if choice.precision == "bf16" else "f32",
        }
    if choice.backend == "compile":
        return {"cpp_threads": threads, "freezing": True}
    return {}


def child_environment(
    threads: int,
    cores: tuple[int, ...] | list[int],
    setting: RuntimeSetting,
    backend: BackendChoice = EAGER_FP32,
) -> ChildEnvironment:
    """The environment of a process running one instance with `threads` threads on `cores`."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        msg = f"threads must be a positive integer, got {threads!r}; example: {_EXAMPLE}"
        raise ValueError(msg)
    pinned = tuple(int(c) for c in cores)
    if pinned and len(pinned) != threads:
        msg = f"{threads} threads need {threads} cores, got {pinned}; example: {_EXAMPLE}"
        raise ValueError(msg)
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **setting.env_dict}
    if backend.backend == "compile":  # inductor compiles with as many threads as the instance runs
        env["TORCHINDUCTOR_COMPILE_THREADS"] = str(threads)
    return ChildEnvironment(threads, pinned, setting, tuple(sorted(env.items())), backend)
