"""Argument types shared by commands: each rejects bad values with a message naming a valid example."""

from __future__ import annotations

import argparse


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
