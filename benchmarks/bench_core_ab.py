"""The serving core before and after, alternating in one run: transport overhead and a live switch.

Usage: python benchmarks/bench_core_ab.py [--base ef37298] [--rounds 3] [probe options...]

Checks the base revision out into a temporary git worktree, then runs `_core_probe.py` in fresh
processes with PYTHONPATH pointing at the base tree and at this tree in turn (base, new, base,
new, ...), so a noisy neighbour hits both alike. Prints medians over rounds side by side with
ratios (new / base; below 1 is better for times).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "_core_probe.py"


def probe(tree: Path, extra: list[str]) -> dict[str, Any]:
    """One probe run with `tree` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PACKRAT_LAB_ANNOUNCE": "0"}
    done = subprocess.run(
        [sys.executable, str(PROBE), *extra], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="ef37298")
    parser.add_argument("--rounds", type=int, default=3)
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="packrat-base-") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base],
            check=True,
        )
        try:
            runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
            for k in range(args.rounds):
                for label, tree in (("base", base_tree), ("new", ROOT)):
                    runs[label].append(probe(tree, extra))
                    print(f"round {k + 1} {label} done", file=sys.stderr, flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False
            )
    print("# Serving core A/B: base vs new, alternating in one run\n")
    print(host_description() + "\n")
    print(f"Command: `python benchmarks/bench_core_ab.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"\nBase: {args.base} (the core before the supervisor); new: this tree. {args.rounds} rounds each, alternating.\n"
    )
    print("## Transport: pool 1x1xb, medians over rounds\n")
    print("| model, b | base median ms | new median ms | new/base | base transport ms | new transport ms |")
    print("|---|---|---|---|---|---|")
    for key in runs["base"][0]["transport"]:
        b = [r["transport"][key] for r in runs["base"]]
        n = [r["transport"][key] for r in runs["new"]]
        bm, nm = med([x["median_ms"] for x in b]), med([x["median_ms"] for x in n])
        bt, nt = med([x["transport_ms"] for x in b]), med([x["transport_ms"] for x in n])
        print(f"| {key} | {bm:.3f} | {nm:.3f} | {nm / bm:.3f} | {bt:+.3f} | {nt:+.3f} |")
    print("\n## Live switches under 200 req/s open loop (mlp), medians over rounds\n")
    print(
        "| switch | base duration s | new duration s | base gap ms | new gap ms | base p99 ms | new p99 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in range(len(runs["base"][0]["switch"]["switches"])):
        row = []
        for field in ("duration_s", "gap_ms", "p99_ms"):
            for label in ("base", "new"):
                values = [r["switch"]["switches"][k][field] for r in runs[label]]
                row.append(med([v for v in values if v is not None]))
        print(
            f"| {k + 1} | {row[0]:.2f} | {row[1]:.2f} | {row[2]:.1f} | {row[3]:.1f} | {row[4]:.1f} | {row[5]:.1f} |"
        )
    for label in ("base", "new"):
        totals = {f: sum(r["switch"][f] for r in runs[label]) for f in ("sent", "answered", "failed", "lost")}
        steady = med([r["switch"]["median_ms"] for r in runs[label]])
        print(
            f"\n{label}: sent {totals['sent']}, answered {totals['answered']}, failed {totals['failed']}, lost {totals['lost']}; median latency {steady:.2f} ms."
        )


if __name__ == "__main__":
    main()
