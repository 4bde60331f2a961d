"""The module ``dramatiq`` worker processes import: broker and actors from ``OMVANT_*``.

``omvant worker`` runs ``dramatiq workers.app --queues ...``; each worker process imports this
module, builds its broker once, and builds its context (database, adapters) on first use.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq

from workers.actors import RecordDeadLetters, declare_actors
from workers.answer_seal import answer_seal
from workers.bootstrap import Context, build_context
from workers.broker import build_broker
from workers.log import configure
from workers.poison import SetAsidePoison
from workers.settings import Settings

settings = Settings()
configure(settings.log_level, json=settings.log_json)
answer_seal(settings)  # no key outside the embedded default: refuse to start (AnswerKeyMissing)

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


broker = build_broker(
    settings.broker_url,
    middleware=[RecordDeadLetters(context), SetAsidePoison(context, settings.poison_deliveries)],
)
dramatiq.set_broker(broker)
actors: dict[str, dramatiq.Actor[Any, Any]] = declare_actors(
    broker, context, prefix=settings.queue_prefix, max_retries=settings.max_retries
)
