"""Write the nearest TorchServe or Triton configuration for a plan, and say what they cannot express.

Both servers run identical workers: one worker count, one thread count and one batch size per
model. A Packrat plan may mix instance shapes (⟨1,2,8⟩ + ⟨2,1,4⟩), pins each instance to its own
cores and gives each its own threading-runtime environment; the export picks the nearest
homogeneous ⟨i,t,b⟩ (the profile's best one when a profile is given) and lists every gap as a note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.workloads.base import Workload

__all__ = ["TARGETS", "Export", "Homogeneous", "export_plan", "nearest_homogeneous"]

Target = Literal["torchserve", "triton"]
TARGETS: tuple[Target, ...] = ("torchserve", "triton")
_TYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}


@dataclass(frozen=True)
class Homogeneous:
    """⟨count, threads, batch⟩ of identical workers, and the environment they all share."""

    count: int
    threads: int
    batch: int
    env: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """Plan text, e.g. '2x1x4'."""
        return f"{self.count}x{self.threads}x{self.batch}"


@dataclass
class Export:
    """The files a target server reads (relative path -> text) and what it cannot express."""

    target: str
    plan: str
    config: Homogeneous
    files: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write every file under `out_dir` (created if needed); the paths written."""
        written = []
        for relative, text in self.files.items():
            path = Path(out_dir) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
        return written


def nearest_homogeneous(plan: Plan, profile: Profile | None = None) -> tuple[Homogeneous, list[str]]:
    """The plan itself if all its instances are alike, else the nearest identical-worker plan, with notes."""
    groups = plan.groups()
    notes: list[str] = []
    envs = {inst.setting.env for _, inst in groups}
    env = groups[0][1].setting.env if len(envs) == 1 else ()
    if len(envs) > 1:
        names = sorted({inst.setting.name for _, inst in groups})
        notes.append(
            f"instances use different runtime settings {names}; one environment for all workers: default"
        )
    if len(groups) == 1:
        count, inst = groups[0]
        return Homogeneous(count, inst.threads, inst.batch, env), notes
    cores, batch = plan.total_threads, plan.total_batch
    chosen: Homogeneous | None = None
    if profile is not None:
        from packrat_lab.errors import ProfileMissingPointError
        from packrat_lab.optimizer.baselines import homogeneous_plan

        try:
            best = homogeneous_plan(profile, cores, batch)
            (count, inst), *_ = best.groups()
            chosen = Homogeneous(count, inst.threads, inst.batch, env)
            how = f"the profile's best homogeneous plan for {cores} cores and batch {batch}"
        except ProfileMissingPointError as exc:
            notes.append(f"the profile cannot price a homogeneous plan ({str(exc).splitlines()[0]})")
    if chosen is None:
        count = len(plan.instances)
        chosen = Homogeneous(count, max(1, cores // count), math.ceil(batch / count), env)
        how = f"same instance count, {chosen.count * chosen.threads} of {cores} cores, batch {chosen.count * chosen.batch} for {batch}"
    notes.insert(
        0,
        f"plan {plan.text} ({plan}) mixes instance shapes; these servers run identical workers: wrote ⟨{chosen.count},{chosen.threads},{chosen.batch}⟩, {how}",
    )
    return chosen, notes


def _env_note(config: Homogeneous, server: str) -> list[str]:
    if not config.env:
        return []
    assignments = " ".join(f"{k}={v}" for k, v in config.env)
    return [f"{server} takes no per-worker environment: start it with {assignments} set"]


def _torchserve(plan: Plan, config: Homogeneous, model: str, delay_ms: float) -> dict[str, str]:
    models = {
        model: {
            "1.0": {
                "defaultVersion": True,
                "marName": f"{model}.mar",
                "minWorkers": config.count,
                "maxWorkers": config.count,
                "batchSize": config.batch,
                "maxBatchDelay": max(1, round(delay_ms)),
                "responseTimeout": 120,
            }
        }
    }
    lines = [
        f"# packrat-lab export: plan {plan.text} as {config.count} workers x {config.threads} threads, batch {config.batch}",
        "inference_address=http://127.0.0.1:8080",
        "management_address=http://127.0.0.1:8081",
        "metrics_address=http://127.0.0.1:8082",
        "model_store=model_store",
        f"load_models={model}.mar",
        f"default_workers_per_model={config.count}",
        "# each worker pinned to its own cores by torch.backends.xeon.run_cpu (OMP_NUM_THREADS = cores)",
        "cpu_launcher_enable=true",
        f"cpu_launcher_args=--ncores-per-instance {config.threads}",
        f"models={json.dumps(models, separators=(',', ':'))}",
    ]
    return {"config.properties": "\n".join(lines) + "\n"}


def _tensor(name: str, dtype: str, dims: tuple[int, ...]) -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {_TYPES[dtype]}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'


def _triton(
    plan: Plan,
    config: Homogeneous,
    model: str,
    delay_ms: float,
    io: tuple[str, tuple[int, ...], str, tuple[int, ...]] | None,
) -> dict[str, str]:
    lines = [
        f"# packrat-lab export: plan {plan.text} as {config.count} instances x {config.threads} threads, batch {config.batch}",
        f'name: "{model}"',
        'backend: "pytorch"',
        f"max_batch_size: {config.batch}",
    ]
    if io is not None:
        in_type, in_dims, out_type, out_dims = io
        lines += [
            f"input [\n{_tensor('INPUT__0', in_type, in_dims)}\n]",
            f"output [\n{_tensor('OUTPUT__0', out_type, out_dims)}\n]",
        ]
    lines += [
        f"instance_group [\n  {{\n    count: {config.count}\n    kind: KIND_CPU\n  }}\n]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {config.batch} ]",
        f"  max_queue_delay_microseconds: {round(delay_ms * 1000)}",
        "}",
        f'parameters: {{ key: "INTRA_OP_THREAD_COUNT" value: {{ string_value: "{config.threads}" }} }}',
        'parameters: { key: "INTER_OP_THREAD_COUNT" value: { string_value: "1" } }',
    ]
    return {f"{model}/config.pbtxt": "\n".join(lines) + "\n"}


def _io(workload: Workload) -> tuple[str, tuple[int, ...], str, tuple[int, ...]]:
    """Input and output dtype and per-sample dims, from one batch-1 run of the model."""
    import torch

    with torch.no_grad():
        out = workload.build()(workload.example_input(1))
    if isinstance(out, (tuple, list)):
        out = out[0]
    out_type = str(out.dtype).removeprefix("torch.")
    if out_type not in _TYPES:
        msg = f"model output dtype {out_type} has no Triton type here; valid: {sorted(_TYPES)}"
        raise ValueError(msg)
    return workload.dtype, tuple(workload.sample_shape), out_type, tuple(int(d) for d in out.shape[1:])


def export_plan(
    plan: Plan | str,
    to: str,
    *,
    model: str = "model",
    workload: Workload | None = None,
    profile: Profile | None = None,
    max_queue_delay_ms: float = 5.0,
) -> Export:
    """The `to` server's configuration for `plan` (TorchServe config.properties or Triton config.pbtxt)."""
    from packrat_lab.plan import Plan

    if to not in TARGETS:
        msg = f"unknown export target {to!r}; valid: {', '.join(TARGETS)} (example: --to triton)"
        raise ValueError(msg)
    if not model or any(c in model for c in '/\\"\n') or model.startswith("."):
        msg = f"model name {model!r} cannot name a file or a config entry; example: --model resnet50"
        raise ValueError(msg)
    target = Plan.coerce(plan)
    config, notes = nearest_homogeneous(target, profile)
    if to == "torchserve":
        files = _torchserve(target, config, model, max_queue_delay_ms)
        notes += _env_note(config, "TorchServe")
        notes.append(
            f"archive the model as model_store/{model}.mar (torch-model-archiver); a handler must read the tensor from the request"
        )
        notes.append(
            "TorchServe restarts every worker when it rescales with the launcher on: no live active-passive switch"
        )
    else:
        io = _io(workload) if workload is not None else None
        files = _triton(target, config, model, max_queue_delay_ms, io)
        notes += _env_note(config, "tritonserver")
        notes.append(
            "Triton does not pin instances to cores: instances share the cores (start tritonserver under taskset to bound them)"
        )
        notes.append(
            f"put the TorchScript model at {model}/1/model.pt (torch.jit.save); Triton's PyTorch backend loads TorchScript only"
        )
        if io is None:
            notes.append(
                "no input/output written: name a model (--model NAME, a zoo name or model file) to fill them in"
            )
    return Export(to, target.text, config, files, notes)
