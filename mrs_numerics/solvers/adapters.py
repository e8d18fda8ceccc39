"""Adapters that let existing MR networks plug into the samplers unchanged.

The samplers call ``model(x, t, mu)`` with t a float64 tensor [batch] in the schedule's time. IR-SDE
and DA-CLIP networks are called as ``net(x, mu, t, **context)`` with the integer training index as
time (the discrete schedule's time unit,
[`mrs_numerics.schedules.irsde`][mrs_numerics.schedules.discrete.irsde]) and predict noise.
[`IRSDEAdapter`][mrs_numerics.solvers.adapters.IRSDEAdapter] bridges the two.
"""

from __future__ import annotations

import torch

from mrs_numerics._warn import warn


class IRSDEAdapter:
    """Wrap an IR-SDE/DA-CLIP-style ``net(x, mu, t, **context)`` as ``model(x, t, mu)``.

    Use it with IR-SDE's tables ([`irsde`][mrs_numerics.schedules.discrete.irsde]), whose time
    is the table index, and pass ``prediction`` as the sampler's ``model_prediction``.

    Args:
        net: The network, called as ``net(x, mu, t, **context)``.
        prediction: What ``net`` returns (IR-SDE networks predict ``"noise"``); stored for the
            sampler's ``model_prediction``, not used by the adapter.
        round_time: Pass the nearest integer index, as IR-SDE's training did, and warn once if
            the grid asks for fractional times; with ``False`` the fractional index is passed as
            a float (sinusoidal time embeddings accept it).
        **context (Any): Forwarded on every call (e.g. DA-CLIP's ``text_context``,
            ``image_context``).
    """

    def __init__(self, net, prediction: str = "noise", round_time: bool = True, **context):
        self.net = net
        self.prediction = prediction
        self.round_time = round_time
        self.context = context
        self._warned = False

    def __call__(self, x: torch.Tensor, t: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        time = t
        if self.round_time:
            time = torch.round(t)
            if not self._warned and not torch.equal(time, t):
                warn(
                    "IRSDEAdapter rounds fractional times to the nearest training index; use a "
                    "grid on integer indices (grid='time' with integer-aligned steps) or "
                    "round_time=False"
                )
                self._warned = True
            time = time.long()
        return self.net(x, mu, time, **self.context)
