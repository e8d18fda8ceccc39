"""The identity a grid record gives its network: a name and the SHA-256 of its weights' bytes."""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

from mrs_numerics.models.registry import WEIGHTS_PACKAGE, available_model

CHUNK = 1 << 20
"""Bytes read at a time while hashing."""


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of the bytes of the file at ``path``, as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_identity(path: str | os.PathLike) -> dict[str, str]:
    """``{"name", "sha256"}`` of a checkpoint file: its file name and its bytes' hash."""
    return {"name": Path(path).name, "sha256": file_sha256(path)}


def shipped_identity(model: str) -> dict[str, str]:
    """``{"name", "sha256"}`` of the shipped network ``model``: its name and its weights' hash."""
    info = available_model(model)
    with resources.as_file(resources.files(WEIGHTS_PACKAGE) / info.weights) as path:
        return {"name": model, "sha256": file_sha256(path)}
