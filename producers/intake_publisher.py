"""A bulk producer's publisher: chunk messages in flight, their cases counted now and then.

The caller builds chunk messages and ``put``s them; they go to the broker through a
``workers.publish_window.PublishWindow`` (up to ``depth`` messages awaiting the broker's
confirm, none waited for one by one), and the cases the broker has confirmed go to ``record``
(a dispatch counts them in its batch) at most every ``record_every`` seconds and at the end:
a few transactions per dispatch instead of one per chunk. All in the caller's thread: on a
machine whose cores are busy, a second thread waits for the interpreter lock as long as for
the round trips it would save.

What stays true: ``record`` hears only of cases the broker has confirmed, so a count never
claims a chunk that is not on the broker; after a crash the count is short by at most
``record_every`` seconds of confirmed chunks (it was one chunk short before), and the batch
shows it has not finished. ``progress`` hears of cases as the broker confirms them. A failure
(the broker refused a message through dramatiq's retries, ``record`` raised) is raised by
``put`` or ``close`` once the cases confirmed before it are recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import dramatiq

from workers.publish_window import PublishWindow, SendFailed, publish_window

RECORD_EVERY = 0.5
"""Seconds between two ``record`` calls while a dispatch is being sent."""


class IntakePublisher:
    """Sends ``put`` messages with confirms in flight; a context manager that drains on exit."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        record: Callable[[int], None] | None = None,
        progress: Callable[[int], None] | None = None,
        record_every: float = RECORD_EVERY,
        window: PublishWindow | None = None,
    ) -> None:
        """``window``: one kept by the caller for many sends (its connection stays open;
        it is reset after a failed send); by default one of the publisher's own."""
        self._owns_window = window is None
        self._window = window or publish_window(broker)
        self._record = record
        self._progress = progress
        self._record_every = record_every
        self._unrecorded = 0
        self._recorded_at = time.monotonic()
        self.cases_sent = 0
        """Cases of the messages the broker has confirmed."""

    def put(self, message: dramatiq.Message[Any], cases: int) -> None:
        """Send a message of ``cases`` cases (waits only while many await their confirm).

        Raises
        ------
        Exception
            The broker refused the message or an earlier one, or ``record`` failed.
        """
        try:
            confirmed = self._window.publish(message, cases)
        except SendFailed as exc:
            self._window.reset()
            self._confirmed(exc.confirmed, final=True)
            raise exc.cause from exc
        self._confirmed(confirmed, final=False)

    def close(self) -> None:
        """Wait until every message put is confirmed, and record them.

        Raises
        ------
        Exception
            The broker refused a message, or ``record`` failed.
        """
        try:
            confirmed = self._window.drain()
        except SendFailed as exc:
            self._window.reset()
            self._confirmed(exc.confirmed, final=True)
            raise exc.cause from exc
        finally:
            if self._owns_window:
                self._window.close()
        self._confirmed(confirmed, final=True)

    def __enter__(self) -> IntakePublisher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
            return
        # the caller failed (an unreadable list, an interrupt, a refused message): what the
        # broker confirmed is still recorded; the caller's error is the one raised
        try:
            with contextlib.suppress(Exception):  # the caller's own error is already on its way
                self.close()
        finally:
            self._window.reset()  # whatever it still held is not the next send's

    def _confirmed(self, cases: int, *, final: bool) -> None:
        if cases:
            self.cases_sent += cases
            self._unrecorded += cases
            if self._progress is not None:
                self._progress(cases)
        now = time.monotonic()
        if self._unrecorded and (final or now - self._recorded_at >= self._record_every):
            unrecorded, self._unrecorded = self._unrecorded, 0
            self._recorded_at = now
            if self._record is not None:
                self._record(unrecorded)
