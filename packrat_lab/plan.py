"""The one Plan type that flows from the optimizer to the pool, plots, HTTP and sidebar.

Plan text grammar (every earlier text stays valid and means the same):

    plan     := group ('+' group)*
    group    := COUNT 'x' THREADS 'x' BATCH [':' backend] ['@' SETTING]
    backend  := BACKEND ['-' PRECISION]      # eager | torchscript | compile | onnxruntime | openvino
                                             # precision fp32 (default) | bf16

e.g. '2x1x4' (eager fp32, default setting), '2x1x4:onnxruntime@passive', '1x2x8:openvino-bf16'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from packrat_lab.settings import DEFAULT, RuntimeSetting, known_settings, unavailable_settings
from packrat_lab.workloads.backends.names import EAGER_FP32, BackendChoice, parse_backend_key

__all__ = ["Instance", "Plan", "parse_plan"]

_GROUP = re.compile(
    r"^\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*(?::\s*([A-Za-z_][\w-]*))?\s*(?:@\s*([A-Za-z_][\w-]*))?\s*$"
)
_EXAMPLE = "'2x1x4' (2 instances, 1 thread, batch 4), '1x2x8+2x1x4' or '2x1x4:onnxruntime@passive'"
MAX_PLAN_NUMBER = 65536  # per count, threads or batch: far above any host, far below a typo like 1e9


@dataclass(frozen=True)
class Instance:
    """One model instance: its intra-op threads, its slice of the batch, where and how it runs."""

    threads: int
    batch: int
    setting: RuntimeSetting = DEFAULT
    cores: tuple[int, ...] = ()
    expected_latency_ms: float | None = None
    backend: BackendChoice = EAGER_FP32

    def __post_init__(self) -> None:
        for label, value in (("threads", self.threads), ("batch", self.batch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"instance {label} must be a positive integer, got {value!r}; example: Instance(threads=2, batch=4)"
                raise ValueError(msg)
        if self.cores and len(self.cores) != self.threads:
            msg = f"instance with {self.threads} threads got {len(self.cores)} cores {self.cores}; give one core per thread"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threads": self.threads,
            "batch": self.batch,
            "setting": self.setting.to_dict(),
            "cores": list(self.cores),
            "expected_latency_ms": self.expected_latency_ms,
            "backend": self.backend.key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instance:
        """Inverse of to_dict."""
        setting = data.get("setting")
        return cls(
            threads=int(data["threads"]),
            batch=int(data["batch"]),
            setting=RuntimeSetting.from_dict(setting) if isinstance(setting, Mapping) else DEFAULT,
            cores=tuple(int(c) for c in data.get("cores", ())),
            expected_latency_ms=data.get("expected_latency_ms"),
            backend=parse_backend_key(str(data.get("backend", "eager"))),
        )


@dataclass(frozen=True)
class Plan:
    """A set of instances that together serve a batch of `total_batch` on `total_threads` cores."""

    instances: tuple[Instance, ...]
    expected_latency_ms: float | None = None
    name: str = "plan"
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.instances:
            msg = f"a plan needs at least one instance; example: Plan.parse({_EXAMPLE})"
            raise ValueError(msg)
        object.__setattr__(self, "instances", tuple(self.instances))

    @property
    def total_batch(self) -> int:
        """B: the batch the plan serves at once."""
        return sum(i.batch for i in self.instances)

    @property
    def total_threads(self) -> int:
        """Cores the plan occupies (one per intra-op thread)."""
        return sum(i.threads for i in self.instances)

    @property
    def expected_throughput(self) -> float | None:
        """Samples per second if each batch takes the expected latency."""
        if not self.expected_latency_ms:
            return None
        return self.total_batch / (self.expected_latency_ms / 1000.0)

    def groups(self) -> list[tuple[int, Instance]]:
        """Identical instances folded together, as (count, instance) in first-seen order."""
        counts: dict[tuple[int, int, RuntimeSetting, BackendChoice], int] = {}
        first: dict[tuple[int, int, RuntimeSetting, BackendChoice], Instance] = {}
        for inst in self.instances:
            key = (inst.threads, inst.batch, inst.setting, inst.backend)
            counts[key] = counts.get(key, 0) + 1
            first.setdefault(key, inst)
        return [(counts[k], first[k]) for k in counts]

    @property
    def text(self) -> str:
        """Compact text form, e.g. '1x2x8+2x1x4:onnxruntime@passive'; eager fp32 and default are implied."""
        parts = []
        for count, inst in self.groups():
            runtime = "" if inst.backend.is_reference else f":{inst.backend.key}"
            suffix = "" if inst.setting == DEFAULT else f"@{inst.setting.name}"
            parts.append(f"{count}x{inst.threads}x{inst.batch}{runtime}{suffix}")
        return "+".join(parts)

    def __str__(self) -> str:
        return " + ".join(
            f"⟨{c},{i.threads},{i.batch}⟩" + ("" if i.backend.is_reference else f" {i.backend.key}")
            for c, i in self.groups()
        )

    @property
    def backends(self) -> list[str]:
        """Backend keys the plan's instances run, in first-seen order."""
        return list(dict.fromkeys(i.backend.key for i in self.instances))

    def with_cores(self, cores: Sequence[Sequence[int]]) -> Plan:
        """The same plan with a core set given to each instance."""
        if len(cores) != len(self.instances):
            msg = f"need one core set per instance ({len(self.instances)}), got {len(cores)}"
            raise ValueError(msg)
        instances = tuple(replace(i, cores=tuple(c)) for i, c in zip(self.instances, cores, strict=True))
        return replace(self, instances=instances)

    def with_settings(self, settings: Mapping[str, RuntimeSetting]) -> Plan:
        """Resolve setting names (from parsed text) against known settings."""
        out = []
        for inst in self.instances:
            known = settings.get(inst.setting.name)
            if known is None:
                valid = ", ".join(sorted(settings))
                msg = f"unknown runtime setting {inst.setting.name!r} in plan {self.text!r}; valid: {valid}; example: '2x1x4@passive'"
                raise ValueError(msg)
            out.append(replace(inst, setting=known))
        return replace(self, instances=tuple(out))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; `instances` is grouped as the CLI's json output documents."""
        return {
            "name": self.name,
            "plan": self.text,
            "display": str(self),
            "instances": [
                {
                    "count": c,
                    "threads": i.threads,
                    "batch": i.batch,
                    "setting": i.setting.name,
                    "backend": i.backend.key,
                }
                for c, i in self.groups()
            ],
            "all_instances": [i.to_dict() for i in self.instances],
            "total_threads": self.total_threads,
            "total_batch": self.total_batch,
            "expected_latency_ms": self.expected_latency_ms,
            "expected_throughput": self.expected_throughput,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Inverse of to_dict (reads `all_instances`, else the grouped `instances`)."""
        if "all_instances" in data:
            instances = tuple(Instance.from_dict(d) for d in data["all_instances"])
        else:
            instances = tuple(
                Instance(
                    int(d["threads"]),
                    int(d["batch"]),
                    backend=parse_backend_key(str(d.get("backend", "eager"))),
                )
                for d in data["instances"]
                for _ in range(int(d.get("count", 1)))
            )
        return cls(instances, data.get("expected_latency_ms"), str(data.get("name", "plan")))

    @classmethod
    def parse(cls, text: str) -> Plan:
        """Parse '2x1x4' (i=2, t=1, b=4) or '1x2x8+2x1x4'; ':onnxruntime' a backend, '@passive' a setting."""
        return parse_plan(text)

    @classmethod
    def coerce(cls, plan: Plan | str) -> Plan:
        """Accept a Plan or its text form."""
        return plan if isinstance(plan, Plan) else parse_plan(plan)


def _named_setting(name: str) -> RuntimeSetting:
    """A built-in or allocator setting by name; other names stay bare until resolved against a profile."""
    known = known_settings()
    if name in known:
        return known[name]
    reason = unavailable_settings().get(name)
    if reason is not None:
        msg = f"runtime setting {name!r} is unavailable on this host: {reason}"
        raise ValueError(msg)
    return RuntimeSetting(name)


def parse_plan(text: str) -> Plan:
    """Parse the text form of a plan; see Plan.parse."""
    if not isinstance(text, str) or not text.strip():
        msg = f"plan {text!r} is empty; example: {_EXAMPLE}"
        raise ValueError(msg)
    instances: list[Instance] = []
    for part in text.split("+"):
        match = _GROUP.match(part)
        if not match:
            msg = f"plan {text!r} is not of the form COUNTxTHREADSxBATCH; example: {_EXAMPLE}"
            raise ValueError(msg)
        count, threads, batch = (int(g) for g in match.groups()[:3])
        if min(count, threads, batch) < 1:
            msg = f"plan {text!r} has a zero count, thread or batch; example: {_EXAMPLE}"
            raise ValueError(msg)
        if max(count, threads, batch) > MAX_PLAN_NUMBER:
            msg = f"plan {text!r} has a count, thread or batch above {MAX_PLAN_NUMBER}; example: {_EXAMPLE}"
            raise ValueError(msg)
        runtime, name = match.group(4), match.group(5)
        setting = DEFAULT if name is None else _named_setting(name)
        try:
            backend = EAGER_FP32 if runtime is None else parse_backend_key(runtime)
        except ValueError as exc:
            msg = f"plan {text!r}: {exc}"
            raise ValueError(msg) from None
        instances.extend(Instance(threads, batch, setting, backend=backend) for _ in range(count))
    return Plan(tuple(instances), name="manual")


def plans_table(plans: Iterable[Plan]) -> list[dict[str, Any]]:
    """Rows for a side-by-side table of plans (name, ⟨i,t,b⟩, latency, throughput)."""
    return [
        {
            "plan": p.name,
            "config": str(p),
            "expected_latency_ms": p.expected_latency_ms,
            "expected_throughput": p.expected_throughput,
        }
        for p in plans
    ]
