"""Make a running fleet visible to JupyterLab: one registry entry with a core map per model."""

from __future__ import annotations

from typing import Any

__all__ = ["announce_fleet"]


def announce_fleet(fleet: Any) -> Any:
    """Placeholder until the fleet server lands: nothing announced."""
    return None
