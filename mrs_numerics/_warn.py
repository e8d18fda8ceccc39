"""Warnings that point at the user's line, however deep in the package they are raised.

``warnings.warn(..., stacklevel=k)`` needs the depth of the call chain, which differs between
``sampler.sample(...)`` (through ``prepare`` and the plan cache) and ``sampler.plan(...)``. This
helper walks the stack to the first frame outside the ``mrs_numerics`` package and attributes
the warning there, so ``python -W error`` and warning filters by module see the user's code.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

PACKAGE_DIRECTORY = str(Path(__file__).resolve().parent)
"""Frames whose file lies under this directory are the package's own."""


def user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside the package, seen from the caller."""
    frame = sys._getframe(1)  # the caller of user_stacklevel
    level = 1
    while frame is not None and _inside(frame.f_code):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the user's line."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


TORCH_MODULE_CALL = str(Path("torch", "nn", "modules", "module.py"))
"""torch's ``nn.Module.__call__`` machinery, between the package's code and a module it wraps."""


def _inside(code) -> bool:
    """A frame of the package, of a dataclass ``__init__`` it generated, or of ``nn.Module``'s
    call machinery (which runs between the package's own frames when it calls a module)."""
    filename = code.co_filename
    if filename == "<string>" and code.co_name == "__init__":
        return True
    if filename.endswith(TORCH_MODULE_CALL):
        return True
    try:
        return str(Path(filename).resolve()).startswith(PACKAGE_DIRECTORY)
    except (OSError, ValueError):
        return False
