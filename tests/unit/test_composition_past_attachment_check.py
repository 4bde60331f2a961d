"""Composition clears a case without attachments itself and sends it to inbox delivery: the
attachment check, which has nothing to check for it, sees only the cases with files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.message_composed import MessageComposedV1
from contracts.registry import parse
from tests.reachable import reachable_residents
from tests.redrive_support import request, run, stage_context, taken, until
from workers.bootstrap import Context
from workers.stage import emit
from workers.store.schema import case_events, cases


@pytest.fixture
def ctx(sqlite_url: str, tmp_path: Path) -> Iterator[Context]:
    yield from stage_context(sqlite_url, tmp_path)


def test_a_case_without_attachments_is_cleared_by_composition_and_goes_to_the_inbox(
    ctx: Context,
) -> None:
    plain_resident, file_resident = reachable_residents(2, ctx.settings.seed)
    plain = request(ctx, "plain", plain_resident, with_file=False)
    with_file = request(ctx, "file", file_resident, with_file=True)
    emit(ctx, [plain, with_file], correlation_id="one-chunk")
    [validated] = until(ctx, "RecipientValidated")
    run(ctx, validated)
    sent = {e["contract"]: parse(e).items for e in taken(ctx)}
    assert [type(i) for i in sent["AttachmentsCleared"]] == [AttachmentsClearedV1]
    assert sent["AttachmentsCleared"][0].case_id == plain.resolved_case_id()
    assert sent["AttachmentsCleared"][0].attachments == []
    assert [i.case_id for i in sent["MessageComposed"]] == [with_file.resolved_case_id()]
    assert isinstance(sent["MessageComposed"][0], MessageComposedV1)
    with ctx.engine.connect() as conn:
        states = {r.id: r.state for r in conn.execute(sa.select(cases.c.id, cases.c.state))}
        history = (
            conn.execute(
                sa.select(case_events.c.state)
                .where(case_events.c.case_id == plain.resolved_case_id())
                .order_by(case_events.c.id)
            )
            .scalars()
            .all()
        )
    assert states == {plain.resolved_case_id(): "cleared", with_file.resolved_case_id(): "composed"}
    assert history == ["received", "validated", "composed", "cleared"]
