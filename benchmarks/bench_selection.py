"""Exp3 model selection on synthetic rewards: how fast it converges to the best model.

Run: PYTHONPATH=. python benchmarks/bench_selection.py [--out benchmarks/results/selection.md]
Three "models" answer correctly with probability 0.5, 0.6 and 0.8 (reward 1 when correct); Exp3
(the Fleet's `policy="exp3"` learner, γ = 0.1) picks one per request and learns from the reward.
Side by side per window of requests: share of picks that went to the best model and mean reward,
against always-random selection, averaged over 20 seeds. Pure Python: no model runs.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description
from markdown_report import emit

from packrat_lab.fleet.selection import Exp3

ARMS = {"m50": 0.5, "m60": 0.6, "m80": 0.8}
WINDOWS = ((0, 100), (100, 500), (500, 1000), (1000, 2000), (2000, 4000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--gamma", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    total = WINDOWS[-1][1]
    best_share = [0.0] * len(WINDOWS)
    reward = [0.0] * len(WINDOWS)
    random_reward = [0.0] * len(WINDOWS)
    for seed in range(args.seeds):
        learner = Exp3(list(ARMS), gamma=args.gamma, seed=seed)
        world = random.Random(1000 + seed)
        baseline = random.Random(2000 + seed)
        picks, rewards, base = [], [], []
        for k in range(total):
            arm = learner.choose(str(k))
            r = 1.0 if world.random() < ARMS[arm] else 0.0
            learner.feedback(str(k), r)
            picks.append(arm)
            rewards.append(r)
            other = baseline.choice(list(ARMS))
            base.append(1.0 if world.random() < ARMS[other] else 0.0)
        for w, (lo, hi) in enumerate(WINDOWS):
            best_share[w] += sum(p == "m80" for p in picks[lo:hi]) / (hi - lo) / args.seeds
            reward[w] += sum(rewards[lo:hi]) / (hi - lo) / args.seeds
            random_reward[w] += sum(base[lo:hi]) / (hi - lo) / args.seeds
    lines = [
        "# Exp3 model selection: convergence on synthetic rewards",
        "",
        host_description(),
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_selection.py --seeds {args.seeds} --gamma {args.gamma:g}`",
        "",
        (
            f"Models answer correctly with probability {', '.join(f'{n} {p:g}' for n, p in ARMS.items())}; "
            f"mean over {args.seeds} seeds."
        ),
        "",
        "| requests | picks of the best model | mean reward (Exp3) | mean reward (random) | Exp3 / random |",
        "|---|---:|---:|---:|---:|",
    ]
    for w, (lo, hi) in enumerate(WINDOWS):
        lines.append(
            f"| {lo + 1}–{hi} | {best_share[w]:.1%} | {reward[w]:.3f} | {random_reward[w]:.3f} | "
            f"{reward[w] / random_reward[w]:.2f}× |"
        )
    lines.append("")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
