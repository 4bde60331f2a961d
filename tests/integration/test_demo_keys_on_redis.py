"""``omvant demo --broker redis://...`` leaves none of its own keys on the shared Redis: the
stage queues' (dramatiq's) and the inbox-events bridge's (kombu's bindings of its exchange),
and keeps another prefix's."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import redis

from producers.demo import run_demo
from workers.settings import Settings

pytestmark = pytest.mark.integration


def demo_keys(client: Any, prefix: str) -> list[str]:
    """Every key naming the demo's prefix, dramatiq's and kombu's."""
    return sorted(k.decode() for k in client.scan_iter(match=f"*{prefix}*"))


def test_the_demo_deletes_its_own_keys_on_redis(redis_url: str, tmp_path: Path) -> None:
    prefix = f"demo-{secrets.token_hex(4)}-"
    settings = Settings(
        broker_url=redis_url,
        database_url=f"sqlite:///{tmp_path}/o.db",
        blob_dir=tmp_path / "b",
        queue_prefix=prefix,
    )
    client = redis.Redis.from_url(redis_url)
    neighbour = f"_kombu.binding.demo-{secrets.token_hex(4)}-omvant.inbox-events"
    client.sadd(neighbour, "another demo's binding")
    seen: list[str] = []

    def while_running(_ctx: Any, _summary: dict[str, Any]) -> None:
        seen.extend(demo_keys(client, prefix))

    try:
        summary = run_demo(settings, count=20, then=while_running)
        assert summary["in_flight"] == 0
        assert any(k.startswith("_kombu.binding.") for k in seen), seen  # the bridge's, then
        assert demo_keys(client, prefix) == [], "the demo left its keys on Redis"
        assert client.exists(neighbour), "another prefix's key is kept"
    finally:
        client.delete(neighbour, *demo_keys(client, prefix))
        client.close()
