"""Optional extras ([grpc], [ray]): import them on first use, or say which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from packrat_lab.errors import PackratError

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(PackratError, ImportError):
    """A feature needs an optional dependency that is not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`module` imported, or MissingExtraError naming the pip command that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{feature} needs {exc.name or module!r}; install it with: pip install 'packrat_lab[{extra}]'"
        raise MissingExtraError(msg) from None
