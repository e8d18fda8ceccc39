"""Per-step cost of every sampler: solver overhead vs one network call.

For each solver id, time ``sample`` (compiled plan + steps) with

- a zero-cost model (returns zeros): the step time is the solver's own cost;
- the package's ~1M-parameter conditional UNet (random weights) at batch 1, 64×64:
  solver time = step time − network time per call (noisy on a shared CPU).

The plan (grid and float64 coefficients) is compiled once per configuration and cached by the
sampler; its one-off cost is reported separately ("plan ms"). "solver share" = zero-model time
per call / one UNet call. Medians over repeats. Prints a table; ``--json PATH`` writes the rows.
Target: solver share ≤ 2 % of one UNet call.

    python benchmarks/step_overhead.py [--device cpu|cuda] [--steps 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

from mrs_numerics import schedules
from mrs_numerics.models import ConditionalUNet
from mrs_numerics.solvers import SOLVERS, make_sampler


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(function, device, repeats):
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        function()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    schedule = schedules.cosine()
    shape = (args.batch, 3, args.size, args.size)
    mu = torch.rand(shape, device=device)
    net = ConditionalUNet.random_init_for_benchmarks(0).to(device).eval()

    def zero_model(x, t, mu_):
        return torch.zeros_like(x)

    @torch.inference_mode()
    def unet_model(x, t, mu_):
        return net(x, t.to(x.dtype), mu_)

    t = torch.full((args.batch,), 0.5, dtype=torch.float64, device=device)
    x = torch.randn(shape, device=device)
    for _ in range(3):
        unet_model(x, t, mu)
    network = _timed(lambda: unet_model(x, t, mu), device, args.repeats * 4)
    rows = []
    header = (
        f"{'solver':<16} {'nfe':>4} {'plan ms':>8} {'zero-model ms/call':>19} "
        f"{'unet ms/call':>13} {'unet − net ms':>14} {'solver share':>13}"
    )
    lines = [
        f"device={device}, batch={args.batch}, {args.size}x{args.size}, steps={args.steps}, "
        f"one UNet call = {network * 1e3:.3f} ms (median)",
        header,
    ]
    for solver_id in sorted(SOLVERS):
        gen = torch.Generator(device=device).manual_seed(0)

        def run(model, sampler, gen=gen):
            # a zero model and random weights are no network: their runs may diverge, and only
            # their time counts here
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return sampler.sample(
                    model, mu, steps=args.steps, generator=gen, allow_divergence=True
                )

        plan_ms = _timed(
            lambda solver_id=solver_id: make_sampler(solver_id, schedule, "noise").plan(
                args.steps, device=device
            ),
            device,
            args.repeats,
        )
        sampler = make_sampler(solver_id, schedule, "noise")
        nfe = run(zero_model, sampler).nfe
        run(unet_model, sampler)
        zero = _timed(lambda s=sampler: run(zero_model, s), device, args.repeats * 4) / nfe
        full = _timed(lambda s=sampler: run(unet_model, s), device, args.repeats) / nfe
        share = zero / network
        rows.append(
            {
                "solver": solver_id,
                "nfe": nfe,
                "plan_ms": plan_ms * 1e3,
                "zero_model_ms_per_call": zero * 1e3,
                "unet_ms_per_call": full * 1e3,
                "unet_minus_network_ms": (full - network) * 1e3,
                "network_ms": network * 1e3,
                "solver_share": share,
                "device": str(device),
            }
        )
        lines.append(
            f"{solver_id:<16} {nfe:>4} {plan_ms * 1e3:>8.2f} {zero * 1e3:>19.4f} "
            f"{full * 1e3:>13.3f} {(full - network) * 1e3:>14.3f} {100 * share:>12.2f}%"
        )
    print("\n".join(lines))  # noqa: T201 - a benchmark script prints its table
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
