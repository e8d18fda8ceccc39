"""A network's identity: its name and the SHA-256 of its weights file, as grid records store it.

``{"name": "denoise-data", "sha256": "…"}``: a shipped network's name and the hash of its
shipped weights file, or a checkpoint's file name and the hash of the file's bytes. ``sha256``
is ``None`` where the weights are unknown (a Python callable given to ``restore``). Two
identities are the same network when both hashes are known and equal, or, lacking a hash, when
the names are equal.
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from mrs_numerics.models.registry import WEIGHTS_PACKAGE, available_model

UNKNOWN_NETWORK: dict[str, Any] = {"name": "", "sha256": None}
"""The identity of a network nothing is known about."""


def file_sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 of the bytes of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def shipped_network_identity(name: str) -> dict[str, Any]:
    """``{"name", "sha256"}`` of the shipped network ``name`` (hash of its weights file)."""
    info = available_model(name)
    with resources.as_file(resources.files(WEIGHTS_PACKAGE) / info.weights) as path:
        return {"name": name, "sha256": file_sha256(path)}


def checkpoint_identity(path: str | os.PathLike, sha256: str | None = None) -> dict[str, Any]:
    """``{"name", "sha256"}`` of a checkpoint file (its file name; its hash, computed unless
    given)."""
    return {"name": Path(path).name, "sha256": sha256 or file_sha256(path)}


def network_identity(name: str = "", sha256: str | None = None) -> dict[str, Any]:
    """The identity of a network: a shipped name (its hash looked up), or ``name``, ``sha256``."""
    if name and sha256 is None:
        try:
            return dict(shipped_network_identity(name))
        except ValueError:
            pass
    return {"name": name, "sha256": sha256}


def same_network(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Whether two identities are the same network; None where one of them is unknown."""
    if not (a.get("name") or a.get("sha256")) or not (b.get("name") or b.get("sha256")):
        return None
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    return a.get("name") == b.get("name")


def describe_network(identity: dict[str, Any]) -> str:
    """``denoise-data (sha256 1a2b3c4d…)`` or ``an unknown network``."""
    name = identity.get("name") or "an unnamed network"
    sha = identity.get("sha256")
    return f"{name} (sha256 {sha[:12]}…)" if sha else name


HEX = frozenset("0123456789abcdef")


def check_network(value: Any, field: str = "network") -> dict[str, Any]:
    """``value`` if it is a network identity, else a ValueError naming the field."""
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be an object (name, sha256), got {value!r}")
    if not isinstance(value.get("name"), str):
        raise ValueError(f"{field}.name must be text, got {value.get('name')!r}")
    sha = value.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= HEX):
        raise ValueError(f"{field}.sha256 must be 64 lowercase hex digits or null, got {sha!r}")
    return value
