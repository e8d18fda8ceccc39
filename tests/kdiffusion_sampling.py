"""The real ``k_diffusion.sampling`` (k-diffusion 0.1.1.post1), loaded alone for the tests.

k-diffusion is installed by the test set-up (the Makefile's install step) with
``pip install --no-deps k-diffusion==0.1.1.post1``, never as a package extra: its declared
dependencies pull torchvision, which does not import beside this torch, and could replace the
CPU torch. Its package ``__init__`` imports every submodule (and so torchvision), so it is never
imported: ``load`` executes the installed file
``k_diffusion/sampling.py`` by itself, after putting in ``sys.modules`` what that file imports:

- ``scipy.integrate`` (``sample_lms``'s coefficients) and ``tqdm.auto`` (progress bars): the real
  ones, both dependencies of this package;
- ``k_diffusion`` and ``k_diffusion.utils``: an empty package (no ``__init__`` run) and a module
  holding only ``append_dims``, the one ``utils`` function ``sampling.py`` calls (written here:
  it appends trailing singleton dimensions). The real ``utils.py`` imports torchvision.
- ``torchsde`` and ``torchdiffeq``: the real ones when installed; otherwise modules whose
  ``BrownianTree``/``odeint`` raise. ``sampling.py`` uses them only for its default
  Brownian-tree noise sampler and for ``log_likelihood``/``sample_dpm_adaptive``'s ODE solve;
  the tests pass their own ``noise_sampler`` and use neither.

The stand-ins are inserted only for the load and removed afterwards, so no other test sees them.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path

VERSION = "0.1.1.post1"
"""The k-diffusion release the equality tests are written against."""

INSTALL = f"pip install --no-deps k-diffusion=={VERSION}"
"""How the test set-up installs it (the Makefile's install step)."""


def append_dims(x, target_dims):
    """``x`` with trailing singleton dimensions up to ``target_dims`` dimensions."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}")
    return x[(...,) + (None,) * missing]


def _unavailable(module: str, name: str):
    def refuse(*args, **kwargs):
        raise ImportError(
            f"{module}.{name} is not installed here: the k-diffusion tests pass their own "
            "noise_sampler and never solve the ODE with torchdiffeq"
        )

    return refuse


def _real_or_stub(module: str, names: tuple[str, ...]) -> types.ModuleType:
    if importlib.util.find_spec(module) is not None:
        return importlib.import_module(module)
    stub = types.ModuleType(module)
    for name in names:
        setattr(stub, name, _unavailable(module, name))
    return stub


def sampling_path() -> Path:
    """The installed ``k_diffusion/sampling.py``.

    Raises:
        ImportError: k-diffusion is not installed (with the command that installs it).
    """
    spec = importlib.util.find_spec("k_diffusion")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "sampling.py"
        if path.is_file():
            return path
    raise ImportError(f"k-diffusion is not installed: run `make install` or `{INSTALL}`")


@functools.cache
def load() -> types.ModuleType:
    """The module ``k_diffusion.sampling`` of the installed k-diffusion, loaded alone."""
    from importlib.metadata import version

    found = version("k-diffusion")
    if found != VERSION:
        raise ImportError(f"k-diffusion {found} is installed; the tests need {VERSION}: {INSTALL}")
    path = sampling_path()  # found before the stand-in package shadows the real one
    package = types.ModuleType("k_diffusion")
    package.__path__ = []  # a namespace without the real __init__ (which imports torchvision)
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = append_dims  # type: ignore[attr-defined]
    package.utils = utils  # type: ignore[attr-defined]
    stand_ins = {
        "k_diffusion": package,
        "k_diffusion.utils": utils,
        "torchsde": _real_or_stub("torchsde", ("BrownianTree",)),
        "torchdiffeq": _real_or_stub("torchdiffeq", ("odeint",)),
    }
    saved = {name: sys.modules.get(name) for name in [*stand_ins, "k_diffusion.sampling"]}
    sys.modules.update(stand_ins)
    try:
        spec = importlib.util.spec_from_file_location("k_diffusion.sampling", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module
