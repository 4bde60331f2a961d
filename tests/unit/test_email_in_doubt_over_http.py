"""An in-doubt e-mail is settled by asking the e-mail API, through the real notification-sending
stage against the shipped e-mail API simulator over loopback HTTP: found, it is recorded sent
with no second e-mail; not found, it is sent once with the same key; an outage is retried, and
nothing is lost or left unconfirmed. With the API, ``OMVANT_EMAIL_IN_DOUBT`` never applies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker

from contracts.registry import envelope_for, parse
from tests.delivery_support import cleared_item, reachable_residents, store_cleared
from workers import notification_dispatch, notification_sending, sweep
from workers.actors import declare_actors
from workers.adapters.email_api_server import EmailApiSimulator
from workers.adapters.http_email_api import HttpEmailApi
from workers.adapters.notifiers import EmailSender, NotifierUnavailable, SimulatedSmsGateway
from workers.bootstrap import Context, build_context
from workers.queues import Queues, lane_queue, lanes_of
from workers.settings import Settings
from workers.store import notifications
from workers.store.engine import upgrade
from workers.store.notifications import Resolution
from workers.store.schema import cases

AFTERNOON = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)
LATER = AFTERNOON + dt.timedelta(minutes=5)  # past the in-flight limit (60 s) of any claim then


class Killed(BaseException):
    """The worker process dies (kill -9): nothing after this point runs in it."""


class DiesAroundTheSend(EmailSender):
    """The real HTTP sender, in a worker that dies just before its POST (``after=False``: the
    provider never saw it) or just after the provider took it (``after=True``), either way
    after the row was claimed and before its mark."""

    can_lookup = True

    def __init__(self, inner: HttpEmailApi, *, after: bool) -> None:
        self.inner = inner
        self.after = after

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        if self.after:
            self.inner.send(to=to, subject=subject, text=text, idempotency_key=idempotency_key)
        raise Killed

    def lookup(self, idempotency_key: str) -> str | None:
        return self.inner.lookup(idempotency_key)


@pytest.fixture
def provider() -> Iterator[EmailApiSimulator]:
    with EmailApiSimulator() as sim:
        yield sim


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path, provider: EmailApiSimulator) -> Iterator[Context]:
    upgrade(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        blob_dir=tmp_path / "blobs",
        email_api_url=provider.url,
        # the policy for e-mail that cannot be asked: it must never apply with the API
        email_in_doubt="at-most-once",
        send_concurrency=1,
    )
    broker = StubBroker()
    context = build_context(settings, broker)
    assert isinstance(context.email, HttpEmailApi)  # OMVANT_EMAIL_API_URL chose the API
    context.sms = SimulatedSmsGateway()
    context.now = lambda: AFTERNOON
    declare_actors(broker, lambda: context)
    yield context
    context.email.close()  # type: ignore[attr-defined]
    broker.close()
    context.engine.dispose()


def delivered(ctx: Context, case_ids: list[str]) -> list[dramatiq.Message[Any]]:
    """Cases cleared for e-mail only, through the inbox-delivery stage: the messages it emitted
    for notification sending."""
    residents = reachable_residents(ctx.settings.seed, len(case_ids), frozenset({"email"}))
    items = [
        cleared_item(c, p, channels=["email"]) for c, p in zip(case_ids, residents, strict=True)
    ]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    notification_dispatch.process(parse(envelope_for(items).model_dump(mode="json")), ctx)
    assert isinstance(ctx.broker, StubBroker)
    taken = []
    for lane in lanes_of(Queues.NOTIFICATION_SENDING):
        queue = ctx.broker.queues.get(lane_queue(Queues.NOTIFICATION_SENDING, lane))
        while queue is not None and not queue.empty():
            taken.append(dramatiq.Message.decode(queue.get()))
    assert taken
    return taken


def send(ctx: Context, messages: list[dramatiq.Message[Any]]) -> None:
    for message in messages:
        notification_sending.process(parse(message.args[0]), ctx)


def row(ctx: Context, case_id: str) -> notifications.Entry:
    with ctx.engine.connect() as conn:
        return notifications.entries_for(conn, [case_id])[f"{case_id}:email"]


def state(ctx: Context, case_id: str) -> str:
    with ctx.engine.connect() as conn:
        return str(conn.execute(sa.select(cases.c.state).where(cases.c.id == case_id)).scalar())


def posts(provider: EmailApiSimulator) -> int:
    return int(httpx.get(f"{provider.url}/v1/stats").json()["attempts"])


def crash_mid_send(ctx: Context, messages: list[dramatiq.Message[Any]], *, after: bool) -> None:
    """A worker claims the e-mail, (perhaps) gets it to the provider, and dies before the mark;
    then the clock moves past the in-flight limit, so the claim is in doubt."""
    assert isinstance(ctx.email, HttpEmailApi)
    api = ctx.email
    ctx.email = DiesAroundTheSend(api, after=after)
    with pytest.raises(Killed):
        send(ctx, messages)
    ctx.email = api
    ctx.now = lambda: LATER


def send_in_an_outage(
    ctx: Context, provider: EmailApiSimulator, messages: list[dramatiq.Message[Any]]
) -> None:
    """Send while the provider answers 5xx: the send raises (dramatiq retries the chunk
    later); then the provider is back."""
    provider.behave(fail_for=600)
    with pytest.raises(NotifierUnavailable):
        send(ctx, messages)
    provider.behave(fail_for=0)


def assert_notified_after_one_post(ctx: Context, provider: EmailApiSimulator, case_id: str) -> None:
    assert posts(provider) == 1
    assert state(ctx, case_id) == "notified"


def test_an_in_doubt_email_the_provider_took_is_recorded_sent_without_a_second_email(
    ctx: Context, provider: EmailApiSimulator
) -> None:
    messages = delivered(ctx, ["took-1"])
    crash_mid_send(ctx, messages, after=True)
    entry = row(ctx, "took-1")
    assert entry.status == notifications.PENDING  # claimed, taken, never marked: in doubt
    assert posts(provider) == 1
    send(ctx, messages)  # the redelivered chunk
    entry = row(ctx, "took-1")
    assert (entry.status, entry.resolution) == (notifications.SENT, Resolution.FOUND_AT_PROVIDER)
    assert entry.provider_ref == provider.messages()[0]["id"]
    assert posts(provider) == 1  # asked, not sent again
    assert state(ctx, "took-1") == "notified"


def test_an_in_doubt_email_the_provider_never_got_is_sent_once_with_the_same_key(
    ctx: Context, provider: EmailApiSimulator
) -> None:
    messages = delivered(ctx, ["lost-1"])
    crash_mid_send(ctx, messages, after=False)
    assert row(ctx, "lost-1").status == notifications.PENDING
    assert provider.messages() == []
    send(ctx, messages)
    send(ctx, messages)  # and again: still one e-mail
    entry = row(ctx, "lost-1")
    assert (entry.status, entry.resolution) == (notifications.SENT, Resolution.NOT_AT_PROVIDER)
    assert [m["key"] for m in provider.messages()] == ["lost-1:email"]
    # at-most-once would have left it unconfirmed, and the resident without a notice
    assert_notified_after_one_post(ctx, provider, "lost-1")


def test_an_email_api_outage_is_retried_and_nothing_is_lost(
    ctx: Context, provider: EmailApiSimulator
) -> None:
    messages = delivered(ctx, ["down-1"])
    send_in_an_outage(ctx, provider, messages)
    entry = row(ctx, "down-1")
    assert entry.status == notifications.RETRY  # certainly not taken: sent again later
    assert provider.messages() == []
    send(ctx, messages)
    assert row(ctx, "down-1").status == notifications.SENT
    assert_notified_after_one_post(ctx, provider, "down-1")


def test_an_in_doubt_email_met_by_an_outage_stays_in_doubt_until_the_provider_answers(
    ctx: Context, provider: EmailApiSimulator
) -> None:
    messages = delivered(ctx, ["down-2"])
    crash_mid_send(ctx, messages, after=True)
    send_in_an_outage(ctx, provider, messages)  # the lookup could not be answered: retried
    entry = row(ctx, "down-2")
    assert (entry.status, entry.resolution) == (notifications.PENDING, None)  # not given up
    send(ctx, messages)
    entry = row(ctx, "down-2")
    assert (entry.status, entry.resolution) == (notifications.SENT, Resolution.FOUND_AT_PROVIDER)
    assert_notified_after_one_post(ctx, provider, "down-2")


def test_an_in_doubt_email_whose_message_was_lost_is_settled_by_the_sweep_asking(
    ctx: Context, provider: EmailApiSimulator
) -> None:
    messages = delivered(ctx, ["swept-1", "swept-2"])
    crash_mid_send(ctx, messages, after=True)  # swept-1 taken; swept-2 never claimed
    # the chunk is not redelivered (say, lost with the broker): the sweep finds the rows
    ctx.now = lambda: LATER + dt.timedelta(minutes=10)  # past the sweep's limits too
    counts = sweep.run(ctx)
    assert counts["notifications-found-at-provider"] == 1
    taken = row(ctx, "swept-1")
    assert (taken.status, taken.resolution) == (notifications.SENT, Resolution.FOUND_AT_PROVIDER)
    assert counts["stalled-notifications"] == 1  # swept-2, re-driven onto its queue
    assert [m["key"] for m in provider.messages()] == ["swept-1:email"]
    assert posts(provider) == 1  # asked about, not sent again
    assert state(ctx, "swept-1") == "notified"
