"""A user's IR-SDE or DA-CLIP checkpoint, ready to restore with: the network and its schedule.

[`checkpoint_network`][mrs_numerics.restoration.checkpoint.checkpoint_network] reads the option
file the weights came with, builds the network of that architecture
([`load_irsde_checkpoint`][mrs_numerics.models.checkpoints.load_irsde_checkpoint], strict),
wraps it as a noise-prediction ``model(x, t, mu)``
([`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter], times unrounded unless asked)
and builds the schedule its training used
([`irsde_schedule`][mrs_numerics.models.checkpoints.irsde_schedule]: IR-SDE's table with the
−θ₀ offset, α(0) = 1, Λ = ``max_sigma``/255 and ``T`` from the option file). It is what
``mrs-numerics restore --checkpoint FILE --config FILE`` runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mrs_numerics.models.checkpoints import (
    ARCHITECTURES,
    irsde_schedule,
    load_context,
    load_irsde_checkpoint,
    read_options,
)
from mrs_numerics.schedules.discrete import DiscreteSchedule
from mrs_numerics.solvers.adapters import IRSDEAdapter

Context = torch.Tensor | str | os.PathLike | None
"""A DA-CLIP context: a tensor ``[dim]`` or ``[rows, dim]``, a ``.pt`` file holding one, or a
folder of per-image files (``FOLDER/<image name>.pt``, see
[`CheckpointNetwork.model_for`][mrs_numerics.restoration.checkpoint.CheckpointNetwork.model_for])."""

CONTEXTS = ("text_context", "image_context")
"""DA-CLIP's two contexts: the degradation embedding (``degra_context`` in DA-CLIP's scripts) and
the image embedding."""


@dataclass
class CheckpointNetwork:
    """A checkpoint's network as the samplers call it, and what it was trained on.

    Attributes:
        name: The checkpoint's file name (for messages).
        arch: ``"irsde"`` or ``"daclip"``.
        model: The noise-prediction ``model(x, t, mu)``.
        schedule: The training schedule (time = table index).
        prediction: What ``model`` returns: ``"noise"``.
    """

    name: str
    arch: str
    model: IRSDEAdapter
    schedule: DiscreteSchedule
    prediction: str = "noise"
    context_folders: dict[str, Path] = field(default_factory=dict)

    def context_files(self, name: str) -> dict[str, Path]:
        """The per-image context files of image ``name`` (its path relative to the input folder):
        ``FOLDER/<name with the suffix .pt>`` for each context given as a folder."""
        relative = Path(name).with_suffix(".pt")
        return {context: folder / relative for context, folder in self.context_folders.items()}

    def missing_contexts(self, names: Sequence[str]) -> list[Path]:
        """The per-image context files of ``names`` that do not exist."""
        return [
            path
            for name in names
            for path in self.context_files(name).values()
            if not path.is_file()
        ]

    def model_for(self, names: Sequence[str]) -> IRSDEAdapter:
        """The model for a batch of images ``names``: ``model``, with each image's own contexts
        (row i from ``context_files(names[i])``) where contexts were given as folders.

        Raises:
            ValueError: If a context file is missing or does not hold one vector.
        """
        if not self.context_folders:
            return self.model
        contexts = {name: getattr(self.model, name) for name in self.model.context_names}
        for context in self.context_folders:
            rows = [_one_row(self.context_files(name)[context], context) for name in names]
            contexts[context] = torch.stack(rows)
        return IRSDEAdapter(self.model.net, self.prediction, self.model.round_time, **contexts)


def checkpoint_network(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike,
    arch: str | None = None,
    round_time: bool = False,
    text_context: Context = None,
    image_context: Context = None,
) -> CheckpointNetwork:
    """The network of an IR-SDE/DA-CLIP checkpoint with its training schedule.

    Args:
        checkpoint: The ``.pth`` state dict the IR-SDE or DA-CLIP code saved.
        config: The option YAML of the run that trained it (its ``network_G.setting`` and
            ``sde`` sections are read) or a JSON of the same.
        arch: ``"irsde"`` or ``"daclip"``; None: the option file's (DA-CLIP's if its setting
            has DA-CLIP's arguments). Given, it must agree with the option file.
        round_time: Round the sampler's times to integer training indices (the training
            inputs); by default they are passed unrounded, as the official MR Sampler code does.
        text_context: DA-CLIP's degradation embedding (tensor, ``.pt`` file, or a folder of
            one file per image); None: none.
        image_context: DA-CLIP's image embedding (likewise); None: none.

    Raises:
        ValueError: For an option file without an ``sde`` section, an arch that disagrees with
            it, contexts given to an IR-SDE network, or weights that do not fit the network.
    """
    options = read_options(config)
    if arch is not None:
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
        if arch != options["arch"]:
            raise ValueError(
                f"{config} describes a {options['arch']!r} network ({options['setting']}), not "
                f"{arch!r}"
            )
    if options.get("sde") is None:
        raise ValueError(
            f"{config} has no sde section (max_sigma, T, schedule, eps): the schedule the "
            "network was trained on must be known"
        )
    given = {
        name: value
        for name, value in zip(CONTEXTS, (text_context, image_context), strict=True)
        if value is not None
    }
    if given and options["arch"] != "daclip":
        raise ValueError(f"{', '.join(given)} given, but only DA-CLIP networks take contexts")
    folders = {
        name: Path(value)
        for name, value in given.items()
        if not isinstance(value, torch.Tensor) and Path(value).is_dir()
    }
    contexts = {
        name: value if isinstance(value, torch.Tensor) else load_context(value, name)
        for name, value in given.items()
        if name not in folders
    }
    net = load_irsde_checkpoint(checkpoint, options)
    model = IRSDEAdapter(net, "noise", round_time=round_time, **contexts)
    schedule = irsde_schedule(options)
    return CheckpointNetwork(
        Path(checkpoint).name, options["arch"], model, schedule, "noise", folders
    )


def _one_row(path: Path, name: str) -> torch.Tensor:
    """The vector saved at ``path`` (``[dim]`` or ``[1, dim]``)."""
    value = load_context(path, name)
    if value.ndim == 2 and value.shape[0] != 1:
        raise ValueError(
            f"{name} {path}: one image's context must be [dim] or [1, dim], got "
            f"{tuple(value.shape)}"
        )
    return value.reshape(-1)
