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
  An image that cannot be decoded or written fails alone too.
- **Outputs** ([`plan_outputs`][mrs_numerics.restoration.folders.plan_outputs]). Every output
  of the run is checked before the first network call: an existing one is refused unless
  ``overwrite`` (replace) or ``skip_existing`` (keep it: a resume), and every input's header is
  read ([`check_inputs`][mrs_numerics.restoration.folders.check_inputs]). Images are written
  atomically (a killed run leaves no partial file under an output's name).
- **Record and interruption** ([`FolderRun`][mrs_numerics.restoration.folders.FolderRun]).
  A folder run keeps its manifest ([`manifest`][mrs_numerics.restoration.manifest]) true after
  every image, and Ctrl-C or SIGTERM ends it with one line saying what was written and what
  was not (``mrs_numerics._interrupts.Interrupted``).
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
from mrs_numerics._errors import Advice, InputError
from mrs_numerics._interrupts import as_interrupted, deferred
from mrs_numerics.imaging.files import check_image_file, read_image, write_image
from mrs_numerics.restoration.manifest import Manifest, differences, file_sha256
from mrs_numerics.restoration.paths import shown
from mrs_numerics.solvers.engine import DivergenceWarning

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
        failure: Why it failed (empty: written), with Python advice where it has any.
        warning: A warning about the written image (a divergence allowed), or empty.
        error: The exception it failed with, if any (its advice, for the command line's).
    """

    job: ImageJob
    tiles: int = 1
    failure: str = ""
    warning: str = ""
    error: BaseException | None = None


def restore_jobs(
    jobs: Iterable[ImageJob],
    run: BatchRun,
    batch_size: int = 1,
    progress: bool = False,
    overwrite: bool = False,
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
        overwrite: Replace an output that exists when its image is written (without it, an
            output that appeared since the run was planned fails its image).

    Yields:
        One [`Outcome`][mrs_numerics.restoration.folders.Outcome] per job, once its image is
        written or has failed.
    """
    batch_size = integer(batch_size, "the batch size", least=1)
    jobs = list(jobs)
    pending: dict[tuple[int, ...], list[tuple[ImageJob, torch.Tensor]]] = {}
    with tqdm(total=len(jobs), desc="images", unit="image", disable=not progress) as bar:
        for job in jobs:
            try:
                image = read_image(job.source)
            except ValueError as error:
                yield from _counted(iter([Outcome(job, failure=str(error))]), bar)
                continue
            group = pending.setdefault(tuple(image.shape), [])
            group.append((job, image))
            if len(group) == batch_size:
                batch = pending.pop(tuple(image.shape))
                yield from _counted(_run_batch(run, batch, overwrite), bar)
        for group in pending.values():
            yield from _counted(_run_batch(run, group, overwrite), bar)


def _counted(outcomes: Iterator[Outcome], bar) -> Iterator[Outcome]:
    for outcome in outcomes:
        bar.update()
        yield outcome


def _run_batch(
    run: BatchRun, group: list[tuple[ImageJob, torch.Tensor]], overwrite: bool
) -> Iterator[Outcome]:
    """Restore ``group`` in one run, or one image at a time where that run fails or diverges."""
    jobs = [job for job, _ in group]
    try:
        restored, tiles, warning = _attempt(run, torch.stack([image for _, image in group]), jobs)
        failure = None
    except FloatingPointError as error:
        failure = error
    if len(group) > 1 and (failure is not None or warning):
        for item in group:
            yield from _run_batch(run, [item], overwrite)
        return
    if failure is not None:
        yield Outcome(jobs[0], failure=str(failure), error=failure)
        return
    for job, image in zip(jobs, restored, strict=True):
        # a signal between writing the image and the consumer recording it waits for both
        with deferred():
            try:
                write_image(job.target, image, overwrite=overwrite)
            except OSError as error:  # a full disk, a vanished folder, a file created meanwhile
                why = error.message if isinstance(error, InputError) else str(error)
                yield Outcome(job, failure=f"cannot write {job.target}: {why}")
                continue
            yield Outcome(job, tiles, warning=warning)


def _attempt(run: BatchRun, images: torch.Tensor, jobs: list[ImageJob]):
    """(restored, tiles, divergence warning text) of one run; other warnings pass through, also
    when the run fails (a measured instability's warning explains the failure that follows)."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restored, tiles = run(images, jobs)
    finally:
        diverged = _pass_on(caught)
    return restored, tiles, diverged


def _pass_on(caught: list[warnings.WarningMessage]) -> str:
    """Re-issue the caught warnings (each once) but a divergence's; return that one's text."""
    diverged, seen = "", set()
    for warning in caught:
        if issubclass(warning.category, DivergenceWarning):
            diverged = str(warning.message)
        elif (warning.category, str(warning.message)) not in seen:
            seen.add((warning.category, str(warning.message)))
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return diverged


def check_inputs(jobs: Sequence[ImageJob]) -> None:
    """Refuse a run any of whose inputs is not a readable image, before the first network call.

    Each file's header is read (the pixels are decoded only when its turn comes; a file that
    fails then fails its image alone).

    Raises:
        InputError: Listing the unreadable inputs and why.
    """
    bad = []
    for job in jobs:
        try:
            check_image_file(job.source)
        except ValueError as error:
            bad.append(str(error))
    if bad:
        raise InputError(
            f"{len(bad)} input(s) cannot be read: {'; '.join(bad[:3])}"
            + (" …" if len(bad) > 3 else "")
        )


@dataclass
class OutputPlan:
    """What a folder run will do with each output.

    Attributes:
        run: The jobs to restore.
        skipped: ``(job, reason)`` of every output kept as it is (``skip_existing``).
    """

    run: list[ImageJob]
    skipped: list[tuple[ImageJob, str]]


KEPT_MATCHING = "already written with these settings (the manifest records it)"
"""The reason of an output a resume keeps because the manifest vouches for it."""
KEPT_UNKNOWN = "exists, with settings the manifest does not record"
"""The reason of an output a resume keeps that the manifest does not vouch for."""


def output_name(job: ImageJob, out: Path | None) -> str:
    """``job``'s output relative to the output folder ``out`` (``/``-separated; the file name
    when ``out`` is None)."""
    if out is None:
        return job.target.name
    return job.target.relative_to(out).as_posix()


def plan_outputs(
    jobs: Sequence[ImageJob],
    out: Path | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    manifest: Manifest | None = None,
    settings: dict | None = None,
) -> OutputPlan:
    """Decide, before the first network call, what happens to every output of a run.

    The rule (the same for every output of the run, so that a folder whose 3rd output exists
    is refused before the 1st image is restored):

    - an output that does not exist is written;
    - an existing one is refused, unless ``overwrite`` (it is replaced) or ``skip_existing``
      (it is kept; the reason says whether the manifest vouches for it, see
      [`manifest`][mrs_numerics.restoration.manifest]);
    - an output that is a folder is refused;
    - a manifest of other ``settings`` in ``out`` is refused unless ``overwrite``.

    Args:
        jobs: The run's jobs.
        out: The output folder (None for a single-file run).
        overwrite: Replace existing outputs.
        skip_existing: Keep existing outputs and restore the others (a resume).
        manifest: The manifest ``out`` already holds, if any.
        settings: This run's settings, compared with ``manifest``'s.

    Raises:
        InputError: As above, naming the outputs and the flag that would allow the run.
    """
    if overwrite and skip_existing:
        raise InputError(
            "overwrite and skip_existing contradict each other: replace existing outputs, or"
            " keep them; give one"
        )
    folders = [job.target for job in jobs if job.target.is_dir()]
    if folders:
        raise InputError(f"{len(folders)} output(s) are folders, not files: {shown(folders)}")
    if manifest is not None and settings is not None and not overwrite:
        changed = differences(manifest.settings, settings)
        if changed:
            raise InputError(
                f"{manifest.path} records outputs made with other settings ({shown(changed)});"
                " a folder holds the outputs of one setting",
                advice=Advice("overwrite", True, "to replace them with this run's"),
            )
    existing = [job for job in jobs if job.target.exists()]
    if not existing or overwrite:
        return OutputPlan(list(jobs), [])
    if not skip_existing:
        which = (
            f"output {existing[0].target} exists"
            if len(jobs) == 1
            else f"{len(existing)} of {len(jobs)} outputs exist"
            f" ({shown([job.target for job in existing])})"
        )
        raise InputError(
            f"{which} and would be replaced",
            advice=Advice("skip_existing", True, "to keep them and restore the rest (a resume)"),
            alternatives=(Advice("overwrite", True, "to replace them"),),
        )
    kept = {job.target for job in existing}
    skipped = []
    for job in existing:
        vouched = manifest is not None and manifest.vouches_for(output_name(job, out), job.target)
        skipped.append((job, KEPT_MATCHING if vouched else KEPT_UNKNOWN))
    return OutputPlan([job for job in jobs if job.target not in kept], skipped)


class FolderRun:
    """The bookkeeping of one run over many images: counts, the manifest, the interruption line.

    Use as a context manager around the loop over
    [`restore_jobs`][mrs_numerics.restoration.folders.restore_jobs], calling
    [`record`][mrs_numerics.restoration.folders.FolderRun.record] with each outcome. On entry
    the manifest (if any) gets an entry per image (``pending``, or ``skipped`` with its
    reason); each outcome updates it. Ctrl-C or SIGTERM anywhere in the body leaves as
    ``mrs_numerics._interrupts.Interrupted`` whose message says what was written
    and what was not, advising ``skip_existing`` to resume.

    Args:
        plan: The run's [`OutputPlan`][mrs_numerics.restoration.folders.OutputPlan].
        out: The output folder (None for a single-file run).
        manifest: The manifest to keep (None: none is written).
        verb: What the run does to an image, for its lines (``"restored"``).
    """

    def __init__(
        self,
        plan: OutputPlan,
        out: Path | None = None,
        manifest: Manifest | None = None,
        verb: str = "restored",
    ):
        self.plan, self.out, self.manifest, self.verb = plan, out, manifest, verb
        self.written: list[ImageJob] = []
        self.failed: list[ImageJob] = []

    def __enter__(self) -> FolderRun:
        if self.manifest is not None:
            for job, reason in self.plan.skipped:
                entry = self._entry(job, "skipped", reason)
                if reason == KEPT_MATCHING:
                    previous = self.manifest.entries.get(output_name(job, self.out), {})
                    entry["sha256"] = previous.get("sha256")
                    entry["tiles"] = previous.get("tiles")
                self.manifest.entries[entry["output"]] = entry
            for job in self.plan.run:
                self.manifest.entries[output_name(job, self.out)] = self._entry(job, "pending")
            self.manifest.write()
        return self

    def _entry(self, job: ImageJob, status: str, reason: str = "") -> dict:
        return {
            "input": str(job.source),
            "output": output_name(job, self.out),
            "seed": job.seed,
            "status": status,
            "reason": reason,
            "sha256": None,
            "tiles": None,
            "warning": "",
        }

    def record(self, outcome: Outcome) -> None:
        """Count ``outcome`` and bring the manifest up to date."""
        job = outcome.job
        (self.failed if outcome.failure else self.written).append(job)
        if self.manifest is None:
            return
        values: dict[str, object]
        if outcome.failure:
            values = {"status": "failed", "reason": outcome.failure}
        else:
            values = {
                "status": "written",
                "reason": "",
                "sha256": file_sha256(job.target) if job.target.is_file() else None,
                "tiles": outcome.tiles,
                "warning": outcome.warning,
            }
        self.manifest.set(output_name(job, self.out), **values)

    @property
    def unknown(self) -> list[ImageJob]:
        """Outputs kept whose settings the manifest does not vouch for."""
        return [job for job, reason in self.plan.skipped if reason == KEPT_UNKNOWN]

    def skipped_line(self) -> str:
        """What was skipped, for the start of the run ("" when nothing was)."""
        skipped = self.plan.skipped
        if not skipped:
            return ""
        line = (
            f"skipped {len(skipped)} existing output(s) ({shown([j.target for j, _ in skipped])})"
        )
        unknown = self.unknown
        if unknown:
            line += (
                f"; {len(unknown)} of them not recorded with these settings by a manifest"
                f" ({shown([job.target for job in unknown])}): kept as they are"
            )
        return line

    def interrupted_line(self) -> str:
        """What was written and what was not, when the run stops early."""
        done = {job.target for job in (*self.written, *self.failed)}
        missing = [job.target for job in self.plan.run if job.target not in done]
        parts = [
            f"{self.verb} {len(self.written)} of {len(self.plan.run)} image(s)"
            + (f" ({shown([job.target for job in self.written])})" if self.written else ""),
            f"not written: {len(missing)}" + (f" ({shown(missing)})" if missing else ""),
        ]
        if self.failed:
            parts.append(f"failed: {len(self.failed)}")
        if self.plan.skipped:
            parts.append(f"skipped: {len(self.plan.skipped)}")
        if self.manifest is not None:
            parts.append(f"the manifest {self.manifest.path} records each")
        return "; ".join(parts)

    def __exit__(self, kind, error, traceback) -> None:
        if isinstance(error, KeyboardInterrupt):
            stopped = as_interrupted(error)
            done = self.written or self.plan.skipped
            resume = Advice("skip_existing", True, "to resume") if done else None
            raise stopped.with_message(self.interrupted_line(), resume) from None
