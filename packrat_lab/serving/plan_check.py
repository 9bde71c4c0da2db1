"""A plan at the pool's door: setting names resolved server-side, batches bounded, one-line errors."""

from __future__ import annotations

from collections.abc import Mapping

from packrat_lab.plan import Plan
from packrat_lab.settings import RuntimeSetting

__all__ = ["check_plan"]


def check_plan(plan: Plan | str, settings: Mapping[str, RuntimeSetting], max_instance_batch: int) -> Plan:
    """`plan` with each setting looked up by name in `settings`; ValueError for unknown names or huge batches.

    A plan never brings its own environment: a setting whose environment differs from the known
    setting of that name is refused too, so only the pool's owner decides what a worker's
    environment holds.
    """
    parsed = Plan.coerce(plan)
    resolved = parsed.with_settings(settings)  # ValueError for unknown names
    for given, inst in zip(parsed.instances, resolved.instances, strict=True):
        if given.setting.env and given.setting.env != inst.setting.env:
            msg = f"plan {parsed.text!r} brings its own environment for setting {inst.setting.name!r}; settings are the pool's own; pass new ones as Pool(..., settings={{...}})"
            raise ValueError(msg)
        if inst.batch > max_instance_batch:
            msg = f"instance batch {inst.batch} in plan {parsed.text!r} is above this pool's bound {max_instance_batch}; example: '2x1x{min(4, max_instance_batch)}'"
            raise ValueError(msg)
    return resolved
