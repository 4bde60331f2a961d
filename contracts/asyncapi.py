"""The AsyncAPI 3 document of Omvänt's doors for other systems: the intake (AMQP exchange and
Redis stream), the intake's rejects, and the inbox-events exchange. Pure data, built from the
contracts, so a team can generate a client from it; ``omvant contracts export --asyncapi``
writes it (``docs/asyncapi.yaml``).

Every message names its contract and version; its payload is the version's JSON Schema with
its ``$defs`` written in place, so each payload stands alone.
"""

from __future__ import annotations

import copy
from typing import Any

from contracts.inbox_event import NAME as INBOX_EVENT
from contracts.inbox_event import InboxEventV1
from contracts.registry import VERSIONS
from contracts.schemas import closed_pattern_properties
from contracts.send_case import NAME as SEND_CASE
from contracts.status_callback import StatusCallback
from contracts.text import stating_text_rules

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1"
MAX_RECORDS = 1000
SCHEMA_FORMAT = "application/schema+json;version=draft-07"

INTAKE = "omvant.intake"
INTAKE_REJECTS = "omvant.intake.rejects"
INBOX_EVENTS = "omvant.inbox-events"

REJECT_REASONS = (
    "signature-missing",
    "signature-invalid",
    "unknown-key-id",
    "contract-version-missing",
    "unknown-contract-version",
    "malformed-message",
    "invalid-payload",
    "clinic-not-allowed",
)
"""What the intake bridge refuses messages for (``workers.intake_bridge``)."""

INTAKE_REJECT_SCHEMA: dict[str, Any] = {
    "title": "IntakeRejected",
    "type": "object",
    "required": ["reason", "error", "headers", "rejected_at"],
    "properties": {
        "reason": {"type": "string", "enum": list(REJECT_REASONS)},
        "error": {
            "type": "object",
            "required": ["field", "rule", "message"],
            "properties": {
                "field": {"type": "string"},
                "rule": {"type": "string"},
                "message": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "headers": {
            "type": "object",
            "description": "The message's headers, without the signature.",
            "additionalProperties": {"type": "string"},
        },
        "body": {"type": "string", "description": "The original body, exactly (UTF-8)."},
        "body_base64": {
            "type": "string",
            "description": "The original body, base64, when it is not UTF-8.",
        },
        "rejected_at": {"type": "string", "format": "date-time"},
        "authenticated": {"type": "boolean", "description": "Whether the sender's signature held."},
        "body_kept": {"type": "boolean", "description": "Whether the whole body is kept."},
        "excerpt": {"type": "string", "description": "The start of a body not kept whole."},
        "sha256": {"type": "string", "description": "The sha256 of the original body."},
        "size": {"type": "integer", "minimum": 0, "description": "The body's size in bytes."},
        "reference": {
            "type": ["string", "null"],
            "description": "The producer's own id of the message (its message-id), bounded, "
            "identity numbers masked; null when it gave none.",
        },
    },
    "additionalProperties": False,
}
"""A record on ``omvant.intake.rejects`` (``workers.intake_bridge.reject_record``)."""


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``#/$defs/X`` reference replaced by the definition itself (the
    contracts have no recursive types)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **rest})
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result: dict[str, Any] = closed_pattern_properties(walk(schema))
    return result


def _intake_headers(version: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["omvant-key-id", "omvant-signature", "omvant-contract-version"],
        "properties": {
            "omvant-key-id": {"type": "string", "description": "The integration's key id."},
            "omvant-signature": {
                "type": "string",
                "pattern": "^(sha256=)?[0-9a-fA-F]{64}$",
                "description": "Hex HMAC-SHA256 of the exact body bytes under the signing key.",
            },
            "omvant-contract-version": {"type": "string", "const": str(version)},
        },
    }


def _send_case_message(version: int, model: Any) -> dict[str, Any]:
    record = inline_defs(model.model_json_schema())
    return {
        "name": f"{SEND_CASE}.v{version}",
        "title": f"{SEND_CASE} version {version}",
        "summary": "One SendCase record, or a JSON array of 1 to 1,000, signed by the sender.",
        "contentType": "application/json",
        "headers": _intake_headers(version),
        "payload": {
            "schemaFormat": SCHEMA_FORMAT,
            "schema": {
                "oneOf": [
                    record,
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_RECORDS,
                        "items": copy.deepcopy(record),
                    },
                ]
            },
        },
        "x-omvant-contract": SEND_CASE,
        "x-omvant-version": version,
    }


def _inbox_event_message() -> dict[str, Any]:
    return {
        "name": f"{INBOX_EVENT}.v1",
        "title": f"{INBOX_EVENT} version 1",
        "summary": "A resident opened or answered the message of one case.",
        "contentType": "application/json",
        "payload": {
            "schemaFormat": SCHEMA_FORMAT,
            "schema": inline_defs(InboxEventV1.model_json_schema()),
        },
        "x-omvant-contract": INBOX_EVENT,
        "x-omvant-version": 1,
    }


def _status_callback_message() -> dict[str, Any]:
    return {
        "name": "StatusCallback.v1",
        "title": "A case's state changed",
        "summary": "POSTed to the integration's webhook: ids, clinic, event, reason code; never "
        "a personnummer, the message, or an answer or its kind.",
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "required": ["Omvant-Signature", "Omvant-Event-Id", "Idempotency-Key"],
            "properties": {
                "Omvant-Signature": {
                    "type": "string",
                    "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$",
                    "description": 'HMAC-SHA256 of "<t>." + body under the key\'s signing key.',
                },
                "Omvant-Event-Id": {"type": "string"},
                "Idempotency-Key": {"type": "string", "description": "The event id."},
            },
        },
        "payload": {
            "schemaFormat": SCHEMA_FORMAT,
            "schema": inline_defs(StatusCallback.model_json_schema()),
        },
        "bindings": {"http": {"bindingVersion": "0.3.0"}},
        "x-omvant-contract": "StatusCallback",
        "x-omvant-version": 1,
    }


def _reject_message() -> dict[str, Any]:
    return {
        "name": "IntakeRejected.v1",
        "title": "A refused intake message",
        "summary": "Why a message was refused, with its original body.",
        "contentType": "application/json",
        "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": INTAKE_REJECT_SCHEMA},
        "x-omvant-contract": "IntakeRejected",
        "x-omvant-version": 1,
    }


PERSISTENT = {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}}
"""Messages are published persistent (AMQP delivery mode 2)."""


def _exchange(name: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": name, "type": "topic", "durable": True, "autoDelete": False},
            "bindingVersion": "0.3.0",
        }
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3 document; its schemas state the contracts' text rules as ``pattern``."""
    with stating_text_rules():
        return _document()


def _document() -> dict[str, Any]:
    send_case = {
        f"sendCaseV{v}": _send_case_message(v, model)
        for v, model in sorted(VERSIONS[SEND_CASE].items())
    }

    def refs() -> dict[str, Any]:
        return {name: {"$ref": f"#/components/messages/{name}"} for name in send_case}

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Omvänt queues",
            "version": DOCUMENT_VERSION,
            "description": "How other systems put cases on Omvänt's intake (AMQP or a Redis "
            "stream), read what the intake refused, and publish inbox events. Names are as "
            "deployed with an empty OMVANT_QUEUE_PREFIX; see docs/intake.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ (OMVANT_BROKER_URL=amqp://...)",
            },
            "redis": {
                "host": "localhost:6379",
                "protocol": "redis",
                "description": "Redis (OMVANT_BROKER_URL=redis://...)",
            },
        },
        "channels": {
            "intakeExchange": {
                "address": INTAKE,
                "title": "The intake exchange",
                "description": "Topic exchange; any routing key (`<integration>.send-case`).",
                "servers": [{"$ref": "#/servers/rabbitmq"}],
                "messages": refs(),
                "bindings": _exchange(INTAKE),
            },
            "intakeStream": {
                "address": INTAKE,
                "title": "The intake stream",
                "description": "Redis stream: XADD with the body in the field `body` and the "
                "headers as fields of the same names.",
                "servers": [{"$ref": "#/servers/redis"}],
                "messages": refs(),
            },
            "intakeRejects": {
                "address": INTAKE_REJECTS,
                "title": "What the intake refused",
                "description": "Durable queue (AMQP) or stream, field `body` (Redis).",
                "messages": {"intakeRejected": {"$ref": "#/components/messages/intakeRejected"}},
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {"name": INTAKE_REJECTS, "durable": True, "exclusive": False},
                        "bindingVersion": "0.3.0",
                    }
                },
            },
            "statusCallbacks": {
                "address": "{webhookUrl}",
                "title": "Status callbacks (webhooks, HTTP)",
                "description": "The integration's webhook URL (`omvant api-keys create "
                "--webhook-url`); events `case.delivered`, `case.notified`, `case.read`, "
                "`case.answered`, `case.rejected`, `case.failed`. Answer 2xx; anything else is "
                "retried with backoff (docs/api.md).",
                "parameters": {"webhookUrl": {"description": "The key's webhook URL."}},
                "messages": {"statusCallback": {"$ref": "#/components/messages/statusCallback"}},
            },
            "inboxEvents": {
                "address": INBOX_EVENTS,
                "title": "The inbox's events",
                "description": "Topic exchange; routing keys `inbox.opened`, `inbox.answered`.",
                "servers": [{"$ref": "#/servers/rabbitmq"}],
                "messages": {"inboxEventV1": {"$ref": "#/components/messages/inboxEventV1"}},
                "bindings": _exchange(INBOX_EVENTS),
            },
        },
        "operations": {
            "publishToIntake": {
                "action": "send",
                "title": "An integration sends cases (AMQP)",
                "channel": {"$ref": "#/channels/intakeExchange"},
                "bindings": PERSISTENT,
                "messages": [
                    {"$ref": f"#/channels/intakeExchange/messages/{name}"} for name in send_case
                ],
            },
            "addToIntakeStream": {
                "action": "send",
                "title": "An integration sends cases (Redis)",
                "channel": {"$ref": "#/channels/intakeStream"},
                "messages": [
                    {"$ref": f"#/channels/intakeStream/messages/{name}"} for name in send_case
                ],
            },
            "readRejects": {
                "action": "receive",
                "title": "On-call or the integration reads what was refused",
                "channel": {"$ref": "#/channels/intakeRejects"},
                "messages": [{"$ref": "#/channels/intakeRejects/messages/intakeRejected"}],
            },
            "receiveStatusCallback": {
                "action": "receive",
                "title": "The integration receives its cases' status callbacks",
                "channel": {"$ref": "#/channels/statusCallbacks"},
                "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
                "messages": [{"$ref": "#/channels/statusCallbacks/messages/statusCallback"}],
            },
            "publishInboxEvent": {
                "action": "send",
                "title": "The inbox tells of an opened or answered message",
                "channel": {"$ref": "#/channels/inboxEvents"},
                "bindings": PERSISTENT,
                "messages": [{"$ref": "#/channels/inboxEvents/messages/inboxEventV1"}],
            },
        },
        "components": {
            "messages": {
                **send_case,
                "intakeRejected": _reject_message(),
                "inboxEventV1": _inbox_event_message(),
                "statusCallback": _status_callback_message(),
            }
        },
    }
