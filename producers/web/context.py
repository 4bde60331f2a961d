"""What every request of the application shares: settings, the database engine, the broker.

One ``WebContext`` per application, made by ``create_app`` and kept on ``app.state.omvant``;
routes get it (or its parts) through the dependencies in ``producers.web.deps``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from producers.web.rate_limits import KeyRateLimits
from workers.settings import Settings
from workers.store.engine import make_engine


@dataclass
class WebContext:
    """The application's connections, opened lazily and closed when the application stops."""

    settings: Settings
    engine: sa.Engine = field(init=False)
    rate_limits: KeyRateLimits = field(init=False)
    _broker: Any = field(default=None, init=False, repr=False)
    _directory: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.settings.database_url)
        self.rate_limits = KeyRateLimits(self.settings.redis_url)

    @property
    def broker(self) -> Any:
        """The pipeline's dramatiq broker, built on first use (a probe needs none)."""
        with self._lock:
            if self._broker is None:
                from workers.broker import broker_kind, build_broker
                from workers.queues import all_queues, queue_name

                broker = build_broker(self.settings.broker_url)
                if broker_kind(broker) == "memory":
                    # the in-process broker only takes messages for queues it knows
                    for queue in all_queues():
                        broker.declare_queue(queue_name(queue, self.settings.queue_prefix))
                self._broker = broker
            return self._broker

    @property
    def directory(self) -> Any:
        """The account directory (``workers.bootstrap.build_directory``), built on first use."""
        with self._lock:
            if self._directory is None:
                from workers.bootstrap import build_directory

                self._directory = build_directory(self.settings)
            return self._directory

    def close(self) -> None:
        """Close the broker connection and the database pool."""
        with self._lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None
        self.engine.dispose()
