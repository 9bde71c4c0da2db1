"""Cross-check one end-to-end figure: a plan served by a real pool, its latency and error vs eager fp32.

Usage: PACKRAT_LAB_CACHE=DIR python benchmarks/check_pool_backend.py [--model resnet50]
       [--plans 2x1x4:openvino-bf16,1x1x4:openvino-bf16,1x1x1:openvino-bf16] [--repeats 8]

Each plan gets its own pool, three warm-up calls and --repeats timed calls on one seeded batch of
the plan's total size; prints the median, every sample, the output's error against eager fp32 and
the 1-minute load average. Point PACKRAT_LAB_CACHE at a bench_backends cache to skip conversion.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    import torch

    from packrat_lab import Pool
    from packrat_lab.plan import Plan
    from packrat_lab.workloads.backends.accuracy import compare_outputs
    from packrat_lab.workloads.registry import get_workload

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--plans", default="2x1x4:openvino-bf16,1x1x4:openvino-bf16,1x1x1:openvino-bf16")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    workload = get_workload(args.model)
    plans = [Plan.parse(text) for text in args.plans.split(",")]
    largest = workload.example_input(max(p.total_batch for p in plans), seed=11)
    with torch.inference_mode():
        reference = workload.build()(largest)
    for plan in plans:
        x = largest[: plan.total_batch]
        with Pool(workload, plan, announce=False) as pool:
            for _ in range(3):
                pool.infer(x)
            samples = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                out = pool.infer(x)
                samples.append((time.perf_counter() - started) * 1000.0)
        error = compare_outputs(reference[: plan.total_batch], out).describe()
        print(
            f"{plan.text}: median {statistics.median(samples):.2f} ms "
            f"({', '.join(f'{s:.1f}' for s in samples)}); {error}; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
