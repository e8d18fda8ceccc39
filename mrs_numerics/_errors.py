"""Errors for bad input that say what was wrong, what is allowed, and how to fix it, in the
caller's own terms: a Python keyword argument for library users, a flag on the command line.

The library raises ``InputError`` with an
``Advice`` naming the *parameter* that fixes the problem (for
example ``overwrite=True``). ``str(error)`` gives the Python advice; the command line asks
``InputError.for_command_line`` with a
lookup from parameter to flag (its parser's ``dest`` → option string), so that no message is
rewritten by matching its text and no command-line user is told to pass a Python argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Advice:
    """How to fix a refused input: set ``parameter`` to ``value`` ``purpose``.

    Attributes:
        parameter: The keyword argument of the library call (also the ``dest`` of the command
            line's flag).
        value: The value to pass (``True`` for a switch).
        purpose: What it does, e.g. ``"to replace it"``.
    """

    parameter: str
    value: Any
    purpose: str = ""

    def for_python(self) -> str:
        """``pass overwrite=True to replace it``."""
        return self._sentence(f"{self.parameter}={self.value!r}")

    def for_command_line(self, flag: str) -> str:
        """``pass --overwrite to replace it`` (``--grid FILE`` for a value)."""
        shown = flag if self.value is True else f"{flag} {self.value}"
        return self._sentence(shown)

    def _sentence(self, shown: str) -> str:
        return f"pass {shown}" + (f" {self.purpose}" if self.purpose else "")


class AdvisedError(Exception):
    """An error whose message can end with advice, in Python's terms or the command line's.

    A base for the package's errors (bad input, a failed run) whose fix is a parameter; mixed
    in before the standard exception class they also are (``ValueError``,
    ``FloatingPointError``, …).

    Args:
        message: What was wrong and what is allowed.
        advice: The parameter that fixes it, if any.
        alternatives: Other fixes, offered after ``advice`` ("…, or pass …").
    """

    def __init__(
        self, message: str, *, advice: Advice | None = None, alternatives: tuple[Advice, ...] = ()
    ):
        super().__init__(message)
        self.message = message
        self.advice = advice
        self.alternatives = tuple(alternatives)

    def _advices(self) -> tuple[Advice, ...]:
        return (() if self.advice is None else (self.advice,)) + self.alternatives

    def __str__(self) -> str:
        sentences = [advice.for_python() for advice in self._advices()]
        return "; ".join([self.message, ", or ".join(sentences)]) if sentences else self.message

    def for_command_line(self, flag_of: Callable[[str], str | None]) -> str:
        """The message with command-line advice.

        Args:
            flag_of: The flag of a parameter (e.g. ``"overwrite"`` → ``"--overwrite"``), or
                None where the command has no such flag (then no advice is given).
        """
        sentences = []
        for advice in self._advices():
            flag = flag_of(advice.parameter)
            if flag is not None:
                sentences.append(advice.for_command_line(flag))
        return "; ".join([self.message, ", or ".join(sentences)]) if sentences else self.message


class InputError(AdvisedError, ValueError):
    """Bad input to a library call or a command; one line, with advice where there is a fix."""


def command_line_message(error: BaseException, flag_of: Callable[[str], str | None]) -> str:
    """``error``'s message with command-line advice where it has any (else ``str(error)``)."""
    if isinstance(error, AdvisedError):
        return error.for_command_line(flag_of)
    return str(error)
