"""Notification sending with the SMS gateway's batch endpoint: a chunk's SMS claimed in one
transaction, sent in one request, their answers recorded in one; each recipient's answer
recorded as it says (sent, refused with its reason, retried); a crash between the send and
the mark settled by asking the gateway by key; the rate limit's turns taken before a claim."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa

from tests.delivery_support import (
    cleared_item,
    reachable_residents,
    sending_context,
    store_cleared,
)
from tests.unit.test_notification_dispatch import (
    STOCKHOLM_AFTERNOON,
    KilledMidChunk,
    deliver,
    send,
    state,
)
from workers import notification_sending
from workers.adapters.http_sms_gateway import HttpSmsGateway
from workers.adapters.notifiers import (
    ChannelRateLimits,
    NotifierUnavailable,
    Recipient,
    SendAnswer,
    SimulatedSmsGateway,
)
from workers.adapters.sms_gateway_server import SmsGatewaySimulator
from workers.bootstrap import Context
from workers.rate_limit import in_process_limiter
from workers.store import notifications
from workers.store.notifications import Resolution


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    with sending_context(sqlite_url, tmp_path, lambda: STOCKHOLM_AFTERNOON) as context:
        yield context


class CountingGateway(SimulatedSmsGateway):
    """Counts batch requests; optionally dies (the worker is killed) after its ``dies_on``-th
    batch was taken, before the answer is back; ``unmarked`` counts, at each batch, the SMS
    taken before that are not yet recorded sent."""

    def __init__(self, ctx: Context | None = None, dies_on: int | None = None) -> None:
        super().__init__()
        self.ctx, self.dies_on = ctx, dies_on
        self.batches: list[int] = []
        self.unmarked: list[int] = []

    def send_batch(self, *, text: str, recipients: Sequence[Recipient]) -> list[SendAnswer]:
        if self.ctx is not None and self.sends:
            with self.ctx.engine.connect() as conn:
                found = notifications.entries(conn, list(self.sends))
            self.unmarked.append(sum(e.status != notifications.SENT for e in found.values()))
        self.batches.append(len(recipients))
        answers = super().send_batch(text=text, recipients=recipients)
        if len(self.batches) == self.dies_on:
            raise KilledMidChunk
        return answers


def sms_cases(ctx: Context, prefix: str, count: int, channel: str = "sms") -> list[str]:
    """Deliver ``count`` cases notified on ``channel`` alone; their notification keys."""
    return sms_chunk(ctx, prefix, count, channel)[0]


def sms_chunk(
    ctx: Context, prefix: str, count: int, channel: str = "sms"
) -> tuple[list[str], list[dramatiq.Message[Any]]]:
    """Deliver ``count`` cases notified on ``channel`` alone; their notification keys and the
    sending messages."""
    residents = reachable_residents(ctx.settings.seed, count, frozenset({channel}))
    items = [cleared_item(f"{prefix}-{i}", p, channels=[channel]) for i, p in enumerate(residents)]
    with ctx.engine.begin() as conn:
        store_cleared(conn, items)
    messages = deliver(ctx, items)
    return [f"{prefix}-{i}:{channel}" for i in range(count)], messages


def rows(ctx: Context, keys: list[str]) -> dict[str, notifications.Entry]:
    with ctx.engine.connect() as conn:
        return notifications.entries(conn, keys)


def test_a_chunks_sms_go_in_one_request_claimed_in_one_commit_and_marked_in_one(
    ctx: Context,
) -> None:
    keys = sms_cases(ctx, "batch", 10)
    ctx.sms = gateway = CountingGateway()
    commits: list[int] = []
    sa.event.listen(ctx.engine, "commit", lambda _conn: commits.append(1))
    outcome = notification_sending.send_notifications(ctx, keys)
    assert gateway.batches == [10]
    assert len(commits) == 2  # the claim of the batch; its ten answers
    assert len(outcome.sent) == 10
    assert {e.status for e in rows(ctx, keys).values()} == {notifications.SENT}


def test_batches_are_capped_and_each_batch_is_recorded_before_the_next_is_sent(
    ctx: Context,
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"sms_batch_size": 4})
    keys = sms_cases(ctx, "capped", 10)
    ctx.sms = gateway = CountingGateway(ctx)
    notification_sending.send_notifications(ctx, keys)
    assert gateway.batches == [4, 4, 2]
    assert gateway.unmarked == [0, 0]  # the batch before is recorded with the next claim
    assert {e.status for e in rows(ctx, keys).values()} == {notifications.SENT}


def test_a_partly_taken_batch_over_http_marks_each_recipient_as_the_gateway_answered(
    ctx: Context, sms_simulator: SmsGatewaySimulator
) -> None:
    keys, chunk = sms_chunk(ctx, "part", 8)
    before = rows(ctx, keys)
    refused_number, later_number = before[keys[0]].address, before[keys[1]].address
    assert refused_number and later_number and refused_number != later_number
    sms_simulator.behave(refuse=[refused_number], unavailable=[later_number])
    ctx.sms = HttpSmsGateway(sms_simulator.url)
    messages = [f"part-{i}" for i in range(8)]
    with pytest.raises(NotifierUnavailable):  # the unavailable ones: the chunk is retried
        send(ctx, chunk)
    after = rows(ctx, keys)
    for entry in after.values():
        if entry.address == refused_number:
            assert (entry.status, entry.reason) == ("refused", "notification-refused"), entry
        elif entry.address == later_number:
            assert entry.status == notifications.RETRY, entry
        else:
            assert entry.status == notifications.SENT, entry
    sms_simulator.behave(unavailable=[])
    send(ctx, chunk)  # the retry
    final = rows(ctx, keys)
    for key, entry in final.items():
        expected = "refused" if entry.address == refused_number else "sent"
        assert entry.status == expected, (key, entry)
    posts = [s["key"] for s in sms_simulator.sends()]
    assert sorted(posts) == sorted(k for k, e in final.items() if e.status == "sent")  # once each
    assert all(
        state(ctx, m) == ("delivered" if final[f"{m}:sms"].status == "refused" else "notified")
        for m in messages
    )


def test_a_crash_after_the_batch_was_sent_before_the_mark_is_settled_by_asking_by_key(
    ctx: Context,
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"sms_batch_size": 4})
    keys = sms_cases(ctx, "crash", 10)
    ctx.sms = gateway = CountingGateway(dies_on=2)
    with pytest.raises(KilledMidChunk):
        notification_sending.send_notifications(ctx, keys)
    statuses = sorted(e.status for e in rows(ctx, keys).values())
    # in doubt: the batch in flight, no more; never claimed: still queued
    assert statuses == ["pending"] * 4 + ["queued"] * 2 + ["sent"] * 4
    gateway.dies_on = None
    ctx.now = lambda: STOCKHOLM_AFTERNOON + dt.timedelta(hours=1)  # past the in-flight limit
    notification_sending.send_notifications(ctx, keys)
    final = rows(ctx, keys)
    assert {e.status for e in final.values()} == {notifications.SENT}
    assert sum(e.resolution == Resolution.FOUND_AT_PROVIDER for e in final.values()) == 4
    assert gateway.sends == dict.fromkeys(keys, 1)  # each sent exactly once
    assert gateway.batches == [4, 4, 2]


def test_a_batch_takes_only_the_turns_the_rate_limit_has_left(ctx: Context) -> None:
    keys = sms_cases(ctx, "rate", 7)
    limiter = in_process_limiter("test-sms-batch", per_second=3, max_wait=10)
    ctx.rate_limits = ChannelRateLimits({"sms": limiter})
    ctx.sms = gateway = CountingGateway(ctx)
    notification_sending.send_notifications(ctx, keys)
    assert gateway.batches == [3, 3, 1]  # at most a second's turns in one request
    assert gateway.unmarked == [0, 0]  # recorded before waiting for the next second
    assert {e.status for e in rows(ctx, keys).values()} == {notifications.SENT}
