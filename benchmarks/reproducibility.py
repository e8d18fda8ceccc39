"""How far results move across thread counts and batch compositions (the reproducibility rule).

Results are bit-identical for a fixed (seed, device, dtype, thread count, batch composition).
This script measures what changes otherwise, on CPU, for every shipped network: one network call
and a whole 10-NFE restoration (``mrs-ode-2-data`` and ``mrs-sde-2-data`` with per-sample
generators), in float32 and float64, run

- with 1 thread and with ``--threads`` threads (same batch), and
- as one batch of the held-out crops and one crop at a time (same seeds per image).

It prints the largest absolute difference of each comparison and checks that a repeated run
with the same settings is bit-identical.

    python benchmarks/reproducibility.py [--crop 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys

import torch

from mrs_numerics import schedules
from mrs_numerics.imaging.degradations import degrade
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, center_crop, load_photo
from mrs_numerics.models.registry import available_models, load_model
from mrs_numerics.solvers import make_sampler

SAMPLERS = ("mrs-ode-2-data", "mrs-sde-2-data")
NFE = 10


def _inputs(task: str, crop: int, dtype: torch.dtype) -> torch.Tensor:
    clean = torch.stack([center_crop(load_photo(name), crop) for name in HELDOUT_PHOTOS])
    return degrade(task, clean, torch.Generator().manual_seed(0)).to(dtype)


def _restore(net, info, mu: torch.Tensor, sampler_id: str, threads: int) -> torch.Tensor:
    torch.set_num_threads(threads)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    sampler = make_sampler(sampler_id, schedule, info.prediction)
    generators = [torch.Generator().manual_seed(100 + i) for i in range(mu.shape[0])]
    with torch.inference_mode():
        return sampler.sample(net, mu, steps=NFE, generator=generators).x


def _one_at_a_time(net, info, mu, sampler_id, threads) -> torch.Tensor:
    torch.set_num_threads(threads)
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    sampler = make_sampler(sampler_id, schedule, info.prediction)
    rows = []
    for i in range(mu.shape[0]):
        generator = [torch.Generator().manual_seed(100 + i)]
        with torch.inference_mode():
            rows.append(sampler.sample(net, mu[i : i + 1], steps=NFE, generator=generator).x)
    return torch.cat(rows)


def _call(net, x: torch.Tensor, mu: torch.Tensor, threads: int) -> torch.Tensor:
    torch.set_num_threads(threads)
    t = torch.full((mu.shape[0],), 0.5, dtype=torch.float64)
    with torch.inference_mode():
        return net(x, t, mu)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    header = (
        f"{'network':<20} {'dtype':<8} {'what':<16} {'threads 1 vs N':>15} "
        f"{'batch vs single':>16} {'repeat':>7}"
    )
    sys.stdout.write(f"crop {args.crop}², threads 1 vs {args.threads}, NFE {NFE}\n{header}\n")
    for name, info in sorted(available_models().items()):
        for dtype in (torch.float32, torch.float64):
            net, _ = load_model(name)
            net = net.to(dtype)
            mu = _inputs(info.task, args.crop, dtype)
            noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
            x = mu + 0.1 * noise.to(dtype)
            one, many = _call(net, x, mu, 1), _call(net, x, mu, args.threads)
            single = torch.cat(
                [_call(net, x[i : i + 1], mu[i : i + 1], args.threads) for i in range(len(mu))]
            )
            repeat = torch.equal(many, _call(net, x, mu, args.threads))
            rows = [("network call", one, many, single, repeat)]
            for sampler_id in SAMPLERS:
                a = _restore(net, info, mu, sampler_id, 1)
                b = _restore(net, info, mu, sampler_id, args.threads)
                c = _one_at_a_time(net, info, mu, sampler_id, args.threads)
                same = torch.equal(b, _restore(net, info, mu, sampler_id, args.threads))
                rows.append((sampler_id, a, b, c, same))
            for what, a, b, c, same in rows:
                threads = float((a - b).abs().max())
                batch = float((b - c).abs().max())
                sys.stdout.write(
                    f"{name:<20} {str(dtype)[6:]:<8} {what:<16} {threads:>15.2e} "
                    f"{batch:>16.2e} {'equal' if same else 'DIFFER':>7}\n"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
