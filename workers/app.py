"""The module ``dramatiq`` worker processes import: broker and actors from ``OMVANT_*``.

``omvant worker`` runs ``dramatiq workers.app --queues ...``; each worker process imports this
module, builds its broker once, and builds its context (database, adapters) on first use.
Library loggers are quieted first (alembic logs at import time), and ``ServerWatch`` keeps an
outage of the broker to a few lines and a bounded time (``workers/server_watch.py``).
"""

from __future__ import annotations

from workers.server_checks import quiet_libraries

quiet_libraries()

import os  # noqa: E402 - after quiet_libraries: importing alembic logs at INFO
import threading  # noqa: E402
from typing import Any  # noqa: E402

import dramatiq  # noqa: E402

from workers.actors import RecordDeadLetters, declare_actors  # noqa: E402
from workers.answer_seal import answer_seal  # noqa: E402
from workers.bootstrap import Context, build_context  # noqa: E402
from workers.broker import build_broker  # noqa: E402
from workers.hop_trace import from_environment as hop_trace  # noqa: E402
from workers.log import configure  # noqa: E402
from workers.poison import SetAsidePoison  # noqa: E402
from workers.readiness import Plan, Readiness  # noqa: E402
from workers.server_watch import ConsumerErrors, ServerWatch  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.stop_signal import StopOnce  # noqa: E402

settings = Settings()
configure(settings.log_level, json=settings.log_json)
answer_seal(settings)  # no key outside the embedded default: refuse to start (AnswerKeyMissing)
# dramatiq's own lines (a process booting, ready, stopping) are quiet below DEBUG (configure):
# Omvänt's worker.ready and worker.stopped say so instead (workers/readiness.py)

_context: Context | None = None
_lock = threading.Lock()


def context() -> Context:
    """This process's context, built on first use."""
    global _context  # noqa: PLW0603 - one context per process, built lazily
    if _context is None:
        with _lock:
            if _context is None:
                _context = build_context(settings, broker)
    return _context


watch = ServerWatch(
    ConsumerErrors(),
    broker_url=settings.broker_url,
    give_up_after=settings.outage_timeout_seconds,
)
broker = build_broker(
    settings.broker_url,
    middleware=[
        RecordDeadLetters(context),
        SetAsidePoison(context, settings.poison_deliveries),
        watch,
        StopOnce(),
        *[trace for trace in [hop_trace()] if trace is not None],  # omvant bench's timing
    ],
)
# first in the list, so that its after_worker_boot runs last (dramatiq runs "after" hooks in
# reverse): worker.ready is said once the server watch and StopOnce are in place
broker.add_middleware(Readiness(Plan.from_env(os.environ)), before=type(broker.middleware[0]))
dramatiq.set_broker(broker)
actors: dict[str, dramatiq.Actor[Any, Any]] = declare_actors(
    broker,
    context,
    prefix=settings.queue_prefix,
    max_retries=settings.max_retries,
    outage_retry_seconds=settings.outage_retry_seconds,
)
