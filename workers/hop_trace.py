"""Where one message's time goes in a worker: a trace line per message, for ``omvant bench``.

With ``OMVANT_HOP_TRACE_DIR`` set (the bench sets it for the urgent lanes' worker process), each
message a worker thread runs appends one JSON line to ``<dir>/hop-<pid>.jsonl``:

- ``wait_ms``: from the message's creation (``message_timestamp``, set before its publish)
  until a worker thread took it: the publisher's confirm, the broker, the consumer's poll
  interval (Redis) and the worker's own queue;
- ``run_ms``: the actor, from dramatiq's ``before_process_message`` to ``after_process_message``;
- ``cpu_ms``: the thread's CPU time in that span (``time.thread_time``);
- ``db_ms`` and ``db_calls``: time in PostgreSQL statements, commits and rollbacks, and how
  many, with each transaction's ``BEGIN`` (a round trip psycopg makes before its first
  statement) counted; from SQLAlchemy's events (a connection in autocommit sends neither
  ``BEGIN`` nor ``ROLLBACK``);
- ``publish_ms`` and ``publishes``: in ``broker.enqueue`` (with RabbitMQ's publisher confirm).

Only case counts, queue names and times are written: no case id, personnummer or content.
Without the setting nothing is installed and nothing is timed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
import sqlalchemy as sa
from dramatiq.broker import MessageProxy

from workers.after_message import AfterMessage

SETTING = "OMVANT_HOP_TRACE_DIR"


class _Span(threading.local):
    """The message a worker thread is running, and what it spent so far."""

    active: bool = False
    started: float = 0.0
    cpu: float = 0.0
    wait_ms: float = 0.0
    db: float = 0.0
    db_calls: int = 0
    publish: float = 0.0
    publishes: int = 0
    statement_at: float | None = None
    commit_at: float | None = None
    publish_at: float | None = None


_span = _Span()


def _statement_started(*_args: Any, **_kwargs: Any) -> None:
    if _span.active:
        _span.statement_at = time.perf_counter()


def _statement_ended(*_args: Any, **_kwargs: Any) -> None:
    if _span.active and _span.statement_at is not None:
        _span.db += time.perf_counter() - _span.statement_at
        _span.db_calls += 1
        _span.statement_at = None


def _commit_started(*_args: Any, **_kwargs: Any) -> None:
    if _span.active:
        _span.commit_at = time.perf_counter()


def _autocommit(conn: sa.Connection) -> bool:
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _begun(conn: sa.Connection) -> None:
    """psycopg sends ``BEGIN`` as a round trip of its own before the first statement (its time
    is in that statement's); a connection in autocommit sends none."""
    if _span.active and not _autocommit(conn):
        _span.db_calls += 1


def _rollback_started(conn: sa.Connection) -> None:
    if _span.active and not _autocommit(conn):
        _span.commit_at = time.perf_counter()


def _commit_ended(*_args: Any, **_kwargs: Any) -> None:
    """The pool's checkin follows the commit of ``engine.begin()`` and the rollback that ends
    ``engine.connect()``: that round trip."""
    if _span.active and _span.commit_at is not None:
        _span.db += time.perf_counter() - _span.commit_at
        _span.db_calls += 1
        _span.commit_at = None


_listening = False


def _listen() -> None:
    global _listening  # noqa: PLW0603 - the class-wide listeners are installed once per process
    if _listening:
        return
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", _statement_started)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", _statement_ended)
    sa.event.listen(sa.engine.Engine, "begin", _begun)
    sa.event.listen(sa.engine.Engine, "commit", _commit_started)
    sa.event.listen(sa.engine.Engine, "rollback", _rollback_started)
    sa.event.listen(sa.pool.Pool, "checkin", _commit_ended)
    _listening = True


class HopTrace(AfterMessage):
    """Times each message a worker thread runs (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"hop-{os.getpid()}.jsonl"
        self.lock = threading.Lock()
        _listen()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        now = time.time()
        _span.active = True
        _span.wait_ms = now * 1000 - message.message_timestamp
        _span.started = time.perf_counter()
        _span.cpu = time.thread_time()
        _span.db = _span.publish = 0.0
        _span.db_calls = _span.publishes = 0
        _span.statement_at = _span.commit_at = _span.publish_at = None

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
        if _span.active:
            _span.publish_at = time.perf_counter()

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
        if _span.active and _span.publish_at is not None:
            _span.publish += time.perf_counter() - _span.publish_at
            _span.publishes += 1
            _span.publish_at = None

    def processed(
        self, broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
    ) -> None:
        if not _span.active:
            return
        _span.active = False
        args = message.args
        payload = args[0].get("payload") if len(args) == 1 and isinstance(args[0], dict) else None
        line = {
            "queue": message.queue_name,
            "cases": len(payload) if isinstance(payload, list) else None,
            "at": round(time.time(), 4),
            "wait_ms": round(_span.wait_ms, 2),
            "run_ms": round((time.perf_counter() - _span.started) * 1000, 2),
            "cpu_ms": round((time.thread_time() - _span.cpu) * 1000, 2),
            "db_ms": round(_span.db * 1000, 2),
            "db_calls": _span.db_calls,
            "publish_ms": round(_span.publish * 1000, 2),
            "publishes": _span.publishes,
            "failed": exception is not None,
        }
        text = json.dumps(line) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as out:
            out.write(text)

    after_skip_message = AfterMessage.after_process_message


def from_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> HopTrace | None:
    """The trace middleware when ``OMVANT_HOP_TRACE_DIR`` names a folder, else None."""
    folder = environ.get(SETTING, "").strip()
    return HopTrace(Path(folder)) if folder else None
