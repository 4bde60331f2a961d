"""One base for the worker middleware that acts once a message has run.

dramatiq calls ``after_process_message(broker, message, *, result, exception)`` on every
middleware; ``AfterMessage`` takes that call once and hands its middleware what each of them
uses: the broker, the message and what it raised (``None``: it ran through).
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware


class AfterMessage(Middleware):
    """A dramatiq middleware whose "after" hook is ``processed(broker, message, exception)``."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self.processed(broker, message, exception)

    def processed(
        self, broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
    ) -> None:
        """What to do once ``message`` has run (``exception``: what it raised, if anything)."""
