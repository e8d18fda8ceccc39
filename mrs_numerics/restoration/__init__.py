"""The application: restore degraded images with a network and a sampler, and benchmark it.

- [`restore`][mrs_numerics.restoration.restore.restore] and
  [`restore_shipped`][mrs_numerics.restoration.restore.restore_shipped]: restore under an NFE
  budget; [`paths`][mrs_numerics.restoration.paths]: input/output pairing of the commands;
- [`quality`][mrs_numerics.restoration.quality]: the ``benchmark quality`` study (quality and
  solver fidelity against NFE).
"""

from __future__ import annotations

from mrs_numerics.restoration.restore import (
    MAX_NFE,
    minimum_nfe,
    nfe_for_steps,
    resolve_device,
    restore,
    restore_shipped,
    steps_for_nfe,
)

__all__ = [
    "MAX_NFE",
    "minimum_nfe",
    "nfe_for_steps",
    "resolve_device",
    "restore",
    "restore_shipped",
    "steps_for_nfe",
]
