"""A schedule's identity: the JSON facts that make its λ ↔ t map what it is, and their comparison.

Two schedules with equal identities have the same t ↦ λ(t) (and the same α, σ): a step grid
fitted on one means the same on the other. The identity holds

- ``kind``: ``"continuous"`` (a closed form from ``derivations/``, built in or a user
  schedule), ``"irsde"`` (IR-SDE's discrete tables, time = index) or ``"other"`` (any other
  implementation of the [`Schedule`][mrs_numerics.schedules.protocol.Schedule] protocol);
- ``name``; ``t_min``, ``t_max`` (the time range); ``max_sigma`` (Λ);
- the parameters that shape θ: a continuous schedule's ``parameters`` (``eps``, ``beta_*`` …);
  an IR-SDE table's ``table`` (cosine/linear/constant), ``T``, ``eps`` and ``theta0_offset``
  (the θ₀ convention); for ``"other"`` its Python type;
- ``lam_range``: [λ(t_max), λ(t_min)], the λ the schedule spans (``None`` for +∞, where σ = 0);
- ``lam_probes``: λ at [`PROBE_FRACTIONS`][mrs_numerics.schedules.identity.PROBE_FRACTIONS] of
  the time range, a fingerprint of the map itself (it tells apart schedules whose named facts
  agree, such as two user schedules of one name, or two implementations of the protocol).

[`identity_differences`][mrs_numerics.schedules.identity.identity_differences] compares two
identities field by field with a relative tolerance
([`IDENTITY_RTOL`][mrs_numerics.schedules.identity.IDENTITY_RTOL]) on numbers, so that a value
written to JSON and read back, or recomputed on another machine, still matches.
"""

from __future__ import annotations

import math
from typing import Any

import torch

PROBE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Fractions of the time range [t_min, t_max] where ``lam_probes`` samples λ."""

IDENTITY_RTOL = 1e-9
"""Relative tolerance of numbers in identity comparisons (absolute 1e-12 near zero)."""


def _lam(schedule, t: float) -> float | None:
    """λ(t) as a float, ``None`` for +∞ (σ = 0)."""
    value = float(schedule.lam(torch.tensor(t, dtype=torch.float64)))
    return None if value == math.inf else value


def lam_range(schedule) -> tuple[float, float]:
    """(λ(t_max), λ(t_min)): the λ a schedule spans (the second may be +∞)."""
    low = float(schedule.lam(torch.tensor(float(schedule.t_max), dtype=torch.float64)))
    high = float(schedule.lam(torch.tensor(float(schedule.t_min), dtype=torch.float64)))
    return low, high


def schedule_identity(schedule) -> dict[str, Any]:
    """The JSON-ready identity of ``schedule`` (see the module description)."""
    t_min, t_max = float(schedule.t_min), float(schedule.t_max)
    identity: dict[str, Any] = {
        "kind": "other",
        "name": str(getattr(schedule, "name", type(schedule).__name__)),
        "t_min": t_min,
        "t_max": t_max,
        "max_sigma": float(schedule.max_sigma),
    }
    parameters = getattr(schedule, "parameters", None)
    tables = all(hasattr(schedule, name) for name in ("kind", "T", "eps", "theta0_offset"))
    if tables and hasattr(schedule, "Theta_table"):
        identity.update(
            kind="irsde",
            table=str(schedule.kind),
            T=int(schedule.T),
            eps=float(schedule.eps),
            theta0_offset=bool(schedule.theta0_offset),
        )
    elif isinstance(parameters, dict) and hasattr(schedule, "module"):
        identity.update(
            kind="continuous",
            parameters={key: float(value) for key, value in sorted(parameters.items())},
        )
    else:
        identity["type"] = f"{type(schedule).__module__}.{type(schedule).__qualname__}"
    identity["lam_range"] = [_lam(schedule, t_max), _lam(schedule, t_min)]
    identity["lam_probes"] = [
        _lam(schedule, t_min + fraction * (t_max - t_min)) for fraction in PROBE_FRACTIONS
    ]
    return identity


def _same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=IDENTITY_RTOL, abs_tol=1e-12)


def _differences(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in [*a, *(key for key in b if key not in a)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                found.append(f"{where}: {a.get(key, '(absent)')} ≠ {b.get(key, '(absent)')}")
            else:
                found += _differences(a[key], b[key], where)
        return found
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {list(a)} ≠ {list(b)}"]
        if any(_differences(x, y, path) for x, y in zip(a, b, strict=True)):
            return [f"{path}: {_shown(a)} ≠ {_shown(b)}"]
        return []
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        if isinstance(a, bool) or isinstance(b, bool):
            return [] if a is b else [f"{path}: {a} ≠ {b}"]
        return [] if _same_number(float(a), float(b)) else [f"{path}: {a:.10g} ≠ {b:.10g}"]
    return [] if a == b else [f"{path}: {a!r} ≠ {b!r}"]


def _shown(values) -> str:
    return "[" + ", ".join("∞" if v is None else f"{v:.6g}" for v in values) + "]"


def identity_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The fields where identities ``a`` and ``b`` differ, one ``"field: a ≠ b"`` each.

    Numbers compare with a relative tolerance of
    [`IDENTITY_RTOL`][mrs_numerics.schedules.identity.IDENTITY_RTOL]; ``None`` (λ = +∞)
    equals only ``None``. An empty list means the same schedule.
    """
    return _differences(dict(a), dict(b), "")


def same_schedule(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether identities ``a`` and ``b`` describe the same schedule (within tolerance)."""
    return not identity_differences(a, b)


def describe_identity(identity: dict[str, Any]) -> str:
    """One phrase for listings, e.g. ``cosine on t ∈ [0, 1], Λ = 0.196, λ ∈ [-3.67, ∞]``."""
    low, high = (identity.get("lam_range") or [None, None])[:2]
    lam = f"λ ∈ [{_end(low)}, {_end(high)}]"
    extra = ""
    if identity.get("kind") == "irsde":
        offset = "−θ₀" if identity.get("theta0_offset") else "no −θ₀"
        extra = f" (IR-SDE table, T = {identity.get('T')}, {offset})"
    return (
        f"{identity.get('name')}{extra} on t ∈ [{identity.get('t_min'):g}, "
        f"{identity.get('t_max'):g}], Λ = {identity.get('max_sigma'):.4g}, {lam}"
    )


def _end(value) -> str:
    return "∞" if value is None else f"{value:.4g}"


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_identity(value: Any, field: str = "schedule") -> dict[str, Any]:
    """``value`` if it is a well-formed schedule identity, else a ValueError naming the field.

    Checked: an object with text ``kind`` and ``name``; finite numbers ``t_min`` < ``t_max``
    and ``max_sigma`` > 0; ``lam_range`` two values (finite numbers, the second may be
    ``null`` for +∞) in increasing order; ``lam_probes`` a list of finite numbers or nulls.
    """
    if not isinstance(value, dict):
        raise ValueError(
            f"{field} must be an object (the schedule's identity), got {type(value).__name__}"
        )
    for key in ("kind", "name"):
        if not isinstance(value.get(key), str):
            raise ValueError(f"{field}.{key} must be text, got {value.get(key)!r}")
    for key in ("t_min", "t_max", "max_sigma"):
        if not _finite(value.get(key)):
            raise ValueError(f"{field}.{key} must be a finite number, got {value.get(key)!r}")
    if not value["t_min"] < value["t_max"]:
        raise ValueError(
            f"{field}.t_min = {value['t_min']} must be below {field}.t_max = {value['t_max']}"
        )
    if not value["max_sigma"] > 0:
        raise ValueError(f"{field}.max_sigma must be > 0, got {value['max_sigma']}")
    ends = value.get("lam_range")
    if (
        not isinstance(ends, list)
        or len(ends) != 2
        or not _finite(ends[0])
        or not (ends[1] is None or _finite(ends[1]))
        or (ends[1] is not None and not ends[0] < ends[1])
    ):
        raise ValueError(
            f"{field}.lam_range must be [λ(t_max), λ(t_min)], increasing finite numbers (the "
            f"second null for +∞), got {ends!r}"
        )
    probes = value.get("lam_probes")
    if not isinstance(probes, list) or not all(p is None or _finite(p) for p in probes):
        raise ValueError(f"{field}.lam_probes must be a list of finite numbers, got {probes!r}")
    return value
