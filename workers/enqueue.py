"""The one way onto the pipeline's queues: an envelope for one lane of a stage's route.

Every enqueue of case records builds its message here: a stage's ``emit`` (``workers/stage.py``,
deferred notifications too), a chunk split into its records, a replay, and every producer
(the intake bridge and the HTTP API through ``admit``, ``omvant push``, the Python client, the
web console), so the queue, the actor and the lane of a message always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq

from contracts.envelope import Envelope
from contracts.registry import contract_of, envelope_for
from contracts.send_case import LATEST as LATEST_SEND_CASE
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from workers.queues import queue_name
from workers.routes import ROUTES, lane_for


def enqueue(
    broker: dramatiq.Broker,
    queue: str,
    actor_name: str,
    envelope: dict[str, object],
    *,
    prefix: str = "",
    delay_ms: int | None = None,
) -> None:
    """Put one envelope on a queue (a lane's, without prefix) for an actor, by name: a route's
    lane gives both (``enqueue(broker, *route.lane(lane), envelope)``)."""
    broker.enqueue(message_for(queue, actor_name, envelope, prefix=prefix), delay=delay_ms)


def message_for(
    queue: str, actor_name: str, envelope: dict[str, object], *, prefix: str = ""
) -> dramatiq.Message[Any]:
    """The dramatiq message carrying ``envelope`` to an actor on a queue (without prefix)."""
    return dramatiq.Message(
        queue_name=queue_name(queue, prefix),
        actor_name=actor_name,
        args=(envelope,),
        kwargs={},
        options={},
    )


def push_chunk(
    broker: dramatiq.Broker,
    requests: Sequence[SendCaseV2],
    *,
    correlation_id: str,
    prefix: str = "",
    batch_lane: int | None = None,
) -> None:
    """Put one chunk of SendCase requests on the intake lanes: urgent ones apart, the rest on
    the dispatch's bulk lane (``batch_lane``) or the normal lane."""
    for message in intake_messages(
        requests, correlation_id=correlation_id, prefix=prefix, batch_lane=batch_lane
    ):
        broker.enqueue(message)


def intake_messages(
    requests: Sequence[SendCaseV2],
    *,
    correlation_id: str,
    prefix: str = "",
    batch_lane: int | None = None,
) -> list[dramatiq.Message[Any]]:
    """The messages of ``push_chunk``: one per intake lane the requests take."""
    lanes: dict[str, list[SendCaseV2]] = {}
    for request in requests:
        lanes.setdefault(lane_for(request.priority, batch_lane), []).append(request)
    messages = []
    for lane, chosen in lanes.items():
        envelope = envelope_for(chosen, correlation_id=correlation_id)
        queue, actor_name = ROUTES[SEND_CASE].lane(lane)
        messages.append(
            message_for(queue, actor_name, envelope.model_dump(mode="json"), prefix=prefix)
        )
    return messages


_PLACEHOLDER: dict[str, Any] = {}
"""What stands for each record while the envelope is validated."""


def intake_message(
    records: Sequence[dict[str, Any]],
    case_ids: Sequence[str],
    *,
    lane: str,
    correlation_id: str,
    prefix: str = "",
) -> dramatiq.Message[Any]:
    """One intake message for records of the latest SendCase already validated and dumped in
    JSON mode (``producers.dispatch_records``), all of one lane, with their case ids.

    The envelope is validated as every envelope is, its payload by its length alone: what an
    envelope asks of each record (a dict with text keys) ``DispatchRecords`` made sure of, and
    checking it again per key cost 1 µs a case. The payload is the records themselves."""
    name, version = contract_of(LATEST_SEND_CASE)
    envelope = Envelope(
        contract=name,
        version=version,
        correlation_id=correlation_id,
        case_ids=list(case_ids),
        payload=[_PLACEHOLDER] * len(records),
    )
    data = envelope.model_dump(mode="json", exclude={"payload"})
    data["payload"] = list(records)
    queue, actor_name = ROUTES[SEND_CASE].lane(lane)
    return message_for(queue, actor_name, data, prefix=prefix)
