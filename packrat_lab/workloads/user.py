"""User models as Workloads: an nn.Module, a TorchScript file or a 'module:function' import string.

Every result carries a WorkloadSpec that a fresh (spawned) process can rebuild: importable
modules are saved with torch.save, others are exported with torch.export (a .pt2 with a dynamic
batch) or, where export cannot capture them, traced to TorchScript, into a per-process temp dir.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packrat_lab.workloads.base import Workload, WorkloadSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "ExampleInput",
    "import_workload",
    "input_signature",
    "module_workload",
    "torchscript_file_workload",
    "traced_workload",
]

ExampleInput = Any  # a torch.Tensor of one batch, or a callable batch -> tensor
_EXAMPLE = "get_workload(model, example_input=torch.randn(1, 3, 32, 32))"
_DTYPES = {"torch.float32": "float32", "torch.int64": "int64"}
_state: dict[str, Path] = {}
_counter = itertools.count()


def artifact_path(stem: str, suffix: str) -> Path:
    """A fresh file path in this process's temp dir (removed when the process exits)."""
    if "dir" not in _state:
        folder = Path(tempfile.mkdtemp(prefix="packrat-lab-models-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _state["dir"] = folder
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:40] or "model"
    return _state["dir"] / f"{safe}-{next(_counter)}{suffix}"


def input_signature(example_input: ExampleInput) -> tuple[tuple[int, ...], str, int | None]:
    """(sample_shape, dtype, high) from one example batch or a batch -> tensor factory."""
    import torch

    tensor = (
        example_input(1)
        if callable(example_input) and not isinstance(example_input, torch.Tensor)
        else example_input
    )
    if not isinstance(tensor, torch.Tensor) or tensor.dim() < 1:
        msg = f"example_input must be a tensor with a batch dimension (or a batch -> tensor callable), got {type(tensor).__name__}; example: {_EXAMPLE}"
        raise ValueError(msg)
    dtype = _DTYPES.get(str(tensor.dtype))
    if dtype is None:
        msg = f"example_input dtype {tensor.dtype} is not supported; use float32 or int64 (token ids); example: {_EXAMPLE}"
        raise ValueError(msg)
    high = int(tensor.max().item()) + 1 if dtype == "int64" and tensor.numel() else None
    return tuple(int(d) for d in tensor.shape[1:]), dtype, high


def _importable(cls: type) -> bool:
    """True when another process can import `cls` by module and qualified name."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return False
    try:
        obj: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return obj is cls


def _trace(module: torch.nn.Module, example: torch.Tensor, name: str) -> Path:
    """Trace `module` on `example` and save it as a TorchScript file."""
    import torch

    from packrat_lab.workloads.zoo import quiet_transformers

    path = artifact_path(name, ".pt")
    # TracerWarnings, torch.jit's deprecation notice and transformers' advisories are expected
    with quiet_transformers(import_it=False), torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(module.eval(), example, check_trace=False)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    return path


def _export(module: torch.nn.Module, example: torch.Tensor, name: str) -> Path | None:
    """`module` as a torch.export program with a dynamic batch, saved as .pt2; None if export cannot capture it."""
    import torch

    from packrat_lab.workloads.zoo import quiet_transformers

    path = artifact_path(name, ".pt2")
    batch = torch.export.Dim("batch", min=1)
    try:
        with quiet_transformers(import_it=False), torch.inference_mode(False), torch.no_grad():
            program = torch.export.export(
                module.eval(), (example,), dynamic_shapes=({0: batch},), strict=False
            )
            probe = torch.cat([example, example[:1]])  # another batch size: the program must generalise
            expected, got = module(probe), program.module()(probe)
            if (
                not isinstance(got, torch.Tensor)
                or not isinstance(expected, torch.Tensor)
                or got.shape != expected.shape
            ):
                return None
            torch.export.save(program, str(path))
    except Exception:  # noqa: BLE001 - data-dependent control flow and other export limits: caller traces instead
        return None
    return path


def _jit_load(path: str | Path) -> Any:
    """torch.jit.load without its deprecation notice (TorchScript is what the user asked for)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]


def module_workload(
    module: torch.nn.Module, example_input: ExampleInput, name: str | None = None
) -> Workload:
    """A user nn.Module as a Workload: saved if its class imports elsewhere, else exported (or traced)."""
    import torch

    if example_input is None:
        msg = f"a torch.nn.Module needs example_input= (a tensor of one batch or a batch -> tensor callable); example: {_EXAMPLE}"
        raise ValueError(msg)
    shape, dtype, high = input_signature(example_input)
    name = name or type(module).__name__
    module.eval()
    if _importable(type(module)):
        path = artifact_path(name, ".pt")
        try:
            torch.save(module, str(path))
            kind = "saved"
        except (
            pickle.PicklingError,
            AttributeError,
            TypeError,
            RuntimeError,
        ):  # unpicklable part: trace instead
            kind = ""
        if kind:
            return Workload(name, WorkloadSpec(kind, str(path), (), shape, dtype, high))
    example = Workload(name, WorkloadSpec("saved", "", (), shape, dtype, high)).example_input(2)
    exported = _export(module, example, name)
    if exported is not None:
        return Workload(name, WorkloadSpec("exported", str(exported), (), shape, dtype, high))
    path = _trace(module, example, name)  # torch.export could not capture it: TorchScript still can
    return Workload(name, WorkloadSpec("torchscript", str(path), (), shape, dtype, high))


def torchscript_file_workload(
    path: str | Path,
    example_input: ExampleInput = None,
    sample_shape: tuple[int, ...] | None = None,
    dtype: str = "float32",
    high: int | None = None,
) -> Workload:
    """A TorchScript file as a Workload; its input shape comes from example_input or sample_shape."""
    path = Path(path).expanduser().resolve()
    example = f"get_workload('{path.name}', example_input=torch.randn(1, 3, 224, 224))"
    if not path.is_file():
        msg = f"TorchScript file {str(path)!r} does not exist; example: {example}"
        raise ValueError(msg)
    try:
        _jit_load(path)
    except Exception as exc:
        msg = f"{str(path)!r} is not a TorchScript file torch.jit.load can read ({type(exc).__name__}); save one with torch.jit.save(torch.jit.trace(model, x), 'model.pt')"
        raise ValueError(msg) from exc
    if example_input is not None:
        shape, dtype, high = input_signature(example_input)
    elif sample_shape is not None:
        shape = tuple(int(d) for d in sample_shape)
    else:
        msg = (
            f"TorchScript file {path.name!r} needs its input shape: --sample-shape 3,224,224 on the command "
            f"line, sample_shape= or example_input= in Python; example: {example}"
        )
        raise ValueError(msg)
    if dtype not in ("float32", "int64"):
        msg = f"dtype must be 'float32' or 'int64', got {dtype!r}; example: dtype='int64' for token ids"
        raise ValueError(msg)
    return Workload(path.stem, WorkloadSpec("torchscript", str(path), (), shape, dtype, high))


def import_workload(target: str, example_input: ExampleInput = None, **options: Any) -> Workload:
    """'package.module:function' returning an nn.Module or a Workload, called with `options`."""
    import torch

    module_name, _, attr = target.partition(":")
    example = "get_workload('mypkg.models:build', example_input=torch.randn(1, 16))"
    try:
        factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        msg = f"cannot import {target!r} ({type(exc).__name__}: {exc}); example: {example}"
        raise ValueError(msg) from exc
    result = factory(**options)
    if isinstance(result, Workload):
        spec = result.spec
        shape, dtype, high = spec.sample_shape, spec.dtype, spec.high
    elif isinstance(result, torch.nn.Module):
        if example_input is None:
            msg = (
                f"{target!r} returns an nn.Module; pass example_input= to give its input; example: {example}"
            )
            raise ValueError(msg)
        shape, dtype, high = input_signature(example_input)
    else:
        msg = f"{target!r} returned {type(result).__name__}, not an nn.Module or Workload; example: {example}"
        raise ValueError(msg)  # noqa: TRY004 - ValueError is what the CLI turns into a one-line error
    return Workload(
        target, WorkloadSpec("import", target, tuple(sorted(options.items())), shape, dtype, high)
    )


def traced_workload(workload: Workload) -> Workload:
    """The TorchScript-traced version of any workload (the Packrat paper profiled TorchScript)."""
    import torch

    from packrat_lab.workloads.zoo import quiet_transformers

    if workload.spec.kind == "torchscript":
        return workload
    model = workload.build()
    with torch.no_grad(), quiet_transformers(import_it=False):
        path = _trace(model, workload.example_input(2), workload.name)
        traced = _jit_load(path)
        probe = workload.example_input(3, seed=1)
        expected, got = model(probe), traced(probe)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        msg = f"tracing {workload.name!r} does not generalise across batch sizes; profile it eager (torchscript=False)"
        raise ValueError(msg)
    spec = workload.spec
    return Workload(
        f"{workload.name}[torchscript]",
        WorkloadSpec("torchscript", str(path), (), spec.sample_shape, spec.dtype, spec.high),
    )
