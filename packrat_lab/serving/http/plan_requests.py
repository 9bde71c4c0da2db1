"""The plan a management request may ask for: text that names the server's settings, within its batch bound.

Runtime settings are defined only on the server side (built-in plus the server's own profile's):
a request names them and never defines them, so a plan object (which could carry environment
variables such as PYTHONPATH for the new workers) is refused. Every refusal is a one-line ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.settings import RuntimeSetting

__all__ = ["EXAMPLE", "resolve_plan"]

EXAMPLE = '{"plan": "2x1x4@passive"}'
MAX_TEXT = 1000
_GROUP = re.compile(r"(\d+)\s*x\s*(\d+)\s*x\s*(\d+)")


def resolve_plan(
    body: Mapping[str, Any],
    settings: Mapping[str, RuntimeSetting],
    max_batch: int,
    profile: Any = None,
    cores: int = 1,
) -> Plan:
    """{"plan": "2x1x4@passive"} as a Plan with the server's settings, or {"batch": B} planned on `profile`."""
    from packrat_lab.plan import Plan

    unknown = sorted(set(body) - {"plan", "batch"})
    if unknown or ("plan" in body) == ("batch" in body):
        msg = f"body takes exactly one of 'plan' or 'batch', got keys {sorted(body)[:6]}; example: {EXAMPLE}"
        raise ValueError(msg)
    if "batch" in body:
        return _plan_for_batch(body["batch"], max_batch, profile, cores)
    raw = body["plan"]
    if not isinstance(raw, str):
        msg = (
            f"'plan' must be plan text with setting names, got a {type(raw).__name__}: runtime settings are "
            f"the server's own ({', '.join(sorted(settings))}); example: {EXAMPLE}"
        )
        raise ValueError(msg)  # noqa: TRY004 - every refused plan is a ValueError (one-line 400)
    if len(raw) > MAX_TEXT:
        msg = f"plan text of {len(raw)} characters is too long (at most {MAX_TEXT}); example: {EXAMPLE}"
        raise ValueError(msg)
    # before parsing: '1000000000x1x1' must not build a billion instances
    _check_batch(repr(raw[:60]), sum(int(n) * int(b) for n, _, b in _GROUP.findall(raw)), max_batch)
    plan = Plan.parse(raw)
    names = [i.setting.name for i in plan.instances if i.setting.name not in settings]
    if names:
        msg = (
            f"unknown runtime setting {names[0]!r} in plan {raw!r}; this server knows "
            f"{', '.join(sorted(settings))}; example: {EXAMPLE}"
        )
        raise ValueError(msg)
    return plan.with_settings(settings)


def _check_batch(what: str, total: int, max_batch: int) -> None:
    if total > max_batch:
        msg = (
            f"plan {what} serves a batch of {total}, above this server's limit of {max_batch} "
            f"(--max-batch); example: {EXAMPLE}"
        )
        raise ValueError(msg)


def _plan_for_batch(batch: Any, max_batch: int, profile: Any, cores: int) -> Plan:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        msg = f"'batch' must be a positive integer, got {str(batch)[:40]}; example: {{\"batch\": 8}}"
        raise ValueError(msg)
    _check_batch(f"for batch {batch}", batch, max_batch)
    if profile is None:
        msg = f"setting a plan by batch needs a profile; start the server with --profile FILE, or send {EXAMPLE}"
        raise ValueError(msg)
    from packrat_lab.optimizer import optimize

    return optimize(profile, cores, batch)
