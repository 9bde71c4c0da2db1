"""Jupyter server extension: the /packrat-lab/ routes the JupyterLab sidebar and profile viewer call."""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Tell jupyter_server which module holds the loader."""
    return [{"module": "packrat_lab.jupyter_server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers (tornado imported here, so `import packrat_lab` stays light)."""
    from packrat_lab.jupyter_server.handlers import setup_handlers

    setup_handlers(serverapp.web_app)
    serverapp.log.info("packrat_lab server extension loaded: /packrat-lab/")
