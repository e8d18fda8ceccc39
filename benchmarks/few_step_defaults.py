"""Which start and lower_order_final each MR Sampler ODE should use at few NFE, measured.

For every MR Sampler ODE id (data and noise form, with and without the corrector), every start
(third order: singlestep, warmup) and lower_order_final on/off, the solver fidelity (PSNR to the
converged PF-ODE output from the same x_T, outputs clamped to [0, 1]) on the uniform-λ grid at
NFE 3–15, on the held-out 64² centre crops (2 photos, seed 0) of a shipped network.

Usage: python benchmarks/few_step_defaults.py [MODEL] > benchmarks/results/few_step_MODEL.md
"""

from __future__ import annotations

import sys
import time

import torch

from mrs_numerics import schedules
from mrs_numerics.models.registry import load_model
from mrs_numerics.solvers.base import prior_sample
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.registry import SOLVERS
from mrs_numerics.tuning.calibration import heldout_inputs
from mrs_numerics.tuning.teacher import converged_output, fidelity_db

NFES = (3, 4, 5, 6, 8, 10, 15)
SEEDS = (0,)


def say(line: str = "") -> None:
    """One line of the report on stdout."""
    sys.stdout.write(line + "\n")


def configurations():
    """(label, solver id, options) of every MR Sampler ODE setting compared."""
    for solver_id, info in SOLVERS.items():
        if info.family != "mrs" or info.method != "ode":
            continue
        starts = ("singlestep", "warmup") if info.start_extra_nfe else ("singlestep",)
        for start in starts:
            for lower in (True, False):
                options = {"start": start, "lower_order_final": lower}
                label = f"{solver_id} start={start} lof={'on' if lower else 'off'}"
                yield label, solver_id, options


def main(model: str = "denoise-data") -> None:
    started = time.perf_counter()
    net, info = load_model(model)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    problems = []
    for seed in SEEDS:
        mu = heldout_inputs(info.task, 64, seed).mu
        probe = make_sampler("mrs-ode-2-data", schedule, info.prediction)
        x_T = prior_sample(schedule, mu, probe.timesteps(1)[0], torch.Generator().manual_seed(seed))
        teacher = converged_output(probe, net, mu, x_T, 200)
        problems.append((mu, x_T, teacher.output, teacher.accuracy_db))
    rows = []
    for label, solver_id, options in configurations():
        sampler = make_sampler(solver_id, schedule, info.prediction, **options)
        row = [label]
        for nfe in NFES:
            steps, calls = sampler.steps_within(nfe)
            values = []
            for mu, x_T, target, _ in problems:
                with torch.inference_mode():
                    out = sampler.sample(net, mu, steps=steps, x_T=x_T).x
                values.append(fidelity_db(out, target))
            row.append(f"{sum(values) / len(values):.1f}" + ("" if calls == nfe else f" ({calls})"))
        rows.append(row)
    accuracy = min(p[3] for p in problems)
    say(f"# Few-step fidelity (dB) on {model}, uniform-λ grid, held-out 64² crops\n")
    say(
        f"Teacher: 200 steps of mrs-ode-3-data (its 100-step solution agrees to {accuracy:.1f} dB)."
    )
    say("A budget the setting cannot spend exactly shows the calls made in parentheses.\n")
    say("| setting | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
    say("|---|" + "---|" * len(NFES))
    for row in rows:
        say("| " + " | ".join(row) + " |")
    say(f"\n{time.perf_counter() - started:.0f} s, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
