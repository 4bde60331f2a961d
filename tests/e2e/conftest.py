"""Fixtures of the end-to-end tests (the servers' own are in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.mid_batch import MidBatch


@pytest.fixture
def mid_batch(
    rabbitmq_url: str, postgres_url: str, queue_prefix: str, tmp_path: Path
) -> Iterator[MidBatch]:
    """A ``MidBatch`` on RabbitMQ and PostgreSQL in the test's folder; its engine disposed."""
    batch = MidBatch(rabbitmq_url, postgres_url, queue_prefix, tmp_path)
    yield batch
    if batch.engine is not None:
        batch.engine.dispose()
