"""A user's IR-SDE or DA-CLIP checkpoint, ready to restore with: the network and its schedule.

[`checkpoint_network`][mrs_numerics.restoration.checkpoint.checkpoint_network] reads the option
file the weights came with (every field checked,
[`read_options`][mrs_numerics.models.checkpoints.read_options]), builds the schedule its
training used ([`irsde_schedule`][mrs_numerics.models.checkpoints.irsde_schedule]: IR-SDE's
table with the −θ₀ offset, α(0) = 1, Λ = ``max_sigma``/255 and ``T`` from the option file),
checks DA-CLIP's contexts against what the network reads, builds the network of that
architecture with the weights
([`read_irsde_checkpoint`][mrs_numerics.models.checkpoints.read_irsde_checkpoint]: strict,
``weights_only``, the file's SHA-256 kept as the network's identity) and wraps it as a
noise-prediction ``model(x, t, mu)``
([`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter], times unrounded unless asked).
It is what ``mrs-numerics restore --checkpoint FILE --config FILE`` runs.

The rules of DA-CLIP's contexts, all enforced before the first network call:

- **Required where the network reads them.** A context is read when the option file's
  ``network_G.setting`` turns it on (``use_degra_context`` for the text context,
  ``use_image_context`` for the image context; the constructor's defaults, true and false,
  where it is silent) and ``context_dim`` > 0. A context the network reads must be given; one
  it does not read is refused (it would change nothing).
- **One row of the network's width.** A context is a finite float tensor ``[context_dim]`` or
  ``[1, context_dim]``, given as a tensor, a ``.pt`` file, or a folder of one file per image.
- **Per-image files.** With a folder, image ``NAME`` (its path relative to the input folder)
  uses ``FOLDER/NAME`` with its suffix replaced by ``.pt`` (``IN/sub/x.png`` →
  ``FOLDER/sub/x.pt``);
  [`check_contexts`][mrs_numerics.restoration.checkpoint.CheckpointNetwork.check_contexts]
  checks every image's files (present, one row, the width, finite) and that no two images
  share one, before any image is restored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from mrs_numerics._errors import Advice, InputError
from mrs_numerics.models.checkpoints import (
    check_context,
    irsde_schedule,
    load_context,
    parse_options,
    read_irsde_checkpoint,
    read_options,
)
from mrs_numerics.models.irsde_options import (
    CONTEXT_MEANINGS,
    CONTEXT_SWITCHES,
    CONTEXT_WORDS,
    check_arch,
    context_width,
    used_contexts,
)
from mrs_numerics.schedules.discrete import DiscreteSchedule
from mrs_numerics.solvers.adapters import IRSDEAdapter

Context = torch.Tensor | str | os.PathLike | None
"""A DA-CLIP context: a tensor ``[dim]`` or ``[1, dim]``, a ``.pt`` file holding one, or a
folder of per-image files (``FOLDER/<image name>.pt``, see
[`CheckpointNetwork.model_for`][mrs_numerics.restoration.checkpoint.CheckpointNetwork.model_for])."""

CONTEXTS = tuple(CONTEXT_SWITCHES)
"""DA-CLIP's two contexts: the degradation embedding (``degra_context`` in DA-CLIP's scripts) and
the image embedding."""

CONTEXT_SUFFIX = ".pt"
"""The suffix of a per-image context file (it replaces the image's own)."""

_SHOWN = 3


@dataclass
class CheckpointNetwork:
    """A checkpoint's network as the samplers call it, and what it was trained on.

    Attributes:
        name: The checkpoint's file name (for messages).
        arch: ``"irsde"`` or ``"daclip"``.
        model: The noise-prediction ``model(x, t, mu)``.
        schedule: The training schedule (time = table index).
        sha256: The hex SHA-256 digest of the checkpoint file's bytes: the network's identity
            (for grid records and run manifests).
        prediction: What ``model`` returns: ``"noise"``.
        context_folders: The contexts given as folders of per-image files, by name.
        context_dim: The width every context must have (None: the network reads none).
    """

    name: str
    arch: str
    model: IRSDEAdapter
    schedule: DiscreteSchedule
    sha256: str
    prediction: str = "noise"
    context_folders: dict[str, Path] = field(default_factory=dict)
    context_dim: int | None = None
    _rows: dict[Path, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def context_files(self, name: str) -> dict[str, Path]:
        """The per-image context files of image ``name`` (its path relative to the input folder):
        ``FOLDER/<name with the suffix .pt>`` for each context given as a folder.

        Raises:
            InputError: If ``name`` is not a relative path inside the input folder.
        """
        relative = _relative(name).with_suffix(CONTEXT_SUFFIX)
        return {context: folder / relative for context, folder in self.context_folders.items()}

    def missing_contexts(self, names: Sequence[str]) -> list[Path]:
        """The per-image context files of ``names`` that do not exist."""
        return [
            path
            for name in names
            for path in self.context_files(name).values()
            if not path.is_file()
        ]

    def check_contexts(self, names: Sequence[str]) -> None:
        """Refuse a run over the images ``names`` whose per-image contexts are not all usable.

        Every file is read and checked (a small tensor each: cheap), and kept for
        [`model_for`][mrs_numerics.restoration.checkpoint.CheckpointNetwork.model_for].

        Raises:
            InputError: If two images share a context file (names that differ only in their
                suffix), a file is missing, or a file is not one finite row of the network's
                ``context_dim`` (one line: how many, and the first).
        """
        if not self.context_folders:
            return
        owners: dict[Path, tuple[str, str]] = {}
        for name in names:
            for context, path in self.context_files(name).items():
                other = owners.setdefault(path, (name, context))[0]
                if other != name:
                    raise InputError(
                        f"images {other} and {name} would share the context file {path}: a "
                        "context folder holds FOLDER/<image path relative to IN, its suffix "
                        f"replaced by {CONTEXT_SUFFIX}>, so each image needs a name of its own "
                        "without its suffix; rename one of them"
                    )
        missing = [path for path in owners if not path.is_file()]
        if missing:
            raise InputError(
                f"{len(missing)} per-image context file(s) missing ({_shown(missing)}): a "
                f"context folder needs FOLDER/<image path relative to IN, suffix "
                f"{CONTEXT_SUFFIX}> for every image"
            )
        refused = []
        for path, (_, context) in owners.items():
            try:
                self._rows[path] = self._row(path, context)
            except InputError as error:
                refused.append(error.message)
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise InputError(
                f"{len(refused)} per-image context file(s) refused: {refused[0]}{more}"
            )

    def model_for(self, names: Sequence[str]) -> IRSDEAdapter:
        """The model for a batch of images ``names``: ``model``, with each image's own contexts
        (row i from ``context_files(names[i])``) where contexts were given as folders.

        Raises:
            InputError: If a context file is missing or is not one row of the network's width.
        """
        if not self.context_folders:
            return self.model
        contexts = {name: getattr(self.model, name) for name in self.model.context_names}
        for context in self.context_folders:
            rows = []
            for name in names:
                path = self.context_files(name)[context]
                rows.append(self._rows[path] if path in self._rows else self._row(path, context))
            contexts[context] = torch.stack(rows)
        return IRSDEAdapter(self.model.net, self.prediction, self.model.round_time, **contexts)

    def _row(self, path: Path, context: str) -> torch.Tensor:
        """The one row saved at ``path`` (``[dim]`` or ``[1, dim]``), as ``[dim]``."""
        return load_context(path, context, self.context_dim, one_row=True).reshape(-1)


def checkpoint_network(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike | Mapping[str, Any],
    arch: str | None = None,
    round_time: bool = False,
    text_context: Context = None,
    image_context: Context = None,
) -> CheckpointNetwork:
    """The network of an IR-SDE/DA-CLIP checkpoint with its training schedule.

    Everything is checked before the weights are read: the option file field by field, the
    architecture, the ``sde`` section, and the contexts (see the module's rules; context
    files are read and checked here, per-image folders by
    [`check_contexts`][mrs_numerics.restoration.checkpoint.CheckpointNetwork.check_contexts]).

    Args:
        checkpoint: The ``.pth`` state dict the IR-SDE or DA-CLIP code saved.
        config: The option YAML of the run that trained it (its ``network_G.setting`` and
            ``sde`` sections are read) or a JSON of the same; or those options as a mapping
            (see [`parse_options`][mrs_numerics.models.checkpoints.parse_options]).
        arch: ``"irsde"`` or ``"daclip"``; None: the option file's (DA-CLIP's if its setting
            has DA-CLIP's arguments). Given, it must agree with the option file.
        round_time: Round the sampler's times to integer training indices (the training
            inputs); by default they are passed unrounded, as the official MR Sampler code does.
        text_context: DA-CLIP's degradation embedding (tensor ``[dim]``, ``.pt`` file, or a
            folder of one file per image); required where the network reads it, refused where
            it does not.
        image_context: DA-CLIP's image embedding (likewise).

    Raises:
        InputError: For an option file that is refused or has no ``sde`` section, an arch
            that disagrees with it, a context missing, not read by the network, or of the
            wrong shape, width or values, or weights that are not a state dict fitting the
            network.
    """
    is_path = isinstance(config, str | os.PathLike)
    options = read_options(config) if is_path else parse_options(config)  # type: ignore[arg-type]
    source = str(config) if is_path else "the options"
    if arch is not None:
        arch = check_arch(arch)
        if arch != options["arch"]:
            raise InputError(
                f"{source} describes a {options['arch']!r} network ({options['setting']}), not "
                f"{arch!r}"
            )
    if options.get("sde") is None:
        raise InputError(
            f"{source} has no sde section (max_sigma, T, schedule, eps): the schedule the "
            "network was trained on must be known"
        )
    schedule = irsde_schedule(options)
    given = {
        name: value
        for name, value in zip(CONTEXTS, (text_context, image_context), strict=True)
        if value is not None
    }
    width = _check_context_use(options, source, list(given))
    folders = {
        name: Path(value)
        for name, value in given.items()
        if not isinstance(value, torch.Tensor) and Path(value).is_dir()
    }
    contexts = {
        name: (
            check_context(value, CONTEXT_WORDS[name], width, one_row=True)
            if isinstance(value, torch.Tensor)
            else load_context(value, name, width, one_row=True)
        )
        for name, value in given.items()
        if name not in folders
    }
    loaded = read_irsde_checkpoint(checkpoint, options)
    model = IRSDEAdapter(loaded.network, "noise", round_time=round_time, **contexts)
    return CheckpointNetwork(
        Path(checkpoint).name,
        options["arch"],
        model,
        schedule,
        loaded.sha256,
        "noise",
        folders,
        width,
    )


def _check_context_use(options: Mapping[str, Any], source: str, given: list[str]) -> int | None:
    """The contexts' width; refuses a context the network does not read, or one it reads that
    is not given."""
    arch, setting = options["arch"], options["setting"]
    used = used_contexts(arch, setting)
    unread = [name for name in given if name not in used]
    if unread:
        words = " and ".join(_described(name) for name in unread)
        if arch != "daclip":
            raise InputError(
                f"{words} given, but only DA-CLIP networks take contexts, and {source} "
                "describes an IR-SDE network"
            )
        switches = ", ".join(f"{CONTEXT_SWITCHES[name]}" for name in unread)
        raise InputError(
            f"{words} given, but the DA-CLIP network of {source} does not read it "
            f"(network_G.setting: {switches} false, or context_dim ≤ 0): leave it out"
        )
    needed = [name for name in used if name not in given]
    if needed:
        width = context_width(arch, setting)
        words = " and ".join(_described(name) for name in needed)
        switches = ", ".join(CONTEXT_SWITCHES[name] for name in needed)
        raise InputError(
            f"the DA-CLIP network of {source} reads {words} (network_G.setting: {switches}), "
            f"and none was given: compute it with DA-CLIP's encoder and save it with "
            f"torch.save(tensor [{width}], PATH), or one per image in a folder",
            advice=Advice(needed[0], "FILE", "(a .pt file or a folder of them)"),
        )
    return context_width(arch, setting)


def _described(name: str) -> str:
    """``the text context (DA-CLIP's degradation embedding)``."""
    return f"{CONTEXT_WORDS[name]} ({CONTEXT_MEANINGS[name]})"


def _relative(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside its folder."""
    path = PurePosixPath(str(name).replace(os.sep, "/"))
    if not str(name) or path.is_absolute() or ".." in path.parts:
        raise InputError(
            f"image name {name!r} must be a path relative to the input folder (not absolute, "
            "no '..')"
        )
    return path


def _shown(paths: Sequence[Path]) -> str:
    return ", ".join(map(str, paths[:_SHOWN])) + (" …" if len(paths) > _SHOWN else "")
