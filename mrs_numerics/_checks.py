"""Argument checks shared by every layer: integers given as Python, numpy or torch scalars."""

from __future__ import annotations

import operator


def integer(value, name: str, least: int | None = None) -> int:
    """``value`` as a Python int: accepts int, numpy integers and integer 0-dim torch tensors.

    Refuses booleans, floats (even integral ones: ``3.0`` is usually a computed value that was
    meant to be rounded deliberately) and anything else, with a message naming ``name``, what
    was passed and what is allowed; with ``least``, also values below it.
    """
    if isinstance(value, bool) or str(getattr(value, "dtype", "")).endswith("bool"):
        raise ValueError(f"{name} must be an integer, got the boolean {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        kind = type(value).__name__
        raise ValueError(
            f"{name} must be an integer (int, numpy or torch integer scalar), got {value!r} "
            f"({kind})"
        ) from None
    if least is not None and number < least:
        raise ValueError(f"{name} must be an integer ≥ {least}, got {number}")
    return number
