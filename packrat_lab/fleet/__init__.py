"""Many models on one host: a Fleet of pools on disjoint cores, joint planning, model selection.

Importing this package is cheap; torch loads when a fleet starts its pools.
"""

from __future__ import annotations

from packrat_lab.fleet.fleet import Answer, Fleet
from packrat_lab.fleet.selection import Selection

__all__ = ["Answer", "Fleet", "Selection"]
