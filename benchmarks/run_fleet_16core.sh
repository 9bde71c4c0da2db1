#!/usr/bin/env bash
# The full fleet benchmark on a 16-core host, in one command: bash benchmarks/run_fleet_16core.sh
# tiny-cnn (light), resnet50 and bert (heavy) with co-run profiles; joint plan vs equal split vs
# unmanaged, plus the optimizer vs exhaustive search at 4 models x 16 cores. Results (with the
# host description) go to benchmarks/results/fleet-16core.md and fleet-optimizer-16core.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
CORES="${CORES:-16}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" benchmarks/bench_fleet_optimizer.py --cores "$CORES" --out benchmarks/results/fleet-optimizer-16core.md
"$PY" benchmarks/bench_fleet.py --models tiny-cnn,resnet50,bert --cores "$CORES" --duration 15 \
  --batches 1,2,4,8,16 --point-s 3 --max-rate 400 --corun --out benchmarks/results/fleet-16core.md
