"""Rewrite grid files in the current format (version 2), times and λ bit for bit unchanged.

    python benchmarks/upgrade_grid_files.py FILE [FILE ...]

Each file is read (a version-1 file is upgraded on reading, see
``mrs_numerics.models.tuned_grids``), written back in place, and read again to check that
every entry's times and λ are the same floats. Used once for the shipped
``mrs_numerics/models/weights/*.grids.json``.
"""

from __future__ import annotations

import sys

import torch

from mrs_numerics.models.tuned_grids import read_grid_file, write_grid_file


def upgrade(path: str) -> int:
    """Rewrite ``path``; returns the number of entries."""
    before = read_grid_file(path)
    write_grid_file(path, before, overwrite=True)
    after = read_grid_file(path)
    for old, new in zip(before, after, strict=True):
        assert torch.equal(old.timesteps, new.timesteps) and torch.equal(old.lams, new.lams)
    return len(after)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        sys.stdout.write(f"{name}: {upgrade(name)} entries in version 2\n")
