"""One stop request is one stop: a SIGTERM repeated at once (the process group's copy and the
one dramatiq's main process forwards) does not turn a worker process's clean stop into a kill."""

from __future__ import annotations

import os
import signal
from types import FrameType

from tests.clocks import ManualClock
from workers.stop_signal import REPEAT_SECONDS, StopOnce, once


def test_a_repeat_within_the_window_is_the_same_stop_and_a_later_one_goes_through() -> None:
    seen: list[int] = []
    clock = ManualClock(100.0)
    handler = once(lambda signum, _frame: seen.append(signum), clock=clock)
    handler(signal.SIGTERM, None)
    clock.now += 0.01
    handler(signal.SIGTERM, None)  # the forwarded copy
    clock.now += REPEAT_SECONDS - 0.02
    handler(signal.SIGTERM, None)
    assert seen == [signal.SIGTERM]
    clock.now += 0.02  # past the window: a second request (dramatiq's "kill now")
    handler(signal.SIGTERM, None)
    assert seen == [signal.SIGTERM, signal.SIGTERM]


def test_the_middleware_wraps_the_processes_sigterm_handler() -> None:
    seen: list[int] = []

    def dramatiqs(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGTERM, dramatiqs)
    try:
        StopOnce().after_worker_boot(None, None)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
