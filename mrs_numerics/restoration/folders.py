"""Restoring many files: a seed per image from its name, batches of equal size, failures isolated.

An output depends on the image, its name, the seed and the sampler, never on which other files
are restored with it:

- **Seeds.** Image ``name`` (its path relative to the input folder, with ``/``) draws all of its
  noise from its own generator, seeded with
  [`image_seed`][mrs_numerics.restoration.folders.image_seed]\\(seed, name), a hash; not with
  seed + its index, which would change when a file is added.
- **Batches.** Images of one size are restored ``batch_size`` at a time, each row with its own
  generator. Batching changes only how the network's arithmetic is grouped: with
  ``batch_size=1`` the result is bit-identical whatever else is in the folder, and otherwise
  equal to it within float32 round-off.
- **Failures.** A batch whose run fails (NaN/Inf from the network, a diverged sampler) is rerun
  one image at a time, so that the failure is reported for the image that caused it and the
  others are written; a diverged image returned under ``allow_divergence`` is found the same way.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mrs_numerics._checks import integer
from mrs_numerics.imaging.files import read_image, write_image

SEED_BITS = 63
"""Image seeds are integers in [0, 2⁶³): torch generators take any 64-bit seed."""

BatchRun = Callable[[torch.Tensor, list["ImageJob"]], tuple[torch.Tensor, int]]
"""``run(images [B, 3, H, W], jobs) -> (restored [B, 3, H, W], tiles per image)``: image i is
``jobs[i]``, whose ``seed`` seeds its generator (and whose ``name`` may pick per-image inputs
such as DA-CLIP's contexts)."""


def image_seed(seed: int, name: str) -> int:
    """The seed of image ``name`` in a run seeded with ``seed``.

    The first 8 bytes of SHA-256 of ``"{seed}/{name}"`` (UTF-8), big-endian, top bit cleared:
    fixed by the two alone, the same on every machine and Python version (``hash()`` is salted
    per process, so it is not used).

    Args:
        seed: The run's seed (``--seed``).
        name: The image's path relative to the input folder, ``/``-separated (for a single
            file: its file name).
    """
    text = f"{integer(seed, 'the seed')}/{name}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> (64 - SEED_BITS)


@dataclass(frozen=True)
class ImageJob:
    """One file to restore.

    Attributes:
        source: The degraded image.
        target: Where its restoration is written.
        name: ``source`` relative to the input folder, ``/``-separated.
        seed: Its generator's seed, [`image_seed`][mrs_numerics.restoration.folders.image_seed].
    """

    source: Path
    target: Path
    name: str
    seed: int


def image_jobs(pairs: Sequence[tuple[Path, Path]], root: Path, seed: int) -> list[ImageJob]:
    """The jobs of (source, target) ``pairs``, sorted by name, their seeds from ``seed``.

    Args:
        pairs: (input, output) paths (see
            [`image_pairs`][mrs_numerics.restoration.paths.image_pairs]).
        root: The input folder the names are relative to; for a single input file, that file
            (its name is then the file name).
        seed: The run's seed.
    """
    jobs = []
    for source, target in pairs:
        name = source.name if root.is_file() else source.relative_to(root).as_posix()
        jobs.append(ImageJob(source, target, name, image_seed(seed, name)))
    return sorted(jobs, key=lambda job: job.name)


@dataclass
class Outcome:
    """What became of one job.

    Attributes:
        job: The job.
        tiles: The tiles it was restored in (1: untiled).
        failure: Why it failed (empty: written).
        warning: A warning about the written image (a divergence allowed), or empty.
    """

    job: ImageJob
    tiles: int = 1
    failure: str = ""
    warning: str = ""


def restore_jobs(
    jobs: Iterable[ImageJob], run: BatchRun, batch_size: int = 1, progress: bool = False
) -> Iterator[Outcome]:
    """Restore and write every job, ``batch_size`` images of one size at a time.

    Images are read in order; each joins the pending batch of its size, which runs when full
    (the rest run at the end). A failed run of several images is rerun one image at a time.

    Args:
        jobs: The files to restore.
        run: Restores a batch of jobs, each image with its own seed (a
            [`BatchRun`][mrs_numerics.restoration.folders.BatchRun]); it raises
            ``FloatingPointError`` (the engine's ``NonFiniteError``, ``DivergenceError``) for a
            failed run and warns (``RuntimeWarning``) for a divergence it was allowed to return.
        batch_size: The most images per run.
        progress: Show a tqdm bar over the images.

    Yields:
        One [`Outcome`][mrs_numerics.restoration.folders.Outcome] per job, once its image is
        written or has failed.
    """
    batch_size = integer(batch_size, "the batch size", least=1)
    jobs = list(jobs)
    pending: dict[tuple[int, ...], list[tuple[ImageJob, torch.Tensor]]] = {}
    with tqdm(total=len(jobs), desc="images", unit="image", disable=not progress) as bar:
        for job in jobs:
            image = read_image(job.source)
            group = pending.setdefault(tuple(image.shape), [])
            group.append((job, image))
            if len(group) == batch_size:
                yield from _counted(_run_batch(run, pending.pop(tuple(image.shape))), bar)
        for group in pending.values():
            yield from _counted(_run_batch(run, group), bar)


def _counted(outcomes: Iterator[Outcome], bar) -> Iterator[Outcome]:
    for outcome in outcomes:
        bar.update()
        yield outcome


def _run_batch(run: BatchRun, group: list[tuple[ImageJob, torch.Tensor]]) -> Iterator[Outcome]:
    """Restore ``group`` in one run, or one image at a time where that run fails or diverges."""
    jobs = [job for job, _ in group]
    try:
        restored, tiles, warning = _attempt(run, torch.stack([image for _, image in group]), jobs)
        failure = None
    except FloatingPointError as error:
        failure = error
    if len(group) > 1 and (failure is not None or warning):
        for item in group:
            yield from _run_batch(run, [item])
        return
    if failure is not None:
        yield Outcome(jobs[0], failure=str(failure))
        return
    for job, image in zip(jobs, restored, strict=True):
        write_image(job.target, image)
        yield Outcome(job, tiles, warning=warning)


def _attempt(run: BatchRun, images: torch.Tensor, jobs: list[ImageJob]):
    """(restored, tiles, divergence warning text) of one run; other warnings pass through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored, tiles = run(images, jobs)
    diverged = ""
    for warning in caught:
        if issubclass(warning.category, RuntimeWarning) and "diverged" in str(warning.message):
            diverged = str(warning.message)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return restored, tiles, diverged
