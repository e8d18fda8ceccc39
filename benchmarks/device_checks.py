"""Accelerator checks: every solver samples on the device as on the CPU, in every precision.

For each solver id: the same start and the same Gaussian noise (drawn on the CPU in float64)
on the Gaussian test problem; the device result in float64, float32, float16 and bfloat16 is
compared with the CPU float64 result. Prints a table; exits non-zero on a mismatch.

    python benchmarks/device_checks.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys

import torch

from mrs_numerics import schedules
from mrs_numerics.solvers import SOLVERS, make_sampler

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 5e-2, torch.bfloat16: 3e-1}
NOISE_SDE_FACTOR = 10
"""Noise-form SDE weights grow like e^h and amplify rounding: half-precision tolerance × 10."""


def _problem(device, dtype, schedule):
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, 16, 16, generator=gen, dtype=torch.float64)
    m = mu + 0.5 * torch.randn(mu.shape, generator=gen, dtype=torch.float64)
    v = 0.25

    def model(x, t, mu_):
        shape = (-1,) + (1,) * (x.dim() - 1)
        a = schedule.alpha(t.double().cpu()).reshape(shape).to(x.device, torch.float64)
        s = schedule.sigma(t.double().cpu()).reshape(shape).to(x.device, torch.float64)
        mm, mu64 = m.to(x.device), mu.to(x.device)
        x64 = x.double()
        data = mm + a * v / (a**2 * v + s**2) * (x64 - mu64 - a * (mm - mu64))
        return data.to(x.dtype)

    x_T = mu + schedule.sigma(torch.tensor(1.0, dtype=torch.float64)) * torch.randn(
        mu.shape, generator=gen, dtype=torch.float64
    )
    return mu.to(device, dtype), x_T.to(device, dtype), model


def _noise_fn(device):
    def noise(step, shape, dtype, _device):
        gen = torch.Generator().manual_seed(1000 + step)
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype)

    return noise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    schedule = schedules.cosine()
    failures = 0
    lines = [f"{'solver':<16} " + " ".join(f"{str(d).split('.')[-1]:>10}" for d in TOLERANCE)]
    for solver_id in sorted(SOLVERS):
        mu, x_T, model = _problem("cpu", torch.float64, schedule)
        sampler = make_sampler(solver_id, schedule, "data", noise_fn=_noise_fn("cpu"))
        reference = sampler.sample(model, mu, steps=args.steps, x_T=x_T).x
        cells = []
        for dtype, tolerance in TOLERANCE.items():
            mu_d, x_T_d, model_d = _problem(device, dtype, schedule)
            sampler = make_sampler(solver_id, schedule, "data", noise_fn=_noise_fn(device))
            result = sampler.sample(model_d, mu_d, steps=args.steps, x_T=x_T_d).x
            error = float((result.double().cpu() - reference).abs().max())
            if (
                solver_id.startswith("mrs-sde")
                and solver_id.endswith("noise")
                and dtype
                in (
                    torch.float16,
                    torch.bfloat16,
                )
            ):
                tolerance *= NOISE_SDE_FACTOR
            ok = bool(torch.isfinite(result).all()) and error <= tolerance and result.dtype == dtype
            failures += not ok
            cells.append(f"{error:>9.2e}{'' if ok else '!'}")
        lines.append(f"{solver_id:<16} " + " ".join(f"{c:>10}" for c in cells))
    print("\n".join(lines))  # noqa: T201 - a check script prints its table
    print(f"max |device − cpu float64| per dtype; '!' marks a failure; failures: {failures}")  # noqa: T201
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
