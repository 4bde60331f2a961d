"""Putting SendCase requests on the intake queue from Python (``omvant push`` uses this)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
from pydantic import ValidationError

from contracts.registry import VERSIONS, latest_version, upcast
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from workers.queues import queue_name
from workers.routes import ROUTES, lane_for


@dataclass(frozen=True)
class LineError:
    """A line of a JSONL file that is not a valid SendCase."""

    line: int
    reason: str
    detail: str


def read_send_cases(
    lines: Iterable[str], *, version: int | None = None
) -> Iterator[SendCaseV2 | LineError]:
    """Parse JSONL lines as SendCase records of ``version`` (the latest by default)."""
    version = version or latest_version(SEND_CASE)
    model = VERSIONS[SEND_CASE].get(version)
    if model is None:
        raise ValueError(f"SendCase has versions {sorted(VERSIONS[SEND_CASE])}")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            model.model_validate(record)
            yield SendCaseV2.model_validate(upcast(SEND_CASE, version, record))
        except json.JSONDecodeError as exc:
            yield LineError(number, "malformed-message", f"not JSON: {exc.msg}")
        except RecursionError:
            yield LineError(number, "malformed-message", "not JSON: nested too deep")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            yield LineError(number, "invalid-payload", f"{where}: {first['msg']}")
        except (TypeError, AttributeError):
            yield LineError(number, "invalid-payload", "a line must be a JSON object")


def chunk_message(
    requests: Sequence[SendCaseV2],
    *,
    correlation_id: str,
    lane: str,
    prefix: str = "",
) -> dramatiq.Message[Any]:
    """One intake message for ``requests`` on ``lane`` of the recipient-validation stage."""
    from contracts.registry import envelope_for

    queue, actor_name = ROUTES[SEND_CASE].lane(lane)
    envelope = envelope_for(
        requests, correlation_id=correlation_id, case_ids=[r.resolved_case_id() for r in requests]
    )
    return dramatiq.Message(
        queue_name=queue_name(queue, prefix),
        actor_name=actor_name,
        args=(envelope.model_dump(mode="json"),),
        kwargs={},
        options={},
    )


def push_chunk(
    broker: dramatiq.Broker,
    requests: list[SendCaseV2],
    *,
    correlation_id: str,
    prefix: str = "",
    batch_lane: int | None = None,
) -> None:
    """Put one chunk of requests on the intake lanes: urgent ones apart, the rest on the
    dispatch's bulk lane (``batch_lane``) or the normal lane."""
    lanes: dict[str, list[SendCaseV2]] = {}
    for request in requests:
        lanes.setdefault(lane_for(request.priority, batch_lane), []).append(request)
    for lane, chosen in lanes.items():
        broker.enqueue(
            chunk_message(chosen, correlation_id=correlation_id, lane=lane, prefix=prefix)
        )
