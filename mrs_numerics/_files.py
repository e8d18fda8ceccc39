"""Writing files safely: every file the package writes is written whole or not at all, and an
existing file is replaced only when the caller says so.

The rule, enforced here for every writer (images, grid files, reports, user schedules, exported
weights, manifests):

- **Atomic.** The content goes to a hidden temporary name in the target's own folder (same file
  system, same suffix, so writers that choose a format by suffix still work) and is renamed onto
  the target only once it is complete. A run killed mid-write (Ctrl-C, a signal, a full disk)
  leaves no partial file under the final name; the temporary file is removed on any exception.
- **No silent replacement.** Without ``overwrite=True`` an existing target is refused with
  ``OutputExistsError``, both before the work (call
  ``check_output`` first, so that a long computation is not
  lost to a bad path) and again at the rename, which uses a hard link where the file system
  has them so that a file created in between is not replaced either.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from mrs_numerics._errors import Advice, InputError

TEMPORARY_MARK = ".tmp-"
"""Part of every temporary file's name: ``.<name>.tmp-<token><suffix>`` beside the target."""


class OutputExistsError(InputError, FileExistsError):
    """An output file exists and replacing it was not asked for."""


def _exists_error(path: Path, what: str) -> OutputExistsError:
    return OutputExistsError(
        f"{what} {path} exists and would be replaced",
        advice=Advice("overwrite", True, "to replace it"),
    )


def check_output(path: str | os.PathLike, *, overwrite: bool = False, what: str = "output") -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    Args:
        path: The file to be written.
        overwrite: Whether an existing file may be replaced.
        what: How messages name the file (e.g. ``"grid file"``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
        InputError: If ``path`` is a folder, or its parent folder does not exist or is not a
            folder.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        why = "is not a folder" if parent.exists() else "does not exist"
        raise InputError(f"the folder of {what} {path} ({parent}) {why}; create it first")
    if path.exists() and not overwrite:
        raise _exists_error(path, what)
    return path


def check_output_folder(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Refuse, before any work, a folder output that exists as something else; returns it.

    The folder need not exist (it is created when written to).

    Raises:
        InputError: If ``path`` exists and is not a folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} exists and is not a folder; give a folder")
    return path


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, overwrite: bool = False, what: str = "output"
) -> Iterator[Path]:
    """A temporary path to write; renamed onto ``path`` when the body completes.

    The body writes the temporary file (by any means: ``PIL.Image.save``, ``torch.save``, …).
    On success it becomes ``path``; on any exception (``KeyboardInterrupt`` included) it is
    removed and ``path`` is untouched.

    Raises:
        OutputExistsError: If ``path`` exists (before the body runs, or by the time of the
            rename) and ``overwrite`` is false.
    """
    target = check_output(path, overwrite=overwrite, what=what)
    temporary = target.with_name(
        f".{target.stem}{TEMPORARY_MARK}{secrets.token_hex(4)}{target.suffix}"
    )
    try:
        yield temporary
        if not temporary.exists():
            raise RuntimeError(f"nothing was written for {what} {target}")
        _publish(temporary, target, overwrite, what)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _publish(temporary: Path, target: Path, overwrite: bool, what: str) -> None:
    """Rename ``temporary`` onto ``target``; without ``overwrite`` never over an existing file."""
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if target exists: no window for a race
    except FileExistsError:
        raise _exists_error(target, what) from None
    except OSError:  # no hard links on this file system
        if target.exists():
            raise _exists_error(target, what) from None
        os.replace(temporary, target)


def write_bytes(
    path: str | os.PathLike, data: bytes, *, overwrite: bool = False, what: str = "output"
) -> Path:
    """Write ``data`` to ``path`` atomically (see the module description); returns the path."""
    with atomic_path(path, overwrite=overwrite, what=what) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(
    path: str | os.PathLike, text: str, *, overwrite: bool = False, what: str = "output"
) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite, what=what)
