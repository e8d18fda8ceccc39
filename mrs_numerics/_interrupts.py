"""Interruptions: Ctrl-C and a termination signal end a run the same way, with what was done.

Python turns Ctrl-C (SIGINT) into ``KeyboardInterrupt``, but a SIGTERM (``kill``, a batch
scheduler's time limit, ``timeout``) ends the process at once, with no ``finally`` block run:
a temporary file stays, a manifest is not brought up to date, nothing is said.
``signals_interrupt`` makes both signals raise
``Interrupted`` (a ``KeyboardInterrupt``), so that every
cleanup runs and a long-running loop can say what it had written. The command line exits with
``128 + the signal's number`` (130 for Ctrl-C, 143 for SIGTERM), the shells' convention.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from mrs_numerics._errors import Advice

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals turned into ``Interrupted``."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or a signal; ``message`` says what it had done by then.

    Args:
        message: What was written and what was not (empty: nothing to say).
        signal_number: The signal that stopped it (``SIGINT`` for Ctrl-C).
        advice: How to carry on (e.g. ``skip_existing=True`` to resume), if any.
    """

    def __init__(
        self,
        message: str = "",
        *,
        signal_number: int = signal.SIGINT,
        advice: Advice | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.signal_number = int(signal_number)
        self.advice = advice

    @property
    def exit_status(self) -> int:
        """``128 + signal number``: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
        return 128 + self.signal_number

    @property
    def signal_name(self) -> str:
        """``"SIGINT"``, ``"SIGTERM"``, …"""
        return signal.Signals(self.signal_number).name

    def __str__(self) -> str:
        if self.advice is None:
            return self.message
        return f"{self.message}; {self.advice.for_python()}"

    def for_command_line(self, flag_of: Callable[[str], str | None]) -> str:
        """The message with command-line advice (see ``InputError.for_command_line``)."""
        flag = None if self.advice is None else flag_of(self.advice.parameter)
        if self.advice is None or flag is None:
            return self.message
        return f"{self.message}; {self.advice.for_command_line(flag)}"

    def with_message(self, message: str, advice: Advice | None = None) -> Interrupted:
        """The same interruption (same signal), saying ``message``."""
        return Interrupted(message, signal_number=self.signal_number, advice=advice)


def as_interrupted(error: KeyboardInterrupt) -> Interrupted:
    """``error`` as an ``Interrupted`` (a plain
    ``KeyboardInterrupt`` is Ctrl-C)."""
    return error if isinstance(error, Interrupted) else Interrupted()


class _Deferral:
    """The state of ``deferred``: how deep, and the signal held (None: none)."""

    depth = 0
    pending: int | None = None


_deferral = _Deferral()


def _raise_interrupted(signal_number: int, frame) -> None:
    if _deferral.depth:
        _deferral.pending = _deferral.pending or signal_number
        return
    raise Interrupted(signal_number=signal_number)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal that arrives within the body; raise its ``Interrupted`` when the body ends.

    For steps that must happen together or not at all, such as writing an image and recording
    it in the manifest: a SIGTERM between the two would leave a written file that its manifest
    calls pending. Only signals handled by ``signals_interrupt`` are held. A generator
    may yield inside the body: the hold then lasts until the consumer asks for the next item.
    """
    _deferral.depth += 1
    try:
        yield
    finally:
        _deferral.depth -= 1
        held = _deferral.pending
        if not _deferral.depth and held is not None:
            _deferral.pending = None
            raise Interrupted(signal_number=held)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the body, SIGINT and SIGTERM raise ``Interrupted``; the old handlers come back after.

    Only the main thread can set signal handlers; elsewhere the body runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in HANDLED_SIGNALS}
    for number in HANDLED_SIGNALS:
        signal.signal(number, _raise_interrupted)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
