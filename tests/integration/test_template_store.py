"""Templates in the system of record, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker

from contracts.recipient_validated import RecipientValidatedV1
from contracts.registry import envelope_for, parse
from workers import composition
from workers.actors import declare_actors
from workers.adapters import population
from workers.bootstrap import build_context
from workers.queues import Queues, queue_name
from workers.settings import Settings
from workers.store import cases
from workers.store.engine import make_engine, upgrade
from workers.store.schema import cases as cases_table
from workers.templates import store
from workers.templates.database import DatabaseTemplateLibrary
from workers.templates.library import starter_templates
from workers.templates.model import Template, validated

CLINIC = "SE2321000016-VC01"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/templates.db"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def local(template_id: str, **changes: object) -> Template:
    return validated(
        {
            "id": template_id,
            "kind": "information",
            "scope": "local",
            "owner": CLINIC,
            "name": "Version ett",
            "instruction": ".",
            "fragments": {"a": "A."},
            "active": True,
            **changes,
        }
    )


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_seeding_is_idempotent_and_leaves_edits_alone(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        store.seed(conn, starter_templates())
        current = store.load(conn, "meddelande-till-invanare")
        assert current is not None
        store.revise(conn, store.edited(current, {"instruction": "Ny instruktion."}))
    with engine.begin() as conn:
        assert store.seed(conn, starter_templates()) == []
        again = store.load(conn, "meddelande-till-invanare")
        assert again is not None and again.instruction == "Ny instruktion."
        rows = conn.execute(
            sa.text("select count(*) from templates where id = 'kallelse-screening'")
        ).scalar_one()
        assert rows == 1


def test_an_edit_is_a_new_version_and_old_versions_stay_readable(engine: sa.Engine) -> None:
    template_id = unique()
    with engine.begin() as conn:
        first = store.create(conn, local(template_id))
        second = store.revise(conn, store.edited(first, {"name": "Version två"}))
    with engine.connect() as conn:
        assert [t.name for t in store.history(conn, template_id)] == ["Version ett", "Version två"]
        old = store.load(conn, template_id, 1)
        assert old is not None and old.name == "Version ett"
        now = store.load(conn, template_id)
        assert now is not None and (now.version, now.active) == (2, True)
    assert second.version == 2


def test_fragment_order_survives_storage(engine: sa.Engine) -> None:
    template_id = unique()
    fragments = {"zeta": "Z.", "alfa": "A.", "mitten": "M."}
    with engine.begin() as conn:
        store.create(conn, local(template_id, fragments=fragments))
        loaded = store.load(conn, template_id)
    assert loaded is not None and list(loaded.fragments) == ["zeta", "alfa", "mitten"]


def test_adopting_makes_an_inactive_local_copy_for_the_clinic(engine: sa.Engine) -> None:
    new_id = unique("vc01")
    with engine.begin() as conn:
        store.seed(conn, starter_templates())
        copy = store.adopt(
            conn,
            "bifoga-bild-till-varden",
            CLINIC,
            new_id=new_id,
            changes={"contact": "Ring oss", "contact_card_url": "https://www.1177.se/kort"},
        )
        with pytest.raises(store.TemplateConflict):
            store.adopt(conn, new_id, "SE2321000016-VC02")
    assert (copy.scope, copy.owner, copy.active) == ("local", CLINIC, False)
    assert copy.adopted_from == "bifoga-bild-till-varden@1"
    assert copy.questions and copy.contact == "Ring oss"


def test_listing_shows_a_clinic_shared_and_its_own_templates_only(engine: sa.Engine) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    with engine.begin() as conn:
        store.seed(conn, starter_templates())
        store.create(conn, local(mine))
        store.create(conn, local(theirs).model_copy(update={"owner": "SE2321000016-VC02"}))
        ids = {t.id for t in store.listing(conn, clinic_hsa_id=CLINIC)}
        found = {t.id for t in store.listing(conn, clinic_hsa_id=CLINIC, query="sjukskrivning")}
    assert mine in ids and theirs not in ids and "meddelande-om-provsvar" in ids
    assert found == {"fragor-infor-vardkontakt-sjukskrivning"}


def test_the_library_caches_versions_and_sees_edits_after_its_ttl(engine: sa.Engine) -> None:
    template_id = unique()
    now = [0.0]
    library = DatabaseTemplateLibrary(engine, ttl=2.0, clock=lambda: now[0])
    with engine.begin() as conn:
        first = store.create(conn, local(template_id))
    assert library.get(template_id) == first
    with engine.begin() as conn:
        store.revise(conn, store.edited(first, {"name": "Version två"}))
        store.set_active(conn, template_id, False)
    cached = library.get(template_id)
    assert cached is not None and (cached.version, cached.active) == (1, True)
    now[0] = 2.5
    fresh = library.get(template_id)
    assert fresh is not None and (fresh.version, fresh.name, fresh.active) == (
        2,
        "Version två",
        False,
    )
    old = library.get(template_id, 1)
    assert old is not None and (old.name, old.active) == ("Version ett", False)
    assert library.get(unique("none")) is None


def test_the_library_seeds_the_starter_library_on_first_use(engine: sa.Engine) -> None:
    library = DatabaseTemplateLibrary(engine)
    found = library.get("kallelse-screening")
    assert found is not None and found.fragments


def test_a_case_in_flight_composes_with_the_version_current_when_it_arrived(
    database_url: str, tmp_path: object, queue_prefix: str
) -> None:
    """Version pinning: the template is edited between intake and composition."""
    settings = Settings(database_url=database_url, queue_prefix=queue_prefix, blob_dir=tmp_path)  # type: ignore[arg-type]
    broker = StubBroker()
    ctx = build_context(settings, broker)
    declare_actors(broker, lambda: ctx, prefix=queue_prefix)
    template_id = unique()
    with ctx.engine.begin() as conn:
        store.create(conn, local(template_id))
    case_id = unique("case")
    with ctx.engine.begin() as conn:
        cases.insert_received(
            conn,
            [
                {
                    "id": case_id,
                    "clinic_hsa_id": CLINIC,
                    "sender_hsa_id": "SE2321000016-S101",
                    "template_id": template_id,
                    "personnummer": population.test_personnummer()[0],
                    "idempotency_key": case_id,
                }
            ],
        )
        cases.apply(conn, [cases.Transition(case_id, cases.CaseState.VALIDATED)], stage="test")
    ctx.templates.get(template_id)  # a worker that has already cached the head
    with ctx.engine.begin() as conn:
        current = store.load(conn, template_id)
        assert current is not None
        store.revise(conn, store.edited(current, {"name": "Version två"}))
    fresh = DatabaseTemplateLibrary(ctx.engine)
    ctx.templates = fresh
    assert fresh.get(template_id) is not None
    assert fresh.get(template_id).version == 2  # type: ignore[union-attr]
    item = RecipientValidatedV1(
        case_id=case_id,
        clinic_hsa_id=CLINIC,
        sender_hsa_id="SE2321000016-S101",
        template_id=template_id,
        fragments=["a"],
        personnummer=population.test_personnummer()[0],
        channels=["sms"],
    )
    composition.process(parse(envelope_for([item]).model_dump(mode="json")), ctx)
    with ctx.engine.connect() as conn:
        row = conn.execute(sa.select(cases_table).where(cases_table.c.id == case_id)).one()
    # a case without attachments is cleared by composition itself, on to inbox delivery
    assert (row.state, row.template_version, row.subject) == ("cleared", 1, "Version ett")
    queued = broker.queues[queue_name(Queues.NOTIFICATION_DISPATCH, queue_prefix)]
    message = parse(dramatiq.Message.decode(queued.get_nowait()).args[0])
    assert message.items[0].subject == "Version ett"  # type: ignore[attr-defined]
    ctx.engine.dispose()
