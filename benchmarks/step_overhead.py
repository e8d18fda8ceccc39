"""Per-step cost of every sampler: solver overhead vs one network call.

For each solver id, time ``sample`` (compiled plan + steps) with

- a zero-cost model (returns zeros): the step time is the solver's own cost;
- the package's ~1M-parameter conditional UNet (random weights) at batch 1, 64×64:
  solver time = step time − network time per call.

Medians over repeats. Prints a table; ``--json PATH`` writes the rows. Target: solver time
≤ 2 % of one UNet call.

    python benchmarks/step_overhead.py [--device cpu|cuda] [--steps 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

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
        f"{'solver':<20} {'nfe':>4} {'zero-model ms/step':>19} {'unet ms/step':>13} "
        f"{'solver ms/call':>15} {'share of a UNet call':>21}"
    )
    lines = [
        f"device={device}, batch={args.batch}, {args.size}x{args.size}, "
        f"steps={args.steps}, one UNet call = {network * 1e3:.3f} ms",
        header,
    ]
    for solver_id in sorted(SOLVERS):
        sampler = make_sampler(solver_id, schedule, model_prediction="noise")
        gen = torch.Generator(device=device).manual_seed(0)

        def run(model, sampler=sampler, gen=gen):
            with torch.inference_mode():
                return sampler.sample(model, mu, steps=args.steps, generator=gen)

        nfe = run(zero_model).nfe
        run(unet_model)
        zero = _timed(lambda run=run: run(zero_model), device, args.repeats) / nfe
        full = _timed(lambda run=run: run(unet_model), device, args.repeats) / nfe
        solver = full - network
        share = max(zero, solver) / network
        rows.append(
            {
                "solver": solver_id,
                "nfe": nfe,
                "zero_model_ms_per_call": zero * 1e3,
                "unet_ms_per_call": full * 1e3,
                "solver_ms_per_call": solver * 1e3,
                "network_ms": network * 1e3,
                "share": share,
                "device": str(device),
            }
        )
        lines.append(
            f"{solver_id:<20} {nfe:>4} {zero * 1e3:>19.3f} {full * 1e3:>13.3f} "
            f"{solver * 1e3:>15.3f} {100 * share:>20.2f}%"
        )
    print("\n".join(lines))  # noqa: T201 - a benchmark script prints its table
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
