"""How far each solver's result moves with the working dtype, and whether it stays finite.

Sweeps every solver id of [`SOLVERS`] × dtype (float64, float32, float16, bfloat16) × network-call
budget (NFE 3, 5, 10, 100, 1000; turned into steps with ``sampler.steps_within(nfe)``) × model,
and prints the largest absolute deviation of each run's result from the float64 run of the same
(model, solver, NFE). The models are

- the exact Gaussian-mixture oracle ``gmm-2d-diag`` (cosine schedule, Λ = 50/255, conditions μ
  uniform in [0, 1]²) returning its exact **noise**, **data** and **velocity** prediction: the
  oracle computes in float64 and rounds its output to the run's dtype, as a perfect network
  computed in that dtype would;
- two shipped networks, ``denoise-data`` (data prediction) and ``denoise-noise-ts30`` (noise
  prediction), on centre crops of the held-out photos degraded with seed 0, with their weights
  cast to the run's dtype.

Every dtype of a (model, solver, NFE) starts from the same prior x_T = μ + σ(t_0)ξ (drawn once
in float64 and cast) and gets the same SDE noise (drawn in float64 per step and stage, then
cast), so the deviation is the dtype's doing alone. Half precisions run, as ``sample`` always
runs them, with the model in half precision and a float32 master state.

A run that raises the engine's ``NonFiniteError`` (NaN/Inf from the model or in the state) or
its subclass ``DivergenceError`` (the state left the band around μ) is recorded as a row with
that status, as is any other error; a solver that cannot make a step within the budget is
recorded as skipped, with the reason. A result that comes back non-finite is flagged.

Cost: on one CPU thread a float16 or bfloat16 network call is 3–10× slower than a float32 one,
so the networks run on an 8² crop, and at 1000 NFE only for ``--network-1000-solvers`` (the
recommended ODE and SDE by default; ``all`` runs every solver, about 40 minutes more). The full
default run takes about 16 minutes on one core, ``--quick`` about one.

    OMP_NUM_THREADS=1 python benchmarks/reliability.py            # full: results/reliability.*
    OMP_NUM_THREADS=1 python benchmarks/reliability.py --quick    # smoke: reliability_quick.*

The tables go to stdout and to ``benchmarks/results/reliability.md``; every row to
``benchmarks/results/reliability.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mrs_numerics import schedules
from mrs_numerics.imaging.degradations import degrade
from mrs_numerics.imaging.photos import HELDOUT_PHOTOS, center_crop, load_photo
from mrs_numerics.models.registry import load_model
from mrs_numerics.solvers import SOLVERS, make_sampler, parameterization
from mrs_numerics.solvers.engine import NonFiniteError
from mrs_numerics.verification.oracles import gmm_2d_diag

RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
REFERENCE = "float64"
NFES = (3, 5, 10, 100, 1000)
QUICK_NFES = (3, 10)
ORACLE_PREDICTIONS = ("noise", "data", "velocity")
NETWORKS = ("denoise-data", "denoise-noise-ts30")
NETWORK_1000_SOLVERS = ("mrs-ode-2-data", "mrs-sde-2-data")
"""Solvers run at 1000 NFE with the networks by default (the recommended ODE and SDE)."""
ORACLE_SCHEDULE = "cosine"
ORACLE_MAX_SIGMA = 50 / 255
FEW, MANY = (3, 5, 10), (100, 1000)


@dataclass
class Case:
    """One model: what it predicts, its schedule, μ (float64) and a model per dtype."""

    name: str
    prediction: str
    schedule: object
    mu: torch.Tensor
    models: dict
    is_network: bool


@dataclass
class Row:
    """One run (or one skipped run) of the sweep."""

    case: str
    prediction: str
    solver: str
    family: str
    nfe_budget: int
    dtype: str
    status: str
    steps: int | None = None
    nfe: int | None = None
    max_abs_deviation: float | None = None
    rounding_floor: float | None = None
    finite: bool | None = None
    seconds: float = 0.0
    note: str = ""


class FixedNoise:
    """Standard normals drawn in float64 per (step, stage) from a seed, cast to the asked dtype.

    Every dtype of a run gets the same draws (a generator draws different numbers in float32
    and float64), so the SDE noise does not add to the dtype's deviation.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.drawn: dict[int, int] = {}

    def __call__(self, step, t_from, t_to, shape, dtype, device):
        stage = self.drawn.get(step, 0)
        self.drawn[step] = stage + 1
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + 97 * step + stage)
        return torch.randn(shape, generator=generator, dtype=torch.float64).to(
            device=device, dtype=dtype
        )


def family(solver_id: str) -> str:
    """A short family label: ``mrs ODE data``, ``mrs ODE noise unic``, ``baseline SDE`` …"""
    info = SOLVERS[solver_id]
    if info.family == "baseline":
        return f"baseline {info.method.upper()}"
    corrector = f" {info.corrector}" if info.corrector else ""
    return f"mrs {info.method.upper()} {info.solver_prediction}{corrector}"


class SharedTimeSchedule:
    """α(t) and σ(t) of ``schedule``, remembered per time when the whole batch shares it.

    The samplers call the model with one time for the whole batch, and the cosine schedule's
    Θ(t) is a quadrature: remembering it makes the oracle runs several times faster and gives
    the same numbers.
    """

    def __init__(self, schedule):
        self.schedule = schedule
        self.max_sigma = schedule.max_sigma
        self.memo: dict[tuple[str, float], torch.Tensor] = {}

    def _at(self, name: str, t: torch.Tensor) -> torch.Tensor:
        flat = t.reshape(-1)
        if flat.numel() == 0 or not bool((flat == flat[0]).all()):
            return getattr(self.schedule, name)(t)
        key = (name, float(flat[0]))
        if key not in self.memo:
            self.memo[key] = getattr(self.schedule, name)(flat[:1]).reshape(())
        return self.memo[key].expand(t.shape)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return self._at("alpha", t)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self._at("sigma", t)


def oracle_case(prediction: str, batch: int, seed: int) -> Case:
    schedule = schedules.get(ORACLE_SCHEDULE, max_sigma=ORACLE_MAX_SIGMA)
    oracle = gmm_2d_diag(SharedTimeSchedule(schedule))
    generator = torch.Generator().manual_seed(seed)
    mu = torch.rand(batch, oracle.dim, generator=generator, dtype=torch.float64)
    model = oracle.model(prediction)  # float64 inside, output in the input's dtype
    return Case(
        f"oracle-{prediction}", prediction, schedule, mu, dict.fromkeys(DTYPES, model), False
    )


def network_case(name: str, crop: int, batch: int) -> Case:
    net, info = load_model(name)
    photos = [center_crop(load_photo(photo), crop) for photo in HELDOUT_PHOTOS]
    clean = torch.stack([photos[i % len(photos)] for i in range(batch)])
    mu = degrade(info.task, clean, torch.Generator().manual_seed(0)).to(torch.float64)
    models = {key: copy.deepcopy(net).to(dtype) for key, dtype in DTYPES.items()}
    schedule = schedules.get(info.schedule, max_sigma=info.max_sigma)
    return Case(name, info.prediction, schedule, mu, models, True)


def _run(case: Case, sampler, steps: int, dtype_name: str, x_T64, seed: int):
    """(result or None, status, note, seconds) of one run in ``dtype_name``."""
    dtype = DTYPES[dtype_name]
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
            warnings.simplefilter("always")
            result = sampler.sample(
                case.models[dtype_name],
                case.mu.to(dtype),
                steps=steps,
                x_T=x_T64.to(dtype),
                noise=FixedNoise(seed),
            )
        notes = sorted({str(w.message).split(";")[0].split(":")[0] for w in caught})
        return result, "ok", "; ".join(notes), time.perf_counter() - start
    except NonFiniteError as error:  # DivergenceError is a subclass: the name tells them apart
        return None, type(error).__name__, _first_line(error), time.perf_counter() - start
    except Exception as error:  # a benchmark records every failure and goes on
        status = f"error ({type(error).__name__})"
        return None, status, _first_line(error), time.perf_counter() - start


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:200] if str(error) else ""


def sweep(case: Case, solver_ids, nfes, dtypes, network_1000, seed: int, log) -> list[Row]:
    """Every (solver, NFE, dtype) run of one model, the float64 run of each first."""
    rows = []
    for solver_id in solver_ids:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = make_sampler(solver_id, case.schedule, case.prediction)
        for nfe in nfes:
            base = dict(case=case.name, prediction=case.prediction, solver=solver_id)
            base.update(family=family(solver_id), nfe_budget=nfe)
            skip = None
            if case.is_network and nfe >= 1000 and solver_id not in network_1000:
                skip = "network at 1000 NFE: not in --network-1000-solvers"
            else:
                try:
                    steps, calls = sampler.steps_within(nfe)
                except ValueError as error:
                    skip = f"cannot spend the budget: {_first_line(error)}"
            if skip is not None:
                rows += [Row(**base, dtype=d, status="skipped", note=skip) for d in dtypes]
                log(f"{case.name:<20} {solver_id:<22} NFE {nfe:>4}  skipped: {skip}")
                continue
            sigma0 = float(case.schedule.sigma(sampler.timesteps(steps)[0]))
            generator = torch.Generator().manual_seed(seed)
            xi = torch.randn(case.mu.shape, generator=generator, dtype=torch.float64)
            x_T64 = case.mu + sigma0 * xi
            reference = None
            for dtype_name in dtypes:
                result, status, note, seconds = _run(case, sampler, steps, dtype_name, x_T64, seed)
                row = Row(**base, dtype=dtype_name, status=status, steps=steps, nfe=calls)
                row.seconds, row.note = seconds, note
                if result is not None:
                    reference = _measure(row, result, reference)
                rows.append(row)
            cells = "  ".join(f"{r.dtype} {_cell(r)}" for r in rows[-len(dtypes) :])
            log(f"{case.name:<20} {solver_id:<22} NFE {nfe:>4} ({steps:>4} steps)  {cells}")
    return rows


def _measure(row: Row, result, reference: torch.Tensor | None) -> torch.Tensor | None:
    """Fill the row from a finished run; returns the float64 reference (set by its own run)."""
    row.nfe = result.nfe
    x = result.x.to(torch.float64)
    row.finite = bool(torch.isfinite(x).all())
    if not row.finite:
        row.status = "non-finite result"
    if row.dtype == REFERENCE:
        return x if row.finite else None
    if reference is None:
        if row.status == "ok":
            row.status = "ok (no float64 reference)"
    elif row.finite:
        row.max_abs_deviation = float((x - reference).abs().max())
        rounded = reference.to(DTYPES[row.dtype]).to(torch.float64)
        row.rounding_floor = float((rounded - reference).abs().max())
    return reference


CALL_GRID = ("mrs-ode-2-data", 3)
"""One network call is measured at the times of this solver's grid of this many steps."""


def call_errors(case: Case, seed: int) -> list[dict]:
    """One call per dtype at the times of a 3-step λ grid: the output's and x̂₀'s deviation.

    The state is μ + σ(t)ξ (float64, cast). x̂₀ is converted as the engine converts it: with
    the state the model saw, in float64 arithmetic, so what is left is the model's own error.
    """
    solver, steps = CALL_GRID
    times = make_sampler(solver, case.schedule, case.prediction).timesteps(steps)
    big = float(case.schedule.max_sigma)
    generator = torch.Generator().manual_seed(seed + 1)
    xi = torch.randn(case.mu.shape, generator=generator, dtype=torch.float64)
    entries = []
    for t in times.tolist():
        alpha = float(case.schedule.alpha(torch.tensor(t, dtype=torch.float64)))
        sigma = float(case.schedule.sigma(torch.tensor(t, dtype=torch.float64)))
        x = case.mu + sigma * xi
        batch_t = torch.full((x.shape[0],), t, dtype=torch.float64)
        out, data = {}, {}
        for name, dtype in DTYPES.items():
            seen, mu = x.to(dtype), case.mu.to(dtype)
            with torch.inference_mode():
                value = case.models[name](seen, batch_t, mu).to(torch.float64)
            args = (case.prediction, seen.to(torch.float64), case.mu, alpha, sigma, big)
            out[name], data[name] = value, parameterization.to_data(value, *args)
        entry = dict(case=case.name, prediction=case.prediction, t=t, alpha=alpha, sigma=sigma)
        entry["output_max"] = float(out[REFERENCE].abs().max())
        for name in DTYPES:
            if name != REFERENCE:
                entry[f"{name}_output"] = float((out[name] - out[REFERENCE]).abs().max())
                entry[f"{name}_x0"] = float((data[name] - data[REFERENCE]).abs().max())
        entries.append(entry)
    return entries


def _call_table(entries: list[dict], dtypes: list[str]) -> list[str]:
    lines = [
        "## One call: the model's error and the x̂₀ the solver gets",
        "",
        f"One call per dtype at the times of the {CALL_GRID[1]}-step λ grid, state μ + σ(t)ξ; "
        "max |output − output_float64| / max |x̂₀ − x̂₀_float64|, x̂₀ converted from the "
        "output with the state the model saw (as the engine does). σ/α is what turns a noise "
        "error into an x̂₀ error.",
        "",
        "| model | t | α | σ/α | max abs output | " + " | ".join(dtypes) + " |",
        "|---|---|---|---|---|" + "---|" * len(dtypes),
    ]
    for e in entries:
        cells = [f"{_number(e[f'{d}_output'])} / {_number(e[f'{d}_x0'])}" for d in dtypes]
        lines.append(
            f"| {e['case']} | {e['t']:.3g} | {e['alpha']:.3g} | {e['sigma'] / e['alpha']:.3g} | "
            f"{e['output_max']:.2f} | " + " | ".join(cells) + " |"
        )
    return lines


def _cell(row: Row | None) -> str:
    """A table cell: the deviation, or what happened instead."""
    if row is None:
        return "–"
    if row.status == "skipped":
        return "skip"
    if row.status != "ok":
        short = {"NonFiniteError": "NaN/Inf", "DivergenceError": "diverged"}
        return short.get(row.status, row.status.split(" (")[0])
    if row.dtype == REFERENCE:
        return "ref"
    return _number(row.max_abs_deviation)


def _deviation(row: Row | None) -> str:
    return "–" if row is None else _number(row.max_abs_deviation)


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0.0:
        return "0"
    return f"{value:.1e}"


def _worst(rows: list[Row]) -> Row | None:
    """The row with the largest measured deviation, or None."""
    measured = [r for r in rows if r.max_abs_deviation is not None]
    return max(measured, key=lambda r: r.max_abs_deviation) if measured else None


def report(rows: list[Row], calls: list[dict], args, seconds: float, cpu: float) -> str:
    cases = list(dict.fromkeys(r.case for r in rows))
    dtypes = [d for d in DTYPES if d != REFERENCE and any(r.dtype == d for r in rows)]
    nfes = sorted({r.nfe_budget for r in rows})
    lines = [
        "# Precision and reliability per dtype",
        "",
        f"`python benchmarks/reliability.py{' --quick' if args.quick else ''}` on "
        f"{platform.machine()} CPU, torch {torch.__version__}, 1 thread, "
        f"{seconds / 60:.1f} min wall, {cpu / 60:.1f} min CPU. Max |x − x_float64| of each "
        "run's result over the batch "
        f"(oracle: `gmm-2d-diag`, {args.oracle_batch} conditions; networks: {args.batch} "
        f"held-out {args.crop}² crops), same x_T and SDE noise for every dtype. "
        f"Networks at 1000 NFE: {', '.join(args.network_1000) or 'none'}.",
        "",
        "## Worst deviation per model and dtype",
        "",
        "Over every solver that ran (worst solver @ NFE in brackets). Runs not ok: those of "
        "this dtype that raised (NaN/Inf: `NonFiniteError`; diverged: `DivergenceError`), "
        "and whether the float64 run did too. "
        "*Rounding*: how far casting that float64 result to the dtype alone moves it (results "
        "come back in the input dtype), the least deviation possible.",
        "",
        "| model | prediction | dtype | NFE 3–10 | NFE 100–1000 | runs not ok |",
        "|---|---|---|---|---|---|",
    ]
    index = {(r.case, r.solver, r.nfe_budget, r.dtype): r for r in rows}
    for case in cases:
        mine = [r for r in rows if r.case == case]
        for dtype in dtypes:
            cells = []
            for budgets in (FEW, MANY):
                subset = [r for r in mine if r.dtype == dtype and r.nfe_budget in budgets]
                worst = _worst(subset)
                cells.append(
                    "–"
                    if worst is None
                    else f"{_number(worst.max_abs_deviation)} ({worst.solver} @ "
                    f"{worst.nfe_budget}; rounding {_number(worst.rounding_floor)})"
                )
            bad = []
            for r in mine:
                if r.dtype != dtype or r.status in ("ok", "skipped"):
                    continue
                ref = index[(r.case, r.solver, r.nfe_budget, REFERENCE)]
                also = ", float64 too" if ref.status not in ("ok", "skipped") else ""
                bad.append(f"{r.solver} @ {r.nfe_budget} ({_cell(r)}{also})")
            cells.append(f"{len(bad)}" + (": " + ", ".join(bad) if bad else ""))
            prediction = mine[0].prediction
            lines.append(f"| {case} | {prediction} | {dtype} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Worst deviation per solver family (NFE 3–10 / 100–1000)",
        "",
        "| model | family | " + " | ".join(dtypes) + " |",
        "|---|---|" + "---|" * len(dtypes),
    ]
    families = list(dict.fromkeys(r.family for r in rows))
    for case in cases:
        for fam in families:
            cells = []
            for dtype in dtypes:
                mine = [r for r in rows if (r.case, r.family, r.dtype) == (case, fam, dtype)]
                few = _worst([r for r in mine if r.nfe_budget in FEW])
                many = _worst([r for r in mine if r.nfe_budget in MANY])
                cells.append(f"{_deviation(few)} / {_deviation(many)}")
            lines.append(f"| {case} | {fam} | " + " | ".join(cells) + " |")
    lines += ["", *_call_table(calls, dtypes)]
    lines += ["", "## Every run", ""]
    lines.append(
        "Cells: " + " · ".join(dtypes) + " (max abs deviation from float64); `skip`: not run "
        "(see the JSON's note), `diverged`/`NaN/Inf`: the run raised, `ref` status of float64 "
        "shown when it failed."
    )
    solvers = list(dict.fromkeys(r.solver for r in rows))
    for case in cases:
        prediction = next(r.prediction for r in rows if r.case == case)
        lines += ["", f"### {case} ({prediction} prediction)", ""]
        lines.append("| solver | " + " | ".join(f"NFE {n}" for n in nfes) + " |")
        lines.append("|---|" + "---|" * len(nfes))
        for solver in solvers:
            cells = []
            for nfe in nfes:
                ref = index.get((case, solver, nfe, REFERENCE))
                if ref is not None and ref.status == "skipped":
                    cells.append("skip")
                    continue
                if ref is not None and ref.status != "ok":
                    cells.append(f"float64 {_cell(ref)}")
                    continue
                parts = [_cell(index.get((case, solver, nfe, d))) for d in dtypes]
                steps = ref.steps if ref is not None else None
                suffix = f" <sub>{steps} st</sub>" if steps is not None else ""
                cells.append(" · ".join(parts) + suffix)
            lines.append(f"| `{solver}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: NFE 3 and 10, small")
    parser.add_argument("--nfe", type=int, nargs="+", help=f"budgets (default {NFES})")
    parser.add_argument("--solvers", nargs="+", choices=sorted(SOLVERS), help="default: all")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=[f"oracle-{p}" for p in ORACLE_PREDICTIONS] + list(NETWORKS),
        help="default: the three oracle forms and both networks",
    )
    parser.add_argument("--crop", type=int, default=8, help="network crop size (default 8)")
    parser.add_argument("--batch", type=int, default=1, help="network batch (default 1)")
    parser.add_argument("--oracle-batch", type=int, default=64, help="oracle conditions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--network-1000-solvers",
        dest="network_1000",
        nargs="+",
        default=list(NETWORK_1000_SOLVERS),
        help="solvers run with the networks at NFE ≥ 1000 ('all' for every one)",
    )
    parser.add_argument("--out", type=Path, help="output stem (default results/reliability)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.nfe = args.nfe or list(QUICK_NFES)
        args.oracle_batch, args.batch = min(args.oracle_batch, 16), 1
    nfes = args.nfe or list(NFES)
    solver_ids = args.solvers or list(SOLVERS)
    if args.network_1000 == ["all"]:
        args.network_1000 = list(SOLVERS)
    names = args.models or [f"oracle-{p}" for p in ORACLE_PREDICTIONS] + list(NETWORKS)
    stem = args.out or RESULTS / ("reliability_quick" if args.quick else "reliability")

    def log(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    start, cpu_start = time.perf_counter(), time.process_time()
    rows: list[Row] = []
    calls: list[dict] = []
    for name in names:
        if name.startswith("oracle-"):
            case = oracle_case(name.removeprefix("oracle-"), args.oracle_batch, args.seed)
        else:
            case = network_case(name, args.crop, args.batch)
        calls += call_errors(case, args.seed)
        rows += sweep(case, solver_ids, nfes, list(DTYPES), args.network_1000, args.seed, log)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    text = report(rows, calls, args, seconds, cpu)
    sys.stdout.write("\n" + text)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(text)
    payload = {
        "command": " ".join(["python benchmarks/reliability.py", *(argv or sys.argv[1:])]),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "settings": {
            "nfe": nfes,
            "crop": args.crop,
            "batch": args.batch,
            "oracle": "gmm-2d-diag",
            "oracle_batch": args.oracle_batch,
            "seed": args.seed,
            "network_1000_solvers": args.network_1000,
        },
        "calls": calls,
        "rows": [asdict(r) for r in rows],
    }
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    sys.stdout.write(f"\nwrote {stem.with_suffix('.md')} and .json ({seconds / 60:.1f} min)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
