"""Compile time of a sampler's plan against its number of steps: linear, at ≤ 0.1 ms per step.

A plan holds the grid and every step's float64 coefficients. Each generated coefficient function
is evaluated once on the whole grid (``mrs_numerics.solvers.kernels.CoefficientBatch``), so the
compile time is a fixed part (the grid's t(λ) inversions) plus a small cost per step (Python
objects for the step and its 0-dim coefficients). For every solver id this script times
``sampler.plan(N)`` (best of ``--repeats``, uncached) at N = 10, 100, 1000 and 4000 and reports
the per-step cost as the slope between the two largest N.

    python benchmarks/plan_compile.py [--repeats 5] [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from mrs_numerics import schedules
from mrs_numerics.solvers import SOLVERS, make_sampler
from mrs_numerics.solvers.instability import InstabilityWarning

STEPS = (10, 100, 1000, 4000)
TARGET_MS_PER_STEP = 0.1


def best_seconds(sampler, steps: int, repeats: int) -> float:
    """The fastest of ``repeats`` uncached compilations of ``steps`` steps."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sampler.plan(steps)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    schedule = schedules.cosine()
    header = (
        f"{'solver':<22}"
        + "".join(f"{f'{n} steps ms':>15}" for n in STEPS)
        + f"{'ms/step':>10}  ≤ {TARGET_MS_PER_STEP} ms/step"
    )
    lines = [f"plan() compile time, CPU, {args.threads} thread(s), best of {args.repeats}", header]
    worst = 0.0
    for solver_id in sorted(SOLVERS):
        sampler = make_sampler(solver_id, schedule, "data")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InstabilityWarning)  # the measured low-NFE advice
            seconds = [best_seconds(sampler, n, args.repeats) for n in STEPS]
        per_step = (seconds[-1] - seconds[-2]) / (STEPS[-1] - STEPS[-2]) * 1e3
        worst = max(worst, per_step)
        verdict = "yes" if per_step <= TARGET_MS_PER_STEP else "NO"
        lines.append(
            f"{solver_id:<22}"
            + "".join(f"{s * 1e3:>15.1f}" for s in seconds)
            + f"{per_step:>10.3f}  {verdict}"
        )
    lines.append(f"worst per-step cost: {worst:.3f} ms")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if worst <= TARGET_MS_PER_STEP else 1


if __name__ == "__main__":
    raise SystemExit(main())
