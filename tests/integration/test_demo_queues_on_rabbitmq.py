"""``omvant demo --broker amqp://...`` leaves none of its own ``demo-<hex>-`` queues on the
shared RabbitMQ, whether it finishes or is stopped (Ctrl-C), and no other prefix's."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from producers.demo import run_demo
from workers.inbox_events_bridge import exchange_name
from workers.queues import all_queues
from workers.settings import Settings

pytestmark = pytest.mark.integration


def exists(url: str, name: str, *, exchange: bool = False) -> bool:
    """Whether the queue (or exchange) ``name`` is on the server: a passive declare, on a
    connection of its own (a 404 closes the channel)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        if exchange:
            channel.exchange_declare(name, passive=True)
        else:
            channel.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return False
    finally:
        if connection.is_open:
            connection.close()
    return True


def demo_names(prefix: str) -> list[str]:
    """Every queue the demo declares: each stage lane's with its delay and dead-letter queue,
    and the inbox-events bridge's."""
    return [f"{prefix}{q}{s}" for q in all_queues() for s in ("", ".DQ", ".XQ")] + [
        f"{prefix}inbox-events"
    ]


NEIGHBOUR = f"demo-{secrets.token_hex(4)}-message-composition"
"""Another demo's queue on the same server."""


@pytest.fixture
def demo_settings(rabbitmq_url: str, tmp_path: Path) -> Iterator[Settings]:
    """The demo on RabbitMQ under a prefix of its own, beside another demo's queue."""
    settings = Settings(
        broker_url=rabbitmq_url,
        database_url=f"sqlite:///{tmp_path}/o.db",
        blob_dir=tmp_path / "b",
        queue_prefix=f"demo-{secrets.token_hex(4)}-",
    )
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    connection.channel().queue_declare(NEIGHBOUR, durable=True)
    yield settings
    channel = connection.channel()
    for name in [NEIGHBOUR, *demo_names(settings.queue_prefix)]:
        channel.queue_delete(name)
    channel.exchange_delete(exchange_name(settings))
    connection.close()


def test_the_demo_deletes_its_own_queues_when_it_finishes(demo_settings: Settings) -> None:
    url, prefix = demo_settings.broker_url, demo_settings.queue_prefix
    seen: dict[str, bool] = {}

    def while_running(_ctx: Any, _summary: dict[str, Any]) -> None:
        seen.update({name: exists(url, name) for name in demo_names(prefix)})
        seen["exchange"] = exists(url, exchange_name(demo_settings), exchange=True)

    summary = run_demo(demo_settings, count=20, then=while_running)
    assert summary["in_flight"] == 0
    assert seen and all(seen.values()), "declared while it ran: " + str(
        [n for n, there in seen.items() if not there]
    )
    left = [name for name in demo_names(prefix) if exists(url, name)]
    assert left == [], "the demo left its queues on RabbitMQ"
    assert not exists(url, exchange_name(demo_settings), exchange=True)
    assert exists(url, NEIGHBOUR), "another prefix's queue is kept"


def test_the_demo_deletes_its_own_queues_when_stopped(demo_settings: Settings) -> None:
    url, prefix = demo_settings.broker_url, demo_settings.queue_prefix

    def ctrl_c(_ctx: Any, _summary: dict[str, Any]) -> None:
        assert exists(url, f"{prefix}message-composition")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_demo(demo_settings, count=5, then=ctrl_c)
    left = [name for name in demo_names(prefix) if exists(url, name)]
    assert left == [], "a stopped demo left its queues on RabbitMQ"
    assert exists(url, NEIGHBOUR), "another prefix's queue is kept"
