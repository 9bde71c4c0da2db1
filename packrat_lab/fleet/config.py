"""A fleet from text: `fleet.toml` or repeated `--model NAME=MODEL:PLAN`, checked with one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packrat_lab.fleet.selection import Selection

__all__ = ["FleetConfig", "load_fleet_toml", "parse_model_specs"]

_SPEC_EXAMPLE = "--model small=tiny-cnn:1x1x4"
_TOML_EXAMPLE = '[models.small]\\nmodel = "tiny-cnn"\\nplan = "1x1x4"'


@dataclass
class FleetConfig:
    """What `Fleet(...)` needs: models (name -> (model, plan) or Selection) and profile files."""

    models: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def load_profiles(self) -> dict[str, Any]:
        """The profile files, loaded."""
        from packrat_lab.profiling.table import load_profile

        return {name: load_profile(path) for name, path in self.profiles.items()}


def parse_model_specs(specs: Sequence[str]) -> FleetConfig:
    """`NAME=MODEL:PLAN` strings (MODEL may be a path; the plan follows the last ':')."""
    config = FleetConfig()
    for spec in specs:
        name, eq, rest = spec.partition("=")
        model, colon, plan = rest.rpartition(":")
        if not (eq and colon and name and model and plan):
            msg = f"--model {spec!r} is not NAME=MODEL:PLAN; example: {_SPEC_EXAMPLE}"
            raise ValueError(msg)
        if name in config.models:
            msg = f"--model names {name!r} twice; give each model its own name, e.g. {_SPEC_EXAMPLE}"
            raise ValueError(msg)
        config.models[name] = (model, plan)
    return config


def load_fleet_toml(path: str | Path) -> FleetConfig:
    """[models.NAME] model/plan/profile tables, [groups.NAME] members/policy/slo_ms/seed, [fleet] options."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        msg = "reading a fleet file needs Python 3.11+ (tomllib); on 3.10 use --model NAME=MODEL:PLAN options"
        raise ValueError(msg) from None
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = (
            f"cannot read fleet file {str(path)!r}: {str(exc).splitlines()[0]}; example file: {_TOML_EXAMPLE}"
        )
        raise ValueError(msg) from None
    unknown = sorted(set(data) - {"models", "groups", "fleet"})
    models = data.get("models")
    if unknown or not isinstance(models, dict) or not models:
        msg = f"fleet file {str(path)!r} needs [models.NAME] tables (and optionally [groups.NAME], [fleet]), got sections {sorted(data)}; example: {_TOML_EXAMPLE}"
        raise ValueError(msg)
    config = FleetConfig()
    for name, table in models.items():
        if (
            not isinstance(table, dict)
            or not {"model", "plan"} <= set(table)
            or set(table) - {"model", "plan", "profile"}
        ):
            msg = f"[models.{name}] takes model, plan and optionally profile, got {sorted(table) if isinstance(table, dict) else table!r}; example: {_TOML_EXAMPLE}"
            raise ValueError(msg)
        config.models[name] = (str(table["model"]), str(table["plan"]))
        if "profile" in table:
            config.profiles[name] = str(path.parent / str(table["profile"]))
    for name, table in (data.get("groups") or {}).items():
        try:
            config.models[name] = Selection(
                tuple(table["members"]),
                policy=str(table.get("policy", "exp3")),
                slo_ms=table.get("slo_ms"),
                seed=table.get("seed"),
            )
        except (KeyError, TypeError) as exc:
            msg = f'[groups.{name}] needs members = [...] (and optionally policy, slo_ms, seed): {exc}; example: members = ["small", "big"]'
            raise ValueError(msg) from None
    config.options = dict(data.get("fleet") or {})
    return config
