#!/usr/bin/env bash
# One command for a 16-core host: profile the Packrat paper's four models at its batch sizes, plan,
# validate (plan vs fat, instances running together) and compare with the paper's mean speedups.
#
# Usage: benchmarks/run_16core.sh [--quick] [--force] [--out DIR] [--models m,m] [--max-batch N]
#                                 [--batches b,b] [--point-time S] [--time-budget S] [--repeats N]
#   --quick        tiny settings that finish in minutes on any host (proves the script end to end;
#                  its figures say nothing about the paper's regime)
#   --force        run on a host with fewer than 16 usable cores (plans then use what there is)
#   --out DIR      results folder (default benchmarks/results/16core-<UTC time>[-quick])
#   --models       default resnet50,inception_v3,gpt2,bert
#   --max-batch N  largest profiled batch, powers of two (default 1024, the paper's grid)
#   --batches      batch sizes B to plan and validate (default: every profiled batch)
#   --point-time S / --time-budget S: profiler caps per point / per model (default 10 s / none)
#   --repeats N    timed batches per plan in validation (default 5)
# The full grid (threads 1..16 × batches 1..1024 × 4 models) is hours of profiling: the paper's
# own grid. Limit it with --max-batch / --time-budget / --batches when time is short.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARGS="$*"
QUICK=0
FORCE=0
OUT=""
MODELS="resnet50,inception_v3,gpt2,bert"
MAX_BATCH=1024
BATCHES=""
POINT_TIME=10
TIME_BUDGET=""
REPEATS=5
SEQ_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --force) FORCE=1 ;;
    --out) OUT=$2; shift ;;
    --models) MODELS=$2; shift ;;
    --max-batch) MAX_BATCH=$2; shift ;;
    --batches) BATCHES=$2; shift ;;
    --point-time) POINT_TIME=$2; shift ;;
    --time-budget) TIME_BUDGET=$2; shift ;;
    --repeats) REPEATS=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run_16core.sh: unknown option '$1'; example: benchmarks/run_16core.sh --quick" >&2; exit 2 ;;
  esac
  shift
done

# Set up: reuse the checkout's venv, else `make setup` (torch CPU wheel + the package, editable)
PY=${PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "== no $PY: running make setup"
  make -C "$ROOT" setup
  PY=$ROOT/.venv/bin/python
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1

USABLE=$("$PY" -c 'from packrat_lab.host import detect_host; print(detect_host().usable_cores)')
if [ "$USABLE" -lt 16 ] && [ "$FORCE" -eq 0 ] && [ "$QUICK" -eq 0 ]; then
  echo "This host has $USABLE usable cores; the paper's figures are for one 16-core socket, so a run here" >&2
  echo "would not be comparable. Run on a 16-core machine, or add --force (or --quick to check the script)." >&2
  exit 3
fi
CORES=$(( USABLE < 16 ? USABLE : 16 ))

PROFILE_ARGS=(--cores "$CORES" --max-batch "$MAX_BATCH" --settings default --torchscript --point-time "$POINT_TIME")
[ -n "$TIME_BUDGET" ] && PROFILE_ARGS+=(--time-budget "$TIME_BUDGET")
if [ "$QUICK" -eq 1 ]; then
  PROFILE_ARGS=(--cores "$CORES" --batch 1,2 --settings default --torchscript --point-time 1 --time-budget 40)
  SEQ_ARGS=(--seq-len 32)
  BATCHES=${BATCHES:-1,2}
  REPEATS=2
fi

STAMP=$(date -u +%Y%m%dT%H%MZ)
OUT=${OUT:-$ROOT/benchmarks/results/16core-$STAMP$([ "$QUICK" -eq 1 ] && echo -quick)}
mkdir -p "$OUT/profiles" "$OUT/logs"
START=$(date +%s)
{
  echo "# run_16core.sh $([ "$QUICK" -eq 1 ] && echo '(quick mode: tiny settings, not the paper regime)')"
  echo
  (cd "$ROOT/benchmarks" && "$PY" -c 'from hostinfo import host_description; print(host_description())')
  echo
  echo "CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2 | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_bf16|amx_tile)$' | tr '\n' ' ')"
  echo
  echo "Command: \`benchmarks/run_16core.sh $ARGS\` (quick=$QUICK force=$FORCE) — cores used T=$CORES"
  echo "Profile flags: \`${PROFILE_ARGS[*]} ${SEQ_ARGS[*]}\`"
} > "$OUT/host.md"
cat "$OUT/host.md"

IFS=, read -r -a MODEL_LIST <<< "$MODELS"
for model in "${MODEL_LIST[@]}"; do
  extra=()
  case "$model" in gpt2|bert) extra=("${SEQ_ARGS[@]}") ;; esac
  if [ -s "$OUT/profiles/$model.packrat.json" ]; then  # --out an earlier run's folder: resume
    echo "== profile $model: reusing $OUT/profiles/$model.packrat.json"
    continue
  fi
  echo "== profile $model ($(date -u +%H:%M:%S) UTC)"
  "$PY" -m packrat_lab.cli profile "$model" "${PROFILE_ARGS[@]}" "${extra[@]}" \
    -o "$OUT/profiles/$model.packrat.json" > "$OUT/logs/profile-$model.log" 2>&1 \
    || { echo "profile $model failed; see $OUT/logs/profile-$model.log" >&2; exit 1; }
  tail -n 3 "$OUT/logs/profile-$model.log"
done

echo "== plan + validate ($(date -u +%H:%M:%S) UTC)"
# a file, not stdin: pool workers are spawned and re-import the main module
cat > "$OUT/logs/summarize.py" <<'EOF'
"""Plan each model at each B, validate plan vs fat together, and set the mean speedups beside the paper's."""

import os
import statistics
from pathlib import Path

from packrat_lab.comparison import compare_plans
from packrat_lab.profiling.table import load_profile
from packrat_lab.validation import validate
from packrat_lab.workloads.registry import get_workload

PAPER = {"resnet50": 1.53, "inception_v3": 1.52, "gpt2": 1.18, "bert": 1.13}


def fat_over_plan(profile, cores, batch):
    """(packrat plan, fat plan, expected speedup) from a profile."""
    plans = compare_plans(profile, cores, batch)
    fat = next(p for p in plans if p.name == "fat")
    return plans[0], fat, fat.expected_latency_ms / plans[0].expected_latency_ms


def main() -> None:
    out, cores, repeats = Path(os.environ["OUT"]), int(os.environ["CORES"]), int(os.environ["REPEATS"])
    ref_dir = Path(os.environ["ROOT"]).parent / "shared" / "reference-profiles"
    rows, summary = [], []
    for model in os.environ["MODELS"].split(","):
        profile = load_profile(out / "profiles" / f"{model}.packrat.json")
        wanted = [int(b) for b in os.environ["BATCHES"].split(",")] if os.environ["BATCHES"] else profile.batches
        # traced here, not workload_of_profile: a TorchScript profile names its profiler's temp file,
        # which is gone once that process exits
        seq = {"seq_len": int(os.environ["SEQ_LEN"])} if os.environ["SEQ_LEN"] and model in ("gpt2", "bert") else {}
        workload = get_workload(model, torchscript=True, **seq)
        expected, measured = [], []
        for batch in wanted:
            packrat, fat, exp = fat_over_plan(profile, cores, batch)
            report = validate(workload, [packrat, fat], repeats=repeats, rounds=2)
            (out / "logs" / f"validate-{model}-B{batch}.md").write_text(report.to_markdown() + "\n")
            meas = report.speedup(packrat.name) or float("nan")
            expected.append(exp)
            measured.append(meas)
            rows.append(
                f"| {model} | {batch} | {packrat.text} | {fat.text} | {packrat.expected_latency_ms:.2f} | "
                f"{report.by_name(packrat.name).median_ms:.2f} | {report.by_name('fat').median_ms:.2f} | "
                f"{exp:.2f}× | {meas:.2f}× |"
            )
        ref_csv = ref_dir / f"packrat-paper-{model}.csv"
        ref = "n/a"
        if ref_csv.exists() and cores == 16:  # the paper's own profile through our optimizer, same batches
            paper_profile = load_profile(ref_csv)
            ref = f"{statistics.mean(fat_over_plan(paper_profile, 16, b)[2] for b in wanted):.2f}×"
        paper = PAPER.get(model, float("nan"))
        summary.append(
            f"| {model} | {','.join(map(str, wanted))} | {statistics.mean(expected):.2f}× | "
            f"{statistics.mean(measured):.2f}× | {ref} | {paper:.2f}× | {statistics.mean(measured) / paper:.2f} |"
        )
    print(f"## Per model (T={cores}; speedup = fat latency / plan latency, mean over the batch sizes)\n")
    print(
        "| model | batch sizes | expected (our profile) | measured (together, validate) | "
        "paper's profile via our optimizer | paper | measured / paper |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(summary))
    print("\n## Per batch size\n")
    print(
        "| model | B | plan | fat | plan expected ms | plan measured ms | fat measured ms | "
        "expected speedup | measured speedup |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
EOF
SEQ_LEN="${SEQ_ARGS[1]:-}" OUT="$OUT" CORES="$CORES" BATCHES="$BATCHES" REPEATS="$REPEATS" MODELS="$MODELS" ROOT="$ROOT" \
  "$PY" "$OUT/logs/summarize.py" 2> "$OUT/logs/validate.log" | tee "$OUT/summary-body.md"

ELAPSED=$(( $(date +%s) - START ))
{
  cat "$OUT/host.md"
  echo
  echo "Took ${ELAPSED} s; 1-minute load average at the end $(cut -d' ' -f1 /proc/loadavg)."
  echo
  cat "$OUT/summary-body.md"
} > "$OUT/summary.md"
rm -f "$OUT/summary-body.md"
echo "== done in ${ELAPSED} s: $OUT/summary.md"
