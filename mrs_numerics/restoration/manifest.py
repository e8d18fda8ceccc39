"""The record a folder restore leaves beside its outputs: ``OUT/mrs-numerics-manifest.json``.

A manifest holds the run's **settings** (sampler with options, grid with its times and the
grid record of a tuned grid, network identity with the SHA-256 of its weights, NFE and steps,
tiling, seed), the **run** (package version, command line, start time, device, batch size,
processes) and one **entry** per image: its input, output, seed, status and, once written, the
output's SHA-256. Statuses: ``pending`` (not finished yet: an interrupted run leaves these),
``written``, ``skipped`` (with the reason) and ``failed`` (with the reason). It is rewritten
atomically after every image, so that a run stopped at any point leaves a true manifest.

**What a resume reads** ([`plan_outputs`][mrs_numerics.restoration.folders.plan_outputs]).
An existing output counts as done by a run with these settings only when the manifest's
settings equal this run's and its entry holds the SHA-256 of the file as it is now. A
manifest written with other settings makes the run refuse, naming what differs (``--overwrite``
replaces the outputs; or choose another OUT), because a folder mixing two settings under one
record would be a silent wrong answer. An output the manifest does not vouch for (no manifest,
no entry, a pending or failed entry, a file changed since) is kept by ``--skip-existing`` and
reported as of unknown settings, in the summary and in its entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import mrs_numerics
from mrs_numerics._errors import Advice, InputError
from mrs_numerics._files import write_text
from mrs_numerics.models.registry import WEIGHTS_PACKAGE, available_models
from mrs_numerics.models.tuned_grids import shipped_grid

MANIFEST_NAME = "mrs-numerics-manifest.json"
"""The manifest's file name inside a folder restore's OUT."""
MANIFEST_FORMAT = "mrs-numerics-restore-manifest"
MANIFEST_VERSION = 1

STATUSES = ("pending", "written", "skipped", "failed")
"""An entry's status."""


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plain(value: Any) -> Any:
    """``value`` as JSON data: dataclasses as dicts, tuples as lists, tensors as lists, other
    objects by their ``repr`` (so that two settings compare as their JSON would)."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """The settings that differ, as ``"key: recorded → current"`` (nested keys with dots)."""
    found = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            found += differences(old, new, f"{name}.")
        elif old != new:
            found.append(f"{name}: {_short(old)} → {_short(new)}")
    return found


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "…"


@dataclass
class Manifest:
    """A folder run's manifest (see the module description).

    Attributes:
        path: Where it is written.
        settings: What determines the outputs (compared by a resume).
        run: How this run was made (not compared).
        entries: ``{output path relative to OUT: entry}``, entry keys ``input``, ``output``,
            ``seed``, ``status``, ``reason``, ``sha256``, ``tiles``, ``warning``.
    """

    path: Path
    settings: dict
    run: dict = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Manifest | None:
        """The manifest at ``path``; None where there is none.

        Raises:
            InputError: If the file is not a manifest of this format (the message names it;
                ``overwrite=True`` replaces it with this run's).
        """
        path = Path(path)
        if not path.exists():
            return None
        advice = Advice("overwrite", True, "to replace it and the outputs it records")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"manifest {path} cannot be read: {error}", advice=advice) from None
        if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
            raise InputError(f"{path} is not an mrs-numerics restore manifest", advice=advice)
        if document.get("format_version") != MANIFEST_VERSION:
            raise InputError(
                f"manifest {path} has format_version {document.get('format_version')!r}; this"
                f" version of the package reads {MANIFEST_VERSION}",
                advice=advice,
            )
        images = document.get("images")
        if not isinstance(document.get("settings"), dict) or not isinstance(images, list):
            raise InputError(f"manifest {path} lacks its settings or images", advice=advice)
        entries = {
            entry["output"]: entry
            for entry in images
            if isinstance(entry, dict) and isinstance(entry.get("output"), str)
        }
        return cls(path, document["settings"], document.get("run", {}), entries)

    @classmethod
    def for_run(
        cls, path: str | os.PathLike, settings: dict, run: dict, previous: Manifest | None
    ) -> Manifest:
        """This run's manifest: ``previous``'s entries carried over when its settings equal
        ``settings`` (a resume, or more images into the same folder), else none."""
        carried = {} if previous is None or previous.settings != settings else previous.entries
        return cls(Path(path), settings, run, dict(carried))

    def vouches_for(self, output: str, target: Path) -> bool:
        """Whether the entry of ``output`` records ``target``'s present bytes as written."""
        entry = self.entries.get(output)
        if entry is None or entry.get("status") not in ("written", "skipped"):
            return False
        recorded = entry.get("sha256")
        return bool(recorded) and target.is_file() and file_sha256(target) == recorded

    def set(self, output: str, **values: Any) -> None:
        """Update (or create) the entry of ``output`` and write the manifest."""
        self.entries.setdefault(output, {"output": output}).update(values)
        self.write()

    def write(self) -> None:
        """Write the whole manifest atomically (it is this run's own file: replaced)."""
        document = {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "settings": self.settings,
            "run": self.run,
            "images": [self.entries[key] for key in sorted(self.entries)],
        }
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        write_text(self.path, text, overwrite=True, what="manifest")


def run_record(command: str, device: str, batch_size: int, world: int = 1) -> dict:
    """The manifest's ``run``: package version, command line, start time (UTC), device, batch
    size and processes."""
    return {
        "package_version": mrs_numerics.__version__,
        "command": command,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "batch_size": batch_size,
        "processes": world,
    }


def run_settings(
    chosen,
    network: dict,
    tiling: dict,
    seed: int,
    grid_record: dict | None = None,
) -> dict:
    """The manifest's ``settings``: everything an output depends on besides its image.

    Args:
        chosen: The run's [`Sampling`][mrs_numerics.restoration.restore.Sampling].
        network: Its identity: ``name``, ``label``, ``prediction`` and ``sha256`` (of the
            weights file, where there is one; see
            [`network_identity`][mrs_numerics.restoration.manifest.network_identity]).
        tiling: ``tile``, ``overlap``, ``max_memory`` as the run uses them.
        seed: The run's seed (image seeds derive from it and the image's name).
        grid_record: The tuned grid's record (``TunedGrid.to_dict()``), when one is used.
    """
    sampler = chosen.sampler
    times = None if chosen.timesteps is None else [float(t) for t in chosen.timesteps]
    own = {
        key: value
        for key, value in sorted(vars(sampler).items())
        if not key.startswith("_") and key not in ("schedule", "options")
    }
    return plain(
        {
            "sampler": {
                "name": chosen.name,
                "solver_id": getattr(sampler, "solver_id", ""),
                "options": getattr(sampler, "options", None),
                "settings": own,
            },
            "schedule": repr(sampler.schedule),
            "grid": {"kind": chosen.grid, "timesteps": times, "record": grid_record},
            "nfe": chosen.nfe,
            "steps": chosen.steps,
            "network": network,
            "tiling": tiling,
            "seed": seed,
        }
    )


def network_identity(
    name: str, label: str, prediction: str, weights: str | os.PathLike | None
) -> dict:
    """A network's identity for a manifest; ``sha256`` of ``weights`` where the file exists."""
    digest = file_sha256(weights) if weights is not None and Path(weights).is_file() else None
    return {"name": name, "label": label, "prediction": prediction, "sha256": digest}


def shipped_weights(name: str) -> Path | None:
    """The weights file of shipped network ``name``, where it is a file on disk (else None)."""
    info = available_models().get(name)
    if info is None:
        return None
    candidate = Path(str(resources.files(WEIGHTS_PACKAGE) / info.weights))
    return candidate if candidate.is_file() else None


def tuned_grid_record(chosen, model_name: str, nfe: int) -> dict | None:
    """The record of the shipped tuned grid ``chosen`` runs on (None for a spacing)."""
    if chosen.grid != "tuned" or not model_name:
        return None
    grid = shipped_grid(model_name, chosen.name, nfe)
    return None if grid is None else plain(grid.to_dict())
