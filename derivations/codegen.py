"""Write ``mrs_numerics/_generated`` from the derivations: ``python -m derivations.codegen``.

Emits, for the torch and numpy backends:

- ``phi_<backend>.py``      φ_1 … φ_3 with a Taylor branch near 0 (`derivations.phi`);
- ``updates_<backend>.py``  one function per stage of every update (`derivations.updates`),
                            returning the linear step coefficients (x, μ, outputs, noise);
- ``parameterization_<backend>.py`` conversions among predictions
  (`derivations.parameterization`);
- ``registry.py``           backend-free metadata of every update: method, prediction, scheme,
                            order, network calls, parameters, stages, and the proved local order;
- ``baselines_<backend>.py`` one function per stage of the baseline samplers (Euler–Maruyama,
                            posterior sampling, Euler, Heun; `derivations.baselines`);
- ``baselines_registry.py`` backend-free metadata of the baselines and their declared orders;
- the schedule modules of `derivations.schedule_codegen`.

Nothing is emitted before it is proved: each update's polynomial exactness and local order
(and, for singlestep updates, the state-dependent local order; for correctors, the
state-dependent local order of every kind of step of a corrected run, outputs reused) are
checked first, and a failed proof stops code generation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from derivations import baselines, order_proofs, parameterization, schedules
from derivations import updates as updates_derivation
from derivations.emit import function, header, module, write_modules
from derivations.phi import (
    MAX_ORDER,
    SERIES_RADIUS,
    phi_series,
    phi_stable_closed_form,
    series_terms,
)
from derivations.printers import PRINTERS
from derivations.symbols import Lambda
from derivations.updates import UPDATE_INPUTS, Update, all_updates, stage_coefficients

GENERATED_DIR = Path(__file__).resolve().parent.parent / "mrs_numerics" / "_generated"
BACKENDS = ("torch", "numpy")

_BACKEND_OPS = {
    "torch": {"abs": "torch.abs", "where": "torch.where", "ones_like": "torch.ones_like"},
    "numpy": {"abs": "numpy.abs", "where": "numpy.where", "ones_like": "numpy.ones_like"},
}


class ProofError(RuntimeError):
    """A derivation's proof failed: nothing is generated from it."""


def phi_function(k: int, backend: str) -> str:
    """Source of ``phi_k`` for ``backend``: series branch inside the radius, expm1 form outside."""
    z = sp.Symbol("z")
    zs = sp.Symbol("z_safe")
    terms = series_terms(k)
    series = sp.horner(phi_series(k, z, terms), wrt=z)
    closed = phi_stable_closed_form(k, zs)
    ops = _BACKEND_OPS[backend]
    code = PRINTERS[backend]
    body = []
    if backend == "numpy":
        body.append("z = numpy.asarray(z)")
        body.append("z = z.astype(numpy.result_type(z.dtype, numpy.float32))")
    body += [
        f"small = {ops['abs']}(z) < {float(SERIES_RADIUS)!r}",
        f"z_safe = {ops['where']}(small, {ops['ones_like']}(z), z)",
        f"series = {code(series)}",
        f"closed = {code(closed)}",
    ]
    doc = (
        f"φ_{k}(z) = (e^z − Σ_{{j<{k}}} z^j/j!)/z^{k}, elementwise.\n\n"
        f"    |z| < {SERIES_RADIUS}: Taylor series Σ_{{j<{terms}}} z^j/(j+{k})! in Horner form "
        "(tail below 1e-18 relative);\n"
        "    elsewhere: the closed form with expm1.\n"
        "    The unused branch sees z = 1 where |z| is small, so it stays finite.\n    "
    )
    return function(f"phi_{k}", ["z"], doc, body, f"{ops['where']}(small, series, closed)")


def phi_module(backend: str) -> str:
    """The generated φ module for ``backend``."""
    parts = [phi_function(k, backend) for k in range(1, MAX_ORDER + 1)]
    return module(
        "derivations.phi", "Exponential-integrator φ-functions φ_1 … φ_3.", backend, parts
    )


def stage_function_name(update: Update, stage_name: str) -> str:
    """Generated name of a stage: ``<update>`` for the final step, else ``<update>_<stage>``."""
    return update.name if stage_name == "step" else f"{update.name}_{stage_name}"


def _fixed(update: Update) -> dict:
    return (
        dict(order_proofs.singlestep_fixed_parameters(update))
        if update.scheme == "singlestep"
        else {}
    )


def _arguments(update: Update) -> list[sp.Symbol]:
    fixed = _fixed(update)
    return [sp.Symbol("h"), *[p for p in update.parameters if p not in fixed], *UPDATE_INPUTS]


def stage_function(update: Update, stage_index: int, backend: str) -> str:
    """Source of one stage's coefficient function for ``backend``."""
    stage = update.stages[stage_index]
    coefficients = stage_coefficients(update, stage)
    fixed = _fixed(update)
    outputs = [
        sp.sympify(e).subs(fixed) for e in (coefficients.x, coefficients.mu, *coefficients.outputs)
    ]
    has_noise = update.method == "sde"
    if has_noise:
        outputs.append(sp.sympify(coefficients.noise).subs(fixed))
    replacements, reduced = sp.cse(outputs, symbols=sp.numbered_symbols("c"), optimizations="basic")
    code = PRINTERS[backend]
    body = [f"{name} = {code(expr)}" for name, expr in replacements]
    names = [code(e) for e in reduced]
    n_out = len(coefficients.outputs)
    output_tuple = "(" + ", ".join(names[2 : 2 + n_out]) + ("," if n_out == 1 else "") + ")"
    noise = names[-1] if has_noise else "None"
    labels = ", ".join(stage.node_labels)
    end = sp.sympify(stage.end).subs(fixed)
    doc = (
        f"Coefficients of {update.method.upper()} {update.prediction}-form {update.scheme} order-"
        f"{update.order}, stage '{stage.name}'.\n\n"
        f"    The stage ends at λ_s + ({end})·h; alpha_e, sigma_e are α, σ there. It returns\n"
        f"    StepCoefficients(x, mu, outputs, noise) with\n"
        "        x_e = x·x_s + mu·μ + Σ_j outputs[j]·m_j + noise·z,\n"
        f"    outputs ordered as ({labels}), m_j the network outputs in the solver's\n"
        "    prediction form, z ~ N(0, I) (noise is None for ODEs).\n    "
    )
    args = [code(a) for a in _arguments(update)]
    returns = f"StepCoefficients({names[0]}, {names[1]}, {output_tuple}, {noise})"
    return function(stage_function_name(update, stage.name), args, doc, body, returns)


def clean_step_function(backend: str) -> str:
    """``data_step_to_clean()``: the h → ∞ limit of the first-order data step (σ_t = 0)."""
    ode, sde = updates_derivation.clean_limit("ode"), updates_derivation.clean_limit("sde")
    if (ode.x, ode.mu, ode.outputs) != (sde.x, sde.mu, sde.outputs) or sde.noise != 0:
        raise ProofError(f"ODE and SDE data steps to σ = 0 disagree: {ode} vs {sde}")
    code = PRINTERS[backend]
    outputs = "(" + ", ".join(code(w) for w in ode.outputs) + ",)"
    doc = (
        "Coefficients of the first-order data-form step (ODE or SDE) landing on σ = 0.\n\n"
        "    The limit h → ∞ of the order-1 data updates with α_e = 1, σ_e = 0: x_t = x̂₀.\n    "
    )
    returns = f"StepCoefficients({code(ode.x)}, {code(ode.mu)}, {outputs}, None)"
    return function("data_step_to_clean", [], doc, [], returns)


def updates_module(backend: str, updates: Sequence[Update]) -> str:
    """The generated update-coefficient module for ``backend``."""
    parts = [
        stage_function(update, i, backend) for update in updates for i in range(len(update.stages))
    ]
    parts.append(clean_step_function(backend))
    imports = (
        f"\nfrom mrs_numerics._generated.phi_{backend} import "
        + ", ".join(f"phi_{k}" for k in range(1, MAX_ORDER + 1))
        + "\n"
        "from mrs_numerics._generated.types import StepCoefficients\n"
    )
    summary = (
        "Step coefficients of every MR Sampler update (ODE/SDE, noise/data; multistep, "
        "singlestep, corrector)."
    )
    return module("derivations.updates", summary, backend, parts, extra_imports=imports)


TYPES_SOURCE = '''
from dataclasses import dataclass
from typing import Any, NamedTuple


class StepCoefficients(NamedTuple):
    """x_e = x·x_s + mu·μ + Σ_j outputs[j]·m_j + noise·z (noise None for ODEs)."""

    x: Any
    mu: Any
    outputs: tuple
    noise: Any


class UpdateStage(NamedTuple):
    """One stage of an MR Sampler update.

    ``function`` is its generated function; ``end`` where it ends (a SymPy expression in the
    update's parameters, as text; '1' is the step's end); ``labels`` the model outputs it
    combines (m0 newest, m1, … earlier; stage1, … intermediate).
    """

    function: str
    end: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class UpdateInfo:
    """A generated MR Sampler update and what is proved of it.

    ``order`` is the global order (from the local order); ``model_calls`` the network calls per
    step; ``parameters`` the ratio arguments after h (multistep r_i = h_{-i}/h, singlestep stage
    positions); ``fixed_parameters`` the values the order proof fixes; ``local_error_power`` p:
    local error O(h^p), proved in derivations.order_proofs; ``start`` the update a run takes as
    its first step to keep the global order (derivations.updates.order_preserving_start), or None
    when the warm-up keeps it.
    """

    name: str
    method: str
    prediction: str
    scheme: str
    order: int
    model_calls: int
    parameters: tuple[str, ...]
    fixed_parameters: dict[str, str]
    stages: tuple[UpdateStage, ...]
    local_error_power: int
    start: str | None = None


class BaselineStage(NamedTuple):
    """One stage of a baseline step: its generated function, the labels of the model outputs
    it combines, and the names of its schedule arguments."""

    function: str
    labels: tuple[str, ...]
    arguments: tuple[str, ...]


@dataclass(frozen=True)
class BaselineInfo:
    """A generated baseline sampler and its declared orders.

    ``prediction`` is the model output the step consumes; ``order`` the global order in dt
    (ODE) or the strong order (SDE); ``order_basis`` says whether it is proved, inherited from
    an equivalent MR Sampler update, or from the literature; ``defined_at_sigma_zero`` is False
    where the last stage divides by σ_t (a step that ends at σ = 0 is then taken with euler-ode).
    """

    id: str
    method: str
    prediction: str
    order: int
    strong_order: Any
    weak_order: Any
    order_basis: str
    model_calls: int
    stages: tuple[BaselineStage, ...]
    equivalent_update: Any
    defined_at_sigma_zero: bool
'''
"""The backend-free types of the generated registries and updates (emitted as they are)."""


def types_module() -> str:
    """Backend-free types shared by the generated update modules and registries."""
    summary = "Types shared by the generated update modules and registries."
    return header("derivations.updates", summary) + TYPES_SOURCE


def registry_module(updates: Sequence[Update], proved: dict[str, int]) -> str:
    """Backend-free metadata of every update, with its proved local-error order."""
    lines = [
        header("derivations.updates", "Registry of generated updates and their proved orders.")
    ]
    lines.append("\nfrom mrs_numerics._generated.types import UpdateInfo, UpdateStage\n")
    lines.append("UPDATES: dict[str, UpdateInfo] = {")
    for update in updates:
        fixed = _fixed(update)
        params = [str(p) for p in update.parameters if p not in fixed]
        stages = ", ".join(
            f"UpdateStage({stage_function_name(update, st.name)!r}, "
            f"{str(sp.sympify(st.end).subs(fixed))!r}, {st.node_labels!r})"
            for st in update.stages
        )
        lines.append(f"    {update.name!r}: UpdateInfo(")
        lines.append(f"        name={update.name!r},")
        lines.append(f"        method={update.method!r},")
        lines.append(f"        prediction={update.prediction!r},")
        lines.append(f"        scheme={update.scheme!r},")
        lines.append(f"        order={update.order},")
        lines.append(f"        model_calls={update.model_calls},")
        lines.append(f"        parameters={tuple(params)!r},")
        lines.append(f"        fixed_parameters={ ({str(k): str(v) for k, v in fixed.items()})!r},")
        lines.append(f"        stages=({stages},),")
        lines.append(f"        local_error_power={proved[update.name]},")
        start = updates_derivation.order_preserving_start(update)
        if start is not None:
            lines.append(f"        start={start.name!r},")
        lines.append("    ),")
    lines.append("}")
    lines.append(
        '"""Every generated MR Sampler update by name, with the local-error power its proof gave.'
        "\n\nThe solver ids of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS] are read from"
        ' here.\n"""'
    )
    return "\n".join(lines) + "\n"


def prove(update: Update) -> int:
    """Run every proof of ``update``; return its local-error power or raise `ProofError`."""
    for stage in update.stages:
        residual = order_proofs.exactness_residual(update, stage)
        if residual != 0:
            raise ProofError(
                f"{update.name} stage {stage.name}: not exact for polynomials: {residual}"
            )
    power, _ = order_proofs.local_error(update)
    if power != update.order + 1:
        raise ProofError(
            f"{update.name}: local error O(h^{power}), expected O(h^{update.order + 1})"
        )
    if update.scheme == "singlestep":
        fixed = order_proofs.singlestep_fixed_parameters(update)
        state_power, _ = order_proofs.state_dependent_local_error(update, fixed)
        if state_power < update.order + 1:
            raise ProofError(
                f"{update.name}: state-dependent local error O(h^{state_power}), "
                f"expected O(h^{update.order + 1})"
            )
    if update.scheme == "corrector":
        for step in order_proofs.corrected_run(update.prediction, update.order):
            if step.power < step.needed:
                raise ProofError(
                    f"{update.name}: step {step.step} of a corrected run ({step.update.name}, "
                    f"reused outputs {step.perturbed}) has local error O(h^{step.power}), "
                    f"expected O(h^{step.needed})"
                )
    return power


def conversion_module(backend: str) -> str:
    """Prediction conversions (noise/data/velocity/score → noise or data) for ``backend``."""
    max_sigma = sp.Symbol("max_sigma")
    code = PRINTERS[backend]
    parts = []
    for name, expr in parameterization.CONVERSIONS.items():
        target, source = name.split("_from_")
        printed = code(expr.subs(Lambda, max_sigma))
        doc = (
            f"{target} prediction from a {source} prediction ``out`` at state x, condition mu.\n\n"
            "    alpha, sigma: schedule values at the state's time (broadcastable);\n"
            "    max_sigma: Λ.\n    "
        )
        parts.append(
            function(name, ["x", "mu", "out", "alpha", "sigma", "max_sigma"], doc, [], printed)
        )
    summary = "Conversions among noise, data, velocity and score predictions (with μ)."
    return module("derivations.parameterization", summary, backend, parts)


def marginal_module(backend: str) -> str:
    """α, σ, λ as functions of Θ and Θ(λ), for schedules known through Θ (IR-SDE tables)."""
    Th, max_sigma = sp.Symbol("Theta"), sp.Symbol("max_sigma")
    lam = sp.Symbol("lam")
    as_code = {schedules.THETA_VALUE: Th, schedules.LAMBDA: max_sigma, schedules.LAM: lam}
    formulas = {
        "alpha_of_Theta": (["Theta"], schedules.alpha(schedules.THETA_VALUE), "α = exp(−Θ)."),
        "sigma_of_Theta": (
            ["Theta", "max_sigma"],
            schedules.sigma(schedules.THETA_VALUE),
            "σ = Λ sqrt(−expm1(−2Θ)).",
        ),
        "lam_of_Theta": (
            ["Theta", "max_sigma"],
            schedules.log_snr(schedules.THETA_VALUE),
            "λ = −Θ − log Λ − ½ log(−expm1(−2Θ)).",
        ),
        "Theta_of_lam": (
            ["lam", "max_sigma"],
            schedules.Theta_of_log_snr(),
            "Θ(λ) = ½ log1p(e^{−2λ}/Λ²), the inverse of λ(Θ).",
        ),
    }
    code = PRINTERS[backend]
    parts = [
        function(name, args, doc, [], code(expr.subs(as_code)))
        for name, (args, expr, doc) in formulas.items()
    ]
    summary = "The MR marginal's α, σ, λ as functions of Θ = ∫θ, and Θ(λ)."
    return module("derivations.schedules", summary, backend, parts)


def baseline_function(baseline: baselines.Baseline, stage: str, backend: str) -> str:
    """Source of one baseline stage's coefficient function for ``backend``."""
    coefficients = baselines.generated_coefficients(baseline, stage)
    has_noise = baseline.method == "sde"
    outputs = [coefficients.x, coefficients.mu, *coefficients.outputs]
    if has_noise:
        outputs.append(coefficients.noise)
    replacements, reduced = sp.cse(outputs, symbols=sp.numbered_symbols("c"), optimizations="basic")
    code = PRINTERS[backend]
    body = [f"{name} = {code(expr)}" for name, expr in replacements]
    names = [code(e) for e in reduced]
    n_out = len(coefficients.outputs)
    output_tuple = "(" + ", ".join(names[2 : 2 + n_out]) + ("," if n_out == 1 else "") + ")"
    noise = names[-1] if has_noise else "None"
    labels = ", ".join(baseline.node_labels[baseline.stages.index(stage)])
    caveat = (
        ""
        if baseline.defined_at_sigma_zero or stage != "step"
        else "    Divides by sigma_t: undefined at σ_t = 0; take such a last step with euler_ode.\n"
    )
    doc = (
        f"{baseline.summary}; stage '{stage}'.\n\n"
        "    Returns StepCoefficients(x, mu, outputs, noise) with\n"
        "        x_e = x·x_s + mu·μ + Σ_j outputs[j]·m_j + noise·z,\n"
        f"    outputs ordered as ({labels}), m_j the {baseline.prediction} predictions there,\n"
        "    z ~ N(0, I) (noise is None for ODEs). Arguments are schedule values named as in\n"
        "    derivations.baselines.BASELINE_INPUTS (dt = s − t > 0, max_sigma = Λ).\n"
        f"{caveat}    "
    )
    args = [code(a) for a in baselines.stage_arguments(baseline, stage)]
    returns = f"StepCoefficients({names[0]}, {names[1]}, {output_tuple}, {noise})"
    return function(baseline.function_name(stage), args, doc, body, returns)


def baselines_module(backend: str) -> str:
    """The generated baseline-coefficient module for ``backend``."""
    parts = [
        baseline_function(baseline, stage, backend)
        for baseline in baselines.BASELINES.values()
        for stage in baseline.stages
    ]
    imports = "\nfrom mrs_numerics._generated.types import StepCoefficients\n"
    summary = "Step coefficients of the baseline samplers (Euler–Maruyama, posterior, Euler, Heun)."
    return module("derivations.baselines", summary, backend, parts, extra_imports=imports)


def baselines_registry_module() -> str:
    """Backend-free metadata of every baseline: method, input, declared orders, stages."""
    lines = [header("derivations.baselines", "Registry of the baseline samplers and their orders.")]
    lines.append("\nfrom mrs_numerics._generated.types import BaselineInfo, BaselineStage\n")
    lines.append("BASELINES: dict[str, BaselineInfo] = {")
    for baseline in baselines.BASELINES.values():
        stages = ", ".join(
            f"BaselineStage({baseline.function_name(stage)!r}, {labels!r}, "
            f"{tuple(str(a) for a in baselines.stage_arguments(baseline, stage))!r})"
            for stage, labels in zip(baseline.stages, baseline.node_labels, strict=True)
        )
        lines.append(f"    {baseline.id!r}: BaselineInfo(")
        for key in ("id", "method", "prediction", "order", "strong_order", "weak_order"):
            lines.append(f"        {key}={getattr(baseline, key)!r},")
        lines.append(f"        order_basis={baseline.order_basis!r},")
        lines.append(f"        model_calls={baseline.model_calls},")
        lines.append(f"        stages=({stages},),")
        lines.append(f"        equivalent_update={baseline.equivalent_update!r},")
        lines.append(f"        defined_at_sigma_zero={baseline.defined_at_sigma_zero!r},")
        lines.append("    ),")
    lines.append("}")
    lines.append('"""Every baseline sampler by id, with its declared orders and their basis."""')
    return "\n".join(lines) + "\n"


def prove_baselines() -> None:
    """Run every baseline proof; raise `ProofError` if one fails."""
    failed = [name for name, check in baselines.checks().items() if check() != 0]
    for baseline in baselines.BASELINES.values():
        if baseline.method == "ode":
            power, _ = baselines.local_error(baseline.id)
            if power != baseline.order + 1:
                failed.append(f"{baseline.id} local error O(dt^{power})")
    if failed:
        raise ProofError(f"baseline proofs failed: {failed}")


def render_updates() -> dict[str, str]:
    """Relative path → source of the φ, update, type and registry modules (after the proofs)."""
    updates = all_updates()
    proved = {update.name: prove(update) for update in updates}
    prove_baselines()
    files = {"types.py": types_module(), "registry.py": registry_module(updates, proved)}
    files["baselines_registry.py"] = baselines_registry_module()
    for backend in BACKENDS:
        files[f"phi_{backend}.py"] = phi_module(backend)
        files[f"updates_{backend}.py"] = updates_module(backend, updates)
        files[f"parameterization_{backend}.py"] = conversion_module(backend)
        files[f"marginal_{backend}.py"] = marginal_module(backend)
        files[f"baselines_{backend}.py"] = baselines_module(backend)
    return files


def render_all() -> dict[str, str]:
    """Every generated file of the package, relative to ``mrs_numerics/_generated``."""
    from derivations.schedule_codegen import render_builtin_schedules

    files = render_updates()
    files.update(render_builtin_schedules())
    files["__init__.py"] = header(
        "derivations.codegen",
        "Code generated from the SymPy derivations: φ-functions, update coefficients, schedules.",
    )
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the package's generated code (or another folder given by ``--out``)."""
    parser = argparse.ArgumentParser(
        prog="python -m derivations.codegen", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=GENERATED_DIR,
        help="target folder (default: the package's _generated)",
    )
    args = parser.parse_args(argv)
    written = write_modules(args.out, render_all())
    sys.stdout.write(f"wrote {len(written)} files to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
