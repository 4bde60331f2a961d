"""AMQP basic properties read without failing on a publisher's bytes.

py-amqp decodes each short-string property of a message (``content_type``, ``message_id``,
``correlation_id`` ...) as strict UTF-8 while it reads the frame. A publisher may send any
bytes there; py-amqp then raises inside ``drain_events``, the message is never handed over,
and after the reconnect RabbitMQ gives the same message first again: one message stops the
door. :func:`install` puts a decoder in py-amqp's place that reads the same wire layout and
keeps a property that is not UTF-8 as :class:`Undecodable` bytes, so the door receives the
message and refuses it with ``header-undecodable`` (``workers/intake_bridge.py``).
"""

from __future__ import annotations

from struct import unpack_from
from typing import Any

import amqp.serialization
from amqp.spec import Basic

_SHORT_STRINGS = (
    (0x8000, "content_type"),
    (0x4000, "content_encoding"),
)
_AFTER_HEADERS = (
    (0x0400, "correlation_id"),
    (0x0200, "reply_to"),
    (0x0100, "expiration"),
    (0x0080, "message_id"),
)
_AFTER_TIMESTAMP = (
    (0x0020, "type"),
    (0x0010, "user_id"),
    (0x0008, "app_id"),
    (0x0004, "cluster_id"),
)


class Undecodable(bytes):
    """A property's bytes that are not UTF-8, as the publisher sent them."""


def _short(buf: Any, offset: int) -> tuple[str | Undecodable, int]:
    (length,) = unpack_from(">B", buf, offset)
    offset += 1
    raw = bytes(buf[offset : offset + length])
    try:
        value: str | Undecodable = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = Undecodable(raw)
    return value, offset + length


def decode_properties_basic(buf: Any, offset: int) -> tuple[dict[str, Any], int]:
    """py-amqp's ``decode_properties_basic`` with short strings that may be any bytes."""
    properties: dict[str, Any] = {}
    (flags,) = unpack_from(">H", buf, offset)
    offset += 2
    for flag, name in _SHORT_STRINGS:
        if flags & flag:
            properties[name], offset = _short(buf, offset)
    if flags & 0x2000:
        table, offset = amqp.serialization.loads("F", buf, offset)
        (properties["application_headers"],) = table
    if flags & 0x1000:
        (properties["delivery_mode"],) = unpack_from(">B", buf, offset)
        offset += 1
    if flags & 0x0800:
        (properties["priority"],) = unpack_from(">B", buf, offset)
        offset += 1
    for flag, name in _AFTER_HEADERS:
        if flags & flag:
            properties[name], offset = _short(buf, offset)
    if flags & 0x0040:
        (properties["timestamp"],) = unpack_from(">Q", buf, offset)
        offset += 8
    for flag, name in _AFTER_TIMESTAMP:
        if flags & flag:
            properties[name], offset = _short(buf, offset)
    return properties, offset


def undecodable(properties: dict[str, Any]) -> list[str]:
    """The names of the properties that are not UTF-8 text."""
    return [name for name, value in properties.items() if isinstance(value, Undecodable)]


def install() -> None:
    """Read basic properties with :func:`decode_properties_basic` in this process."""
    amqp.serialization.PROPERTY_CLASSES[Basic.CLASS_ID] = decode_properties_basic
