"""Per-sample randomness: one helper for Gaussian draws, and the generator-driven noise source.

A batch can be drawn from one ``torch.Generator`` (one stream for the whole batch) or from a
list of generators, one per sample: then row i comes from generator i alone, so a sample's
numbers do not depend on which other samples share its batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch

from mrs_numerics._warn import warn
from mrs_numerics.solvers.protocols import NoiseSource

Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator, one per sample, or None (torch's global generator)."""


def randn(
    shape: Sequence[int],
    generator: Generators = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normals of ``shape`` = (batch, …), per sample when given a list of generators.

    Args:
        shape: The full shape; its first entry is the batch size.
        generator: One ``torch.Generator`` for the whole tensor, a sequence with one per
            sample (row i is ``torch.randn(shape[1:], generator=generator[i])``), or None.
        dtype: The dtype drawn in.
        device: The device drawn on (generators must live there).

    Raises:
        TypeError: If ``generator`` is not a generator, a sequence of them or None (a seed
            such as ``0`` is refused with how to make a generator of it).
        ValueError: If a sequence of generators does not have one per sample.
    """
    shape = tuple(shape)
    check_generators(generator)
    if isinstance(generator, Sequence):
        if len(generator) != shape[0]:
            raise ValueError(
                f"got {len(generator)} per-sample generators for a batch of {shape[0]}"
            )
        return torch.stack(
            [torch.randn(shape[1:], generator=g, dtype=dtype, device=device) for g in generator]
        )
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def check_generators(generator) -> None:
    """Refuse anything but None, a ``torch.Generator`` or a sequence of them."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, Sequence) and not isinstance(generator, str):
        wrong = [type(g).__name__ for g in generator if not isinstance(g, torch.Generator)]
        if not wrong:
            return
        raise TypeError(
            f"generator must be a torch.Generator or a list of them (one per sample); the list "
            f"holds {', '.join(sorted(set(wrong)))}"
        )
    raise TypeError(
        f"generator must be a torch.Generator, a list of them (one per sample) or None, got "
        f"{type(generator).__name__} {generator!r}; for a seed s pass "
        "torch.Generator().manual_seed(s)"
    )


class GeneratorNoise:
    """The default noise source: fresh normals from ``generator`` (see `randn`).

    The interval is not used: each call draws the next normals of the stream, so a run's
    noise depends on the order of its calls (one per stochastic stage).
    """

    def __init__(self, generator: Generators = None):
        check_generators(generator)
        self.generator = generator

    def __call__(self, step, t_from, t_to, shape, dtype, device) -> torch.Tensor:
        """Standard normals of ``shape`` from the generator(s)."""
        return randn(shape, self.generator, dtype, device)


class _StepOnlyNoise:
    """Adapter of a legacy ``noise_fn(step, shape, dtype, device)`` to the interval protocol."""

    def __init__(self, noise_fn: Callable):
        self.noise_fn = noise_fn

    def __call__(self, step, t_from, t_to, shape, dtype, device) -> torch.Tensor:
        return self.noise_fn(step, shape, dtype, device)


LEGACY_NOISE_ARGUMENTS = 4
"""Positional parameters of the pre-0.2 ``noise_fn(step, shape, dtype, device)``."""


def as_noise_source(noise_fn: Callable | None) -> NoiseSource | None:
    """``noise_fn`` as a [`NoiseSource`][mrs_numerics.solvers.protocols.NoiseSource].

    A callable of six positional parameters ``(step, t_from, t_to, shape, dtype, device)`` is
    used as it is. One of four, ``(step, shape, dtype, device)`` (the form before version
    0.2), is wrapped and gives the same numbers, with a ``DeprecationWarning``.
    """
    if noise_fn is None:
        return None
    if not callable(noise_fn):
        raise TypeError(
            f"noise_fn must be callable as noise_fn(step, t_from, t_to, shape, dtype, device), "
            f"got {type(noise_fn).__name__}"
        )
    if _positional_count(noise_fn) == LEGACY_NOISE_ARGUMENTS:
        warn(
            "noise_fn(step, shape, dtype, device) is deprecated: a noise source now also "
            "receives the interval, noise_fn(step, t_from, t_to, shape, dtype, device)",
            DeprecationWarning,
        )
        return _StepOnlyNoise(noise_fn)
    return noise_fn


def _positional_count(function: Callable) -> int | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    return sum(1 for p in parameters if p.kind in kinds)
