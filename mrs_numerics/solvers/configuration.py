"""A configured sampler as one versioned JSON dict, and the sampler rebuilt from it.

The dict is::

    {"format_version": 1, "solver": "mrs-ode-3-data",
     "options": {"grid": "lambda", "t_start": null, …, "start": "warmup",
                 "lower_order_final": false}}

``solver`` is a canonical id of [`SOLVERS`][mrs_numerics.solvers.registry.SOLVERS] (it carries
the method, order, form and corrector); ``options`` holds **every** option of the sampler with
its value, defaults included and resolved (``lower_order_final=None`` is written as the
measured default it stands for), so that the dict rebuilds the same sampler whatever later
defaults become. The network's ``model_prediction`` is not part of it: it belongs to the
network and is given when the sampler is built. A custom ``noise_fn`` is not recorded (it
is randomness, not configuration). Grid files store a sampler so (see
[`tuned_grids`][mrs_numerics.models.tuned_grids]).
"""

from __future__ import annotations

from typing import Any

from mrs_numerics.schedules.continuous import cosine
from mrs_numerics.schedules.protocol import Schedule
from mrs_numerics.solvers.base import SamplerBase
from mrs_numerics.solvers.factory import make_sampler
from mrs_numerics.solvers.mr_sampler import MRSampler
from mrs_numerics.solvers.options import Thresholding
from mrs_numerics.solvers.registry import SOLVERS

SAMPLER_FORMAT_VERSION = 1
"""The ``format_version`` of the sampler dict this package writes and reads."""

SHARED_OPTIONS = ("grid", "t_start", "t_end", "lam_min", "rho", "clip_x0", "thresholding")
"""Options every sampler takes (from ``SamplerOptions``, ``model_prediction`` and ``noise_fn``
aside)."""
MR_OPTIONS = ("denoise_last", "start", "lower_order_final")
"""Options only the MR Sampler takes."""
GRID_SHAPING_OPTIONS = ("grid", "t_start", "t_end", "lam_min", "rho")
"""Options that only choose the times of ``steps=N``: a run on explicit times ignores them."""


def option_names(solver_id: str) -> tuple[str, ...]:
    """The options a sampler of ``solver_id`` takes, in the dict's order."""
    mrs = SOLVERS[solver_id].family == "mrs" if solver_id in SOLVERS else False
    return SHARED_OPTIONS + (MR_OPTIONS if mrs else ())


def _json_value(name: str, value: Any) -> Any:
    if name == "clip_x0" and value is not None:
        return [float(value[0]), float(value[1])]
    if name == "thresholding" and value is not None:
        return {"ratio": value.ratio, "max_value": value.max_value, "cap": value.cap}
    return value


def sampler_configuration(sampler: SamplerBase) -> dict[str, Any]:
    """The versioned dict of ``sampler``'s full configuration (see the module description)."""
    solver_id = sampler.solver_id
    values = {name: getattr(sampler.options, name) for name in SHARED_OPTIONS}
    if isinstance(sampler, MRSampler):
        values["denoise_last"] = sampler.options.denoise_last
        values["start"] = sampler.start
        values["lower_order_final"] = sampler.lower_order_final
    options = {name: _json_value(name, values[name]) for name in option_names(solver_id)}
    return {"format_version": SAMPLER_FORMAT_VERSION, "solver": solver_id, "options": options}


def check_configuration(value: Any, field: str = "sampler") -> dict[str, Any]:
    """``value`` if it is a sampler dict this package can build, else a ValueError naming the
    field (``sampler.solver``, ``sampler.options.start`` …) and what is allowed.

    The options are checked by building the sampler on the cosine schedule, so every value is
    held to the rule its sampler enforces.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be an object (solver and options), got {value!r}")
    if value.get("format_version") != SAMPLER_FORMAT_VERSION:
        raise ValueError(
            f"{field}.format_version must be {SAMPLER_FORMAT_VERSION}, got "
            f"{value.get('format_version')!r}"
        )
    solver_id = value.get("solver")
    if not isinstance(solver_id, str) or solver_id not in SOLVERS:
        raise ValueError(
            f"{field}.solver {solver_id!r} is not a known solver id; known: "
            f"{', '.join(sorted(SOLVERS))}"
        )
    options = value.get("options")
    if not isinstance(options, dict):
        raise ValueError(f"{field}.options must be an object, got {options!r}")
    unknown = sorted(set(options) - set(option_names(solver_id)))
    if unknown:
        raise ValueError(
            f"{field}.options has {', '.join(map(repr, unknown))}, which {solver_id} does not "
            f"take; allowed: {', '.join(option_names(solver_id))}"
        )
    if "denoise_last" in options and not isinstance(options["denoise_last"], bool):
        raise ValueError(
            f"{field}.options.denoise_last must be true or false, got {options['denoise_last']!r}"
        )
    for name in options:
        try:
            make_sampler(solver_id, cosine(), "noise", **_built_options({name: options[name]}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{field}.options.{name} = {options[name]!r}: {error}") from None
    try:
        make_sampler(solver_id, cosine(), "noise", **_built_options(options))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field}.options: {error}") from None
    return value


def _built_options(options: dict[str, Any]) -> dict[str, Any]:
    """The dict's options as the sampler's keyword arguments."""
    built = dict(options)
    if isinstance(built.get("thresholding"), dict):
        try:
            built["thresholding"] = Thresholding(**built["thresholding"])
        except TypeError as error:
            raise ValueError(f"thresholding takes ratio, max_value and cap: {error}") from None
    if isinstance(built.get("clip_x0"), list):
        built["clip_x0"] = tuple(built["clip_x0"])
    return built


def sampler_from_configuration(
    configuration: dict[str, Any], schedule: Schedule, model_prediction: str = "noise"
) -> SamplerBase:
    """The sampler of a dict written by
    [`sampler_configuration`][mrs_numerics.solvers.configuration.sampler_configuration], on
    ``schedule``, for a network returning ``model_prediction``."""
    configuration = check_configuration(configuration)
    return make_sampler(
        configuration["solver"],
        schedule,
        model_prediction,
        **_built_options(configuration["options"]),
    )


def run_options(configuration: dict[str, Any]) -> dict[str, Any]:
    """The options of a dict that change a run on explicit times (the grid-shaping ones aside)."""
    options = configuration.get("options", {})
    return {k: v for k, v in options.items() if k not in GRID_SHAPING_OPTIONS}


def same_sampler(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two sampler dicts run the same on the same explicit times."""
    return a.get("solver") == b.get("solver") and run_options(a) == run_options(b)


def describe_configuration(configuration: dict[str, Any]) -> str:
    """``mrs-ode-3-data (start=warmup, lower_order_final=False)``: the solver and its run options
    that differ from the solver's defaults."""
    solver_id = configuration.get("solver", "?")
    try:
        defaults = run_options(sampler_configuration(make_sampler(solver_id, cosine())))
    except (KeyError, TypeError, ValueError):
        defaults = {}
    shown = [
        f"{key}={value}"
        for key, value in run_options(configuration).items()
        if defaults.get(key, object()) != value
    ]
    return f"{solver_id} ({', '.join(shown)})" if shown else str(solver_id)
