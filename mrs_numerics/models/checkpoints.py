"""IR-SDE and DA-CLIP checkpoints: their option files, their schedule, loading, sampling.

The published IR-SDE and DA-CLIP networks come as a ``.pth`` state dict and an option YAML
whose ``network_G`` section names the network and its constructor arguments and whose ``sde``
section names the schedule::

    sde: {max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}
    network_G:
      which_model_G: ConditionalUNet
      setting: {in_nc: 3, out_nc: 3, nf: 64, ch_mult: [1, 2, 4, 8], context_dim: 512, …}

- [`read_options`][mrs_numerics.models.checkpoints.read_options] reads such a file (or a JSON
  with the same structure, or a flat ``{"arch": …, constructor arguments}``);
- [`irsde_schedule`][mrs_numerics.models.checkpoints.irsde_schedule] is the schedule the
  network was trained on (IR-SDE's tables with their −θ₀ offset, α(0) = 1);
- [`load_irsde_checkpoint`][mrs_numerics.models.checkpoints.load_irsde_checkpoint] builds the
  network of [`ARCHITECTURES`][mrs_numerics.models.checkpoints.ARCHITECTURES] and loads the
  weights strictly;
- [`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter] turns
  ``net(xt, cond, time, **context)`` into this package's ``model(x, t, mu)``, a
  noise-prediction model for the samplers and
  [`restore`][mrs_numerics.restoration.restore.restore].

Example::

    options = read_options("options/test.yml")
    net = load_irsde_checkpoint("universal-ir.pth", options)
    model = IRSDEAdapter(net, text_context=degradation, image_context=image)
    restored = restore(lq, model, "noise", irsde_schedule(options), nfe=10)
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from mrs_numerics._checks import integer
from mrs_numerics.models.daclip_unet import DACLIPConditionalUNet
from mrs_numerics.models.irsde_unet import IRSDEConditionalUNet
from mrs_numerics.schedules.discrete import DiscreteSchedule, irsde

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "irsde": IRSDEConditionalUNet,
    "daclip": DACLIPConditionalUNet,
}
"""The supported networks by ``arch`` name (both are ``which_model_G: ConditionalUNet``)."""

SUPPORTED_MODEL_G = "ConditionalUNet"
"""The ``network_G.which_model_G`` the two architectures are published under."""

DACLIP_SETTINGS = frozenset({"ch_mult", "context_dim", "use_degra_context", "use_image_context"})
"""Constructor arguments only DA-CLIP's network has: their presence means ``arch="daclip"``."""

SDE_FIELDS = ("max_sigma", "T", "schedule", "eps")
"""The fields of an option file's ``sde`` section that define the schedule."""

PIXEL_UNITS_THRESHOLD = 1.0
"""``max_sigma`` ≥ this is in pixel units (0–255) and divided by 255, as IR-SDE's code does."""

WRAPPER_KEYS = ("state_dict", "params", "params_ema", "model")
"""Keys under which a checkpoint file may hold the state dict (tried in this order)."""

DATA_PARALLEL_PREFIX = "module."
"""The prefix ``nn.DataParallel`` adds to every key (removed on loading)."""

_SHOWN = 5


def read_options(path: str | os.PathLike) -> dict[str, Any]:
    """The network and schedule parts of an IR-SDE/DA-CLIP option file.

    A ``.json`` file is read as JSON, anything else with ``yaml.safe_load``; the content is
    interpreted by [`parse_options`][mrs_numerics.models.checkpoints.parse_options].

    Args:
        path: The option YAML (such as IR-SDE's ``options/test/ir-sde.yml`` or DA-CLIP's
            ``options/test.yml``) or a JSON file with the same structure or the flat one.

    Returns:
        ``{"arch": …, "setting": {constructor arguments}, "sde": {…} or None}``.

    Raises:
        ValueError: If the file does not describe a supported network (see
            [`parse_options`][mrs_numerics.models.checkpoints.parse_options]).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        content = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not a readable option file ({error})") from error
    try:
        return parse_options(content)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The network and schedule parts of options already read into a mapping.

    Three layouts are accepted:

    - the original option file: ``network_G: {which_model_G: ConditionalUNet, setting: {…}}``
      (``which_model_G`` must be ``ConditionalUNet``) and an optional ``sde`` section;
    - this function's own result: ``{"arch": …, "setting": {…}, "sde": …}``;
    - a flat configuration: ``{"arch": "irsde" | "daclip", constructor arguments…}`` (with an
      optional ``sde`` entry).

    Without an ``arch`` entry the architecture is DA-CLIP's if the setting has any of
    [`DACLIP_SETTINGS`][mrs_numerics.models.checkpoints.DACLIP_SETTINGS], else IR-SDE's.

    Args:
        options: The options.

    Returns:
        ``{"arch": …, "setting": {constructor arguments}, "sde": {…} or None}``.

    Raises:
        ValueError: If a section is missing or not a mapping, ``which_model_G`` or ``arch`` is
            not supported, or the setting has unknown or lacks required constructor arguments.
    """
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a mapping, got {type(options).__name__}")
    arch = options.get("arch")
    if "network_G" in options:
        network = _mapping(options["network_G"], "network_G")
        which = network.get("which_model_G")
        if which is not None and which != SUPPORTED_MODEL_G:
            raise ValueError(
                f"network_G.which_model_G = {which!r} is not supported; supported: "
                f"{SUPPORTED_MODEL_G!r} (IR-SDE's and DA-CLIP's conditional UNets)"
            )
        if "setting" not in network:
            raise ValueError("network_G has no 'setting' (the network's constructor arguments)")
        setting = dict(_mapping(network["setting"], "network_G.setting"))
        arch = arch if arch is not None else network.get("arch")
    elif "setting" in options:
        setting = dict(_mapping(options["setting"], "setting"))
    else:
        setting = {key: value for key, value in options.items() if key not in ("arch", "sde")}
    if arch is None:
        arch = "daclip" if DACLIP_SETTINGS & set(setting) else "irsde"
    _check_setting(arch, setting)
    sde = options.get("sde")
    return {
        "arch": arch,
        "setting": setting,
        "sde": None if sde is None else dict(_mapping(sde, "sde")),
    }


def irsde_schedule(options: Mapping[str, Any] | str | os.PathLike) -> DiscreteSchedule:
    """The schedule an IR-SDE/DA-CLIP network was trained on, from its options' ``sde`` section.

    IR-SDE's discrete tables with time = index (the network's time input) and the training
    code's convention S_i = Σ_{j≤i} θ_j − θ₀, so α(0) = 1 and σ(0) = 0:
    ``irsde(schedule, T=T, max_sigma=Λ, eps=eps, theta0_offset=True)``.

    ``max_sigma`` follows IR-SDE's rule: a value ≥ 1 is in pixel units and Λ = max_sigma / 255
    (the option files say 10, 30 or 50); a value in (0, 1) is Λ itself.

    Args:
        options: A path to an option file, its parsed form (with an ``sde`` entry), or the
            ``sde`` section itself (``{max_sigma, T, schedule, eps}``).

    Returns:
        The [`DiscreteSchedule`][mrs_numerics.schedules.discrete.DiscreteSchedule].

    Raises:
        ValueError: If the section is missing, lacks one of ``max_sigma``, ``T``,
            ``schedule``, ``eps``, or has a value out of range.
    """
    if isinstance(options, str | os.PathLike):
        options = read_options(options)
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be a mapping or a path, got {type(options).__name__}")
    sde = options if "max_sigma" in options else options.get("sde")
    if sde is None:
        raise ValueError(
            "the options have no 'sde' section; expected e.g. "
            "sde: {max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}"
        )
    sde = _mapping(sde, "sde")
    missing = [name for name in SDE_FIELDS if name not in sde]
    if missing:
        raise ValueError(
            f"the sde section lacks {', '.join(missing)}; expected e.g. "
            "{max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}"
        )
    return irsde(
        _kind(sde["schedule"]),
        T=integer(sde["T"], "sde.T", least=1),
        max_sigma=_stationary_sigma(sde["max_sigma"]),
        eps=_eps(sde["eps"]),
        theta0_offset=True,
    )


def extract_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The state dict in a loaded checkpoint, without ``module.`` prefixes.

    A mapping of tensors is the state dict itself; otherwise it is the first of
    [`WRAPPER_KEYS`][mrs_numerics.models.checkpoints.WRAPPER_KEYS] present. Keys starting with
    ``module.`` (saved from ``nn.DataParallel``) lose the prefix, as in IR-SDE's loader.

    Raises:
        ValueError: If no state dict is found.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"a checkpoint must be a mapping, got {type(checkpoint).__name__}")
    state: Mapping[str, Any] | None = checkpoint if _tensors_only(checkpoint) else None
    for key in WRAPPER_KEYS:
        if state is not None:
            break
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping) and _tensors_only(inner):
            state = inner
    if state is None:
        raise ValueError(
            "the checkpoint holds no state dict: neither a mapping of tensors nor one under "
            f"{', '.join(repr(k) for k in WRAPPER_KEYS)} (top-level keys: "
            f"{_first(list(checkpoint))})"
        )
    return {_unprefixed(key): value for key, value in state.items()}


def load_irsde_checkpoint(
    path: str | os.PathLike, config: Mapping[str, Any] | str | os.PathLike
) -> nn.Module:
    """The IR-SDE or DA-CLIP network of ``config`` with the weights at ``path``, in eval mode.

    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``; a bare
    state dict, one wrapped as ``{"state_dict": …}``, ``{"params": …}`` (see
    [`extract_state_dict`][mrs_numerics.models.checkpoints.extract_state_dict]) and ``module.``
    prefixes are accepted. The weights must fit the network exactly (every key, every shape).

    Args:
        path: The ``.pth`` checkpoint.
        config: The network: a path to an option YAML/JSON, or a mapping in one of the
            layouts of [`parse_options`][mrs_numerics.models.checkpoints.parse_options], such
            as ``{"arch": "irsde", "in_nc": 3, "out_nc": 3, "nf": 64, "depth": 4}``.

    Returns:
        The network (on the CPU, in eval mode).

    Raises:
        ValueError: If the configuration is not supported, the file holds no state dict, or
            the state dict does not fit the network (the message names the missing,
            unexpected and mismatched keys and the architecture).
    """
    if isinstance(config, str | os.PathLike):
        options = read_options(config)
    else:
        options = parse_options(config)
    arch, setting = options["arch"], options["setting"]
    network = ARCHITECTURES[arch](**setting)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    try:
        state = extract_state_dict(checkpoint)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    problems = _mismatches(network.state_dict(), state)
    if problems:
        raise ValueError(
            f"{path} does not fit the {arch!r} network ({ARCHITECTURES[arch].__name__}) built "
            f"with {setting}: {'; '.join(problems)}. Check the architecture and the "
            "constructor arguments (network_G.setting of the option file the weights came with)"
        )
    network.load_state_dict(state, strict=True)
    return network.eval()


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {value!r}")
    return value


def _check_setting(arch: Any, setting: dict[str, Any]) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown arch {arch!r}; supported: {', '.join(repr(a) for a in ARCHITECTURES)}"
        )
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters
    unknown = sorted(set(setting) - set(parameters))
    if unknown:
        raise ValueError(
            f"unknown constructor arguments for arch {arch!r}: {', '.join(unknown)}; allowed: "
            f"{', '.join(parameters)}"
        )
    required = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and name not in setting
    ]
    if required:
        raise ValueError(f"arch {arch!r} needs the constructor arguments {', '.join(required)}")


def _kind(value: Any) -> str:
    kinds = ("cosine", "linear", "constant")
    if value not in kinds:
        raise ValueError(f"sde.schedule must be one of {', '.join(kinds)}, got {value!r}")
    return str(value)


def _stationary_sigma(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"sde.max_sigma must be a number > 0 (pixel units such as 50, or Λ < 1 such as "
            f"50/255), got {value!r}"
        )
    return number / 255.0 if number >= PIXEL_UNITS_THRESHOLD else number


def _eps(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0 < number < 1:
        raise ValueError(f"sde.eps must be a number in (0, 1) such as 0.005, got {value!r}")
    return number


def _tensors_only(mapping: Mapping[str, Any]) -> bool:
    return bool(mapping) and all(isinstance(value, torch.Tensor) for value in mapping.values())


def _unprefixed(key: str) -> str:
    return key[len(DATA_PARALLEL_PREFIX) :] if key.startswith(DATA_PARALLEL_PREFIX) else key


def _first(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f", … ({len(names)} in all)" if len(names) > _SHOWN else "")


def _mismatches(expected: Mapping[str, torch.Tensor], given: Mapping[str, Any]) -> list[str]:
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    shapes = [
        f"{key} {tuple(given[key].shape)} ≠ {tuple(expected[key].shape)}"
        for key in expected
        if key in given and given[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches, checkpoint ≠ network ({_first(shapes)})")
    return problems


def load_context(path: str | os.PathLike, name: str = "context") -> torch.Tensor:
    """A DA-CLIP context saved with ``torch.save``: a float tensor ``[dim]`` or ``[rows, dim]``.

    DA-CLIP computes its two 512-d contexts (the degradation and the image embedding) with its
    own image encoder, which this package does not ship: compute them there, save each with
    ``torch.save(tensor, "text_context.pt")``, and pass the files.

    Args:
        path: The ``.pt`` file (read with ``weights_only=True``).
        name: What the tensor is, for messages (e.g. ``"--text-context"``).

    Raises:
        ValueError: If the file does not hold one floating-point tensor of 1 or 2 dimensions.
    """
    value = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        kind = type(value).__name__ if not isinstance(value, torch.Tensor) else str(value.dtype)
        raise ValueError(f"{name} {path}: need one float tensor [dim] or [rows, dim], got {kind}")
    if value.ndim not in (1, 2):
        raise ValueError(
            f"{name} {path}: need a tensor [dim] or [rows, dim], got {tuple(value.shape)}"
        )
    return value
