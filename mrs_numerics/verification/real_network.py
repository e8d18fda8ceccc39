"""Convergence orders on a real network: the PF-ODE driven by a shipped restoration network.

The exact Gaussian-mixture oracles prove the solvers' orders on smooth, known right-hand sides.
This study asks the same question of a trained network: the probability-flow ODE

    dx/dλ = (σ²/Λ²)(x − μ) − σ ε̂(x, t(λ), μ)

with ε̂ converted from the shipped network's own prediction, run in float64 on a small centre crop
of a held-out photo (never seen in training). The start is the MR marginal at λ = LAM_RANGE[0]: x =
μ + α(x₀ − μ) + σ ξ with x₀ the clean crop and μ its degradation; the end is λ = LAM_RANGE[1]. One
scipy DOP853 reference (rtol = atol = 1e-12,
[`pf_ode_reference`][mrs_numerics.verification.references.pf_ode_reference]) serves every ODE
solver; each solver runs the step ladder of the verification level on wobbly λ grids
([`ode_full_errors`][mrs_numerics.verification.studies.ode_full_errors]), and the order is the
fitted log-log slope of the max error against the largest λ-step.

The orders only show on a network that is smooth in t: the shipped networks embed time over
[0, ``time_scale``], and one trained with the DDPM convention (1000) varies in t on a scale of
1e-3 of the interval, far below any practical step (``mrs-numerics models`` lists each
network's time scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrs_numerics import schedules
from mrs_numerics.imaging.degradations import degrade
from mrs_numerics.imaging.photos import center_crop, load_photo
from mrs_numerics.models.checkpoints import irsde_schedule, load_irsde_checkpoint
from mrs_numerics.models.registry import available_models, load_model, shipped_checkpoints
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.adapters import IRSDEAdapter
from mrs_numerics.solvers.protocols import Model
from mrs_numerics.verification.studies import lam_range

PROBLEM = "real"
"""The problem name that selects this study in `run_verification`."""
DEFAULT_MODEL = "denoise-data"
"""The shipped network of the study unless another is named (time scale 10: smooth in t)."""
CROP = 16
"""Side of the centre crop, in pixels (small: float64 network calls on CPU)."""
PHOTO = "coffee"
"""The held-out photo the crop is taken from."""


@dataclass
class RealStart:
    """A float64 PF-ODE problem on a shipped network: ``model(x, t, mu)`` returns ``prediction``."""

    name: str
    model: Model
    prediction: str
    schedule: Schedule
    mu: torch.Tensor
    x_start: torch.Tensor
    t_start: torch.Tensor
    t_end: torch.Tensor


def real_models() -> list[str]:
    """The networks ``--problem real`` can study: the shipped UNets and the shipped networks in
    IR-SDE's format ([`shipped_checkpoints`][mrs_numerics.models.registry.shipped_checkpoints])."""
    return sorted([*available_models(), *shipped_checkpoints()])


def check_real_model(name: str) -> str:
    """``name`` if ``--problem real`` can study it; else one line naming the choices."""
    known = real_models()
    if name not in known:
        raise ValueError(
            f"unknown model {name!r} for the problem {PROBLEM!r}; shipped: {', '.join(known)}"
        )
    return name


def _network(model_name: str):
    """(float64 model(x, t, mu), prediction, schedule, task) of a shipped network.

    A network in IR-SDE's format is loaded through its option file and fed the table index
    (unrounded: the sampler's fractional times) through
    [`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter]; on its table schedule
    t(λ) is only piecewise smooth (Θ is linear between indices), so the PF-ODE's right-hand
    side is kinked in λ at every index and orders above 1 need not show.
    """
    checkpoints = shipped_checkpoints()
    if model_name in checkpoints:
        shipped = checkpoints[model_name]
        irsde_net = load_irsde_checkpoint(shipped.weights, shipped.options).double()
        adapter = IRSDEAdapter(irsde_net)
        table = irsde_schedule(shipped.options)
        return adapter, "noise", table, str(shipped.facts.get("task", "denoise")), 1
    net, info = load_model(model_name)
    net = net.double()
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    return net, info.prediction, schedule, info.task, net.required_multiple


def real_start(model_name: str = DEFAULT_MODEL, crop: int = CROP, seed: int = 0) -> RealStart:
    """The shipped network ``model_name`` in float64 and its start state (see the module)."""
    net, prediction, schedule, task, multiple = _network(check_real_model(model_name))
    if crop < multiple or crop % multiple:
        raise ValueError(f"crop must be a positive multiple of {multiple}, got {crop}")
    generator = torch.Generator().manual_seed(seed)
    clean = center_crop(load_photo(PHOTO), crop).to(torch.float64).unsqueeze(0)
    mu = degrade(task, clean, generator).to(torch.float64)
    lam_start, lam_end = lam_range(schedule)
    t_start = schedule.t_of_lam(torch.tensor(lam_start, dtype=torch.float64))
    t_end = schedule.t_of_lam(torch.tensor(lam_end, dtype=torch.float64))
    alpha, sigma = schedule.alpha(t_start), schedule.sigma(t_start)
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    x_start = mu + alpha * (clean - mu) + sigma * noise

    def model(x, t, mu):
        with torch.no_grad():
            return net(x, t, mu)

    name = f"{PROBLEM}:{model_name}"
    return RealStart(name, model, prediction, schedule, mu, x_start, t_start, t_end)
