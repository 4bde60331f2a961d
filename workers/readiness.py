"""``worker.ready`` once an ``omvant worker`` consumes, ``worker.stopped`` as each process ends.

dramatiq's own lines ("Worker process is ready for action", "Shutting down...") are a
library's INFO lines, quiet below ``OMVANT_LOG_LEVEL=DEBUG`` like pika's and alembic's. What a
supervisor, an operator, the tests and the chaos run wait for is Omvänt's own line instead:
``worker.ready`` (its stages, lanes, queues and processes), said once, by the last worker
process of the ``omvant worker`` to start consuming; and ``worker.stopped`` by each worker
process once it has finished what it held. Both are said at every log level (a worker told to
say only warnings still says that it is up and that it has stopped).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

READY_VARIABLE = "OMVANT_WORKER_READY"
"""Set by ``omvant worker`` for its worker processes: JSON naming the file they count
themselves in, how many there are, and the stages and lanes they consume."""


@dataclass(frozen=True)
class Plan:
    """What one ``omvant worker`` starts: its processes, stages and lanes, and the file its
    worker processes count themselves in."""

    file: str
    processes: int
    stages: list[str]
    lanes: str

    def to_env(self) -> str:
        """The value of ``OMVANT_WORKER_READY``."""
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Plan | None:
        """The plan ``omvant worker`` set, or ``None`` (dramatiq started by hand)."""
        raw = env.get(READY_VARIABLE)
        if not raw:
            return None
        try:
            return cls(**json.loads(raw))
        except (TypeError, ValueError):
            return None


def count_in(path: Path, pid: int) -> int:
    """Add ``pid`` to the file at ``path`` (under an exclusive lock: the worker processes of
    one ``omvant worker`` boot at once) and return how many processes it names now."""
    with path.open("a+", encoding="ascii") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write(f"{pid}\n")
        file.flush()
        file.seek(0)
        return len(set(file.read().split()))


def lifecycle_log() -> Any:
    """A logger that says INFO lines whatever ``OMVANT_LOG_LEVEL`` filters."""
    return structlog.wrap_logger(
        None, wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    ).bind(logger="omvant.worker")


class Readiness(Middleware):
    """In each worker process: count it as consuming once dramatiq's consumers run; the last
    one of its ``omvant worker`` says ``worker.ready``. Without a plan (dramatiq started by
    hand) each process says it for itself."""

    def __init__(
        self, plan: Plan | None, log: Any = None, pid: Callable[[], int] = os.getpid
    ) -> None:
        self.plan = plan
        self.log = log or lifecycle_log()
        self.pid = pid

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Runs once the worker's consumers and threads are started."""
        queues = sorted(q for q in worker.consumers if not q.endswith((".DQ", ".XQ")))
        if self.plan is None:
            self.log.info("worker.ready", processes=1, queues=len(queues), pid=self.pid())
            return
        path = Path(self.plan.file)
        try:
            ready = count_in(path, self.pid())
        except OSError as exc:
            self.log.warning("worker readiness file unusable", file=str(path), error=str(exc))
            return
        if ready < self.plan.processes:
            return
        with contextlib.suppress(OSError):
            path.unlink()
        self.log.info(
            "worker.ready",
            processes=self.plan.processes,
            stages=self.plan.stages,
            lanes=self.plan.lanes,
            queues=len(queues),
        )

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Runs once the process has finished (or handed back) what it held."""
        self.log.info("worker.stopped", pid=self.pid())
