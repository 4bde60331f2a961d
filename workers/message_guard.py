"""Messages dramatiq itself cannot run are recorded, never dead-lettered without a reason.

Left to itself, dramatiq dead-letters (RabbitMQ) or stalls on (Redis) a message it cannot
decode (not UTF-8, not JSON, a JSON list, fields missing or extra, nested too deep), dead-letters
a message for an actor it does not know, and runs whatever actor a message names, whichever queue
it came from. Two parts stop that, on every broker:

- :class:`GuardedEncoder` is dramatiq's JSON encoder (``workers/message_json.py``: orjson, the
  stdlib for what orjson reads or writes otherwise) whose ``decode`` never raises: what is not
  a dramatiq message becomes a message for the quarantine actor (``UNREADABLE_ACTOR``) holding
  the reason and the body; options outside dramatiq's own few (``redis_message_id``, ``eta``,
  ``retries`` ...) are dropped, so a message cannot raise its own retry limit or chain itself to
  other actors (``pipe_target``, ``on_success``);
- :class:`GuardedConsumer` wraps each broker consumer and knows the queue a message really came
  from: a message for an unknown actor (``unknown-actor``), for an actor of another queue, or
  naming another queue (``wrong-queue``) is turned into a quarantine message too. On Redis it
  also finds the entry id of any message whose data gave none (one put on the queue by another
  client than dramatiq, runnable or not), so that it can be acknowledged.

The quarantine actor (declared by ``workers.actors.declare_actors``) records the rejection in
``rejected_messages`` (``workers/rejections.py``) and the message is acknowledged; a database
outage is retried like any message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import replace
from typing import Any

import dramatiq
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.encoder import JSONEncoder, MessageData
from dramatiq.errors import ConnectionClosed

from workers import message_json
from workers.acks import put_back_wanted
from workers.reasons import Reason
from workers.wire import printable

UNREADABLE_ACTOR = "omvant_record_unreadable_message"
"""The quarantine actor: records a message no stage can run (stable name)."""
RAW_SHA256 = "omvant_raw_sha256"
QUARANTINED = "omvant_quarantined"
MAX_KEPT_BODY = 256 * 1024
"""The most of an unreadable message's raw data carried to the quarantine actor."""

_FIELDS: dict[str, type | tuple[type, ...]] = {
    "queue_name": str,
    "actor_name": str,
    "args": list,
    "kwargs": dict,
    "options": dict,
    "message_id": str,
    "message_timestamp": int,
}
_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "redis_message_id": str,
    "eta": (int, float),
    "retries": int,
    "traceback": str,
    "requeue_timestamp": int,
    QUARANTINED: bool,
}


def _shape_problem(fields: Any) -> str | None:
    if not isinstance(fields, dict):
        return f"a dramatiq message is a JSON object, not {type(fields).__name__}"
    missing = [
        name for name in ("queue_name", "actor_name", "args", "kwargs") if name not in fields
    ]
    if missing:
        return f"fields missing: {', '.join(missing)}"
    extra = [printable(k, 40) for k in fields if k not in _FIELDS]
    if extra:
        return f"unknown fields: {', '.join(extra[:5])}"
    for name, kind in _FIELDS.items():
        value = fields.get(name)
        if name in fields and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{name} is not a {getattr(kind, '__name__', 'value')}"
    for name in ("queue_name", "actor_name", "message_id"):
        if len(fields.get(name) or "") > 256:
            return f"{name} is longer than 256 characters"
    return None


def _kept_body(data: bytes) -> dict[str, Any]:
    head = data[:MAX_KEPT_BODY]
    try:
        return {"body": head.decode("utf-8"), "size": len(data)}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(head).decode(), "size": len(data)}


def quarantine_fields(
    reason: str,
    detail: str,
    data: bytes,
    *,
    salvage: dict[str, Any] | None = None,
) -> MessageData:
    """A message for the quarantine actor, keeping what can be salvaged of the original."""
    salvage = salvage or {}
    options = salvage.get("options") if isinstance(salvage.get("options"), dict) else {}
    kept_options: dict[str, Any] = {RAW_SHA256: hashlib.sha256(data).hexdigest(), QUARANTINED: True}
    redis_id = options.get("redis_message_id") if options else None
    if isinstance(redis_id, str) and len(redis_id) <= 128:
        kept_options["redis_message_id"] = redis_id
    message_id = salvage.get("message_id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 128:
        message_id = f"unreadable-{kept_options[RAW_SHA256][:32]}"
    queue = salvage.get("queue_name")
    return {
        "queue_name": queue if isinstance(queue, str) and len(queue) <= 256 else "",
        "actor_name": UNREADABLE_ACTOR,
        "args": [{"reason": reason, "detail": printable(detail, 500), **_kept_body(data)}],
        "kwargs": {},
        "options": kept_options,
        "message_id": message_id,
        "message_timestamp": int(time.time() * 1000),
    }


class GuardedEncoder(JSONEncoder):
    """dramatiq's JSON encoding; decoding never raises (see the module)."""

    def encode(self, data: MessageData) -> bytes:
        """The message's fields as compact UTF-8 JSON."""
        return message_json.dumps(data)

    def decode(self, data: bytes) -> MessageData:
        """The message's fields, or a quarantine message's when they cannot be read."""
        raw = bytes(data) if not isinstance(data, bytes) else data
        try:
            fields = message_json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            what = "nested too deep" if isinstance(exc, RecursionError) else "not UTF-8 JSON"
            return quarantine_fields(Reason.MALFORMED_MESSAGE, f"{what}: {exc}"[:300], raw)
        problem = _shape_problem(fields)
        if problem is not None:
            salvage = fields if isinstance(fields, dict) else None
            return quarantine_fields(Reason.MALFORMED_MESSAGE, problem, raw, salvage=salvage)
        options: dict[str, Any] = {}
        for name, value in fields.get("options", {}).items():
            kind = _OPTIONS.get(name)
            typed = kind is not None and isinstance(value, kind)
            if typed and (kind is bool or not isinstance(value, bool)):
                options[name] = value
        options[RAW_SHA256] = hashlib.sha256(raw).hexdigest()
        fields["options"] = options
        return dict(fields)


def canonical(queue: str) -> str:
    """A queue's name without dramatiq's delay suffix."""
    return queue[:-3] if queue.endswith(".DQ") else queue


def same_stage(queue: str, other: str) -> bool:
    """Whether two queues are lanes of one stage (``x``, ``x.urgent``, ``x.bulk-1``): one actor
    consumes a stage's normal and bulk lanes, another its urgent lane."""
    return queue == other or queue.startswith(f"{other}.") or other.startswith(f"{queue}.")


def _as_data(message: dramatiq.Message[Any]) -> bytes:
    try:
        return json.dumps(message.asdict(), default=str).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return repr(message.asdict()).encode("utf-8", "surrogatepass")


class GuardedConsumer(Consumer):
    """A broker's consumer whose messages are checked against the queue they came from."""

    def __init__(self, broker: dramatiq.Broker, inner: Consumer, queue_name: str) -> None:
        self.broker = broker
        self.inner = inner
        self.queue_name = queue_name
        self.consumed = canonical(queue_name)
        self.found: set[str] = set()
        """Redis entry ids this consumer found for messages not yet acknowledged: two entries
        with the same data must get one id each, or one is never acknowledged and runs again."""

    def __iter__(self) -> GuardedConsumer:
        return self

    def __next__(self) -> MessageProxy | None:
        message = next(self.inner)
        if message is not None:
            self.check(message)
            if "redis_message_id" not in message.options:
                # a message another client put on a Redis queue names no entry id: without
                # one dramatiq cannot acknowledge it, and it runs again at every restart
                self.found_redis_id(message)
        return message

    def check(self, proxy: MessageProxy) -> None:
        """Turn a message this queue must not run into a quarantine message, in place."""
        message: dramatiq.Message[Any] = proxy._message
        problem: tuple[str, str] | None = None
        if message.actor_name == UNREADABLE_ACTOR:
            record = message.args[0] if len(message.args) == 1 else None
            if isinstance(record, dict) and record.get("reason") in set(Reason):
                record["queue"] = self.consumed
                proxy._message = replace(message, queue_name=self.consumed)
                self.found_redis_id(proxy)
                return
            problem = (Reason.MALFORMED_MESSAGE, "a quarantine message that is not one")
        else:
            actor = self.broker.actors.get(message.actor_name)
            if actor is None:
                name = printable(message.actor_name, 64)
                problem = (Reason.UNKNOWN_ACTOR, f"no actor named {name} on {self.consumed}")
            elif not same_stage(canonical(actor.queue_name), self.consumed):
                problem = (
                    Reason.WRONG_QUEUE,
                    f"actor {actor.actor_name} consumes {actor.queue_name}, not {self.consumed}",
                )
            elif not same_stage(canonical(message.queue_name), self.consumed):
                problem = (
                    Reason.WRONG_QUEUE,
                    (
                        f"the message names queue {printable(message.queue_name, 64)}, "
                        f"it came from {self.consumed}"
                    ),
                )
        if problem is not None:
            fields = quarantine_fields(
                problem[0], problem[1], _as_data(message), salvage=message.asdict()
            )
            fields["args"][0]["queue"] = self.consumed
            fields["queue_name"] = self.consumed
            fields["options"] = {**fields["options"], **_kept_options(message)}
            fields["args"] = tuple(fields["args"])
            proxy._message = dramatiq.Message(**fields)
            self.found_redis_id(proxy)

    def found_redis_id(self, proxy: MessageProxy) -> None:
        """On Redis, make sure the message carries the entry id it is acknowledged by."""
        client = getattr(self.broker, "client", None)
        namespace = getattr(self.broker, "namespace", None)
        broker_id = getattr(self.broker, "broker_id", None)
        if client is None or namespace is None or broker_id is None:
            return
        acks = f"{namespace}:__acks__.{broker_id}.{self.queue_name}"
        given = proxy.options.get("redis_message_id")
        if isinstance(given, str) and given not in self.found and client.sismember(acks, given):
            return
        digest = proxy.options.get(RAW_SHA256)
        for member in client.smembers(acks):
            name = member.decode() if isinstance(member, bytes) else str(member)
            if name in self.found:
                continue
            data = client.hget(f"{namespace}:{self.queue_name}.msgs", member)
            if data is not None and hashlib.sha256(data).hexdigest() == digest:
                proxy.options["redis_message_id"] = name
                self.found.add(name)
                hold = getattr(self.inner, "hold", None)
                if hold is not None:  # a reclaiming consumer counts it as handed out
                    hold(proxy)
                return

    def ack(self, message: MessageProxy) -> None:
        """Acknowledge ``message``; or, when its retry could not be enqueued
        (``workers.acks.PutBackRetries``), put it back on its queue instead."""
        self.found.discard(message.options.get("redis_message_id", ""))
        if put_back_wanted(message) and not isinstance(self.broker, StubBroker):
            try:
                self.inner.requeue([message])
            except ConnectionClosed:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker away: dramatiq tries again
                raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
            return
        self.inner.ack(message)

    def nack(self, message: MessageProxy) -> None:
        self.found.discard(message.options.get("redis_message_id", ""))
        self.inner.nack(message)

    def requeue(self, messages: Any) -> None:
        self.inner.requeue(messages)

    def close(self) -> None:
        self.inner.close()


def _kept_options(message: dramatiq.Message[Any]) -> dict[str, Any]:
    kept = {}
    for name in ("redis_message_id", "retries", RAW_SHA256):
        if name in message.options:
            kept[name] = message.options[name]
    return kept


class GuardConsumers:
    """Mixed into a dramatiq broker: its consumers are :class:`GuardedConsumer`."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        """The broker's consumer of ``queue_name``, guarded."""
        inner = super().consume(queue_name, prefetch, timeout)  # type: ignore[misc]
        return GuardedConsumer(self, inner, queue_name)  # type: ignore[arg-type]


def record_quarantined(
    engine: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Any = None
) -> str:
    """The quarantine actor's work: record the message in ``rejected_messages``; returns the
    reason recorded. Its arguments are checked again: anyone may name this actor. With the
    process's ``settings``, a message of a queue that can carry answers is kept sealed."""
    from workers import rejections

    record = args[0] if len(args) == 1 and not kwargs else None
    if not isinstance(record, dict) or record.get("reason") not in set(Reason):
        record = {
            "reason": Reason.MALFORMED_MESSAGE,
            "detail": "a quarantine message that is not one",
            "body": printable(repr((args, kwargs)), 2000),
        }
    body = record.get("body")
    raw: bytes | None = None
    if isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    elif isinstance(record.get("body_base64"), str):
        try:
            raw = base64.b64decode(record["body_base64"])
        except ValueError:
            raw = None
    queue = record.get("queue")
    kept = None
    if raw is not None:
        if settings is not None and isinstance(queue, str):
            kept = rejections.keep_from_stage(raw, queue, settings)
        else:
            kept = rejections.keep(raw, authenticated=True)
    with engine.begin() as conn:
        rejections.record(
            conn,
            queue=queue if isinstance(queue, str) else "(unknown)",
            reason=str(record["reason"]),
            detail=str(record.get("detail") or ""),
            kept=kept,
        )
    return str(record["reason"])
