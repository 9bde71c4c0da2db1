"""get_workload: one entry point for zoo names, import strings, model files and directories, and modules."""

from __future__ import annotations

import os
import re
from typing import Any

from packrat_lab.workloads.base import Workload, WorkloadSpec
from packrat_lab.workloads.zoo import ZOO

__all__ = ["get_workload", "zoo_names", "zoo_workload"]

_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SCRIPT_SUFFIXES = (".pt", ".pth")
_EXPORT_SUFFIX = ".pt2"
RECIPE_SUFFIX = ".workload.json"  # a saved Workload.to_dict(): how the Lab hands any model to `serve`


def zoo_names() -> list[str]:
    """Names of the built-in models, sorted."""
    return sorted(ZOO)


def _unknown(model: object) -> str:
    """Works at the shell and in Python alike: names what is valid, no Python call in it."""
    return (
        f"unknown model {model!r}; valid: {', '.join(zoo_names())}, a torch.export file (*.pt2), "
        "a Hugging Face model directory, a TorchScript file (*.pt with its sample shape), "
        "'module:function', or (in Python) an nn.Module with example_input="
    )


def zoo_workload(name: str, **options: Any) -> Workload:
    """A zoo model as a Workload (validated name, options recorded in the spec)."""
    entry = ZOO.get(name)
    if entry is None:
        raise ValueError(_unknown(name))
    try:
        shape = tuple(entry.sample_shape(**options))
    except TypeError as exc:
        msg = f"model {name!r} does not take options {sorted(options)} ({exc}); example: get_workload('bert', seq_len=128)"
        raise ValueError(msg) from exc
    spec = WorkloadSpec("zoo", name, tuple(sorted(options.items())), shape, entry.dtype, entry.high)
    return Workload(name, spec)


def _from_string(model: str, options: dict[str, Any]) -> Workload:
    from packrat_lab.workloads import sources, user

    if model in ZOO:
        return zoo_workload(model, **options)
    if model.endswith(RECIPE_SUFFIX) and not options:
        return _from_recipe(model)
    if _IMPORT_STRING.match(model) and not os.path.exists(model):
        return user.import_workload(model, **options)
    if model.endswith(_EXPORT_SUFFIX):
        return sources.exported_workload(model, **options)
    if os.path.isdir(model):
        return sources.hf_dir_workload(model, **options)
    if model.endswith(_SCRIPT_SUFFIXES) or os.path.isfile(model):
        return user.torchscript_file_workload(model, **options)
    raise ValueError(_unknown(model))


def _from_recipe(path: str) -> Workload:
    """A workload from a `*.workload.json` file (Workload.to_dict()), e.g. written by the Lab."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Workload(str(data["name"]), WorkloadSpec.from_dict(data["spec"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = (
            f"cannot read workload recipe {path!r} ({type(exc).__name__}: {exc}); example: mlp.workload.json"
        )
        raise ValueError(msg) from exc


def get_workload(model: Any, *, torchscript: bool = False, **options: Any) -> Workload:
    """Resolve what a user passes as a model into a Workload (optionally TorchScript-traced)."""
    from packrat_lab.workloads import user

    if isinstance(model, Workload):
        if options:
            msg = f"options {sorted(options)} cannot change an existing Workload; example: get_workload('bert', seq_len=64)"
            raise ValueError(msg)
        workload = model
    elif isinstance(model, str):
        workload = _from_string(model, options)
    elif isinstance(model, os.PathLike):
        workload = _from_string(os.fspath(model), options)
    elif _is_module(model):
        workload = user.module_workload(model, options.pop("example_input", None), options.pop("name", None))
        if options:
            msg = f"unexpected options {sorted(options)} for an nn.Module; valid: example_input=, name=, torchscript="
            raise ValueError(msg)
    else:
        msg = f"cannot make a workload from {type(model).__name__}; example: get_workload('resnet50')"
        raise ValueError(msg)
    return user.traced_workload(workload) if torchscript else workload


def _is_module(model: object) -> bool:
    """nn.Module check that imports torch only when the object could be one."""
    if type(model).__module__.split(".")[0] in ("builtins", "packrat_lab"):
        return False
    import torch

    return isinstance(model, torch.nn.Module)


def workload_of_profile(profile: Any) -> Workload:
    """The workload a profile was measured on, from the spec it recorded (zoo, import, file)."""
    from packrat_lab.workloads.base import WorkloadSpec

    recorded = (profile.meta or {}).get("workload")
    if not recorded:
        msg = f"profile of {profile.model!r} records no workload (a CSV?); name the model, example: --model resnet50"
        raise ValueError(msg)
    return Workload(str(recorded["name"]), WorkloadSpec.from_dict(recorded["spec"]))
