"""The serving core before and after, alternating in one run: transport overhead and a live switch.

Usage: python benchmarks/bench_core_ab.py [--base ef37298] [--rounds 5] [--models mlp,tiny-cnn] [--batches 1,8,32]

Checks the base revision out into a temporary git worktree, then, for each measurement and each
round, runs `_core_probe.py` in a fresh process under the base tree and under this tree back to
back (the order flips every round), so both see the same moment of a noisy host. Reports the
median over rounds of each side and the median of the per-round ratios new/base (below 1: the new
core is faster).
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


def probe(tree: Path, args: list[str]) -> dict[str, Any]:
    """One probe run with `tree` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PACKRAT_LAB_ANNOUNCE": "0"}
    done = subprocess.run(
        [sys.executable, str(PROBE), *args], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def paired(trees: dict[str, Path], args: list[str], rounds: int) -> list[dict[str, dict[str, Any]]]:
    """`rounds` pairs of probe runs, base and new back to back, the order flipping each round."""
    out = []
    for k in range(rounds):
        order = ("base", "new") if k % 2 == 0 else ("new", "base")
        out.append({label: probe(trees[label], args) for label in order})
        print(f"{' '.join(args)}: round {k + 1} done", file=sys.stderr, flush=True)
    return out


def summary(runs: list[dict[str, dict[str, Any]]], key: Any) -> tuple[float, float, float, str]:
    """Median base, median new, median of per-round new/base, and the ratios' range, for one figure."""
    base = [key(r["base"]) for r in runs]
    new = [key(r["new"]) for r in runs]
    ratios = [n / b for b, n in zip(base, new, strict=True) if b]
    spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "—"
    return statistics.median(base), statistics.median(new), statistics.median(ratios), spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="ef37298")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="mlp,tiny-cnn")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--iters", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="packrat-base-") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base],
            check=True,
        )
        trees = {"base": base_tree, "new": ROOT}
        try:
            transport = {
                (m, b): paired(
                    trees,
                    ["transport", "--model", m, "--batch", str(b), "--iters", str(args.iters)],
                    args.rounds,
                )
                for m in args.models.split(",")
                for b in (int(x) for x in args.batches.split(","))
            }
            switch = paired(trees, ["switch"], args.rounds)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False
            )
    loads = [r[label]["load"] for runs in [*transport.values(), switch] for r in runs for label in r]
    print("# Serving core A/B: base vs new, alternating in one run\n")
    print(host_description() + "\n")
    print(f"Command: `python benchmarks/bench_core_ab.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"\nBase: {args.base} (the core before the supervisor); new: this tree. {args.rounds} rounds, each a "
        f"base and a new run back to back (order flipping). 1-minute load average during the runs "
        f"{min(loads):.1f}–{max(loads):.1f} on 2 CPUs.\n"
    )
    print("## Transport: pool 1x1xb, `pool.infer` latency\n")
    print(
        "| model, b | base median ms | new median ms | median new/base | base transport ms | new transport ms |"
    )
    print("|---|---|---|---|---|---|")
    for (model, batch), runs in transport.items():
        bm, nm, ratio = summary(runs, lambda r: r["median_ms"])
        bt, nt, _ = summary(runs, lambda r: r["transport_ms"])
        print(f"| {model}, b={batch} | {bm:.3f} | {nm:.3f} | {ratio:.3f} | {bt:+.3f} | {nt:+.3f} |")
    print("\n## Live switches under 200 req/s open loop (mlp, 2x1x4 → 1x2x8@passive → 2x1x4)\n")
    print(
        "| switch | base duration s | new duration s | base gap ms | new gap ms | base p99 ms | new p99 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in range(len(switch[0]["base"]["switches"])):
        cells = []
        for field in ("duration_s", "gap_ms", "p99_ms"):
            b, n, _, _ = summary(switch, lambda r, f=field, k=k: r["switches"][k][f] or 0.0)
            cells += [b, n]
        print(
            f"| {k + 1} | {cells[0]:.2f} | {cells[1]:.2f} | {cells[2]:.1f} | {cells[3]:.1f} | {cells[4]:.1f} | {cells[5]:.1f} |"
        )
    for label in ("base", "new"):
        totals = {f: sum(r[label][f] for r in switch) for f in ("sent", "answered", "failed", "lost")}
        print(
            f"\n{label}: sent {totals['sent']}, answered {totals['answered']}, failed {totals['failed']}, "
            f"lost {totals['lost']}; median latency {statistics.median(r[label]['median_ms'] for r in switch):.2f} ms."
        )


if __name__ == "__main__":
    main()
