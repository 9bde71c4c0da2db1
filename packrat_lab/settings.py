"""Runtime settings: environment that must be set before torch starts (wait policy, allocator)."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ALLOCATORS",
    "DEFAULT",
    "PASSIVE",
    "RuntimeSetting",
    "allocator_settings",
    "builtin_settings",
    "known_settings",
    "resolve_settings",
    "unavailable_settings",
]


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


# name -> (shared library preloaded in its place of glibc malloc, the Debian package that ships it)
ALLOCATORS: dict[str, tuple[str, str]] = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
}


def _library_dirs() -> list[str]:
    """Where Debian and other distributions keep shared libraries, multiarch first."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"] if multiarch else []
    return [*dirs, "/usr/lib64", "/usr/lib", "/lib64", "/lib"]


def find_library(soname: str) -> str | None:
    """Absolute path of a shared library by file name, or None when it is not installed."""
    for folder in _library_dirs():
        path = os.path.join(folder, soname)
        if os.path.isfile(path):
            return path
    return None


def allocator_settings() -> tuple[dict[str, RuntimeSetting], dict[str, str]]:
    """Allocator settings whose library is installed, and why each missing one is unavailable."""
    found: dict[str, RuntimeSetting] = {}
    missing: dict[str, str] = {}
    for name, (soname, package) in ALLOCATORS.items():
        path = find_library(soname)
        if path is None:
            missing[name] = f"{soname} is not installed; example: apt-get install -y {package}"
        else:
            found[name] = RuntimeSetting.from_env(name, {"LD_PRELOAD": path})
    return found, missing


def builtin_settings() -> dict[str, RuntimeSetting]:
    """The settings every profile searches: OpenMP's default wait policy and PASSIVE."""
    return {DEFAULT.name: DEFAULT, PASSIVE.name: PASSIVE}


def known_settings() -> dict[str, RuntimeSetting]:
    """Every setting selectable by name here: the built-in ones and the installed allocators."""
    return {**builtin_settings(), **allocator_settings()[0]}


def unavailable_settings() -> dict[str, str]:
    """Settings known by name that this host cannot run, with the reason."""
    return allocator_settings()[1]


def resolve_settings(
    settings: Mapping[str, Mapping[str, str]] | list[str] | None = None,
) -> dict[str, RuntimeSetting]:
    """Built-in settings plus the user's extra ones (name -> env), or a subset by name."""
    if settings is None:
        return builtin_settings()
    known = known_settings()
    if isinstance(settings, list):
        for name in settings:
            if name in known:
                continue
            reason = unavailable_settings().get(name)
            if reason is not None:
                msg = f"runtime setting {name!r} is unavailable on this host: {reason}"
                raise ValueError(msg)
            msg = f"unknown runtime setting {name!r}; valid: {sorted(known)} or a mapping like {{'spin': {{'OMP_WAIT_POLICY': 'ACTIVE'}}}}"
            raise ValueError(msg)
        return {s: known[s] for s in settings}
    merged = builtin_settings()
    for name, env in settings.items():
        merged[name] = RuntimeSetting.from_env(name, env)
    return merged
