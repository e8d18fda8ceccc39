"""User-defined MR schedules: where their generated modules live, which exist, how to load one.

``mrs-numerics codegen --theta EXPR --name NAME`` derives a schedule from θ(t) and writes
``<user_schedule_dir()>/torch/NAME.py`` and ``.../numpy/NAME.py``;
[`load_user_schedule`][mrs_numerics.schedules.user.load_user_schedule] imports one of them by file
path. The package's own ``_generated/`` folder is never written to: user schedules live in a
per-user cache folder (or wherever ``MRS_NUMERICS_SCHEDULE_DIR`` says).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from mrs_numerics._errors import Advice, InputError
from mrs_numerics._files import check_output, write_text

SCHEDULE_DIR_VARIABLE = "MRS_NUMERICS_SCHEDULE_DIR"
"""Environment variable that overrides the user schedule folder."""

BACKENDS = ("torch", "numpy")


def user_schedule_dir() -> Path:
    """The user schedule folder.

    ``$MRS_NUMERICS_SCHEDULE_DIR`` if set, else ``$XDG_CACHE_HOME/mrs-numerics/schedules``, else
    ``~/.cache/mrs-numerics/schedules``. The folder need not exist yet.
    """
    override = os.environ.get(SCHEDULE_DIR_VARIABLE)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "mrs-numerics" / "schedules"


def available_user_schedules(backend: str | None = None) -> list[str]:
    """Sorted names of the user schedules generated for ``backend`` (any backend if ``None``)."""
    backends = BACKENDS if backend is None else (_checked_backend(backend),)
    root = user_schedule_dir()
    names: set[str] = set()
    for name in backends:
        folder = root / name
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.py") if p.stem.isidentifier())
    return sorted(names)


def load_user_schedule(name: str, backend: str = "torch") -> ModuleType:
    """Import the generated module of user schedule ``name`` for ``backend`` ("torch"/"numpy").

    The module has the interface of the built-in schedules (``theta``, ``Theta``, ``alpha``,
    ``sigma``, ``lam``, ``g``, ``dlam_dt``, ``Theta_of_lam``, ``t_of_Theta``, ``t_of_lam`` and
    ``T_MIN``, ``T_MAX``, ``DEFAULTS``, ``CLOSED_FORM_*``). It is imported afresh on every call,
    so a regenerated schedule is picked up.
    """
    backend = _checked_backend(backend)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"user schedule name {name!r} must be a Python identifier")
    path = user_schedule_dir() / backend / f"{name}.py"
    if not path.is_file():
        available = available_user_schedules(backend)
        listing = ", ".join(available) if available else "none"
        raise FileNotFoundError(
            f"no user schedule {name!r} for backend {backend!r} in {path.parent} "
            f"(available: {listing}); create it with "
            f"`mrs-numerics codegen --theta EXPR --name {name}`"
            f" or point {SCHEDULE_DIR_VARIABLE} at the folder that holds it"
        )
    spec = importlib.util.spec_from_file_location(f"mrs_numerics_user.{backend}.{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import user schedule from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def user_schedule_paths(root: str | os.PathLike, name: str) -> list[Path]:
    """The files of user schedule ``name`` under ``root``: ``root/<backend>/NAME.py``."""
    return [Path(root) / backend / f"{name}.py" for backend in BACKENDS]


def check_user_schedule_free(root: str | os.PathLike, name: str, overwrite: bool = False) -> None:
    """Refuse, before the derivation runs, to replace user schedule ``name`` under ``root``.

    Raises:
        InputError: If one of its files exists and ``overwrite`` is false (advice:
            ``overwrite=True`` regenerates it), or a path is a folder.
    """
    existing = [path for path in user_schedule_paths(root, name) if path.exists()]
    for path in existing:
        if path.is_dir():
            raise InputError(f"user schedule file {path} is a folder")
    if existing and not overwrite:
        raise InputError(
            f"user schedule {name!r} exists ({', '.join(map(str, existing))}) and would be"
            " replaced",
            advice=Advice("overwrite", True, "to regenerate it"),
        )


def write_user_schedule(
    root: str | os.PathLike, files: Mapping[str, str], overwrite: bool = False
) -> list[Path]:
    """Write a user schedule's ``{relative path: source}`` under ``root``; returns the paths.

    Each file is written atomically (see ``mrs_numerics._files.atomic_path``);
    every target is checked before the first is written, so that a refused schedule leaves
    neither backend half-replaced.

    Raises:
        OutputExistsError: If a file exists and ``overwrite`` is false.
    """
    targets = {relative: Path(root) / relative for relative in sorted(files)}
    for path in targets.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        check_output(path, overwrite=overwrite, what="user schedule file")
    for relative, path in targets.items():
        text = files[relative]
        write_text(path, text if text.endswith("\n") else text + "\n", overwrite=overwrite)
    return list(targets.values())


def _checked_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return backend
