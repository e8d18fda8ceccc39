"""IR-SDE and DA-CLIP checkpoints: their option files, their schedule, loading, sampling.

The published IR-SDE and DA-CLIP networks come as a ``.pth`` state dict and an option YAML
whose ``network_G`` section names the network and its constructor arguments and whose ``sde``
section names the schedule::

    sde: {max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}
    network_G:
      which_model_G: ConditionalUNet
      setting: {in_nc: 3, out_nc: 3, nf: 64, ch_mult: [1, 2, 4, 8], context_dim: 512, …}

- [`read_options`][mrs_numerics.models.checkpoints.read_options] reads such a file (or a JSON
  with the same structure, or a flat ``{"arch": …, constructor arguments}``), checking every
  field it reads for its type and range
  ([`irsde_options`][mrs_numerics.models.irsde_options]), nothing coerced;
- [`irsde_schedule`][mrs_numerics.models.checkpoints.irsde_schedule] is the schedule the
  network was trained on (IR-SDE's tables with their −θ₀ offset, α(0) = 1);
- [`read_irsde_checkpoint`][mrs_numerics.models.checkpoints.read_irsde_checkpoint] (and
  [`load_irsde_checkpoint`][mrs_numerics.models.checkpoints.load_irsde_checkpoint], its
  network alone) builds the network of
  [`ARCHITECTURES`][mrs_numerics.models.irsde_options.ARCHITECTURES], loads the weights
  strictly and hashes the file; the file is read by
  [`load_torch_file`][mrs_numerics.models.input_files.load_torch_file], the one loader of
  users' torch files (``weights_only``; anything but a state dict refused in one line);
- [`load_context`][mrs_numerics.models.checkpoints.load_context] reads a DA-CLIP context and
  checks its shape, width and values;
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

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mrs_numerics._errors import InputError
from mrs_numerics.models.input_files import (
    STATE_DICT,
    TENSOR,
    load_torch_file,
    read_mapping_file,
)
from mrs_numerics.models.irsde_options import (
    ARCHITECTURES,
    CONTEXT_WORDS,
    PIXEL_UNITS_THRESHOLD,
    SDE_CHECKS,
    SETTING_CHECKS,
    check_arch,
    check_sde,
    check_setting,
    got,
    mapping,
)
from mrs_numerics.schedules.discrete import DiscreteSchedule, irsde

__all__ = [
    "ARCHITECTURES",
    "DACLIP_SETTINGS",
    "DATA_PARALLEL_PREFIX",
    "PIXEL_UNITS_THRESHOLD",
    "SDE_FIELDS",
    "SUPPORTED_MODEL_G",
    "WRAPPER_KEYS",
    "LoadedCheckpoint",
    "check_context",
    "extract_state_dict",
    "irsde_schedule",
    "load_context",
    "load_irsde_checkpoint",
    "parse_options",
    "read_irsde_checkpoint",
    "read_options",
]

SUPPORTED_MODEL_G = "ConditionalUNet"
"""The ``network_G.which_model_G`` the two architectures are published under."""

DACLIP_SETTINGS = frozenset({"ch_mult", "context_dim", "use_degra_context", "use_image_context"})
"""Constructor arguments only DA-CLIP's network has: their presence means ``arch="daclip"``."""

SDE_FIELDS = tuple(SDE_CHECKS)
"""The fields of an option file's ``sde`` section that define the schedule."""

WRAPPER_KEYS = ("state_dict", "params", "params_ema", "model")
"""Keys under which a checkpoint file may hold the state dict (tried in this order)."""

DATA_PARALLEL_PREFIX = "module."
"""The prefix ``nn.DataParallel`` adds to every key (removed on loading)."""

_SHOWN = 5
_EXAMPLE_SDE = "sde: {max_sigma: 50, T: 100, schedule: cosine, eps: 0.005}"


def read_options(path: str | os.PathLike) -> dict[str, Any]:
    """The network and schedule parts of an IR-SDE/DA-CLIP option file, every field checked.

    A ``.json`` file is read as JSON, anything else as YAML (PyYAML's safe loader; a key given
    twice is refused); the content is interpreted by
    [`parse_options`][mrs_numerics.models.checkpoints.parse_options], and its refusals start
    with the file's name: ``ir-sde.yml: network_G.setting.nf must be a positive integer, got
    '64a' (text)``.

    Args:
        path: The option YAML (such as IR-SDE's ``options/test/ir-sde.yml`` or DA-CLIP's
            ``options/test.yml``) or a JSON file with the same structure or the flat one.

    Returns:
        ``{"arch": …, "setting": {constructor arguments}, "sde": {…} or None}``.

    Raises:
        InputError: If the file is missing, is not YAML/JSON text holding a mapping, or does
            not describe a supported network (one line naming the file and the field).
    """
    content = read_mapping_file(path, "option file")
    try:
        return parse_options(content)
    except InputError as error:
        raise InputError(f"{path}: {error.message}", advice=error.advice) from None


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The network and schedule parts of options already read into a mapping, every field checked.

    Three layouts are accepted:

    - the original option file: ``network_G: {which_model_G: ConditionalUNet, setting: {…}}``
      (``which_model_G`` must be ``ConditionalUNet``) and an optional ``sde`` section;
    - this function's own result: ``{"arch": …, "setting": {…}, "sde": …}``;
    - a flat configuration: ``{"arch": "irsde" | "daclip", constructor arguments…}`` (with an
      optional ``sde`` entry).

    Without an ``arch`` entry the architecture is DA-CLIP's if the setting has any of
    [`DACLIP_SETTINGS`][mrs_numerics.models.checkpoints.DACLIP_SETTINGS], else IR-SDE's. Each
    constructor argument and each field of ``sde`` is checked for its type and range (see
    [`irsde_options`][mrs_numerics.models.irsde_options]); nothing is coerced.

    Args:
        options: The options.

    Returns:
        ``{"arch": …, "setting": {constructor arguments}, "sde": {…} or None}``.

    Raises:
        InputError: If a section is missing or not a mapping, ``which_model_G`` or ``arch`` is
            not supported, the setting has unknown or lacks required constructor arguments, or
            a field has the wrong type or range (the message names the field by its path).
    """
    options = mapping(options, "the options")
    arch = options.get("arch")
    arch_field = "arch"
    if "network_G" in options:
        network = mapping(options["network_G"], "network_G")
        which = network.get("which_model_G")
        if which is not None and which != SUPPORTED_MODEL_G:
            raise InputError(
                f"network_G.which_model_G = {which!r} is not supported; supported: "
                f"{SUPPORTED_MODEL_G!r} (IR-SDE's and DA-CLIP's conditional UNets)"
            )
        if network.get("setting") is None:
            raise InputError(
                "network_G has no 'setting' (the network's constructor arguments, e.g. "
                "setting: {in_nc: 3, out_nc: 3, nf: 64, depth: 4})"
            )
        prefix = "network_G.setting"
        setting = mapping(network["setting"], prefix)
        if arch is None and "arch" in network:
            arch, arch_field = network["arch"], "network_G.arch"
    elif "setting" in options:
        prefix = "setting"
        setting = mapping(options["setting"], prefix)
    else:
        prefix = ""
        setting = {key: value for key, value in options.items() if key not in ("arch", "sde")}
        if not any(key in checks for checks in SETTING_CHECKS.values() for key in setting):
            raise InputError(
                "the options have no network_G section (the network: which_model_G: "
                f"{SUPPORTED_MODEL_G} and its setting); top-level keys: {_first(list(options))}"
            )
    if arch is None:
        arch = "daclip" if DACLIP_SETTINGS & set(setting) else "irsde"
    arch = check_arch(arch, arch_field)
    setting = check_setting(arch, setting, prefix)
    sde = options.get("sde")
    if sde is not None:
        check_sde(sde)
    return {"arch": arch, "setting": setting, "sde": None if sde is None else dict(sde)}


def irsde_schedule(options: Mapping[str, Any] | str | os.PathLike) -> DiscreteSchedule:
    """The schedule an IR-SDE/DA-CLIP network was trained on, from its options' ``sde`` section.

    IR-SDE's discrete tables with time = index (the network's time input) and the training
    code's convention S_i = Σ_{j≤i} θ_j − θ₀, so α(0) = 1 and σ(0) = 0:
    ``irsde(schedule, T=T, max_sigma=Λ, eps=eps, theta0_offset=True)``.

    ``max_sigma`` follows IR-SDE's rule: a value ≥ 1 is in pixel units and Λ = max_sigma / 255
    (the option files say 10, 30 or 50; at most 255); a value in (0, 1) is Λ itself.

    Args:
        options: A path to an option file, its parsed form (with an ``sde`` entry), or the
            ``sde`` section itself (``{max_sigma, T, schedule, eps}``).

    Returns:
        The [`DiscreteSchedule`][mrs_numerics.schedules.discrete.DiscreteSchedule].

    Raises:
        InputError: If the section is missing, lacks one of ``max_sigma``, ``T``,
            ``schedule``, ``eps``, or has a value of the wrong type or out of range.
    """
    where = ""
    if isinstance(options, str | os.PathLike):
        where = f"{options}: "
        options = read_options(options)
    options = mapping(options, "the options")
    sde = options if "max_sigma" in options else options.get("sde")
    if sde is None:
        raise InputError(
            f"{where}the options have no 'sde' section (the schedule the network was trained "
            f"on); expected e.g. {_EXAMPLE_SDE}"
        )
    try:
        values = check_sde(sde)
    except InputError as error:
        raise InputError(f"{where}{error.message}") from None
    return irsde(
        values["schedule"],
        T=values["T"],
        max_sigma=values["max_sigma"],
        eps=values["eps"],
        theta0_offset=True,
    )


def extract_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The state dict in a loaded checkpoint, without ``module.`` prefixes.

    A mapping of tensors is the state dict itself; otherwise it is the first of
    [`WRAPPER_KEYS`][mrs_numerics.models.checkpoints.WRAPPER_KEYS] present. Keys starting with
    ``module.`` (saved from ``nn.DataParallel``) lose the prefix, as in IR-SDE's loader.

    Raises:
        InputError: If no state dict is found.
    """
    if not isinstance(checkpoint, Mapping):
        raise InputError(f"a checkpoint must be a mapping, got {type(checkpoint).__name__}")
    state: Mapping[str, Any] | None = checkpoint if _tensors_only(checkpoint) else None
    for key in WRAPPER_KEYS:
        if state is not None:
            break
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping) and _tensors_only(inner):
            state = inner
    if state is None:
        raise InputError(
            "the checkpoint holds no state dict: neither a mapping of tensors nor one under "
            f"{', '.join(repr(k) for k in WRAPPER_KEYS)} (top-level keys: "
            f"{_first([str(key) for key in checkpoint])})"
        )
    return {_unprefixed(str(key)): value for key, value in state.items()}


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's network with its weights, and what identifies it.

    Attributes:
        network: The network (on the CPU, in eval mode).
        arch: ``"irsde"`` or ``"daclip"``.
        setting: Its constructor arguments.
        sha256: The hex SHA-256 digest of the checkpoint file's bytes.
    """

    network: nn.Module
    arch: str
    setting: dict[str, Any]
    sha256: str


def read_irsde_checkpoint(
    path: str | os.PathLike, config: Mapping[str, Any] | str | os.PathLike
) -> LoadedCheckpoint:
    """The IR-SDE or DA-CLIP network of ``config`` with the weights at ``path``, and its hash.

    The file is read once by
    [`load_torch_file`][mrs_numerics.models.input_files.load_torch_file] (``weights_only``: no
    code from it runs; anything but a state dict is refused in one line) and hashed; a bare
    state dict, one wrapped as ``{"state_dict": …}``, ``{"params": …}`` (see
    [`extract_state_dict`][mrs_numerics.models.checkpoints.extract_state_dict]) and ``module.``
    prefixes are accepted. The weights must fit the network exactly (every key, every shape),
    which is checked on a network built on the ``meta`` device (no memory) before the real one
    is built, and must be finite.

    Args:
        path: The ``.pth`` checkpoint.
        config: The network: a path to an option YAML/JSON, or a mapping in one of the
            layouts of [`parse_options`][mrs_numerics.models.checkpoints.parse_options].

    Returns:
        The [`LoadedCheckpoint`][mrs_numerics.models.checkpoints.LoadedCheckpoint].

    Raises:
        InputError: If the configuration is not supported, the file is not a torch file
            holding a state dict, or the state dict does not fit the network (the message
            names the missing, unexpected and mismatched keys and the architecture) or holds
            values that are not finite.
    """
    if isinstance(config, str | os.PathLike):
        options = read_options(config)
    else:
        options = parse_options(config)
    arch, setting = options["arch"], options["setting"]
    loaded = load_torch_file(path, STATE_DICT, "checkpoint")
    try:
        state = extract_state_dict(loaded.content)
    except InputError as error:
        raise InputError(f"checkpoint {path}: {error.message}") from None
    with torch.device("meta"):
        shapes = _network(arch, setting).state_dict()
    problems = _mismatches(shapes, state)
    if problems:
        raise InputError(
            f"{path} does not fit the {arch!r} network ({ARCHITECTURES[arch].__name__}) built "
            f"with {setting}: {'; '.join(problems)}. Check the architecture and the "
            "constructor arguments (network_G.setting of the option file the weights came with)"
        )
    bad = [key for key, value in state.items() if not _finite(value)]
    if bad:
        raise InputError(
            f"checkpoint {path} holds values that are not finite (NaN or infinite) in "
            f"{len(bad)} tensors ({_first(bad)}): the training that saved it diverged"
        )
    network = _network(arch, setting)
    network.load_state_dict(state, strict=True)
    return LoadedCheckpoint(network.eval(), arch, setting, loaded.sha256)


def load_irsde_checkpoint(
    path: str | os.PathLike, config: Mapping[str, Any] | str | os.PathLike
) -> nn.Module:
    """The IR-SDE or DA-CLIP network of ``config`` with the weights at ``path``, in eval mode.

    The network of
    [`read_irsde_checkpoint`][mrs_numerics.models.checkpoints.read_irsde_checkpoint] (which
    has the rules: ``weights_only``, strict, finite).

    Args:
        path: The ``.pth`` checkpoint.
        config: The network: a path to an option YAML/JSON, or a mapping in one of the
            layouts of [`parse_options`][mrs_numerics.models.checkpoints.parse_options], such
            as ``{"arch": "irsde", "in_nc": 3, "out_nc": 3, "nf": 64, "depth": 4}``.

    Returns:
        The network (on the CPU, in eval mode).

    Raises:
        InputError: As
            [`read_irsde_checkpoint`][mrs_numerics.models.checkpoints.read_irsde_checkpoint].
    """
    return read_irsde_checkpoint(path, config).network


def load_context(
    path: str | os.PathLike,
    name: str = "context",
    width: int | None = None,
    one_row: bool = False,
) -> torch.Tensor:
    """A DA-CLIP context saved with ``torch.save``: a float tensor ``[dim]`` or ``[rows, dim]``.

    DA-CLIP computes its two 512-d contexts (the degradation and the image embedding) with its
    own image encoder, which this package does not ship: compute them there, save each with
    ``torch.save(tensor, "text_context.pt")``, and pass the files. The file is read by
    [`load_torch_file`][mrs_numerics.models.input_files.load_torch_file] (``weights_only``)
    and its tensor checked by [`check_context`][mrs_numerics.models.checkpoints.check_context].

    Args:
        path: The ``.pt`` file.
        name: What the tensor is, for messages (``"text_context"``, ``"image_context"``, or
            any words).
        width: The width the network needs (its ``context_dim``); None: any.
        one_row: Refuse ``[rows, dim]`` with rows > 1 (a context for every image of a run).

    Raises:
        InputError: If the file is not a torch file holding one tensor, or the tensor is not
            as [`check_context`][mrs_numerics.models.checkpoints.check_context] requires.
    """
    what = CONTEXT_WORDS.get(name, name)
    value = load_torch_file(path, TENSOR, what).content
    return check_context(value, f"{what} {path}", width, one_row)


def check_context(
    value: torch.Tensor, what: str, width: int | None = None, one_row: bool = False
) -> torch.Tensor:
    """``value``, refused unless it is a finite floating-point ``[dim]`` or ``[rows, dim]``.

    Args:
        value: The context.
        what: How messages name it (``"the text context ctx.pt"``).
        width: The ``dim`` the network needs (its ``context_dim``); None: any.
        one_row: Also refuse rows > 1.

    Raises:
        InputError: For another dtype, number of dimensions, width or rows, or a NaN/inf.
    """
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{what} must be a tensor, got {got(value)}")
    shape = tuple(value.shape)
    if not value.is_floating_point():
        raise InputError(f"{what} must be a floating-point tensor, got {value.dtype} {shape}")
    allowed = "[dim] or [1, dim]" if one_row else "[dim] or [rows, dim]"
    rows_ok = value.ndim == 1 or (value.ndim == 2 and (value.shape[0] == 1 or not one_row))
    if value.ndim not in (1, 2) or not rows_ok:
        extra = " (for one context per image, give a folder of files)" if one_row else ""
        raise InputError(f"{what} must be a tensor {allowed}, got the shape {shape}{extra}")
    if width is not None and value.shape[-1] != width:
        raise InputError(
            f"{what} has width {value.shape[-1]}, but the network's context_dim is {width}: "
            f"need {allowed.replace('dim', str(width))}"
        )
    if value.numel() == 0 or not bool(torch.isfinite(value).all()):
        raise InputError(f"{what} holds values that are not finite (NaN or infinite), or none")
    return value


def _network(arch: str, setting: Mapping[str, Any]) -> nn.Module:
    """The network of ``arch`` built with ``setting`` (a refusal of the constructor, such as
    DA-CLIP's channel rule for its attention, names the setting)."""
    try:
        return ARCHITECTURES[arch](**setting)
    except (TypeError, ValueError) as error:
        raise InputError(
            f"network_G.setting {dict(setting)} builds no {arch!r} network: {error}"
        ) from None


def _finite(value: torch.Tensor) -> bool:
    return not value.is_floating_point() or bool(torch.isfinite(value).all())


def _tensors_only(values: Mapping[str, Any]) -> bool:
    return bool(values) and all(isinstance(value, torch.Tensor) for value in values.values())


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
