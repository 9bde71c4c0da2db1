"""Threading-runtime settings: environment that must be set before torch starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT", "PASSIVE", "RuntimeSetting", "builtin_settings", "resolve_settings"]


@dataclass(frozen=True)
class RuntimeSetting:
    """A named set of environment variables for one worker (e.g. OMP_WAIT_POLICY=PASSIVE)."""

    name: str
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str]) -> RuntimeSetting:
        """Build a setting from a plain mapping, sorted so equal settings compare equal."""
        return cls(name, tuple(sorted((str(k), str(v)) for k, v in env.items())))

    @property
    def env_dict(self) -> dict[str, str]:
        """The environment as a dict, ready to merge into os.environ of a child."""
        return dict(self.env)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"name": self.name, "env": self.env_dict}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RuntimeSetting:
        """Inverse of to_dict."""
        env = data.get("env", {})
        if not isinstance(env, Mapping):
            msg = f"setting env must be a mapping, got {env!r}; example: {{'OMP_WAIT_POLICY': 'PASSIVE'}}"
            raise TypeError(msg)
        return cls.from_env(str(data["name"]), env)


DEFAULT = RuntimeSetting("default")
PASSIVE = RuntimeSetting.from_env("passive", {"OMP_WAIT_POLICY": "PASSIVE"})


def builtin_settings() -> dict[str, RuntimeSetting]:
    """The settings every profile searches: OpenMP's default wait policy and PASSIVE."""
    return {DEFAULT.name: DEFAULT, PASSIVE.name: PASSIVE}


def resolve_settings(
    settings: Mapping[str, Mapping[str, str]] | list[str] | None = None,
) -> dict[str, RuntimeSetting]:
    """Built-in settings plus the user's extra ones (name -> env), or a subset by name."""
    known = builtin_settings()
    if settings is None:
        return known
    if isinstance(settings, list):
        unknown = [s for s in settings if s not in known]
        if unknown:
            msg = f"unknown runtime setting {unknown[0]!r}; valid: {sorted(known)} or a mapping like {{'spin': {{'OMP_WAIT_POLICY': 'ACTIVE'}}}}"
            raise ValueError(msg)
        return {s: known[s] for s in settings}
    merged = dict(known)
    for name, env in settings.items():
        merged[name] = RuntimeSetting.from_env(name, env)
    return merged
