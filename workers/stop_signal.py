"""One stop request is one stop, however many times its SIGTERM arrives.

dramatiq's worker process stops cleanly on its first SIGTERM and kills itself (exit 1) on the
second. A stop sent to the whole process group (``kill -TERM -PGID``, a terminal, some process
managers) reaches a worker process twice: once directly, and once more from dramatiq's main
process, which forwards every signal it gets to its children. The clean stop then became a kill
and ``omvant worker`` exited 1. ``StopOnce`` takes a SIGTERM that comes within
``REPEAT_SECONDS`` of the first as the same request; a later one still kills, as in dramatiq.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

REPEAT_SECONDS = 5.0
"""A SIGTERM this soon after the first is the same stop delivered again (the group's copy and
the main process's forwarded one arrive milliseconds apart; seconds under heavy load)."""

Handler = Callable[[int, FrameType | None], Any]


def once(handler: Handler, *, clock: Callable[[], float] = time.monotonic) -> Handler:
    """``handler`` that ignores a signal repeated within ``REPEAT_SECONDS`` of the first."""
    first: float | None = None

    def handle(signum: int, frame: FrameType | None) -> Any:
        nonlocal first
        now = clock()
        if first is not None and now - first < REPEAT_SECONDS:
            return None  # the same stop, delivered twice
        if first is None:
            first = now
        return handler(signum, frame)

    return handle


class StopOnce(Middleware):
    """In each worker process, once it runs: dramatiq's SIGTERM handler through ``once``."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Wrap the process's SIGTERM handler (signals are set from the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if callable(current):
            signal.signal(signal.SIGTERM, once(current))
