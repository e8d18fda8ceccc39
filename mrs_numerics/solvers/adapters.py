"""Adapters that let existing MR networks plug into the samplers unchanged.

The samplers call ``model(x, t, mu)`` with t a float64 tensor [batch] in the schedule's time. IR-SDE
and DA-CLIP networks are called as ``net(x, mu, t, **context)`` with the training index as time
(the discrete schedule's time unit,
[`mrs_numerics.schedules.irsde`][mrs_numerics.schedules.discrete.irsde]) and predict noise.
[`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter] bridges the two.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mrs_numerics._warn import warn


class IRSDEAdapter(nn.Module):
    """Wrap an IR-SDE/DA-CLIP-style ``net(x, mu, t, **context)`` as ``model(x, t, mu)``.

    Use it with the tables the network was trained on
    ([`irsde`][mrs_numerics.schedules.discrete.irsde]; for a checkpoint's option file,
    [`irsde_schedule`][mrs_numerics.models.checkpoints.irsde_schedule]), whose time is the table
    index, the unit of the network's time input, and pass ``prediction`` as the sampler's
    ``model_prediction``. The sampler's time is passed on without rescaling: unrounded by
    default, as the official MR Sampler code does (a float tensor ``[batch]``, float32 or x's
    dtype if wider; the sinusoidal time embeddings take fractional indices), or rounded to the
    nearest integer index (a long tensor, exactly the training inputs) with ``round_time``.

    Tensor contexts (DA-CLIP's ``text_context``, ``image_context``) of shape ``[batch, dim]``,
    ``[1, dim]`` or ``[dim]`` are broadcast to the batch and moved to x's device and dtype;
    other context values are passed as they are. The networks of
    [`ARCHITECTURES`][mrs_numerics.models.irsde_options.ARCHITECTURES] pad their input
    internally, so ``required_multiple`` is 1.

    Args:
        net: The network, called as ``net(x, mu, t, **context)``.
        prediction: What ``net`` returns (IR-SDE networks predict ``"noise"``); stored for the
            sampler's ``model_prediction``, not used by the adapter.
        round_time: Pass the nearest integer index, as IR-SDE's training did, and warn once if
            the grid asks for fractional times.
        **context (Any): Passed on every call (e.g. DA-CLIP's ``text_context``,
            ``image_context``).

    Raises:
        ValueError: If a tensor context is not ``[rows, dim]`` or ``[dim]``.
    """

    required_multiple = 1
    """The adapter adds no padding; the networks of this package's architectures pad inside."""

    def __init__(
        self, net, prediction: str = "noise", round_time: bool = False, **context: Any
    ) -> None:
        super().__init__()
        self.net = net
        self.prediction = prediction
        self.round_time = bool(round_time)
        self.context = {
            name: value for name, value in context.items() if not isinstance(value, torch.Tensor)
        }
        self.context_names = [
            name for name, value in context.items() if isinstance(value, torch.Tensor)
        ]
        for name in self.context_names:
            self.register_buffer(name, _as_rows(context[name], name), persistent=False)
        self._warned = False

    @property
    def channels(self) -> int:
        """Image channels the network takes (its ``in_nc``; 3 if it does not say)."""
        return int(getattr(self.net, "in_nc", 3))

    def network_time(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """The network's time input ``[batch]`` for the sampler's time ``t``.

        Raises:
            ValueError: If ``t`` is neither one time nor one per image of ``x``.
        """
        batch = x.shape[0]
        times = torch.as_tensor(t, device=x.device)
        if times.numel() == 1:
            times = times.reshape(1).expand(batch)
        elif times.shape != (batch,):
            raise ValueError(
                f"t must be a number or have shape [batch] = [{batch}], got {tuple(times.shape)}"
            )
        if not self.round_time:
            return times.to(torch.promote_types(x.dtype, torch.float32))
        rounded = torch.round(times)
        if not self._warned and not torch.equal(rounded, times):
            warn(
                "IRSDEAdapter rounds fractional times to the nearest training index; use a "
                "grid on integer indices (grid='time' with integer-aligned steps) or "
                "round_time=False"
            )
            self._warned = True
        return rounded.long()

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, mu: torch.Tensor) -> torch.Tensor:
        """The network's prediction for state ``x`` at time ``t`` with condition ``mu``."""
        context = dict(self.context)
        for name in self.context_names:
            context[name] = _batched(getattr(self, name), x, name)
        return self.net(x, mu, self.network_time(t, x), **context)


def _as_rows(context: torch.Tensor, name: str) -> torch.Tensor:
    """A context as ``[rows, dim]``."""
    if context.ndim == 1:
        context = context[None]
    if context.ndim != 2:
        raise ValueError(
            f"{name} must have shape [batch, dim] or [dim], got {tuple(context.shape)}"
        )
    return context


def _batched(rows: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """``rows`` for every image of x, on x's device and in its dtype."""
    batch = x.shape[0]
    if rows.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} has {rows.shape[0]} rows; the batch has {batch} images (give 1 or {batch})"
        )
    return rows.to(device=x.device, dtype=x.dtype).expand(batch, -1)
