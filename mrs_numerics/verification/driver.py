"""``mrs-numerics verify``: measure every solver's order on exact Gaussian-mixture problems.

[`run_verification`][mrs_numerics.verification.driver.run_verification] is the Python API (it
returns the same results the command prints). Per problem (an exact MR Gaussian-mixture oracle,
[`oracles`][mrs_numerics.verification.oracles]):

- ODE solvers (``mrs-ode-*``, ``euler-ode``, ``heun-ode``): global order against one scipy
  PF-ODE reference per problem (rtol = atol = 1e-12), full sampler and (MR Sampler) kernels
  from an exact warm start;
- SDE solvers (``mrs-sde-*``, ``posterior``, ``euler-maruyama``): strong order on coupled
  Brownian paths ([`brownian`][mrs_numerics.solvers.brownian]), weak order from exact moments
  on Gaussian data;
- model predictions: each solver run with a noise / data / velocity / score oracle gives the
  same result to round-off (conversion equivalence), instead of repeating every ladder.

Levels: ``quick`` (short ladders, one problem), ``default`` (≤ 2 minutes on 2 cores), ``full``
(every built-in problem, longer ladders).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mrs_numerics import schedules
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.instability import InstabilityWarning
from mrs_numerics.solvers.protocols import Model
from mrs_numerics.solvers.registry import SOLVERS
from mrs_numerics.verification import studies as conv
from mrs_numerics.verification.oracles import GaussianData, builtin_problem
from mrs_numerics.verification.real_network import DEFAULT_MODEL, PROBLEM, real_start
from mrs_numerics.verification.references import pf_ode_reference, pf_ode_reference_times
from mrs_numerics.verification.studies import OrderResult, lam_range


@dataclass(frozen=True)
class Level:
    """Ladder lengths of a verification level.

    Each ladder is ``(coarsest steps, rungs)``: a geometric ladder of step counts doubling from
    the coarsest.

    Attributes:
        name: The level's name.
        problems: The oracle problems it runs by default.
        mrs_ode: The ladder of the MR Sampler's ODE solvers.
        baseline_ode: The ladder of the explicit ODE baselines (Euler, Heun).
        sde_strong: The strong-order ladder of the MR Sampler SDEs and posterior sampling.
        em_strong: The strong-order ladder of Euler–Maruyama.
        weak: The weak-order ladder of the MR Sampler SDEs and posterior sampling.
        em_weak: The weak-order ladder of Euler–Maruyama.
        batch: Samples per ODE study.
        strong_batch: Brownian paths per strong study.
    """

    name: str
    problems: tuple[str, ...]
    mrs_ode: tuple[int, int]
    baseline_ode: tuple[int, int]
    sde_strong: tuple[int, int]
    em_strong: tuple[int, int]
    weak: tuple[int, int]
    em_weak: tuple[int, int]
    batch: int
    strong_batch: int


def _level(name, problems, levels, batch, strong_batch) -> Level:
    """Ladders start at 16 (MRS), 64 (explicit baselines), 16 / 32 (strong), 16 / 64 (weak)."""
    return Level(
        name,
        problems,
        (16, levels),
        (64, levels),
        (16, levels),
        (32, levels),
        (16, levels),
        (64, levels),
        batch,
        strong_batch,
    )


LEVELS = {
    "quick": _level("quick", ("gmm-2d-diag",), 4, 8, 128),
    "default": _level("default", ("gmm-2d-diag",), 5, 8, 128),
    "full": _level("full", ("gauss-1d", "gmm-2d-diag", "gmm-3d-full"), 6, 16, 256),
}
"""The verification levels by name: ``quick``, ``default`` and ``full``."""


def _solvers(kind: str, solvers=None):
    chosen = [s for s in SOLVERS.values() if s.method == kind]
    if solvers is not None:
        chosen = [s for s in chosen if s.id in solvers]
    return chosen


FINER_LADDER_FROM_ORDER = 4
"""MR Sampler ODE solvers of this order or more start their ladder at twice the level's coarsest
steps. At order 4 the noise form's error constant keeps 16 steps pre-asymptotic (error ratios
10.8, 12.4, 14.6 towards 16 on the quick ladder of ``gmm-2d-diag``, slope 3.75), while 32 … 512
steps stay far above round-off."""


def _ladder(spec: tuple[int, int]) -> list[int]:
    return conv.geometric_ladder(*spec)


def _mrs_ode_ladder(level: Level, order: int) -> list[int]:
    coarsest, levels = level.mrs_ode
    factor = 2 if order >= FINER_LADDER_FROM_ORDER else 1
    return _ladder((coarsest * factor, levels))


def _result(info, problem, schedule, kind, run, declared, study, steps, prediction="data"):
    h, errors, nfes = study
    observed, window = conv.fit_order(h, errors)
    return OrderResult(
        solver=info.id,
        problem=problem,
        schedule=schedule.name,
        method=info.method,
        declared_order=float(declared),
        order_kind=kind,
        run=run,
        solver_prediction=info.solver_prediction,
        model_prediction=prediction,
        observed_order=observed,
        passed=conv.verdict(observed, declared),
        steps=list(steps),
        nfe=list(nfes),
        h_max=list(h),
        errors=list(errors),
        window=window,
    )


def _start(oracle, schedule, batch: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    mu = 0.3 * torch.randn(batch, oracle.dim, generator=gen, dtype=torch.float64)
    t0 = schedule.t_of_lam(torch.tensor(lam_range(schedule)[0], dtype=torch.float64))
    return mu, oracle.sample_marginal(mu, t0, generator=gen), t0


def ode_results(problem: str, schedule, level: Level, solvers=None, tick=None) -> list[OrderResult]:
    """Global orders of every ODE solver on one problem (one reference for all of them)."""
    oracle = builtin_problem(problem, schedule)
    model = oracle.model("data")
    mu, x_T, t0 = _start(oracle, schedule, level.batch, seed=1)
    t_end = schedule.t_of_lam(torch.tensor(lam_range(schedule)[1], dtype=torch.float64))
    exact_end = pf_ode_reference(oracle, schedule, x_T, mu, t0, t_end).x

    cache: dict = {}

    def exact_at(times):
        key = tuple(times.tolist())
        if key not in cache:
            cache[key] = list(pf_ode_reference_times(oracle, schedule, x_T, mu, times[0], times).xs)
        return cache[key]

    problem_run = _OdeProblem(problem, schedule, model, "data", mu, x_T, exact_end)
    return _ode_ladder_results(problem_run, level, solvers, tick, _partial_exact(exact_at))


def real_results(level: Level, model_name: str, solvers=None, tick=None) -> list[OrderResult]:
    """Global orders of every ODE solver on the PF-ODE of a shipped network (float64 crop).

    See [`real_network`][mrs_numerics.verification.real_network]; one DOP853 reference serves
    every solver. Only full runs: the kernel study's exact warm start would need reference states
    at every grid.
    """
    start = real_start(model_name)
    exact_end = pf_ode_reference(
        start.model,
        start.schedule,
        start.x_start,
        start.mu,
        start.t_start,
        start.t_end,
        prediction=start.prediction,
    ).x
    problem_run = _OdeProblem(
        start.name,
        start.schedule,
        start.model,
        start.prediction,
        start.mu,
        start.x_start,
        exact_end,
    )
    return _ode_ladder_results(problem_run, level, solvers, tick)


@dataclass
class _OdeProblem:
    """What an ODE order study needs: the model, its start and the reference end state."""

    name: str
    schedule: Schedule
    model: Model
    prediction: str
    mu: torch.Tensor
    x_start: torch.Tensor
    exact_end: torch.Tensor


def _ode_ladder_results(problem: _OdeProblem, level, solvers, tick, warm_exact=None):
    """Full-run orders of every ODE solver; kernel orders of the MR Sampler if ``warm_exact``."""
    schedule = problem.schedule
    results = []
    for info in _solvers("ode", solvers):
        mrs = info.family == "mrs"
        ladder = _mrs_ode_ladder(level, info.order) if mrs else _ladder(level.baseline_ode)
        common = (schedule, problem.model, problem.mu, problem.x_start, ladder, lam_range(schedule))
        study = conv.ode_full_errors(info.id, *common, problem.exact_end, problem.prediction)
        run = (info, problem.name, schedule, "global")
        results.append(_result(*run, "full", info.order, study, ladder, problem.prediction))
        if mrs and warm_exact is not None:
            study = conv.ode_kernel_errors(info.id, *common, warm_exact)
            results.append(_result(*run, "kernel", info.order, study, ladder))
        if tick:
            tick()
    return results


def _partial_exact(exact_at: Callable) -> Callable:
    """Exact states only where the warm start needs them (the first three times and the end)."""

    def at(times):
        needed = exact_at(torch.cat([times[:3], times[-1:]]))
        full = [None] * len(times)
        full[0], full[1], full[2], full[-1] = needed[0], needed[1], needed[2], needed[3]
        return full

    return at


def weak_results(schedule, level: Level, solvers=None, tick=None) -> list[OrderResult]:
    """Weak orders of every SDE solver on Gaussian data (exact moments, no Monte Carlo)."""
    problem = GaussianData.weak_problem(schedule)
    results = []
    for info in _solvers("sde", solvers):
        ladder = _ladder(level.em_weak if info.id == "euler-maruyama" else level.weak)
        h, errors, _, nfes = conv.weak_study(info.id, problem, ladder, lam_range(schedule))
        study = (h, errors, nfes)
        declared = info.weak_order
        results.append(
            _result(info, "gauss-diag", schedule, "weak", "full", declared, study, ladder)
        )
        if tick:
            tick()
    return results


def strong_results(problem: str, schedule, level: Level, solvers=None, tick=None):
    """Strong orders of every SDE solver on one problem, on coupled Brownian paths."""
    oracle = builtin_problem(problem, schedule)
    model = oracle.model("data")
    mu, x_T, _ = _start(oracle, schedule, level.strong_batch, seed=2)
    chosen = _solvers("sde", solvers)
    results = []
    groups = (
        ([s for s in chosen if s.id != "euler-maruyama"], level.sde_strong),
        ([s for s in chosen if s.id == "euler-maruyama"], level.em_strong),
    )
    for infos, (coarsest, levels) in groups:
        if not infos:
            continue
        studies = conv.strong_study(
            [i.id for i in infos], schedule, model, mu, x_T, coarsest, levels, lam_range(schedule)
        )
        for info in infos:
            h, errors, nfes, steps = studies[info.id]
            declared = info.strong_order
            study = (h, errors, nfes)
            results.append(
                _result(info, problem, schedule, "strong", "full", declared, study, steps)
            )
            if tick:
                tick()
    return results


CONVERTED_PREDICTIONS = ("noise", "velocity", "score")
"""The model outputs whose runs the conversion checks compare with the data-prediction run."""
CONVERSION_TOLERANCE = 1e-9
"""Largest |Δx| allowed between a converted run and the data-prediction run."""


def conversion_checks(problem: str, schedule, steps: int = 10, solvers=None) -> list[dict]:
    """Every solver fed a noise / velocity / score oracle reproduces its data-oracle run."""
    oracle = builtin_problem(problem, schedule)
    mu, x_T, _ = _start(oracle, schedule, 8, seed=3)
    low, high = lam_range(schedule)
    t_end = float(schedule.t_of_lam(torch.tensor(high, dtype=torch.float64)))
    t0 = float(schedule.t_of_lam(torch.tensor(low, dtype=torch.float64)))

    def noise_fn(step, t_from, t_to, shape, dtype, device):
        gen = torch.Generator().manual_seed(500 + step)
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype)

    rows = []
    for solver_id in solvers or sorted(SOLVERS):
        results = {}
        for prediction in ("data", *CONVERTED_PREDICTIONS):
            sampler = make_sampler(
                solver_id, schedule, prediction, noise_fn=noise_fn, t_start=t0, t_end=t_end
            )
            results[prediction] = sampler.sample(
                oracle.model(prediction), mu, steps=steps, x_T=x_T
            ).x
        for prediction in CONVERTED_PREDICTIONS:
            difference = float((results[prediction] - results["data"]).abs().max())
            rows.append(
                {
                    "solver": solver_id,
                    "model_prediction": prediction,
                    "max_difference": difference,
                    "passed": difference <= CONVERSION_TOLERANCE,
                }
            )
    return rows


def run_verification(
    level: str = "default",
    problems: tuple[str, ...] | None = None,
    schedule=None,
    solvers=None,
    progress: bool = False,
    model: str | None = None,
) -> tuple[list[OrderResult], list[dict]]:
    """Measure every solver's declared orders; what ``mrs-numerics verify`` runs.

    The weak study (Gaussian data) runs when at least one oracle problem does. Torch runs on one
    thread meanwhile (the previous thread count is restored).

    Args:
        level: ``"quick"``, ``"default"`` or ``"full"`` (the ladder lengths and problems of
            [`LEVELS`][mrs_numerics.verification.driver.LEVELS]).
        problems: Built-in oracle problems
            ([`builtin_problems`][mrs_numerics.verification.oracles.builtin_problems]), and/or
            ``"real"``: the ODE orders on the PF-ODE of the shipped network ``model``, on that
            network's own schedule. Default: the level's problems.
        schedule: The schedule of the oracle problems; default
            [`cosine()`][mrs_numerics.schedules.continuous.cosine].
        solvers: Solver ids to measure; default every id of
            [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS].
        progress: Show a tqdm progress bar.
        model: The shipped network of the ``"real"`` problem; default
            [`DEFAULT_MODEL`][mrs_numerics.verification.real_network.DEFAULT_MODEL]. Only with
            ``"real"``.

    Returns:
        The order results ([`OrderResult`][mrs_numerics.verification.studies.OrderResult]) and
        the conversion checks (one dict per solver and converted prediction, see
        [`conversion_checks`][mrs_numerics.verification.driver.conversion_checks]).

    Raises:
        ValueError: If ``level`` is unknown, or ``model`` is given without ``"real"``.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; allowed: {', '.join(LEVELS)}")
    spec = LEVELS[level]
    schedule = schedule if schedule is not None else schedules.cosine()
    problems = tuple(problems) if problems else spec.problems
    real = PROBLEM in problems
    problems = tuple(p for p in problems if p != PROBLEM)
    if model is not None and not real:
        raise ValueError(f"a model ({model!r}) only applies to the problem {PROBLEM!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results: list[OrderResult] = []
    conversions: list[dict] = []
    n_ode, n_sde = len(_solvers("ode", solvers)), len(_solvers("sde", solvers))
    total = len(problems) * (n_ode + n_sde + 1) + (n_sde if problems else 0) + real * n_ode
    try:
        with (
            warnings.catch_warnings(),
            tqdm(total=total, disable=not progress, desc="verify") as bar,
        ):
            warnings.simplefilter("ignore", InstabilityWarning)  # ladders start coarse
            for problem in problems:
                bar.set_postfix_str(f"{problem}: ODE global")
                results += ode_results(problem, schedule, spec, solvers, bar.update)
                bar.set_postfix_str(f"{problem}: SDE strong")
                results += strong_results(problem, schedule, spec, solvers, bar.update)
                bar.set_postfix_str(f"{problem}: conversions")
                conversions += conversion_checks(problem, schedule, solvers=solvers)
                bar.update()
            if real:
                bar.set_postfix_str(f"{PROBLEM}: ODE global")
                results += real_results(spec, model or DEFAULT_MODEL, solvers, bar.update)
            if problems:
                bar.set_postfix_str("SDE weak")
                results += weak_results(schedule, spec, solvers, bar.update)
    finally:
        torch.set_num_threads(threads)
    return results, conversions
