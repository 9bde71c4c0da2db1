"""`packrat-lab` command line: thin over the public API; each command group lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]

# modules that each define `register(subparsers)`; one job per module
COMMAND_MODULES = (
    "packrat_lab.cli.profile_cmd",
    "packrat_lab.cli.plan_cmd",
    "packrat_lab.cli.validate_cmd",
    "packrat_lab.cli.serve_cmd",
    "packrat_lab.cli.load_cmd",
    "packrat_lab.cli.report_cmd",
    "packrat_lab.cli.demo_cmd",
    "packrat_lab.cli.export_cmd",
)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a hint to --help) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: error: MESSAGE (see PROG --help)` and exit 2."""
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with one subcommand per registered module that exists."""
    parser = OneLineErrorParser(
        prog="packrat-lab",
        description="Profile a PyTorch model on this host's cores, plan ⟨instances, threads, batch⟩, serve it.",
    )
    from packrat_lab import __version__

    parser.add_argument("--version", action="version", version=f"packrat-lab {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="WARNING",
        help="what the pool and server log to stderr: WARNING (default) worker deaths, hangs, refused switches; INFO also restarts and switches",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet
                continue
            raise
        module.register(sub)
    return parser


EXIT_FAILURE = 1  # the command ran and failed (a worker died, a port is taken, a server is gone)
EXIT_USAGE = 2  # what was typed is wrong (argparse, a bad value, a missing file): fix the command line


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: errors are one line on stderr, never a traceback; usage errors exit 2, failures 1."""
    from packrat_lab.errors import PackratError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"packrat-lab {args.command}: error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (PackratError, OSError, RuntimeError) as exc:
        print(f"packrat-lab {args.command}: failed: {_first_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"packrat-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
