"""The tolerant AMQP property decoder reads what py-amqp reads; keeps the bytes it raises on."""

from __future__ import annotations

import struct

import amqp.serialization
import pytest
from amqp.basic_message import Message

from workers.amqp_properties import Undecodable, decode_properties_basic, undecodable

EVERY_PROPERTY = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "application_headers": {"omvant-key-id": "journal-a", "n": 7, "raw": b"\xff"},
    "delivery_mode": 2,
    "priority": 5,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "expiration": "60000",
    "message_id": "ref-Åsa-1",
    "timestamp": 1_764_000_000,
    "type": "send-case",
    "user_id": "guest",
    "app_id": "journal",
    "cluster_id": "c1",
}


def encoded(**properties: object) -> bytes:
    return bytes(Message(b"", **properties)._serialize_properties())


@pytest.mark.parametrize("names", [list(EVERY_PROPERTY), ["message_id"], ["timestamp", "app_id"]])
def test_valid_properties_read_as_py_amqp_reads_them(names: list[str]) -> None:
    raw = encoded(**{n: EVERY_PROPERTY[n] for n in names})
    assert decode_properties_basic(raw, 0) == amqp.serialization.decode_properties_basic(raw, 0)


def test_a_property_that_is_not_utf8_is_kept_as_bytes_and_the_rest_still_read() -> None:
    raw = encoded(message_id="M" * 3, app_id="journal", correlation_id="c")
    raw = raw.replace(b"MMM", b"\xff\xfeM")
    with pytest.raises(UnicodeDecodeError):
        amqp.serialization.decode_properties_basic(raw, 0)
    properties, offset = decode_properties_basic(raw, 0)
    assert offset == len(raw)
    assert properties["message_id"] == b"\xff\xfeM"
    assert isinstance(properties["message_id"], Undecodable)
    assert properties["app_id"] == "journal"
    assert properties["correlation_id"] == "c"
    assert undecodable(properties) == ["message_id"]


def test_the_flags_decide_which_properties_are_read() -> None:
    raw = struct.pack(">H", 0x0080) + bytes([2]) + b"\xc3("
    properties, _ = decode_properties_basic(raw, 0)
    assert list(properties) == ["message_id"]
    assert undecodable(properties) == ["message_id"]
