"""The stages run by hand on an in-process broker, for the tests of the sweep's re-drive: a
message can be taken off the broker (lost) between two stages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq

from contracts.send_case import SendCaseV2
from producers import attachment_samples as samples
from workers.actors import declare_actors, run_message
from workers.attachments.ownership import store_attachment
from workers.bootstrap import Context, build_context
from workers.broker import build_broker
from workers.routes import ROUTES
from workers.settings import Settings
from workers.store.engine import upgrade

CLINIC = "SE2321000016-VC01"
NOW = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)


def stage_context(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    """A context on an in-process broker whose stage queues exist; no worker runs."""
    upgrade(sqlite_url)
    settings = Settings(
        database_url=sqlite_url, blob_dir=tmp_path / "blobs", broker_url="memory://"
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
    """Run the stages on what the broker holds until only ``contract`` messages are left."""
    while True:
        envelopes = taken(ctx)
        if all(e["contract"] == contract for e in envelopes):
            return envelopes
        for envelope in envelopes:
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
    return SendCaseV2(
        clinic_hsa_id=CLINIC,
        sender_hsa_id="SE2321000016-S101",
        template_id="meddelande-till-invanare",
        fragments=["halsning"],
        personnummer=resident,
        attachments=files,
        idempotency_key=key,
    )
