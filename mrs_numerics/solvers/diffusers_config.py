"""How a 🤗 diffusers scheduler config maps onto ``MRSamplerScheduler``'s options.

Pure Python (no ``diffusers`` import): the scheduler's ``from_config`` / ``from_pretrained``
call [`translate`][mrs_numerics.solvers.diffusers_config.translate] for a config whose
``_class_name`` is another scheduler, and its ``__init__`` calls
[`mr_prediction`][mrs_numerics.solvers.diffusers_config.mr_prediction] and
[`mr_spacing`][mrs_numerics.solvers.diffusers_config.mr_spacing], so diffusers' names for
the two options the vocabularies share are read the same way on every path.

**What maps.** A key of a diffusers config is, for the MR Sampler, one of:

- *mapped*: ``prediction_type`` (``epsilon`` → ``noise``, ``sample`` → ``data``;
  ``v_prediction`` see below), ``timestep_spacing`` (``linspace``, ``trailing`` → ``time``),
  ``use_karras_sigmas`` → ``karras``, ``use_lu_lambdas`` and ``use_exponential_sigmas`` →
  ``lambda`` (log-uniform σ/α is uniform λ), ``lower_order_final``, ``thresholding`` with
  ``dynamic_thresholding_ratio`` and ``sample_max_value``, ``clip_sample`` with
  ``clip_sample_range`` → ``clip_x0 = (−range, range)``; and the solver, from the class and
  ``solver_order``, ``algorithm_type``, ``predict_x0`` (see ``SOURCES``);
- *the VP noise schedule* (``beta_*``, ``trained_betas``, ``num_train_timesteps``,
  ``rescale_betas_zero_snr``, ``final_sigmas_type``, ``set_alpha_to_one``, ``steps_offset``):
  replaced by the MR schedule, which the caller names (``schedule=``, ``max_sigma=``, ``eps=``)
  because a β table is not an MR process. The grid's ends are the MR scheduler's
  ``t_start``/``t_end``;
- *accepted only at the value that changes nothing* (``FIXED``: ``euler_at_final`` False,
  no learned variance, no flow sigmas, no dynamic shifting, an empty ``disable_corrector``,
  no ``solver_p``, no VP ``sigma_min``/``sigma_max``, ``lambda_min_clipped`` −∞), refused
  otherwise with the reason;
- anything else: refused (a key this mapping does not know may change the sampler).

**The velocity.** diffusers' v = α_t ε − σ_t x₀ is defined for a VP process (α² + σ² = 1).
The MR marginal x − μ = α(x₀ − μ) + Λσ̄ε with σ̄ = √(1 − α²) is VP in y = (x − μ)/Λ, whose v is
α ε − σ̄ (x₀ − μ)/Λ = v_MR/Λ, where v_MR = Λαε − (σ/Λ)(x₀ − μ) is the package's
``velocity``. So diffusers' ``v_prediction`` *is* ``velocity`` when Λ = 1 and is refused for
any other Λ: its meaning there depends on how the network's target was scaled.

**Singlestep and the coefficient variants.** The MR Sampler is multistep (with an
order-preserving first step): a ``DPMSolverSinglestepScheduler`` config maps to the multistep
id of the same order and form. DPM-Solver's ``solver_type`` (``midpoint``/``heun``) and UniPC's
(``bh1``/``bh2``) choose approximations of the same order to the exponential integrator's
weights; the MR Sampler uses the exact weights, so every value maps to the same id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mrs_numerics._checks import integer
from mrs_numerics._errors import Advice, InputError
from mrs_numerics.solvers.parameterization import MODEL_PREDICTIONS
from mrs_numerics.solvers.registry import ORDERS, mrs_id

SPACINGS = ("lambda", "time", "karras")
"""The MR scheduler's ``timestep_spacing`` values (the package's grid spacings)."""

DIFFUSERS_PREDICTIONS = {"epsilon": "noise", "sample": "data"}
"""diffusers' ``prediction_type`` names with one MR meaning (``v_prediction``: Λ = 1 only)."""

DIFFUSERS_SPACINGS = {"linspace": "time", "trailing": "time"}
"""diffusers' ``timestep_spacing`` values that are uniform in t from the top to the end."""


def mr_prediction(value: Any, max_sigma: float) -> str:
    """The package's prediction name for a ``prediction_type`` in either vocabulary.

    Raises:
        InputError: For ``v_prediction`` when Λ ≠ 1, ``flow_prediction``, or an unknown name.
    """
    if value in MODEL_PREDICTIONS:
        return str(value)
    if value in DIFFUSERS_PREDICTIONS:
        return DIFFUSERS_PREDICTIONS[value]
    if value == "v_prediction":
        if float(max_sigma) == 1.0:
            return "velocity"
        raise InputError(
            f"prediction_type 'v_prediction' (diffusers' v = αε − σx₀ of a VP process) has no "
            f"single MR meaning for max_sigma = {max_sigma!r} ≠ 1: the MR state is VP in "
            "(x − μ)/Λ, whose v is the package's velocity Λαε − (σ/Λ)(x₀ − μ) divided by Λ; "
            "if the network predicts the package's velocity, say so",
            advice=Advice("prediction_type", "velocity"),
        )
    if value == "flow_prediction":
        raise InputError(
            "prediction_type 'flow_prediction' belongs to flow matching, not to an MR process; "
            f"allowed: {', '.join(MODEL_PREDICTIONS)} (or diffusers' epsilon, sample)"
        )
    raise InputError(
        f"unknown prediction_type {value!r}; allowed: {', '.join(MODEL_PREDICTIONS)} (or "
        "diffusers' epsilon → noise, sample → data, v_prediction → velocity when max_sigma = 1)"
    )


def mr_spacing(value: Any) -> str:
    """The package's grid spacing for a ``timestep_spacing`` in either vocabulary.

    Raises:
        InputError: For ``leading`` (it starts below the top by a stride that depends on N)
            or an unknown value.
    """
    if value in SPACINGS:
        return str(value)
    if value in DIFFUSERS_SPACINGS:
        return DIFFUSERS_SPACINGS[value]
    if value == "leading":
        raise InputError(
            "timestep_spacing 'leading' starts one stride below the noisiest time "
            "(t_0 = N/(N + 1)·T), which is not an MR grid (an MR run starts from the prior at "
            "t_start); allowed: lambda, time, karras (diffusers' linspace and trailing are "
            "'time')",
            advice=Advice("timestep_spacing", "time", "for a grid uniform in t"),
        )
    raise InputError(
        f"unknown timestep_spacing {value!r}; allowed: {', '.join(SPACINGS)} (or diffusers' "
        "linspace, trailing → time)"
    )


@dataclass(frozen=True)
class Source:
    """How one diffusers scheduler's config chooses the MR Sampler id.

    Attributes:
        identity: The keys that choose the solver, with the class's defaults.
        solver: The MR Sampler id for those keys' values.
    """

    identity: dict[str, Any]
    solver: Callable[[dict[str, Any]], str]


def _ordered(method: str, order: Any, prediction: str, corrector: str | None = None) -> str:
    order = integer(order, "solver_order", least=1)
    if order not in ORDERS[method]:
        allowed = ", ".join(map(str, ORDERS[method]))
        raise InputError(
            f"solver_order {order} has no MR Sampler {method.upper()} (its orders: {allowed})"
        )
    return mrs_id(method, order, prediction, corrector)


_ALGORITHMS = {
    "dpmsolver++": ("ode", "data"),
    "dpmsolver": ("ode", "noise"),
    "sde-dpmsolver++": ("sde", "data"),
    "sde-dpmsolver": ("sde", "noise"),
}


def _dpm_solver(values: dict[str, Any]) -> str:
    algorithm = values["algorithm_type"]
    if algorithm not in _ALGORITHMS:
        raise InputError(
            f"algorithm_type {algorithm!r} does not map to the MR Sampler; allowed: "
            f"{', '.join(_ALGORITHMS)}"
        )
    method, prediction = _ALGORITHMS[algorithm]
    return _ordered(method, values["solver_order"], prediction)


def _unipc_solver(values: dict[str, Any]) -> str:
    prediction = "data" if values["predict_x0"] else "noise"
    return _ordered("ode", values["solver_order"], prediction, "unic")


_DPM_IDENTITY = {"solver_order": 2, "algorithm_type": "dpmsolver++"}
SOURCES: dict[str, Source] = {
    "DPMSolverMultistepScheduler": Source(_DPM_IDENTITY, _dpm_solver),
    "DPMSolverSinglestepScheduler": Source(_DPM_IDENTITY, _dpm_solver),
    "UniPCMultistepScheduler": Source({"solver_order": 2, "predict_x0": True}, _unipc_solver),
    "DDIMScheduler": Source({}, lambda values: "mrs-ode-1-data"),
    "DDPMScheduler": Source({}, lambda values: "mrs-sde-1-data"),
}
"""The diffusers schedulers whose configs map, and the MR Sampler id each one chooses.

DPM-Solver(++) of order k → ``mrs-{ode|sde}-k-{data|noise}`` (``++`` is the data form, ``sde-``
the SDE); UniPC of order k → ``mrs-ode-k-{data|noise}-unic`` (``predict_x0``); DDIM (η = 0, its
``step`` default) → ``mrs-ode-1-data``, the same first-order step; DDPM with its posterior
variance (``fixed_small``) → ``mrs-sde-1-data``, whose step is the exact posterior
q(x_t | x_s, x̂₀) as DDPM's is.
"""

SHARED = (
    "prediction_type",
    "timestep_spacing",
    "lower_order_final",
    "thresholding",
    "dynamic_thresholding_ratio",
    "sample_max_value",
)
"""Keys with the same name and job in both configs (values read by ``mr_prediction`` /
``mr_spacing``)."""

SCHEDULE_KEYS = frozenset(
    {
        "num_train_timesteps",
        "beta_start",
        "beta_end",
        "beta_schedule",
        "trained_betas",
        "rescale_betas_zero_snr",
        "final_sigmas_type",
        "set_alpha_to_one",
        "steps_offset",
        "flow_shift",
        "time_shift_type",
        "shift_terminal",
    }
)
"""The VP noise schedule and its ends (``steps_offset`` only shifts the refused ``leading``;
the flow-shift keys act only with the refused flow options): replaced by the MR schedule."""

VP_SCHEDULE_KEYS = frozenset(
    {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas"}
)
"""The keys that define a VP noise schedule: given (not left at their defaults), they call
for the MR schedule to be named."""

_SPACING_FLAGS = {
    "use_karras_sigmas": "karras",
    "use_lu_lambdas": "lambda",
    "use_exponential_sigmas": "lambda",
}

FIXED: dict[str, tuple[tuple[Any, ...], str]] = {
    "euler_at_final": ((False,), "the MR Sampler lowers final orders with lower_order_final"),
    "variance_type": (
        (None, "fixed_small", "fixed_small_log"),
        "the MR Sampler's SDE uses the posterior variance; a learned variance needs the "
        "network's extra channels",
    ),
    "use_beta_sigmas": ((False,), "beta-distributed sigmas are not an MR grid"),
    "use_flow_sigmas": ((False,), "flow-matching sigmas are not an MR process"),
    "use_dynamic_shifting": ((False,), "dynamic shifting belongs to flow matching"),
    "disable_corrector": (([],), "the MR corrector runs at every step but the last"),
    "solver_p": ((None,), "the MR Sampler's predictor is its own multistep update"),
    "sigma_min": ((None,), "VP noise levels do not carry over; set t_end (an MR time)"),
    "sigma_max": ((None,), "VP noise levels do not carry over; set t_start (an MR time)"),
    "lambda_min_clipped": (
        (-math.inf,),
        "it is a λ of the replaced VP schedule; set lam_min (a λ of the MR schedule)",
    ),
}
"""Keys accepted only at the value(s) that change nothing, with why others are refused."""

_SOLVER_TYPES = ("midpoint", "heun", "bh1", "bh2")
_CLIP = ("clip_sample", "clip_sample_range")

OWN_CONFIG_HINTS = {
    **dict.fromkeys(
        ("solver_order", "algorithm_type", "predict_x0", "solver_type"),
        "the solver id names method, order and form: pass solver= (e.g. 'mrs-ode-3-data')",
    ),
    **dict.fromkeys(_SPACING_FLAGS, "pass timestep_spacing= ('karras', 'lambda' or 'time')"),
    **dict.fromkeys(_CLIP, "pass clip_x0=(low, high)"),
    **dict.fromkeys(
        SCHEDULE_KEYS - {"flow_shift", "time_shift_type", "shift_terminal"},
        "the MR process is schedule=, max_sigma= and eps=",
    ),
}
"""diffusers keys that an ``MRSamplerScheduler`` config or keyword must not carry, and what
to pass instead."""


def check_own(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Refuse diffusers' keys in an ``MRSamplerScheduler`` config or its keyword overrides
    (diffusers would drop them in silence).

    Raises:
        InputError: Naming the key and what to pass instead.
    """
    defaults = set(config.get("_use_default_values", []))
    given = [k for k in config if k not in defaults] + list(overrides)
    for key in given:
        if key in OWN_CONFIG_HINTS:
            raise InputError(
                f"{key!r} is a diffusers option, not an MRSamplerScheduler one; "
                f"{OWN_CONFIG_HINTS[key]}"
            )


def translate(
    name: str, config: Mapping[str, Any], overrides: Mapping[str, Any], own_keys: frozenset[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A foreign scheduler's config as ``MRSamplerScheduler`` keyword arguments.

    Args:
        name: The class the config belongs to.
        config: A diffusers scheduler config (``_class_name`` one of ``SOURCES``). Keys left at
            their defaults (``_use_default_values``) are skipped as diffusers' own
            ``from_config`` does; MR keys carried in it (a config that came from an MR
            scheduler) are kept and win over what diffusers' defaulted keys imply.
        overrides: ``from_config``'s keyword arguments: MR keys override the result; diffusers
            keys override the config's before it is mapped; others are passed on.
        own_keys: The MR scheduler's ``__init__`` parameters.

    Returns:
        (the MR keyword arguments, the overrides that are neither MR nor diffusers keys).

    Raises:
        InputError: For an unmapped class or key, a value that cannot map, an explicit
            diffusers key that contradicts a carried MR key, or a VP noise schedule given
            (keys of ``VP_SCHEDULE_KEYS`` not at their defaults, as in every saved config)
            without the MR schedule (``schedule`` and ``max_sigma``).
    """
    if name not in SOURCES:
        raise InputError(
            f"a config of {name} does not map to the MR Sampler; configs that map: "
            f"{', '.join(SOURCES)}"
        )
    source = SOURCES[name]
    defaults = set(config.get("_use_default_values", []))
    given = {k: v for k, v in config.items() if not k.startswith("_") and k not in defaults}
    carried = {k: given.pop(k) for k in own_keys - set(SHARED) if k in given}
    ours = {k: v for k, v in overrides.items() if k in own_keys}
    rest = {k: v for k, v in overrides.items() if k not in own_keys}
    foreign = {k: rest.pop(k) for k in list(rest) if _is_diffusers_key(k, source)}
    given.update(foreign)
    mapped, implied = _map_keys(name, source, given)
    for key in carried.keys() & mapped.keys():
        if _comparable(carried[key]) != _comparable(mapped[key]):
            raise InputError(
                f"the {name} config carries the MR option {key}={carried[key]!r} but its "
                f"diffusers options give {key}={mapped[key]!r}; remove one"
            )
    result = {"solver": implied, **mapped, **carried, **ours}
    missing = [k for k in ("schedule", "max_sigma") if k not in result]
    if missing and given.keys() & VP_SCHEDULE_KEYS:
        raise InputError(
            f"a {name} config describes a VP noise schedule (β table), not an MR process; the "
            "MR scheduler needs its schedule: pass schedule= (e.g. 'cosine') and max_sigma= "
            "(Λ), and eps= unless 0.005, e.g. MRSamplerScheduler.from_config(config, "
            "schedule='cosine', max_sigma=50 / 255)"
        )
    return result, rest


def _is_diffusers_key(key: str, source: Source) -> bool:
    known = {*SHARED, *SCHEDULE_KEYS, *_SPACING_FLAGS, *FIXED, *_CLIP, "solver_type"}
    return key in known or key in source.identity


def _map_keys(name: str, source: Source, given: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(mapped MR options, the solver id) of the diffusers keys ``given`` (see the module).

    The options hold ``solver`` too when an identity key was given; the id returned is what
    the class (with its defaults) implies.
    """
    mapped: dict[str, Any] = {}
    identity = dict(source.identity)
    flagged = []
    for key, value in given.items():
        if key in SHARED:
            mapped[key] = value
        elif key in source.identity:
            identity[key] = value
        elif key in _SPACING_FLAGS:
            if value:
                flagged.append(key)
        elif key in FIXED:
            allowed, why = FIXED[key]
            if value not in allowed:
                raise InputError(f"{name} {key}={value!r} cannot map: {why}")
        elif key == "solver_type":
            if value not in _SOLVER_TYPES:
                raise InputError(
                    f"{name} solver_type {value!r} is unknown; allowed: {', '.join(_SOLVER_TYPES)}"
                )
        elif key not in SCHEDULE_KEYS and key not in _CLIP:
            raise InputError(
                f"{name} option {key!r} has no MR meaning in this mapping; remove it (mapped: "
                f"{', '.join(SHARED)}, solver and spacing options; see "
                "mrs_numerics.solvers.diffusers_config)"
            )
    if len(flagged) > 1:
        raise InputError(f"{name}: only one of {', '.join(flagged)} may be True")
    if flagged:
        mapped["timestep_spacing"] = _SPACING_FLAGS[flagged[0]]
    if "clip_sample" in given:
        limit = float(given.get("clip_sample_range", 1.0))
        mapped["clip_x0"] = (-limit, limit) if given["clip_sample"] else None
    solver = source.solver(identity)
    if given.keys() & source.identity.keys():
        mapped["solver"] = solver
    return mapped, solver


def _comparable(value: Any) -> Any:
    """A value as JSON gives it back compared with one made in Python (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value
