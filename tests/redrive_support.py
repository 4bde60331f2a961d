"""The stages run by hand on an in-process broker, for the tests of the sweep's re-drive: a
message can be taken off the broker (lost) between two stages."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import sqlalchemy as sa

from contracts.send_case import SendCaseV2
from producers import attachment_samples as samples
from tests.send_cases import greeting
from workers import recipient_validation
from workers.actors import declare_actors, run_message
from workers.attachments.ownership import store_attachment
from workers.bootstrap import Context, build_context
from workers.broker import build_broker
from workers.routes import ROUTES
from workers.settings import Settings
from workers.stage import emit
from workers.store.engine import upgrade
from workers.store.schema import cases, notification_ledger

CLINIC = "SE2321000016-VC01"
NOW = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)


def stage_context(sqlite_url: str, tmp_path: Path, **extra: Any) -> Iterator[Context]:
    """A context on an in-process broker whose stage queues exist; no worker runs."""
    upgrade(sqlite_url)
    settings = Settings(
        database_url=sqlite_url, blob_dir=tmp_path / "blobs", broker_url="memory://", **extra
    )
    context = build_context(settings, build_broker(settings.broker_url))
    declare_actors(context.broker, lambda: context)  # the queues; the tests run the stages
    context.now = lambda: NOW
    yield context
    context.engine.dispose()


def taken(ctx: Context) -> list[dict[str, Any]]:
    """Every envelope on the in-process broker's queues, taken off them."""
    envelopes = []
    for queue in ctx.broker.queues.values():  # type: ignore[attr-defined]
        while not queue.empty():
            envelopes.append(dramatiq.Message.decode(queue.get_nowait()).args[0])
    return envelopes


def run(ctx: Context, envelope: dict[str, Any]) -> None:
    contract = envelope["contract"]
    run_message(contract, ROUTES[contract].processor(), ctx, (envelope,), {})


def until(ctx: Context, contract: str) -> list[dict[str, Any]]:
    """Run the stages on what the broker holds, holding back the ``contract`` messages, until
    only those are left (a chunk's cases may reach it from two stages: composition passes
    the cases without attachments past the attachment check); they are returned."""
    held: list[dict[str, Any]] = []
    while True:
        envelopes = taken(ctx)
        held.extend(e for e in envelopes if e["contract"] == contract)
        rest = [e for e in envelopes if e["contract"] != contract]
        if not rest:
            return held
        for envelope in rest:
            run(ctx, envelope)


def request(ctx: Context, key: str, resident: str, *, with_file: bool) -> SendCaseV2:
    files = []
    if with_file:
        files.append(
            store_attachment(
                ctx.engine,
                ctx.blobs,
                samples.pdf(1),
                owner_hsa_id=CLINIC,
                filename="kallelse.pdf",
                declared_type="application/pdf",
            )
        )
    return greeting(resident, key, clinic_hsa_id=CLINIC, attachments=files)


def lose_at(ctx: Context, monkeypatch: Any, sent: SendCaseV2, state: str) -> str:
    """Run ``sent`` until its case is at ``state`` and the message it waits for is lost (at
    ``received``: recipient validation recorded the case, then its process ended before it
    decided); the case's id."""
    if state == "received":
        envelope = _envelope_of(ctx, sent)

        def ended(*_args: Any, **_kwargs: Any) -> None:
            raise SystemExit("the process ended")

        with monkeypatch.context() as patch:
            patch.setattr(recipient_validation, "settle", ended)
            with contextlib.suppress(SystemExit):
                run(ctx, envelope)
        taken(ctx)  # the message is lost
    else:
        emit(ctx, [sent], correlation_id="lost-chunk")
        until(ctx, {"validated": "RecipientValidated", "composed": "MessageComposed"}[state])
        taken(ctx)
    return sent.resolved_case_id()


def _envelope_of(ctx: Context, sent: SendCaseV2) -> dict[str, Any]:
    emit(ctx, [sent], correlation_id="lost-chunk")
    [envelope] = taken(ctx)
    return envelope


def notified_once(ctx: Context, case_id: str) -> None:
    """Run every stage until nothing is left; the case is notified, in the inbox once, and
    sent one notification per channel."""
    until(ctx, "")
    with ctx.engine.connect() as conn:
        row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).one()
        sent = (
            conn.execute(
                sa.select(notification_ledger.c.channel).where(
                    notification_ledger.c.case_id == case_id, notification_ledger.c.status == "sent"
                )
            )
            .scalars()
            .all()
        )
    assert row.state == "notified", (row.state, row.reason)
    inbox: Any = ctx.inbox
    assert inbox.delivered_case_ids().count(case_id) == 1
    assert sent and sorted(sent) == sorted(set(sent))
    assert sorted(sent) == sorted(c for c in str(row.channels).split(",") if c)
