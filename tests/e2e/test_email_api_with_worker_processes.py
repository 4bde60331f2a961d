"""E-mail through the e-mail API, with real ``omvant worker`` processes on RabbitMQ and
PostgreSQL, one of them killed (``kill -9``) while a batch of e-mails is in flight: residents
whose only channel is e-mail each get exactly one e-mail, the in-doubt ones settled by asking
the provider, even under ``OMVANT_EMAIL_IN_DOUBT=at-most-once`` (which over SMTP leaves them
without one)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.mid_batch import MidBatch, sent
from workers.adapters.email_api_server import EmailApiSimulator
from workers.store.notifications import Resolution

pytestmark = pytest.mark.e2e

CASES = 8


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[EmailApiSimulator]:
    with EmailApiSimulator(store=tmp_path / "email.sqlite3", token="e2e-token") as sim:
        yield sim


def test_killing_a_worker_mid_batch_leaves_every_resident_exactly_one_email(
    mid_batch: MidBatch, provider: EmailApiSimulator
) -> None:
    keys = mid_batch.clear(CASES, "email")
    env = mid_batch.env(
        OMVANT_EMAIL_API_URL=provider.url,
        OMVANT_EMAIL_API_TOKEN="e2e-token",
        OMVANT_EMAIL_IN_DOUBT="at-most-once",  # must not matter: the API is asked
        OMVANT_SEND_CONCURRENCY="4",
    )
    mid_batch.kill_while_slow(env, provider, delay=2.0, when=lambda: len(provider.messages()) >= 2)
    in_doubt = mid_batch.in_doubt()
    # the chunk's e-mails went as one batch (the API's batch endpoint): that batch is in doubt
    assert len(in_doubt) == CASES, mid_batch.statuses()
    found = mid_batch.recover(env, sent)
    resolutions = {r.key: r.resolution for r in found if r.key in in_doubt}
    # every in-doubt e-mail was settled by asking: the provider had it (taken before the kill)
    assert set(resolutions.values()) <= {Resolution.FOUND_AT_PROVIDER, Resolution.NOT_AT_PROVIDER}
    assert Resolution.FOUND_AT_PROVIDER in resolutions.values()
    assert all(r.resolution is None for r in found if r.key not in in_doubt)
    # at the provider: one e-mail per resident, and never a second POST for one it had
    taken = Counter(str(m["key"]) for m in provider.messages())
    assert taken == Counter({f"{k}:email": 1 for k in keys})
    stats = httpx.get(f"{provider.url}/v1/stats").json()
    assert stats == {"attempts": CASES, "distinct": CASES, "duplicates_refused": 0}
