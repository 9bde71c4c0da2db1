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
        wanted = (
            [int(b) for b in os.environ["BATCHES"].split(",")] if os.environ["BATCHES"] else profile.batches
        )
        # traced here, not workload_of_profile: a TorchScript profile names its profiler's temp file,
        # which is gone once that process exits
        seq = (
            {"seq_len": int(os.environ["SEQ_LEN"])}
            if os.environ["SEQ_LEN"] and model in ("gpt2", "bert")
            else {}
        )
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
