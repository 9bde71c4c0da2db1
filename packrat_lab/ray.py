"""`packrat_lab.ray.deploy`: serve a plan past one host on Ray Serve (the `[ray]` extra).

Importing this module is cheap; Ray loads on the first call. Absolute imports only: `import ray`
below means the Ray package, never this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from packrat_lab.ray_serve import PackratDeployment

__all__ = ["deploy"]


def deploy(model: Any, plan_or_profile: Any, **options: Any) -> PackratDeployment:
    """Run a Ray Serve app whose replicas are packrat Pools pinned to their node's cores; see ray_serve.deploy."""
    from packrat_lab.extras import require

    require("ray.serve", "ray", "packrat_lab.ray.deploy")
    from packrat_lab.ray_serve import deploy as deploy_on_ray

    return deploy_on_ray(model, plan_or_profile, **options)
