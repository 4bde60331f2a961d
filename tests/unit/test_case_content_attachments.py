"""``omvant cases show --content`` shows the attachments the resident received (file name, media
type, size, sha256), as the attachment check sealed them, and logs the read."""

from __future__ import annotations

import json

import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.common import ClearedAttachment
from producers.cli import app
from tests.delivery_support import CLINIC_B, SENDER, cleared_item, reachable_residents
from workers.answer_seal import answer_seal
from workers.attachment_check import with_sealed_attachments
from workers.case_states import CaseState
from workers.settings import Settings
from workers.stage import Advance
from workers.store import access_log, cases
from workers.store.cases import Transition
from workers.store.engine import make_engine, upgrade

USER = "SE2321000016-S101"
LETTER = ClearedAttachment(
    sha256="3f2a9c1b0e4d" + "a" * 52, filename="kallelse.pdf", type="pdf", size=12345, pages=2
)
PHOTO = ClearedAttachment(sha256="b" * 64, filename="bild.jpg", type="jpeg", size=800)


def a_case_cleared_with_files(url: str, case_id: str) -> None:
    """Record ``case_id`` through the attachment check, its content sealed by the stage's own
    ``with_sealed_attachments``."""
    upgrade(url)
    [resident] = reachable_residents(1177, 1, frozenset({"sms"}))
    item = cleared_item(case_id, resident, clinic=CLINIC_B)
    engine = make_engine(url)
    with engine.begin() as conn:
        cases.insert_received(
            conn,
            [
                {
                    "id": case_id,
                    "clinic_hsa_id": CLINIC_B,
                    "sender_hsa_id": SENDER,
                    "template_id": item.template_id,
                    "template_version": 1,
                    "personnummer": resident,
                    "idempotency_key": case_id,
                    "batch_id": None,
                }
            ],
        )
        for state in (CaseState.VALIDATED, CaseState.COMPOSED):
            cases.apply(conn, [Transition(case_id, state)], stage="test")
        cleared = item.model_copy(update={"attachments": [LETTER, PHOTO]})
        decision = Advance(case_id, (Transition(case_id, CaseState.CLEARED),), cleared)
        [sealed] = with_sealed_attachments([decision], answer_seal(Settings()))
        assert isinstance(sealed, Advance)
        cases.apply(conn, list(sealed.transitions), stage="attachment-check")
    engine.dispose()


def show(url: str, *args: str) -> str:
    shown = CliRunner().invoke(
        app,
        ["cases", "show", "b-1", "--clinic", CLINIC_B, "--user", USER, "--content",
         "--database", url, *args],
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    return shown.stdout


def test_content_shows_each_attachment_with_name_type_size_and_sha256_prefix(
    sqlite_url: str,
) -> None:
    a_case_cleared_with_files(sqlite_url, "b-1")
    text = show(sqlite_url)
    assert "Bilaga: kallelse.pdf (application/pdf, 12,345 bytes, sha256 3f2a9c1b0e4d)" in text
    assert "Bilaga: bild.jpg (image/jpeg, 800 bytes, sha256 bbbbbbbbbbbb)" in text
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        actions = [e.action for e in access_log.entries(conn, CLINIC_B)]
    engine.dispose()
    assert actions.count("cases-show-content") == 1


def test_content_under_json_lists_the_attachments_with_their_media_types(
    sqlite_url: str,
) -> None:
    a_case_cleared_with_files(sqlite_url, "b-1")
    content = json.loads(show(sqlite_url, "--json"))["content"]
    assert [
        (a["filename"], a["content_type"], a["size"], a["sha256"]) for a in content["attachments"]
    ] == [
        ("kallelse.pdf", "application/pdf", 12345, LETTER.sha256),
        ("bild.jpg", "image/jpeg", 800, PHOTO.sha256),
    ]
