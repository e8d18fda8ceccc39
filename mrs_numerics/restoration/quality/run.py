"""Restoration quality and solver fidelity of every sampler against NFE on the held-out photos.

[`run_quality`][mrs_numerics.restoration.quality.run.run_quality] restores centre crops of
[`HELDOUT_PHOTOS`][mrs_numerics.imaging.photos.HELDOUT_PHOTOS] with a network and every requested
sampler at every NFE budget, for several seeds, and measures

- **PSNR and SSIM to the ground truth**
  ([`psnr`][mrs_numerics.imaging.metrics.psnr] / [`ssim`][mrs_numerics.imaging.metrics.ssim]: RGB,
  data range 1,
  4-px border crop);
- **solver fidelity**: the PSNR between the N-step output and the converged solution of the same
  equation from the same start x_T (and, for SDE samplers, the same Brownian path). PSNR to the
  ground truth alone does not judge few-step sampling fairly (a smoother few-step output can
  score higher than the converged one); fidelity measures how well a solver solves its equation;
- **wall seconds per image** of the sampling call (batch time / batch size, after the sampler's
  plan is compiled; for SDE samplers the coupled noise is assembled before the clock starts, as
  a real run would draw it with one ``randn`` per step).

Every metric is computed on outputs clamped to [0, 1], what a user sees (fidelity included), and
averaged per (sampler, NFE) over images × seeds; PSNR values are averaged in dB.

**Inputs.** Seed s fixes the degradation noise of the crops and the prior sample x_T = μ + σ(t_max)ξ
(one generator, drawn on the CPU in that order) and the Brownian path of
[`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian] (seeded with s, drawn on the
device: CPU and CUDA paths differ). Every sampler of a seed starts from the same x_T; the crops of
one seed are one batch.

**References** (one per image and seed, shared by every sampler of its kind):

R = ``reference_steps`` (default max(1000, 4 × the largest budget)) sets the resolution of both.

- PF-ODE (every ODE sampler):
  [`ODE_REFERENCE_SOLVER`][mrs_numerics.restoration.quality.run.ODE_REFERENCE_SOLVER] with R steps
  on its uniform-λ grid; its own accuracy is estimated by the PSNR between the R-step and the
  R/2-step solutions. For a third-order method the R-step error is about 1/7 of that difference: a
  conservative estimate.
- reverse SDE (every SDE sampler): the grids of all SDE runs and the uniform-λ grid of ⌈R /
  ``sde_refinement``⌉ steps are merged (times within
  [`MATCH_RTOL`][mrs_numerics.solvers.brownian.MATCH_RTOL] are one time) and each merged interval is
  refined ``sde_refinement`` times uniformly in λ
  ([`nested_grid`][mrs_numerics.solvers.brownian.nested_grid]), so the fine grid has at least R
  steps and no λ-step longer than the PF-ODE reference's. On it
  [`CoupledBrownian`][mrs_numerics.solvers.brownian.CoupledBrownian] simulates the path, and
  [`SDE_REFERENCE_SOLVER`][mrs_numerics.restoration.quality.run.SDE_REFERENCE_SOLVER] (single-step,
  so the uneven step ratios of the merged grid are no stability concern for it) solves the SDE on
  the fine grid. Every SDE run's grid is a subset of the fine grid, so its noise is the exact
  integral of the same path and all runs converge to that one strong solution. The accuracy estimate
  is the PSNR to the same solver on the grid refined ``sde_refinement // 2`` times (nested, same
  path): for strong order 1 that difference is about the finer solution's own error.

**NFE.** A budget is converted to the most steps whose run fits in it, counted on the sampler as
configured ([`steps_within`][mrs_numerics.solvers.base.SamplerBase.steps_within]; a tuned entry
takes its shipped grid for that budget), and rows report the network calls actually made
(``heun-ode`` spends 2 per step, third-order MRS ODE with the singlestep start 1 extra on its
start). A budget below the sampler's minimum, one without a shipped tuned grid for a tuned entry,
or one that gives the same steps as a smaller budget, is recorded as skipped. A run whose output
or network turns NaN/Inf
([`NonFiniteError`][mrs_numerics.solvers.engine.NonFiniteError]) is recorded with status
``"nonfinite"`` and no metrics, never raised; so is a run that diverges without overflowing (status
``"diverged"``: the package's one definition,
[`DivergenceError`][mrs_numerics.solvers.engine.DivergenceError], a sample's RMS distance from μ
above [`DIVERGENCE_FACTOR`][mrs_numerics.solvers.engine.DIVERGENCE_FACTOR]·Λ, as the noise-form
SDE's at 3–5 NFE). One failed seed marks the whole (sampler, NFE) row.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from tqdm.auto import tqdm

from mrs_numerics.imaging import degradations
from mrs_numerics.imaging.metrics import psnr, ssim
from mrs_numerics.imaging.padding import pad_to_multiple, unpad
from mrs_numerics.imaging.photos import center_crop, load_photo
from mrs_numerics.restoration.processes import Processes
from mrs_numerics.restoration.quality.options import (
    PlannedRun,
    QualityOptions,
    entry_sampler,
    plan_runs,
)
from mrs_numerics.restoration.restore import resolve_device
from mrs_numerics.schedules import grids
from mrs_numerics.solvers import parameterization
from mrs_numerics.solvers.base import prior_sample
from mrs_numerics.solvers.brownian import MATCH_RTOL, CoupledBrownian, family_for, nested_grid
from mrs_numerics.solvers.engine import DivergenceError, NonFiniteError, Plan
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.instability import InstabilityWarning
from mrs_numerics.solvers.protocols import NoiseSource

ODE_REFERENCE_SOLVER = "mrs-ode-3-data"
"""Solver of the PF-ODE reference."""
SDE_REFERENCE_SOLVER = "mrs-sde-1-data"
"""Solver of the fine coupled SDE reference."""


@dataclass
class SeedInputs:
    """One seed's batch: degraded crops (CPU), padded μ and x_T on the device, crop size.

    Attributes:
        degraded: The degraded crops ``[B, 3, H, W]``, on the CPU.
        mu: The degraded crops reflect-padded to the network's multiple, on the device.
        x_start: The prior sample x_T = μ + σ(t_max)ξ, on the device.
        size: The crops' (H, W) before padding.
    """

    degraded: torch.Tensor
    mu: torch.Tensor
    x_start: torch.Tensor
    size: tuple[int, int]


def seed_inputs(
    clean: torch.Tensor, task: str, schedule, seed: int, multiple: int = 1, device="cpu"
) -> SeedInputs:
    """Degrade ``clean`` and draw the prior x_T for ``seed`` (one CPU generator, in that order).

    μ is the degraded batch reflect-padded to ``multiple``; x_T = μ + σ(t_max)ξ.
    """
    generator = torch.Generator().manual_seed(seed)
    degraded = degradations.degrade(task, clean, generator)
    mu, size = pad_to_multiple(degraded, multiple)
    t_start = grids.timesteps(schedule, 1)[0]
    x_start = prior_sample(schedule, mu, t_start, generator)
    device = torch.device(device)
    return SeedInputs(degraded, mu.to(device), x_start.to(device), size)


def merged_grid(schedule, grid_list: Iterable[torch.Tensor]) -> torch.Tensor:
    """The union of decreasing grids; times closer than MATCH_RTOL × the largest are one time."""
    times = torch.cat([torch.as_tensor(g, dtype=torch.float64).flatten() for g in grid_list])
    times = torch.sort(times, descending=True).values
    tolerance = MATCH_RTOL * float(times.abs().max())
    kept = [float(times[0])]
    for t in times[1:].tolist():
        if kept[-1] - t > tolerance:
            kept.append(t)
    return grids.explicit(schedule, kept)


def ode_reference(model, prediction: str, schedule, mu, x_T, steps: int) -> torch.Tensor:
    """The PF-ODE solution at the grid end from x_T: `ODE_REFERENCE_SOLVER`, ``steps``."""
    sampler = make_sampler(ODE_REFERENCE_SOLVER, schedule, prediction)
    with torch.inference_mode():
        return sampler.sample(model, mu, steps=steps, x_T=x_T).x


def sde_reference(
    model, prediction: str, schedule, mu, x_T, path: CoupledBrownian, fine_times
) -> torch.Tensor:
    """The reverse-SDE solution from x_T on ``path``: `SDE_REFERENCE_SOLVER` on
    ``fine_times`` (a subset of the path's grid) with the path's exact integrals as noise."""
    family = family_for(SDE_REFERENCE_SOLVER)
    assert family is not None
    noise_fn = path.noise_fn(family, fine_times)
    sampler = make_sampler(SDE_REFERENCE_SOLVER, schedule, prediction, noise_fn=noise_fn)
    with torch.inference_mode():
        return sampler.sample(model, mu, timesteps=fine_times, x_T=x_T).x


@dataclass
class QualityRow:
    """Means over images × seeds of one (sampler, budget); None where not measured.

    Attributes:
        sampler: The solver id.
        nfe: The network calls a run made.
        psnr: PSNR to the ground truth (dB).
        ssim: SSIM to the ground truth.
        fidelity_db: PSNR to the converged solution of the same equation (dB).
        seconds: Wall seconds per image of the sampling call.
        nfe_budget: The NFE budget asked for.
        steps: The steps the budget gives.
        kind: ``"ode"`` or ``"sde"``.
        status: ``"ok"``, ``"skipped"`` (see ``reason``), ``"nonfinite"`` or ``"diverged"``.
        reason: Why a run was skipped or failed (empty when ``"ok"``).
    """

    sampler: str
    nfe: int | None
    psnr: float | None
    ssim: float | None
    fidelity_db: float | None
    seconds: float | None
    nfe_budget: int
    steps: int | None
    kind: str
    status: str
    reason: str = ""


@dataclass
class QualityResult:
    """Rows, the NFE to reach the fidelity threshold, metadata, and pictures for the grid.

    Attributes:
        rows: One [`QualityRow`][mrs_numerics.restoration.quality.run.QualityRow] per (sampler,
            budget).
        nfe_to_fidelity: Per sampler, the smallest NFE whose mean fidelity reaches the
            threshold (None if none does).
        metadata: The run's settings, the references' solvers, steps and accuracy, and the wall
            time.
        pictures: Image 0 of seed 0: ``"degraded"``, ``"clean"``, ``"reference-ode"``,
            ``"reference-sde"`` and ``(sampler, budget)`` outputs, each ``[3, H, W]`` in [0, 1].
    """

    rows: list[QualityRow]
    nfe_to_fidelity: dict[str, int | None]
    metadata: dict
    pictures: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        """The ``--json`` document (non-finite numbers written as null)."""
        rows = [_json_safe(asdict(row)) for row in self.rows]
        return {
            "rows": rows,
            "nfe_to_fidelity": dict(self.nfe_to_fidelity),
            "metadata": _json_safe(self.metadata),
        }

    def row(self, sampler: str, budget: int) -> QualityRow:
        """The row of ``sampler`` at NFE budget ``budget``."""
        for row in self.rows:
            if row.sampler == sampler and row.nfe_budget == budget:
                return row
        raise KeyError(f"no row for {sampler} at budget {budget}")


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


@dataclass
class _Tally:
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    fidelity: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nfe: int | None = None
    failure: str = ""
    message: str = ""


def run_quality(
    model: Callable,
    prediction: str,
    schedule,
    options: QualityOptions | None = None,
    model_name: str = "",
    progress: bool = False,
    processes: Processes | None = None,
) -> QualityResult:
    """Measure quality and fidelity of every sampler and budget of ``options`` (module docstring).

    ``model(x, t, mu)`` returns ``prediction`` for the MR process on ``schedule``; an
    ``nn.Module`` is moved to ``options.device`` (``processes.device`` if given) in place.

    With ``processes`` (several processes under ``torchrun``, see
    [`processes`][mrs_numerics.restoration.processes]) the seeds are dealt by index, seed s to
    process s mod K: a seed is the unit of work, because one generator degrades the seed's
    whole batch of crops. The per-seed tallies are gathered once and reduced in seed order, so
    every number except the wall seconds is bit-identical to one process's. Every process
    returns the whole result.
    """
    options = (options or QualityOptions()).validate()
    parameterization.check_prediction(prediction)
    device = resolve_device(options.device) if processes is None else processes.device
    processes = processes or Processes(0, 1, device)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    started = time.perf_counter()
    benchmark = _Benchmark(model, prediction, schedule, options, device, model_name)
    seeds = processes.shard(range(options.seeds))
    total = len(seeds) * (len(benchmark.active) + 1)
    with tqdm(total=total, disable=not progress, desc="quality", leave=False) as bar:
        records = {seed: benchmark.measure_seed(seed, bar) for seed in seeds}
    gathered = {seed: record for part in processes.gather(records) for seed, record in part.items()}
    benchmark.adopt(_merged([gathered[seed] for seed in sorted(gathered)]))
    rows = [_row(run, benchmark.tallies.get((run.sampler, run.budget))) for run in benchmark.runs]
    metadata = _metadata(options, model_name, prediction, schedule, benchmark, device)
    metadata["wall_seconds"] = time.perf_counter() - started
    metadata["processes"] = processes.world
    return QualityResult(rows, nfe_to_fidelity(rows, options), metadata, benchmark.pictures)


@dataclass
class _Record:
    """What one seed (or, merged, all seeds) measured."""

    tallies: dict
    references: dict
    inputs: dict
    pictures: dict


def _merged(records: list[_Record]) -> _Record:
    """The records of several seeds as one, in the order given (the order of one process)."""
    merged = records[0]
    for record in records[1:]:
        for key, tally in record.tallies.items():
            into = merged.tallies[key]
            into.psnr += tally.psnr
            into.ssim += tally.ssim
            into.fidelity += tally.fidelity
            into.seconds += tally.seconds
            into.nfe = tally.nfe if tally.nfe is not None else into.nfe
            if tally.failure:
                into.failure, into.message = tally.failure, tally.message
        for kind, tally in record.references.items():
            for name in ("accuracy", "psnr", "ssim"):
                merged.references[kind][name] += tally[name]
            merged.references[kind]["nonfinite"] += tally["nonfinite"]
        for name, values in record.inputs.items():
            merged.inputs[name] += values
        merged.pictures.update(record.pictures)
    return merged


class _Benchmark:
    """The state of one `run_quality`: runs, samplers, SDE grids and the tallies."""

    def __init__(
        self, model, prediction: str, schedule, options: QualityOptions, device, model_name=""
    ):
        self.model, self.prediction, self.schedule = model, prediction, schedule
        self.options, self.device = options, device
        self.runs = plan_runs(options, schedule, model_name)
        self.active = [run for run in self.runs if run.steps is not None]
        self.kinds = {run.kind for run in self.active}
        self.samplers = {
            entry: entry_sampler(entry, options.grid, schedule, prediction)
            for entry in options.samplers
        }
        self.fine, self.check = self._sde_grids()
        photos = options.photos
        self.clean = torch.stack([center_crop(load_photo(p), options.crop) for p in photos])
        self.adopt(self._fresh_record())

    def _fresh_record(self) -> _Record:
        return _Record(
            {(run.sampler, run.budget): _Tally() for run in self.active},
            {"ode": _reference_tally(), "sde": _reference_tally()},
            {"psnr": [], "ssim": []},
            {},
        )

    def adopt(self, record: _Record) -> None:
        """Tally into ``record`` from now on (and report from it)."""
        self.tallies, self.references = record.tallies, record.references
        self.inputs, self.pictures = record.inputs, record.pictures

    def _sde_grids(self):
        """(fine grid, accuracy-check grid) of the SDE reference (module docstring)."""
        sde_runs = [run for run in self.active if run.kind == "sde"]
        if not sde_runs:
            return None, None
        refinement = self.options.sde_refinement
        floor = -(-self.options.reference_step_count() // refinement)
        reference = make_sampler(SDE_REFERENCE_SOLVER, self.schedule, self.prediction)
        run_grids = [_run_times(self.samplers[run.sampler], run) for run in sde_runs]
        merged = merged_grid(self.schedule, [reference.timesteps(floor), *run_grids])
        check = nested_grid(self.schedule, merged, refinement // 2) if refinement > 1 else None
        return nested_grid(self.schedule, merged, refinement), check

    def measure_seed(self, seed: int, bar) -> _Record:
        """Every active run of ``seed``, against the references of ``seed``: its record."""
        record = self._fresh_record()
        self.adopt(record)
        multiple = getattr(self.model, "required_multiple", 1)
        batch = seed_inputs(
            self.clean, self.options.task, self.schedule, seed, multiple, self.device
        )
        degraded = batch.degraded.clamp(0.0, 1.0)
        self.inputs["psnr"] += _listed(psnr(degraded, self.clean))
        self.inputs["ssim"] += _listed(ssim(degraded, self.clean))
        path = None
        if "sde" in self.kinds:
            shape = tuple(batch.mu.shape)
            path = CoupledBrownian(self.schedule, self.fine, shape, seed=seed, device=self.device)
        targets = self._references(batch, path)
        bar.update()
        if seed == 0:
            self.pictures.update(degraded=degraded[0], clean=self.clean[0])
            for kind, reference in targets.items():
                if reference is not None:
                    self.pictures[f"reference-{kind}"] = reference[0]
        for run in self.active:
            bar.set_postfix_str(f"seed {seed} {run.sampler} {run.budget}")
            self._measure_run(run, batch, path, targets[run.kind], seed)
            bar.update()
        return record

    def _references(self, batch: SeedInputs, path) -> dict:
        """The clamped references of each kind (None if not needed or non-finite), tallied."""
        inputs = (self.model, self.prediction, self.schedule, batch.mu, batch.x_start)
        targets = {"ode": None, "sde": None}
        if "ode" in self.kinds:
            ode = functools.partial(ode_reference, *inputs)
            steps = self.options.reference_step_count()
            half = functools.partial(ode, steps // 2)
            targets["ode"] = self._reference(functools.partial(ode, steps), half, batch, "ode")
        if "sde" in self.kinds:
            sde = functools.partial(sde_reference, *inputs, path)
            coarser = None if self.check is None else functools.partial(sde, self.check)
            targets["sde"] = self._reference(
                functools.partial(sde, self.fine), coarser, batch, "sde"
            )
        return targets

    def _reference(self, compute: Callable, check: Callable | None, batch, kind: str):
        """``compute()`` clamped, with its accuracy against ``check()`` tallied under ``kind``."""
        tally = self.references[kind]
        try:
            x = _clamped(compute(), batch.size)
            checked = None if check is None else _clamped(check(), batch.size)
        except NonFiniteError:
            tally["nonfinite"] += 1
            return None
        tally["psnr"] += _listed(psnr(x, self.clean))
        tally["ssim"] += _listed(ssim(x, self.clean))
        if checked is not None:
            tally["accuracy"] += _listed(psnr(x, checked))
        return x

    def _measure_run(self, run: PlannedRun, batch: SeedInputs, path, reference, seed: int):
        tally = self.tallies[(run.sampler, run.budget)]
        output = _timed_run(self.samplers[run.sampler], self.model, batch, run, path, tally)
        if output is None:
            return
        tally.psnr += _listed(psnr(output, self.clean))
        tally.ssim += _listed(ssim(output, self.clean))
        if reference is not None:
            tally.fidelity += _listed(psnr(output, reference))
        if seed == 0:
            self.pictures[(run.sampler, run.budget)] = output[0]


def _listed(values: float | torch.Tensor) -> list[float]:
    """A metric of a batch (a tensor ``[B]``) or of one image (a float) as a list."""
    return torch.as_tensor(values, dtype=torch.float64).reshape(-1).tolist()


def _reference_tally() -> dict:
    return {"accuracy": [], "psnr": [], "ssim": [], "nonfinite": 0}


def _clamped(x: torch.Tensor, size) -> torch.Tensor:
    return unpad(x, size).detach().to("cpu", torch.float32).clamp(0.0, 1.0)


def _timed_run(sampler, model, batch: SeedInputs, run: PlannedRun, path, tally: _Tally):
    """The clamped output of one run (None if it blew up), its time added to ``tally``."""
    mu, x_T = batch.mu, batch.x_start
    # compile the plan before the clock starts: seconds measure sampling, not coefficients
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InstabilityWarning)  # the ladder measures them
        plan = sampler.prepare(
            timesteps=_run_times(sampler, run), device=mu.device, dtype=x_T.dtype
        )
    noise = None
    if run.kind == "sde":
        noise = _precomputed(path.noise_fn(family_for(run.solver_id)), plan, x_T)
    _synchronize(mu.device)
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            result = sampler.sample(model, mu, timesteps=plan.timesteps, x_T=x_T, noise=noise)
        _synchronize(mu.device)
    except DivergenceError as error:
        tally.failure, tally.message = "diverged", str(error)
        return None
    except NonFiniteError as error:
        tally.failure, tally.message = "nonfinite", str(error)
        return None
    tally.seconds.append((time.perf_counter() - start) / mu.shape[0])
    tally.nfe = result.nfe
    return _clamped(result.x, batch.size)


def _run_times(sampler, run: PlannedRun) -> torch.Tensor:
    """The grid of ``run``: its tuned times, or ``run.steps`` of the sampler's spacing."""
    if run.timesteps is not None:
        return torch.tensor(run.timesteps, dtype=torch.float64)
    assert run.steps is not None
    return sampler.timesteps(run.steps)


def _precomputed(noise: NoiseSource, plan: Plan, like: torch.Tensor) -> NoiseSource:
    """``noise``'s z of every step of ``plan``, assembled now; the source hands them out."""
    draws = [
        noise(i, step.t_from, step.t_to, like.shape, like.dtype, like.device)
        for i, step in enumerate(plan.steps)
    ]

    def handed_out(step, t_from, t_to, shape, dtype, device):
        return draws[step].to(device=device, dtype=dtype)

    return handed_out


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _row(run: PlannedRun, tally: _Tally | None) -> QualityRow:
    row = QualityRow(
        sampler=run.sampler,
        nfe=None,
        psnr=None,
        ssim=None,
        fidelity_db=None,
        seconds=None,
        nfe_budget=run.budget,
        steps=run.steps,
        kind=run.kind,
        status="skipped",
        reason=run.reason,
    )
    if tally is None:
        return row
    if tally.failure:
        return replace(row, nfe=run.nfe, status=tally.failure, reason=tally.message)
    return replace(
        row,
        nfe=tally.nfe,
        psnr=_mean(tally.psnr),
        ssim=_mean(tally.ssim),
        fidelity_db=_mean(tally.fidelity),
        seconds=_mean(tally.seconds),
        status="ok",
        reason="",
    )


def nfe_to_fidelity(rows: Sequence[QualityRow], options: QualityOptions) -> dict[str, int | None]:
    """Per sampler, the smallest NFE whose mean fidelity reaches ``options.threshold_db``."""
    reached: dict[str, int | None] = {sampler: None for sampler in options.samplers}
    for row in rows:
        if row.status != "ok" or row.fidelity_db is None or row.nfe is None:
            continue
        if row.fidelity_db >= options.threshold_db:
            best = reached[row.sampler]
            reached[row.sampler] = row.nfe if best is None else min(best, row.nfe)
    return reached


def _metadata(options, model_name, prediction, schedule, benchmark: _Benchmark, device):
    fine = benchmark.fine
    ode_steps = options.reference_step_count()
    reference_info = {
        "ode": {
            "solver": ODE_REFERENCE_SOLVER,
            "steps": ode_steps,
            "check_steps": ode_steps // 2,
        },
        "sde": {
            "solver": SDE_REFERENCE_SOLVER,
            "fine_steps": None if fine is None else fine.numel() - 1,
            "refinement": options.sde_refinement,
            "check_refinement": options.sde_refinement // 2 or None,
            "path": "CoupledBrownian (exact weighted integrals of one path per image and seed)",
        },
    }
    for kind, tally in benchmark.references.items():
        reference_info[kind].update(
            accuracy_db=_mean(tally["accuracy"]),
            psnr=_mean(tally["psnr"]),
            ssim=_mean(tally["ssim"]),
            nonfinite_runs=tally["nonfinite"],
        )
    return {
        "model": model_name,
        "task": options.task,
        "prediction": prediction,
        "schedule": repr(schedule),
        "seeds": options.seeds,
        "crop": options.crop,
        "photos": list(options.photos),
        "nfe_budgets": sorted(options.nfes),
        "threshold_db": options.threshold_db,
        "device": str(device),
        "batch": len(options.photos),
        "torch_threads": torch.get_num_threads(),
        "input_psnr": _mean(benchmark.inputs["psnr"]),
        "input_ssim": _mean(benchmark.inputs["ssim"]),
        "fidelity": (
            "PSNR (dB, data range 1, 4-px border) between the clamped N-step output and the "
            "clamped converged reference of its kind, same x_T and Brownian path"
        ),
        "references": reference_info,
    }
