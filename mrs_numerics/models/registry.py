"""Shipped MR restoration networks: what exists, how each was trained, and loading them.

The weights live in ``mrs_numerics/models/weights`` (read through `importlib.resources`,
so they work from an installed wheel) with an ``index.json`` that records, per network: task,
prediction type, schedule, the UNet configuration, the exact training command and seed, the
iterations, wall time and device, and the held-out evaluation measured after training.
Weights load with [`load_torch_file`][mrs_numerics.models.input_files.load_torch_file]
(``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import torch
import yaml

from mrs_numerics.imaging.degradations import task as known_task
from mrs_numerics.models.input_files import STATE_DICT, load_torch_file
from mrs_numerics.models.unet import ConditionalUNet

WEIGHTS_PACKAGE = "mrs_numerics.models.weights"
INDEX = "index.json"


@dataclass(frozen=True)
class ModelInfo:
    """Training facts of one shipped network."""

    name: str
    task: str
    prediction: str
    schedule: str
    max_sigma: float
    config: dict
    weights: str
    command: str
    seed: int
    iterations: int
    seconds: float
    device: str
    heldout: dict = field(default_factory=dict)


def _index() -> dict:
    root = resources.files(WEIGHTS_PACKAGE)
    path = root / INDEX
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def available_models() -> dict[str, ModelInfo]:
    """Every shipped network by name."""
    return {name: ModelInfo(name=name, **entry) for name, entry in _index().items()}


def model_for_task(task: str, prediction: str | None = None) -> str:
    """The shipped network for ``task``: data prediction first, then the best held-out PSNR.

    Data-prediction networks come first because few-step sampling is what they are for: the
    shipped noise-prediction denoisers score well at 100-NFE posterior sampling but fall apart
    at 5 NFE and, with the PF-ODE, stay below their SDE quality at any NFE (``mrs-numerics
    benchmark quality``). ``prediction`` restricts the choice.
    """
    candidates = [
        info
        for info in available_models().values()
        if info.task == task and (prediction is None or info.prediction == prediction)
    ]
    if not candidates:
        known = sorted({(i.task, i.prediction) for i in available_models().values()})
        raise ValueError(
            f"no shipped network for task {task!r}"
            + (f" with {prediction!r} prediction" if prediction else "")
            + f"; shipped (task, prediction): {known}"
        )
    return max(candidates, key=lambda info: (info.prediction == "data", _heldout_psnr(info))).name


def _heldout_psnr(info: ModelInfo) -> float:
    rows = info.heldout.get("images", {}).values()
    return sum(row["restored_psnr"] for row in rows) / max(len(rows), 1)


def available_model(name: str) -> ModelInfo:
    """The facts of the shipped network ``name`` (a clear error names the shipped ones)."""
    models = available_models()
    if name not in models:
        raise ValueError(f"unknown model {name!r}; shipped: {', '.join(sorted(models)) or 'none'}")
    return models[name]


def load_model(name: str, device: str | torch.device = "cpu") -> tuple[ConditionalUNet, ModelInfo]:
    """The network ``name`` in eval mode on ``device``, and its facts."""
    info = available_model(name)
    net = ConditionalUNet(**info.config)
    with resources.as_file(resources.files(WEIGHTS_PACKAGE) / info.weights) as path:
        state = load_torch_file(path, STATE_DICT, f"the weights of {name}").content
    net.load_state_dict(state)
    return net.to(device).eval(), info


def shipped_network(task: str | None = None, name: str | None = None):
    """(name, network, facts): the network ``name``, or the best shipped one for ``task``.

    A ``task`` given together with ``name`` must be the network's task.
    """
    if task is None and name is None:
        raise ValueError("name a task (to use its best shipped network) or a model")
    if task is not None:
        known_task(task)
    if name is None:
        name = model_for_task(task)  # type: ignore[arg-type]  # task is set: checked above
    net, info = load_model(name)
    if task is not None and info.task != task:
        raise ValueError(f"network {name!r} restores {info.task!r}, not {task!r}")
    return name, net, info


CHECKPOINT_SUFFIX, OPTIONS_SUFFIX = ".pth", ".yml"
"""A shipped network in IR-SDE's own format: ``NAME.pth`` (state dict) beside ``NAME.yml``."""


@dataclass(frozen=True)
class ShippedCheckpoint:
    """A shipped network in IR-SDE's format (``mrs-numerics train --arch irsde --export``).

    Attributes:
        name: Its name (the files' stem).
        weights: The ``.pth`` state dict (for ``restore --checkpoint``).
        options: The option YAML in IR-SDE's layout (for ``restore --config``).
        facts: The option file's ``mrs_numerics`` section: task, command, seed, iterations,
            seconds, device, held-out PSNR.
    """

    name: str
    weights: str
    options: str
    facts: dict = field(default_factory=dict)


def shipped_checkpoints() -> dict[str, ShippedCheckpoint]:
    """Every shipped IR-SDE-format network by name (pairs ``NAME.pth`` + ``NAME.yml``).

    The paths are those of the installed package (``importlib.resources``; a wheel installs
    them as files).
    """
    root = resources.files(WEIGHTS_PACKAGE)
    found = {}
    for entry in root.iterdir():
        if not entry.name.endswith(OPTIONS_SUFFIX):
            continue
        name = entry.name[: -len(OPTIONS_SUFFIX)]
        weights = root / f"{name}{CHECKPOINT_SUFFIX}"
        if not weights.is_file():
            continue
        options = yaml.safe_load(entry.read_text(encoding="utf-8"))
        facts = options.get("mrs_numerics", {}) if isinstance(options, dict) else {}
        found[name] = ShippedCheckpoint(name, str(weights), str(entry), dict(facts))
    return dict(sorted(found.items()))
