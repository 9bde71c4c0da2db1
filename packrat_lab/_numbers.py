"""One rule for a duration, rate or objective a user types or sends: a finite number above zero."""

from __future__ import annotations

import math

__all__ = ["positive_number"]


def positive_number(value: object) -> bool:
    """Whether `value` is an int or float (never a bool), finite and above 0: 50 and 0.5 yes; 0, -1, nan, '5' no."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )
