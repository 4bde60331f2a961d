"""The one way onto the pipeline's queues: an envelope for one lane of a stage's route.

Every enqueue of case records builds its message here: a stage's ``emit`` (``workers/stage.py``,
deferred notifications too), a chunk split into its records, a replay, and every producer
(the intake bridge and the HTTP API through ``admit``, ``omvant push``, the Python client, the
web console), so the queue, the actor and the lane of a message always agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq

from contracts.registry import envelope_for
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
    broker.enqueue(
        dramatiq.Message(
            queue_name=queue_name(queue, prefix),
            actor_name=actor_name,
            args=(envelope,),
            kwargs={},
            options={},
        ),
        delay=delay_ms,
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
    lanes: dict[str, list[SendCaseV2]] = {}
    for request in requests:
        lanes.setdefault(lane_for(request.priority, batch_lane), []).append(request)
    for lane, chosen in lanes.items():
        envelope = envelope_for(chosen, correlation_id=correlation_id)
        queue, actor_name = ROUTES[SEND_CASE].lane(lane)
        enqueue(broker, queue, actor_name, envelope.model_dump(mode="json"), prefix=prefix)
