"""What an IR-SDE/DA-CLIP option file may hold, field by field, and the check of each field.

The option files of IR-SDE (``codes/config/*/options/*.yml``) and DA-CLIP
(``universal-image-restoration/config/daclip-sde/options/*.yml``) hold many sections; this
package reads two::

    sde: {max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}   # other keys are ignored
    network_G:
      which_model_G: ConditionalUNet
      setting: {in_nc: 3, out_nc: 3, nf: 64, depth: 4}           # IR-SDE
      # DA-CLIP: {in_nc: 3, out_nc: 3, nf: 64, ch_mult: [1, 2, 4, 8], context_dim: 512,
      #           use_degra_context: true, use_image_context: true}

Every field is checked for its type and range, never coerced: ``nf: "64"``, ``max_sigma: "50"``
or ``use_image_context: "false"`` are refused, not read as 64, 50 or *true*. Each refusal is one
``InputError`` (``mrs_numerics._errors``) naming the field by its path, e.g.
``network_G.setting.nf must be a positive integer, got '64a' (text)``;
[`read_options`][mrs_numerics.models.checkpoints.read_options] puts the file's name in front.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from mrs_numerics._errors import InputError
from mrs_numerics.models.daclip_unet import DACLIPConditionalUNet
from mrs_numerics.models.irsde_unet import IRSDEConditionalUNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "irsde": IRSDEConditionalUNet,
    "daclip": DACLIPConditionalUNet,
}
"""The supported networks by ``arch`` name (both are ``which_model_G: ConditionalUNet``)."""

MAX_T = 100_000
"""The largest ``sde.T`` accepted (IR-SDE and DA-CLIP use 100): a larger table is a typo that
would take the memory of a table per index."""

MAX_PIXEL_SIGMA = 255.0
"""The largest ``sde.max_sigma`` in pixel units (the pixel range)."""

PIXEL_UNITS_THRESHOLD = 1.0
"""``max_sigma`` ≥ this is in pixel units (0–255) and divided by 255, as IR-SDE's code does."""

SCHEDULES = ("cosine", "linear", "constant")
"""The ``sde.schedule`` names (IR-SDE's θ tables)."""

CONTEXT_SWITCHES = {"text_context": "use_degra_context", "image_context": "use_image_context"}
"""DA-CLIP's contexts and the setting that turns each on (with ``context_dim`` > 0)."""

CONTEXT_WORDS = {"text_context": "the text context", "image_context": "the image context"}
"""How messages name each context."""

CONTEXT_MEANINGS = {
    "text_context": "DA-CLIP's degradation embedding",
    "image_context": "DA-CLIP's image embedding",
}
"""What each context is."""


def field(prefix: str, name: str) -> str:
    """The path of field ``name`` in the section at ``prefix`` (``"network_G.setting.nf"``)."""
    return f"{prefix}.{name}" if prefix else name


def got(value: Any) -> str:
    """How a message shows a refused value: ``'64a' (text)``, ``true (a boolean)``, …"""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:59] + "…"
    kinds = {str: "text", float: "a number with a fraction", list: "a list", dict: "a mapping"}
    kind = next((word for kind, word in kinds.items() if isinstance(value, kind)), "")
    return f"{shown} ({kind})" if kind else shown


def mapping(value: Any, name: str) -> Mapping[str, Any]:
    """``value``, refused unless it is a mapping (a section)."""
    if not isinstance(value, Mapping):
        raise InputError(f"{name} must be a mapping (a section of fields), got {got(value)}")
    return value


def positive_integer(value: Any, name: str) -> int:
    """``value`` as an int ≥ 1 (booleans, text and numbers with a fraction refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {got(value)}")
    return int(value)


def boolean(value: Any, name: str) -> bool:
    """``value``, refused unless it is ``true`` or ``false`` (text such as ``"false"`` too)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false, got {got(value)}")
    return value


def multipliers(value: Any, name: str) -> list[int]:
    """``ch_mult``: a non-empty list of positive integers (the width of each level)."""
    if not isinstance(value, list | tuple) or not value:
        raise InputError(
            f"{name} must be a non-empty list of positive integers such as [1, 2, 4, 8], got "
            f"{got(value)}"
        )
    return [positive_integer(item, f"{name}[{index}]") for index, item in enumerate(value)]


def context_dim(value: Any, name: str) -> int | None:
    """``context_dim``: an integer (≤ 0: no contexts, as in DA-CLIP's code) or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            f"{name} must be an integer (the contexts' width, 512 for DA-CLIP) or null, got "
            f"{got(value)}"
        )
    return int(value)


SETTING_CHECKS: dict[str, dict[str, Callable[[Any, str], Any]]] = {
    "irsde": {
        "in_nc": positive_integer,
        "out_nc": positive_integer,
        "nf": positive_integer,
        "depth": positive_integer,
        "upscale": positive_integer,
    },
    "daclip": {
        "in_nc": positive_integer,
        "out_nc": positive_integer,
        "nf": positive_integer,
        "ch_mult": multipliers,
        "context_dim": context_dim,
        "use_degra_context": boolean,
        "use_image_context": boolean,
        "upscale": positive_integer,
    },
}
"""The check of every constructor argument of each architecture (``network_G.setting``)."""


def check_arch(arch: Any, name: str = "arch") -> str:
    """``arch``, refused unless it names one of the
    [`ARCHITECTURES`][mrs_numerics.models.irsde_options.ARCHITECTURES]."""
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise InputError(
            f"unknown {name} {got(arch)}; supported: {', '.join(map(repr, ARCHITECTURES))}"
        )
    return arch


def check_setting(arch: str, setting: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The constructor arguments of ``arch`` in ``setting``, each checked.

    Args:
        arch: A name of [`ARCHITECTURES`][mrs_numerics.models.irsde_options.ARCHITECTURES].
        setting: The section (``network_G.setting``).
        prefix: The section's path, for messages (``"network_G.setting"``; ``""`` for a flat
            configuration).

    Returns:
        The arguments as given (the values are plain ints, lists of ints and booleans).

    Raises:
        InputError: For an unknown argument, a missing required one, or a value of the wrong
            type or range (the message names the field by its path).
    """
    checks = SETTING_CHECKS[check_arch(arch)]
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters
    where = prefix or "the configuration"
    unknown = sorted(str(key) for key in setting if key not in checks)
    if unknown:
        raise InputError(
            f"{where} has unknown arguments for the {arch!r} network: {', '.join(unknown)}; "
            f"its arguments: {', '.join(checks)}"
        )
    required = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and name not in setting
    ]
    if required:
        raise InputError(
            f"{where} lacks {', '.join(required)}: the {arch!r} network needs the constructor "
            f"arguments {', '.join(required)}"
        )
    return {name: checks[name](value, field(prefix, name)) for name, value in setting.items()}


def stationary_sigma(value: Any, name: str = "sde.max_sigma") -> float:
    """Λ from ``max_sigma``: a value ≥ 1 is in pixel units (Λ = value / 255, at most 255), a
    value in (0, 1) is Λ itself."""
    if not _is_number(value) or not 0 < value <= MAX_PIXEL_SIGMA:
        raise InputError(
            f"{name} must be a number in (0, {MAX_PIXEL_SIGMA:g}]: pixel units such as 50, or Λ "
            f"< 1 such as 0.196; got {got(value)}"
        )
    return value / 255.0 if value >= PIXEL_UNITS_THRESHOLD else float(value)


def table_length(value: Any, name: str = "sde.T") -> int:
    """``T``: a positive integer, at most [`MAX_T`][mrs_numerics.models.irsde_options.MAX_T]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_T:
        raise InputError(
            f"{name} must be an integer in [1, {MAX_T}] (the last table index; IR-SDE uses "
            f"100), got {got(value)}"
        )
    return int(value)


def schedule_kind(value: Any, name: str = "sde.schedule") -> str:
    """``schedule``: one of [`SCHEDULES`][mrs_numerics.models.irsde_options.SCHEDULES]."""
    if value not in SCHEDULES or not isinstance(value, str):
        raise InputError(f"{name} must be one of {', '.join(SCHEDULES)}, got {got(value)}")
    return value


def end_alpha(value: Any, name: str = "sde.eps") -> float:
    """``eps`` = α(T): a number in (0, 1)."""
    if not _is_number(value) or not 0 < value < 1:
        raise InputError(f"{name} must be a number in (0, 1) such as 0.005, got {got(value)}")
    return float(value)


SDE_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "max_sigma": stationary_sigma,
    "T": table_length,
    "schedule": schedule_kind,
    "eps": end_alpha,
}
"""The fields of the ``sde`` section that define the schedule, and their checks (the value each
returns is what the schedule is built with: Λ in data units, T, the table name, α(T))."""


def check_sde(sde: Any, prefix: str = "sde") -> dict[str, Any]:
    """The schedule's fields of an ``sde`` section, each checked and converted.

    Args:
        sde: The section.
        prefix: Its path, for messages.

    Returns:
        ``{"max_sigma": Λ (data units), "T": …, "schedule": …, "eps": …}``.

    Raises:
        InputError: If the section is not a mapping, lacks a field, or a field has the wrong
            type or range (the message names it: ``sde.max_sigma must be …``).
    """
    section = mapping(sde, prefix)
    missing = [name for name in SDE_CHECKS if name not in section]
    if missing:
        raise InputError(
            f"{prefix} lacks {', '.join(missing)}; expected e.g. "
            "{max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}"
        )
    return {name: check(section[name], field(prefix, name)) for name, check in SDE_CHECKS.items()}


def used_contexts(arch: str, setting: Mapping[str, Any]) -> tuple[str, ...]:
    """The contexts (of [`CONTEXT_SWITCHES`][mrs_numerics.models.irsde_options.CONTEXT_SWITCHES])
    the network of ``setting`` reads: those switched on, with ``context_dim`` > 0, for DA-CLIP
    (the constructor's defaults where the setting is silent); none for IR-SDE."""
    if arch != "daclip":
        return ()
    defaults = _defaults(arch)
    width = setting.get("context_dim", defaults["context_dim"])
    if width is None or width <= 0:
        return ()
    return tuple(
        name for name, switch in CONTEXT_SWITCHES.items() if setting.get(switch, defaults[switch])
    )


def context_width(arch: str, setting: Mapping[str, Any]) -> int | None:
    """The width every context of the network of ``setting`` must have (its ``context_dim``),
    or None where it reads no context."""
    if not used_contexts(arch, setting):
        return None
    return int(setting.get("context_dim", _defaults(arch)["context_dim"]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _defaults(arch: str) -> dict[str, Any]:
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters
    return {name: parameter.default for name, parameter in parameters.items()}
