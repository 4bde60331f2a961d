"""The English messages of the shared rules (template store and model, dispatches,
composition, replay) are shown in the console's language: every message these rules give the
console is raised here from the real functions, and each must have Swedish (and English) words;
every pattern of ``producers.web.explained`` must be used by one of them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from producers.web import explained, i18n
from tests.databases import migrated_engine
from tests.web.console_support import CLINIC_A, NURSE_A, add_users, build_app, csrf_of, sign_in
from workers import case_access
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue
from workers.composition import CompositionError, compose
from workers.settings import Settings
from workers.store import batches, case_queries
from workers.templates import store
from workers.templates.library import starter_templates
from workers.templates.model import TemplateInvalid, validated

ENGLISH_WORDS = re.compile(r"\b(the|is|a|template|needs|should|batch|no|has|already)\b")


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    found = migrated_engine(sqlite_url)
    with found.begin() as conn:
        store.seed(conn, starter_templates())
    yield found
    found.dispose()


def _raised(call: Any) -> str:
    try:
        call()
    except (store.TemplateNotFound, store.TemplateConflict, batches.BatchTransitionRefused) as exc:
        return str(exc)
    except CompositionError as exc:
        return exc.detail
    raise AssertionError("no error")


def _store_messages(conn: sa.Connection) -> list[str]:
    national = "meddelande-till-invanare"
    copy = store.adopt(conn, national, CLINIC_A)
    local = validated({**copy.definition(), "id": "egen", "name": "Egen"})
    store.create(conn, local)
    other = validated({**copy.definition(), "owner": "SE2321000016-VC99"})
    return [
        _raised(lambda: store.visible(conn, "finns-inte", CLINIC_A)),
        _raised(lambda: store.visible(conn, national, CLINIC_A, 99)),
        _raised(lambda: store.changeable(conn, national, CLINIC_A)),
        _raised(lambda: store.changeable(conn, "kallelse-screening", CLINIC_A)),
        _raised(lambda: store.create(conn, local)),
        _raised(lambda: store.revise(conn, other)),
        _raised(lambda: store.adopt(conn, "egen", CLINIC_A)),
        _raised(lambda: store.set_active(conn, "finns-inte", True)),
        f"{copy.id} was changed meanwhile; try again",  # a race: revise() when another won
    ]


def _model_problems() -> list[str]:
    base = {"id": "m", "kind": "information", "scope": "local", "owner": CLINIC_A}
    broken: list[dict[str, Any]] = [
        {**base, "instruction": ".", "text": "t"},
        {**base, "name": "N", "text": "t"},
        {**base, "name": "N", "instruction": "."},
        {**base, "kind": "questions", "name": "N", "instruction": ".", "text": "t"},
        {
            **base,
            "kind": "questions",
            "name": "N",
            "instruction": ".",
            "text": "t",
            "questions": ["Hur mår du?"],
            "answer_options": [{"kind": "answer", "label": "a"}, {"kind": "answer", "label": "b"}],
        },
        {**base, "name": "N", "instruction": ".", "text": "t", "questions": ["?"]},
        {**base, "id": "Stora Bokstäver", "name": "N" * 151, "instruction": ".", "text": "t"},
        {**base, "name": "N", "instruction": ".", "fragments": {"a": "x" * 10_001}},
        {**base, "name": "N", "instruction": ".", "text": "t", "questions": ["q"] * 51},
        {**base, "name": "N", "instruction": ".", "text": "t", "template_type": ""},
        {
            **base,
            "kind": "questions",
            "name": "N",
            "instruction": ".",
            "text": "t",
            "questions": ["q"],
            "unread_followup": {"after_hours": 0, "action": "flag"},
            "resident_channels": {"channels": ["sms", "sms"]},
        },
        {**base, "name": "N", "instruction": ".", "text": "t", "kind": "annan"},
        {
            k: v
            for k, v in {**base, "name": "N", "instruction": ".", "text": "t"}.items()
            if k != "kind"
        },
        {
            **base,
            "kind": "questions",
            "name": "N",
            "instruction": ".",
            "text": "t",
            "questions": ["q"],
            "unread_followup": {"after_hours": 100_000, "action": "flag"},
        },
    ]
    problems: list[str] = []
    for data in broken:
        with pytest.raises(TemplateInvalid) as caught:
            validated(data)
        problems.extend(caught.value.problems)
    return problems


def _batch_messages(conn: sa.Connection) -> list[str]:
    batches.create(
        conn,
        batch_id="utskick-1",
        name="Utskick",
        clinic_hsa_id=CLINIC_A,
        sender_hsa_id=NURSE_A,
        template_id="meddelande-till-invanare",
        total=0,
    )
    finished = _raised(lambda: batches.set_status(conn, "utskick-1", batches.BatchStatus.PAUSED))
    conn.execute(
        sa.text("UPDATE batches SET status = 'cancelled' WHERE id = 'utskick-1'"),
    )
    cancelled = _raised(lambda: batches.set_status(conn, "utskick-1", batches.BatchStatus.RUNNING))
    return [finished, cancelled]


class _Draft:
    def __init__(self, **changes: Any) -> None:
        self.clinic_hsa_id = CLINIC_A
        self.sender_hsa_id = NURSE_A
        self.template_id = "t"
        self.fragments: tuple[str, ...] = ()
        self.free_text: str | None = None
        self.fields: dict[str, str] = {}
        vars(self).update(changes)


def _composition_messages() -> list[str]:
    catalogue = SimulatedStaffCatalogue(1177)
    base = {"id": "t", "kind": "questions", "scope": "local", "owner": CLINIC_A, "name": "N"}
    template = validated(
        {
            **base,
            "instruction": ".",
            "text": "Hej {{ fornamn }}",
            "questions": ["q"],
            "active": True,
            "resident_channels": {"channels": ["email"]},
        }
    )
    inactive = template.model_copy(update={"active": False})
    today = dt.date(2026, 12, 1)

    def composed(draft: _Draft, used: Any = template, **options: Any) -> str:
        settings = {"today": today, "max_body_chars": 10_000, **options}
        return _raised(lambda: compose(draft, used, catalogue, **settings))  # type: ignore[arg-type]

    filled = {"fornamn": "Eva"}
    return [
        composed(_Draft(), None),
        composed(_Draft(), inactive),
        composed(_Draft()),
        composed(_Draft(fields={"fornamn": " "})),
        composed(_Draft(fields=filled, fragments=("ingen",))),
        composed(_Draft(fields=filled), max_body_chars=3),
        composed(_Draft(fields=filled), channels=("sms",)),
        composed(_Draft(fields=filled, sender_hsa_id="SE2321000016-UNKNOWN")),
    ]


def _case_list_messages(engine: sa.Engine) -> list[str]:
    reader = case_access.Reader(NURSE_A, CLINIC_A)
    said: list[str] = []
    for wrong in (
        case_queries.CaseFilter(template_id="\x00"),
        case_queries.CaseFilter(offset=case_access.MAX_OFFSET + 1),
    ):
        with pytest.raises(case_access.UsageError) as caught:
            case_access.check_filter(engine, reader, "cases-list", wrong)
        said.append(str(caught.value))
    return said


REPLAY_DETAILS = [
    "to recipient-validation",
    "no such record",
    "already replayed",
    "taken by another replay",
    "every case has settled",
    "a message no stage could read: fix the producer and resend",
    "the body was not kept whole: replay from the producer",
]
"""``workers.replay``'s details (``Outcome.detail``, ``Plan.why_not``) as it writes them."""


@pytest.fixture
def messages(engine: sa.Engine) -> list[str]:
    with engine.begin() as conn:
        found = _store_messages(conn) + _batch_messages(conn)
    found += _case_list_messages(engine)
    return found + _model_problems() + _composition_messages() + REPLAY_DETAILS


def test_every_message_of_the_shared_rules_has_swedish_and_english_words(
    messages: list[str],
) -> None:
    unknown = [m for m in messages if explained.words_for(m) is None]
    assert unknown == []
    for message in messages:
        swedish = explained.explained(message)
        assert not ENGLISH_WORDS.search(swedish.replace(":", " ")), (message, swedish)
        token = i18n.current.set("en")
        try:
            english = explained.explained(message)
        finally:
            i18n.current.reset(token)
        assert english != swedish, (message, english)


def test_every_pattern_is_used_by_a_message_the_rules_give(messages: list[str]) -> None:
    texts = [part for m in messages for part in (m, m.partition(": ")[2])]
    unused = [
        pattern
        for pattern in explained.MESSAGES
        if not any(re.fullmatch(pattern, text) for text in texts)
    ]
    assert unused == []


def test_a_message_no_pattern_knows_is_shown_as_it_is_or_left_to_the_reasons_words() -> None:
    assert explained.explained("something new went wrong") == "something new went wrong"
    assert explained.detail_text("something new went wrong") == ""
    token = i18n.current.set("en")
    try:
        assert explained.detail_text("something new went wrong") == "something new went wrong"
    finally:
        i18n.current.reset(token)


@pytest.fixture
def admin(engine: sa.Engine, sqlite_url: str, tmp_path: object) -> Iterator[TestClient]:
    add_users(engine)
    with TestClient(
        build_app(Settings(database_url=sqlite_url, blob_dir=f"{tmp_path}/b"))
    ) as client:
        yield client


def test_the_template_and_dispatch_pages_say_the_rules_refusals_in_swedish(
    admin: TestClient, engine: sa.Engine
) -> None:
    token = sign_in(admin, "admin-a")
    page = admin.get("/mallar/meddelande-till-invanare").text
    assert "är en nationell mall: mottagningen anpassar den" in page
    assert "a clinic adapts it" not in page
    missing = admin.get("/mallar/finns-inte")
    assert missing.status_code == 404 and "Mallen finns-inte finns inte för" in missing.text
    form = {"csrf_token": token, "name": "", "instruction": "", "text": "t"}
    created = admin.post("/mallar/ny", data={**form, "template_id": "ny-mall"})
    assert created.status_code == 422
    assert "Namn: Mallen behöver ett namn" in created.text
    assert "Instruktion till ärendehandläggaren: Mallen behöver en instruktion" in created.text
    assert "a template needs" not in created.text
    with engine.begin() as conn:
        _batch_messages(conn)
    admin.cookies.clear()
    token = sign_in(admin, "oncall")
    refused = admin.post("/drift/utskick/utskick-1", data={"csrf_token": token, "action": "resume"})
    assert refused.status_code == 409 and "Utskicket utskick-1 är avbrutet." in refused.text
    assert csrf_of(refused.text)
    admin.cookies.clear()
    sign_in(admin, "nurse-a")
    for asked in ({"mall": "\x00"}, {"sida": str(10**12)}):
        listed = admin.get("/arenden", params=asked)
        assert listed.status_code == 404 and "--" not in listed.text, asked
    assert "Mallfiltret innehåller" in admin.get("/arenden", params={"mall": "x" * 300}).text
