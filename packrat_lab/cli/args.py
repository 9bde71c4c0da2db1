"""Argument types shared by commands: each rejects bad values with a message naming a valid example."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive_int(text: str) -> int:
    """argparse type for a count or batch size >= 1."""
    try:
        value = int(text)
    except ValueError:
        msg = f"{text!r} is not an integer; example: 8"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"{value} must be at least 1; example: 8"
        raise argparse.ArgumentTypeError(msg)
    return value


def batch_list(text: str) -> list[int]:
    """argparse type for '1,2,4,8' (comma-separated batch sizes)."""
    return [positive_int(part) for part in text.split(",") if part.strip()]


def positive_float(example: str) -> Callable[[str], float]:
    """argparse type factory for seconds or rates > 0; the error shows `example`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            msg = f"{text!r} is not a number; example: {example}"
            raise argparse.ArgumentTypeError(msg) from None
        if not value > 0:
            msg = f"{value} must be positive; example: {example}"
            raise argparse.ArgumentTypeError(msg)
        return value

    parse.__name__ = "positive number"
    return parse
