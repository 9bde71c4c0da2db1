"""The parts every Markdown benchmark report repeats: its head (title, host, command), its end, its options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hostinfo import host_description

__all__ = ["emit", "head", "load_line", "profile_parser", "this_command"]


def this_command(script: str) -> str:
    """The command line that ran this benchmark, e.g. `python benchmarks/bench_x.py --cores 2`."""
    return "python " + " ".join([script, *sys.argv[1:]])


def head(title: str, command: str, host: str | None = None) -> list[str]:
    """A report's opening lines: the title, the host description and the command, each followed by a blank."""
    return [title, "", host_description() if host is None else host, "", f"Command: `{command}`", ""]


def load_line() -> str:
    """The closing line that says how busy the host was when the run ended."""
    return f"1-minute load average at the end: {os.getloadavg()[0]:.2f}."


def emit(lines: list[str], out: Path | None) -> None:
    """Print the report and, when `out` is given, save it there as text ending in one newline."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text.rstrip("\n") + "\n")


def profile_parser(
    doc: str, *, models: str, batches: str, cores: int, point_time: float
) -> argparse.ArgumentParser:
    """The parser of a benchmark that profiles models: models, batches, cores, time per point, warm-up, --out."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--models", default=models)
    parser.add_argument("--batches", default=batches)
    parser.add_argument("--cores", type=int, default=cores)
    parser.add_argument("--point-time", type=float, default=point_time)
    parser.add_argument("--warmup", type=int, default=3, help="warm-up iterations per profile point")
    parser.add_argument("--out", type=Path, help="also save the report here")
    return parser
