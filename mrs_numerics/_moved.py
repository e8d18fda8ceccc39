"""Import paths of version 0.1 that moved in 0.2: each still works, with a DeprecationWarning.

[`MOVED`][mrs_numerics._moved.MOVED] maps every old module path to the modules that now hold its
names. Importing an old path gives a module whose attributes are looked up in the new modules (in
order); every attribute read warns, naming the new path, at the line that reads it (Python's warning
filters show it once per line by default). These paths will be removed in a later release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED: dict[str, tuple[str, ...]] = {
    "mrs_numerics.samplers": ("mrs_numerics.solvers.mr_sampler", "mrs_numerics.solvers.base"),
    "mrs_numerics.stepping": (
        "mrs_numerics.solvers.engine",
        "mrs_numerics.solvers.options",
        "mrs_numerics.solvers.randomness",
    ),
    "mrs_numerics.kernels": ("mrs_numerics.solvers.kernels",),
    "mrs_numerics.baselines": ("mrs_numerics.solvers.baselines",),
    "mrs_numerics.parameterization": ("mrs_numerics.solvers.parameterization",),
    "mrs_numerics.noise": ("mrs_numerics.solvers.brownian",),
    "mrs_numerics.adapters": ("mrs_numerics.solvers.adapters",),
    "mrs_numerics.presets": ("mrs_numerics.solvers.presets",),
    "mrs_numerics.grids": ("mrs_numerics.schedules.grids",),
    "mrs_numerics.user_schedules": ("mrs_numerics.schedules.user",),
    "mrs_numerics.oracles": ("mrs_numerics.verification.oracles",),
    "mrs_numerics.references": ("mrs_numerics.verification.references",),
    "mrs_numerics.convergence": ("mrs_numerics.verification.studies",),
    "mrs_numerics.real_network": ("mrs_numerics.verification.real_network",),
    "mrs_numerics.verify": ("mrs_numerics.verification.driver",),
    "mrs_numerics.report": ("mrs_numerics.verification.report",),
    "mrs_numerics.images": (
        "mrs_numerics.imaging.photos",
        "mrs_numerics.imaging.files",
        "mrs_numerics.imaging.padding",
        "mrs_numerics.imaging.metrics",
    ),
    "mrs_numerics.degradations": ("mrs_numerics.imaging.degradations",),
    "mrs_numerics.training": ("mrs_numerics.models.training",),
    "mrs_numerics.quality": (
        "mrs_numerics.restoration.quality.options",
        "mrs_numerics.restoration.quality.run",
        "mrs_numerics.restoration.quality.report",
    ),
}
"""Old module path → the new modules that hold its names (looked up in this order)."""


class _MovedModule(types.ModuleType):
    """A stand-in for an old module path: attributes come from the new modules."""

    def __init__(self, name: str, targets: tuple[str, ...]):
        super().__init__(name, f"Moved in version 0.2 to {', '.join(targets)}.")
        self.__targets = targets

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for target in self.__targets:
            module = importlib.import_module(target)
            if hasattr(module, attribute):
                warnings.warn(
                    f"{self.__name__} is deprecated and will be removed: import "
                    f"{attribute} from {target} instead",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, attribute)
        raise AttributeError(
            f"module {self.__name__!r} (moved to {', '.join(self.__targets)}) has no attribute "
            f"{attribute!r}"
        )

    def __dir__(self):
        names = set()
        for target in self.__targets:
            names.update(dir(importlib.import_module(target)))
        return sorted(names)


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _MovedModule(spec.name, MOVED[spec.name])

    def exec_module(self, module):
        return None


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of [`MOVED`][mrs_numerics._moved.MOVED]."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader())


def install() -> None:
    """Make the old paths importable (idempotent)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


def old_attribute(name: str):
    """``mrs_numerics.<name>`` for an old top-level module name (e.g. ``verify``), or None."""
    full = f"mrs_numerics.{name}"
    return importlib.import_module(full) if full in MOVED else None
