"""Status callbacks: collected from the cases' history, signed, retried, each event once."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import sqlalchemy as sa

from tests.web.api_support import CLINIC_A, make_key
from workers.adapters.webhook_receiver import WebhookReceiver
from workers.settings import Settings
from workers.store import webhooks
from workers.store.cases import utcnow
from workers.store.engine import make_engine
from workers.store.schema import case_events, cases, intake_keys, webhook_outbox
from workers.webhooks import WebhookSender, signature, verify


def _case(engine: sa.Engine, case_id: str, integration: str, states: list[str]) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            cases.insert().values(
                id=case_id,
                clinic_hsa_id=CLINIC_A,
                sender_hsa_id="SE2321000016-S101",
                template_id="t",
                personnummer="191212121212",
                idempotency_key=case_id,
                state=states[-1],
                state_rank=0,
                received_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            intake_keys.insert().values(
                clinic_hsa_id=CLINIC_A,
                idempotency_key=case_id,
                case_id=case_id,
                integration=integration,
                first_seen_at=now,
            )
        )
        for state in ["received", *states]:
            conn.execute(
                case_events.insert().values(case_id=case_id, state=state, stage="test", at=now)
            )


def test_a_signature_checks_out_only_for_its_body_key_and_time() -> None:
    body = b'{"id":"e1"}'
    header = signature(body, "k3y", 1_700_000_000)
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    fresh = signature(body, "k3y", int(utcnow().timestamp()))
    assert verify(body, fresh, "k3y")
    assert not verify(body + b" ", fresh, "k3y")
    assert not verify(body, fresh, "other")
    assert not verify(body, header, "k3y")  # too old: a replayed callback


def test_each_state_change_is_called_back_once_signed_and_retried_after_a_failure(
    sqlite_url: str,
) -> None:
    with WebhookReceiver(fail_first=1) as receiver:
        key = make_key(sqlite_url, "journal-a", [CLINIC_A], webhook_url=receiver.url)
        receiver.signing_key = key.signing_key
        make_key(sqlite_url, "journal-quiet", [CLINIC_A])  # no webhook: nothing for it
        engine = make_engine(sqlite_url)
        _case(engine, "case-1", "journal-a", ["validated", "delivered", "notified"])
        _case(engine, "case-2", "journal-a", ["rejected"])
        _case(engine, "case-3", "journal-quiet", ["delivered"])
        sender = WebhookSender(engine, Settings(database_url=sqlite_url))
        sender.run_once()  # the first callback meets a 503
        assert sender.counts.failed == 1 and sender.counts.sent == 2
        with engine.begin() as conn:  # its backoff is over
            conn.execute(webhook_outbox.update().values(next_attempt_at=utcnow()))
        sender.run_once()
        sender.run_once()  # nothing more to do: collecting again adds nothing
        sender.close()
        with engine.connect() as conn:
            assert webhooks.counts(conn) == {"sent": 3}
    types = sorted((e["case"]["id"], e["type"]) for e in receiver.events.values())
    assert types == [
        ("case-1", "case.delivered"),
        ("case-1", "case.notified"),
        ("case-2", "case.rejected"),
    ]
    assert receiver.deliveries == 4 and receiver.bad_signatures == 0
    assert all("191212121212" not in str(e) for e in receiver.events.values())


def test_a_callback_that_keeps_failing_is_given_up_after_the_last_attempt(
    sqlite_url: str,
) -> None:
    with WebhookReceiver(fail_first=100) as receiver:
        make_key(sqlite_url, "journal-a", [CLINIC_A], webhook_url=receiver.url)
        engine = make_engine(sqlite_url)
        _case(engine, "case-1", "journal-a", ["failed"])
        sender = WebhookSender(engine, Settings(database_url=sqlite_url, webhook_max_attempts=3))
        for _ in range(3):
            sender.run_once()
            with engine.begin() as conn:
                conn.execute(
                    webhook_outbox.update().values(
                        next_attempt_at=utcnow() - dt.timedelta(seconds=1)
                    )
                )
        sender.close()
        with engine.connect() as conn:
            row = conn.execute(sa.select(webhook_outbox)).one()
    assert row.status == "gave-up" and row.attempts == 3 and row.last_error == "HTTP 503"
    assert receiver.deliveries == 3 and not receiver.events


def _event(conn: sa.Connection, case_id: str, state: str, at: dt.datetime) -> None:
    conn.execute(case_events.insert().values(case_id=case_id, state=state, stage="test", at=at))


def _outbox(engine: sa.Engine, case_ids: list[str]) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(webhook_outbox.c.case_id, webhook_outbox.c.event).where(
                webhook_outbox.c.case_id.in_(case_ids)
            )
        )
        return sorted((r.case_id, r.event) for r in rows)


def _collect(engine: sa.Engine) -> webhooks.Collected:
    with engine.begin() as conn:
        return webhooks.collect(conn)


def test_the_cursor_reads_each_event_once_and_nothing_again(sqlite_url: str) -> None:
    make_key(sqlite_url, "journal-a", [CLINIC_A], webhook_url="http://127.0.0.1:9/hook")
    engine = make_engine(sqlite_url)
    _case(engine, "case-1", "journal-a", ["delivered"])
    assert _collect(engine) == webhooks.Collected(read=1, added=1)
    assert _collect(engine) == webhooks.Collected(read=0, added=0)  # no rescan of the recent
    with engine.begin() as conn:
        _event(conn, "case-1", "notified", utcnow() - dt.timedelta(minutes=5))  # stamped early
    assert _collect(engine) == webhooks.Collected(read=1, added=1)
    assert _outbox(engine, ["case-1"]) == [("case-1", "delivered"), ("case-1", "notified")]


def test_an_event_committed_late_with_a_lower_id_is_read_once_on_postgresql(
    postgres_url: str,
) -> None:
    """PostgreSQL gives the id at insert: a transaction that commits after a later one leaves
    its lower id behind the cursor's; the snapshot cursor still reads it, once."""
    make_key(postgres_url, "journal-late", [CLINIC_A], webhook_url="http://127.0.0.1:9/hook")
    engine = make_engine(postgres_url)
    try:
        _case(engine, "late-1", "journal-late", ["validated"])
        _case(engine, "late-2", "journal-late", ["validated"])
        _collect(engine)  # whatever the session's other tests left
        long_ago = utcnow() - dt.timedelta(minutes=5)
        slow = engine.connect()
        slow_tx = slow.begin()
        _event(slow, "late-1", "delivered", long_ago)  # the lower id, not yet committed
        with engine.begin() as conn:
            _event(conn, "late-2", "delivered", long_ago)
        first = _collect(engine)
        assert first.read == 1 and _outbox(engine, ["late-1", "late-2"]) == [
            ("late-2", "delivered")
        ]
        slow_tx.commit()
        slow.close()
        assert _collect(engine) == webhooks.Collected(read=1, added=1)
        assert _collect(engine) == webhooks.Collected(read=0, added=0)
        assert _outbox(engine, ["late-1", "late-2"]) == [
            ("late-1", "delivered"),
            ("late-2", "delivered"),
        ]
    finally:
        engine.dispose()
