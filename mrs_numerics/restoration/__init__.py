"""The application: restore degraded images with a network and a sampler, and benchmark it.

- [`restore`][mrs_numerics.restoration.restore.restore] and
  [`restore_shipped`][mrs_numerics.restoration.restore.restore_shipped]: restore under an NFE
  budget; [`paths`][mrs_numerics.restoration.paths]: input/output pairing of the commands;
- [`tiling`][mrs_numerics.restoration.tiling]: large images in overlapping tiles under a
  memory budget (layout, blending window, noise cropping, the memory estimate);
- [`checkpoint`][mrs_numerics.restoration.checkpoint]: a user's IR-SDE/DA-CLIP checkpoint and
  the schedule it was trained on;
- [`folders`][mrs_numerics.restoration.folders]: many files, a seed per image name, batches of
  one size, failures isolated, outputs checked before the run;
  [`manifest`][mrs_numerics.restoration.manifest]: the record a folder restore leaves beside
  its outputs, which a resume reads; [`processes`][mrs_numerics.restoration.processes]: the work
  dealt to the processes of a ``torchrun`` job, results gathered once;
- [`quality`][mrs_numerics.restoration.quality]: the ``benchmark quality`` study (quality and
  solver fidelity against NFE).
"""

from __future__ import annotations

from mrs_numerics.restoration.restore import (
    MAX_NFE,
    check_images,
    minimum_nfe,
    nfe_for_steps,
    plan_tiles,
    resolve_device,
    restore,
    restore_shipped,
    steps_for_nfe,
)
from mrs_numerics.restoration.tiling import parse_memory

__all__ = [
    "MAX_NFE",
    "check_images",
    "minimum_nfe",
    "nfe_for_steps",
    "parse_memory",
    "plan_tiles",
    "resolve_device",
    "restore",
    "restore_shipped",
    "steps_for_nfe",
]
