"""A message that kills its process again and again is set aside instead of started forever.

Every exception a message raises is handled (recorded, retried, dead-lettered); what escapes
every handler is the death of the process: an out-of-memory kill, a segfault in a C library, a
supervisor's SIGKILL of a worker that hung. The broker then hands the message out again, and it
kills the next worker too. So each start is counted in ``message_deliveries`` (committed before
the stage runs) and the row is removed when the message is done, whatever its outcome: a row
that is still there at the next start means the process died with the message. A message
started more than ``OMVANT_POISON_DELIVERIES`` times (3) is not started again.

- A **chunk** (more than one record) is put back as single-record messages, each on its case's
  lane (``workers.chunk_split``), and acknowledged: its cases are not held up, and the one that
  kills its process, if one does, is then set aside alone. A long bulk chunk can meet that many
  deaths without any case of its own being at fault (a chaos run's ``kill -9`` every few
  seconds while it ran, a broker restart handing it out again while it still ran): setting
  the whole chunk aside left its 450 cases at ``cleared`` until the sweep re-drove them.
- A **single record** (or a message that is not an envelope, or whose contract is not its
  stage's) is recorded in
  ``rejected_messages`` as ``poison-message`` (with its body, bounded) and acknowledged.

A worker that dies for another reason while a message runs counts that message once: an
innocent message is put back or set aside only if its process died under it that many times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import sqlalchemy as sa
from dramatiq.middleware import SkipMessage

from workers import rejections
from workers.after_message import AfterMessage
from workers.bootstrap import Context
from workers.chunk_split import put_back_one_by_one
from workers.log import get_logger
from workers.message_guard import UNREADABLE_ACTOR, canonical
from workers.reasons import Reason
from workers.routes import ROUTES
from workers.store.deliveries import finished, started

log = get_logger(__name__)

FINISH_RETRY_SECONDS = 10.0
"""How long a message's end is tried again while the database is away."""


def _body(message: dramatiq.Message[Any]) -> bytes:
    try:
        return json.dumps(message.asdict(), default=str).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return repr(message.asdict()).encode("utf-8", "surrogatepass")


class SetAsidePoison(AfterMessage):
    """Counts the starts of each message; sets aside one started too often (see the module).

    Parameters
    ----------
    context:
        The process's wiring (its database engine).
    limit:
        Starts that may end with the death of the process before a message is set aside.
    """

    def __init__(self, context: Callable[[], Context], limit: int) -> None:
        self.context = context
        self.limit = limit

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.actor_name == UNREADABLE_ACTOR:
            return
        queue = canonical(message.queue_name)
        ctx = self.context()
        engine = ctx.engine
        with engine.begin() as conn:
            count = started(conn, queue, message.message_id)
        if count <= self.limit:
            return
        parts = self._put_back_one_by_one(ctx, message)
        if parts:
            # its starts are forgotten by after_skip_message (tried again while the database is
            # away): an error here would have dramatiq retry the chunk whole after its parts
            log.warning(
                "chunk whose process died under it put back one case at a time",
                queue=queue,
                starts=count - 1,
                cases=parts,
            )
            raise SkipMessage
        with engine.begin() as conn:
            rejections.record(
                conn,
                queue=queue,
                reason=Reason.POISON_MESSAGE,
                detail=f"started {count - 1} times and each time its process died",
                kept=rejections.keep_from_stage(_body(message._message), queue, ctx.settings),
            )
            finished(conn, queue, message.message_id)
        log.error("poison message set aside", queue=queue, starts=count - 1)
        raise SkipMessage

    @staticmethod
    def _put_back_one_by_one(ctx: Context, message: Any) -> int:
        """A chunk's records back on their stage as single-record messages; how many (0: not a
        chunk, or its contract is not the stage's whose actor the message names: put on that
        contract's own stage, it would skip the stages between, as its stage refuses it as
        ``wrong-queue``)."""
        raw = message.args[0] if len(message.args) == 1 else None
        if not isinstance(raw, dict):
            return 0
        route = ROUTES.get(str(raw.get("contract")))
        if route is None or message.actor_name not in (route.actor_name, route.urgent_actor_name):
            return 0
        return put_back_one_by_one(route, ctx, raw)

    def _finished(self, message: Any) -> None:
        """Forget the message's starts; with the database away (a restart takes seconds), try
        again for ``FINISH_RETRY_SECONDS``: a row left behind counts a death that was none, and
        three such set aside a healthy message."""
        if message.actor_name == UNREADABLE_ACTOR:
            return
        deadline = time.monotonic() + FINISH_RETRY_SECONDS
        wait = 0.2
        while True:
            try:
                with self.context().engine.begin() as conn:
                    finished(conn, canonical(message.queue_name), message.message_id)
                return
            except (sa.exc.OperationalError, sa.exc.InterfaceError):
                if time.monotonic() + wait > deadline:
                    log.warning(
                        "message start not forgotten: the database", queue=message.queue_name
                    )
                    return
                time.sleep(wait)
                wait = min(wait * 2, 2.0)

    def processed(
        self, broker: dramatiq.Broker, message: Any, exception: BaseException | None
    ) -> None:
        self._finished(message)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._finished(message)
