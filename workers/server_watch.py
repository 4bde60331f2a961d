"""A worker process's watch over its broker and its parent.

dramatiq restarts each queue's consumer every 3 s while the broker is down and logs two lines
each time, per queue: a worker of every stage consumes 34 queues (lanes and delay queues), so
an outage wrote 1,372 lines a minute and never ended. Here those lines are counted instead of
printed (``ConsumerErrors``, a logging filter), and ``ServerWatch`` (dramatiq middleware, one
thread per worker process) says one line now and then, backing off (3, 6, 12 ... 120 s), and
"reachable again" when the errors stop. When the broker stays away longer than
``OMVANT_OUTAGE_TIMEOUT_SECONDS`` the process exits with status 2, and ``omvant worker`` with
it, so that its supervisor restarts it (and the start-up check waits, with a bound, again).

It also ends a worker process whose main process is gone (killed with ``kill -9``): an orphan
would go on consuming outside its supervisor's sight.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from workers.server_probe import mask_url

EXIT_UNREACHABLE = 2
"""The exit status of a worker that gave up on its broker (as for any unusable server)."""

EXIT_ORPHAN = 3
"""The exit status of a worker process whose main process was gone and whose shutdown hung."""
ORPHAN_GRACE_SECONDS = 30.0
"""How long an orphaned worker process's graceful shutdown may take before it is ended."""

_CONNECTION_ERROR = "Consumer encountered a connection error"
_RESTARTING = "Restarting consumer in"
QUIET_AFTER_SECONDS = 8.0
"""No consumer error for this long (more than dramatiq's 3 s restart delay): the broker is back."""


@dataclass(frozen=True)
class Outage:
    """The broker outage seen so far: since when, the last error seen and when."""

    since: float
    last_at: float
    errors: int
    reason: str


class ConsumerErrors(logging.Filter):
    """A handler filter that drops dramatiq's consumer connection-error and restart lines and
    remembers the outage they describe (thread-safe; read with ``outage``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.Lock()
        self._outage: Outage | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("dramatiq.worker.ConsumerThread"):
            return True
        message = record.getMessage()
        if message.startswith(_RESTARTING):
            return False
        if not message.startswith(_CONNECTION_ERROR):
            return True
        reason = message[len(_CONNECTION_ERROR) :].lstrip(": ").strip()[:200]
        now = self._clock()
        with self._lock:
            before = self._outage
            since = before.since if before else now
            errors = before.errors + 1 if before else 1
            self._outage = Outage(since, now, errors, reason or "connection error")
        return False

    def outage(self) -> Outage | None:
        """The outage going on, or ``None``: no consumer error for ``QUIET_AFTER_SECONDS``."""
        with self._lock:
            current = self._outage
            if current is not None and self._clock() - current.last_at > QUIET_AFTER_SECONDS:
                self._outage = None
                return None
            return current


def install_filter(errors: ConsumerErrors) -> None:
    """Put ``errors`` first on every handler of the root logger (dramatiq's pipe handler in a
    worker process), so that the lines are dropped before any other filter formats them."""
    for handler in logging.getLogger().handlers:
        if errors not in handler.filters:
            handler.filters.insert(0, errors)


def report_times(limit: float) -> list[float]:
    """When, into an outage, a line is said: 0, 3, 6, 12, 24, 48, 96 s, then every 120 s
    (dramatiq's consumers retry every 3 s), up to ``limit`` (pure)."""
    times, at = [0.0], 3.0
    while at < limit:
        times.append(at)
        at = at * 2 if at < 96 else at + 120
    return times


MAIN_PID_VARIABLE = "OMVANT_WORKER_MAIN_PID"
"""Set by ``omvant worker`` to its own pid, which dramatiq's main process keeps (exec)."""


def main_pid() -> int:
    """The pid of this worker process's main process: ``OMVANT_WORKER_MAIN_PID`` when set
    (and not this process itself), else the parent's."""
    raw = os.environ.get(MAIN_PID_VARIABLE, "")
    if raw.isdigit() and int(raw) != os.getpid():
        return int(raw)
    return os.getppid()


class ServerWatch(Middleware):
    """Reports broker outages in a few lines, gives up after ``give_up_after`` seconds (exit
    status 2), and stops the process when its parent is gone."""

    def __init__(
        self,
        errors: ConsumerErrors,
        *,
        broker_url: str,
        give_up_after: float,
        interval: float = 0.5,
        log: logging.Logger | None = None,
        exit_process: Callable[[int], None] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.errors = errors
        self.broker_url = mask_url(broker_url)
        self.give_up_after = give_up_after
        self.interval = interval
        self.log = log or logging.getLogger("omvant.worker")
        self.exit_process = exit_process
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parent = main_pid()
        """The main process, as ``omvant worker`` named it before it became dramatiq's main
        process (a worker process still importing when the main process was killed would
        otherwise take init for its parent and never notice)."""
        self._said: set[float] = set()
        """The points of the current outage (seconds into it) already reported."""
        install_filter(errors)  # now: consumers start (and may fail) before the boot hook

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Start the watch thread (in each worker process, once its consumers run)."""
        install_filter(self.errors)
        self._thread = threading.Thread(target=self._watch, name="server-watch", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Stop the watch thread."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.look():
                return

    def look(self) -> bool:
        """One look at the parent and the broker: says what is due; False when the process is
        being ended (its parent is gone, or the broker has been away too long)."""
        if os.getppid() != self._parent:
            self.log.error("the main worker process is gone; this worker process stops")
            os.kill(os.getpid(), signal.SIGTERM)
            # dramatiq's shutdown waits for acks, retried for as long as the broker is away:
            # an orphan must not outlive its supervisor's sight for that
            deadline = threading.Timer(ORPHAN_GRACE_SECONDS, self.exit_process, (EXIT_ORPHAN,))
            deadline.daemon = True
            deadline.start()
            return False
        outage = self.errors.outage()
        if outage is None:
            if self._said:
                self.log.warning("the broker %s answers again", self.broker_url)
            self._said = set()
            return True
        lasted = self.clock() - outage.since
        if lasted > self.give_up_after:
            self.log.critical(
                "cannot reach the broker %s for %.0f s (%s); giving up, exit status %d "
                "(OMVANT_OUTAGE_TIMEOUT_SECONDS)",
                self.broker_url,
                lasted,
                outage.reason,
                EXIT_UNREACHABLE,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            self.exit_process(EXIT_UNREACHABLE)
            return False
        due = [t for t in report_times(self.give_up_after) if t <= lasted and t not in self._said]
        if due:
            self._said.update(due)
            self.log.warning(
                "the broker %s is not answering (%s) for %.0f s; consumers retrying, "
                "giving up after %.0f s",
                self.broker_url,
                outage.reason,
                lasted,
                self.give_up_after,
            )
        return True
