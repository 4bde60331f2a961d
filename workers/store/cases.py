"""Reading and moving cases. Transitions only go forward and are idempotent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from workers.case_states import FINAL, LAST_ENDABLE, RANK, CaseState, below_rank, may_advance
from workers.store import case_bodies
from workers.store.arrays import among, literal
from workers.store.schema import case_events, cases
from workers.store.sql import dialect_insert

if TYPE_CHECKING:
    from workers.settings import Settings


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Transition:
    """Move one case to ``state``, setting ``values`` on its row."""

    case_id: str
    state: CaseState
    values: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    detail: str | None = None
    until: CaseState | None = LAST_ENDABLE
    """For a rejection or failure: the last state it may end (``case_states.ends_until`` of
    the stage that decided it); None ends nothing. Ignored for forward moves."""


def insert_received(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Record new cases as received; a case that exists already (by id, or by its clinic and
    idempotency key) is left exactly as it is: no row changed, no history added.

    A row's sealed parts (``request``, ``case_bodies.PARTS``) are written to ``case_bodies``
    for the cases created now, in the same statement on PostgreSQL.

    Returns
    -------
    set[str]
        The ids of the cases created now (only these get their ``received`` event).
    """
    if not rows:
        return set()
    now = utcnow()
    values = [
        {
            **{k: v for k, v in row.items() if k not in case_bodies.PARTS},
            "state": CaseState.RECEIVED.value,
            "state_rank": RANK[CaseState.RECEIVED],
            "received_at": now,
            "updated_at": now,
        }
        for row in rows
    ]
    bodies = [body for row in rows for body in case_bodies.parts_of(str(row["id"]), row)]
    if conn.dialect.name == "postgresql":
        return _insert_new_with_events(conn, values, bodies, now)
    statement = dialect_insert(conn, cases).on_conflict_do_nothing().returning(cases.c.id)
    created = {str(row[0]) for row in conn.execute(statement, list(values))}
    case_bodies.write(conn, (b for b in bodies if b[0] in created))
    bulk_insert(
        conn,
        case_events,
        [
            {"case_id": r["id"], "state": "received", "stage": "intake", "at": now}
            for r in rows
            if r["id"] in created
        ],
    )
    return created


def _insert_new_with_events(
    conn: sa.Connection,
    values: Sequence[Mapping[str, Any]],
    bodies: Sequence[case_bodies.Body],
    now: dt.datetime,
) -> set[str]:
    """PostgreSQL: the case rows that conflict with none, their sealed parts and their
    ``received`` history rows in one statement; the ids of the cases inserted."""
    names = tuple(sorted({key for row in values for key in row}))
    params: dict[str, Any] = {**_columns(values, names), "e_now": now}
    if bodies:
        params.update(
            p_id=literal(b[0] for b in bodies),
            p_part=literal(b[1] for b in bodies),
            p_sealed=literal(b[2] for b in bodies),
        )
    statement = _insert_received_sql(names, conn.dialect, with_bodies=bool(bodies))
    return {str(row[0]) for row in conn.execute(statement, params)}


@functools.cache
def _insert_received_sql(
    names: tuple[str, ...], dialect: sa.Dialect, *, with_bodies: bool
) -> sa.TextClause:
    insert = _unnest_insert(cases, names, "ON CONFLICT DO NOTHING RETURNING id", dialect).text
    bodies = (
        ", bodies AS (INSERT INTO case_bodies (case_id, part, sealed) "
        "SELECT b.id, b.part, b.sealed FROM unnest(CAST(:p_id AS VARCHAR[]), "
        "CAST(:p_part AS VARCHAR[]), CAST(:p_sealed AS TEXT[])) AS b(id, part, sealed) "
        "JOIN created ON created.id = b.id "
        "ON CONFLICT (case_id, part) DO UPDATE SET sealed = excluded.sealed) "
        if with_bodies
        else " "
    )
    return sa.text(
        f"WITH created AS ({insert}){bodies}"  # noqa: S608 - our SQL
        "INSERT INTO case_events (case_id, state, stage, at) "
        "SELECT id, 'received', 'intake', :e_now FROM created RETURNING case_id"
    )


@dataclass(frozen=True)
class Owner:
    """Whose a case is: its clinic, its idempotency key and the intake message that made it."""

    case_id: str
    clinic_hsa_id: str
    idempotency_key: str
    intake_message_id: str | None


def owners(
    conn: sa.Connection, case_ids: Iterable[str], keys: Iterable[tuple[str, str]] = ()
) -> tuple[dict[str, Owner], dict[tuple[str, str], Owner]]:
    """The existing cases among ``case_ids`` by id, and those holding the ``(clinic,
    idempotency key)`` pairs of ``keys`` by pair."""
    ids = list(dict.fromkeys(case_ids))
    pairs = list(dict.fromkeys(keys))
    if not ids and not pairs:
        return {}, {}
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _OWNERS_PG,
            {
                "ids": literal(ids),
                "clinics": literal(c for c, _k in pairs),
                "keys": literal(k for _c, k in pairs),
            },
        )
    else:
        condition: list[sa.ColumnElement[bool]] = []
        if ids:
            condition.append(cases.c.id.in_(ids))
        if pairs:
            condition.append(sa.tuple_(cases.c.clinic_hsa_id, cases.c.idempotency_key).in_(pairs))
        rows = conn.execute(sa.select(*_OWNER_COLUMNS).where(sa.or_(*condition)))
    found = [Owner(r.id, r.clinic_hsa_id, r.idempotency_key, r.intake_message_id) for r in rows]
    wanted = set(ids)
    return (
        {o.case_id: o for o in found if o.case_id in wanted},
        {(o.clinic_hsa_id, o.idempotency_key): o for o in found},
    )


_OWNER_COLUMNS = (
    cases.c.id,
    cases.c.clinic_hsa_id,
    cases.c.idempotency_key,
    cases.c.intake_message_id,
)
_OWNERS_PG = sa.text(
    "SELECT id, clinic_hsa_id, idempotency_key, intake_message_id FROM cases "
    "WHERE id = ANY(CAST(:ids AS VARCHAR[])) "
    "UNION SELECT c.id, c.clinic_hsa_id, c.idempotency_key, c.intake_message_id FROM cases c "
    "JOIN unnest(CAST(:clinics AS VARCHAR[]), CAST(:keys AS VARCHAR[])) AS k(clinic, key) "
    "ON c.clinic_hsa_id = k.clinic AND c.idempotency_key = k.key"
)
"""PostgreSQL: ``owners`` in one statement with three array parameters, each half using its
index (an ``OR`` of the two would scan the table)."""


def _columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """Rows as one array literal per column, for an ``unnest`` statement."""
    return {name: literal([row.get(name) for row in rows]) for name in names}


@functools.cache
def _unnest_insert(
    table: sa.Table, names: tuple[str, ...], conflict: str, dialect: sa.Dialect
) -> sa.TextClause:
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=dialect)}[])" for name in names
    )
    return sa.text(
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608 - our table and columns
        f"SELECT * FROM unnest({arrays}) {conflict}"
    )


def bulk_insert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    on_conflict_do_nothing: bool = False,
    upsert: Any = None,
    upsert_sql: str = "",
) -> None:
    """Insert ``rows`` (all with the same keys): on PostgreSQL one ``INSERT ... SELECT FROM
    unnest(arrays)`` statement, elsewhere an executemany. ``upsert`` (a SQLAlchemy insert
    with its ON CONFLICT clause) and ``upsert_sql`` (the same clause as SQL) update rows that
    exist already."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        statement = upsert if upsert is not None else dialect_insert(conn, table)
        if on_conflict_do_nothing:
            statement = statement.on_conflict_do_nothing()
        conn.execute(statement, list(rows))
        return
    names = tuple(sorted({key for row in rows for key in row}))
    conflict = "ON CONFLICT DO NOTHING" if on_conflict_do_nothing else upsert_sql
    statement = _unnest_insert(table, names, conflict, conn.dialect)
    conn.execute(statement, _columns(rows, names))


def first_requested_by(conn: sa.Connection, case_ids: Iterable[str], origin: str) -> set[str]:
    """The cases among ``case_ids`` that the intake message ``origin`` created.

    A later request with the same idempotency key is a duplicate: its stage must not move the
    case again. A redelivery of the creating message (or of its split parts) is not.
    """
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return set()
    rows = conn.execute(
        sa.select(cases.c.id).where(
            among(conn, cases.c.id, ids), cases.c.intake_message_id == origin
        )
    )
    return {row.id for row in rows}


_INTENT_PG = sa.text(
    "WITH keyed AS (UPDATE cases SET delivery_key = i.key "
    "FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:keys AS VARCHAR[])) AS i(id, key) "
    "WHERE cases.id = i.id AND cases.delivery_key IS NULL) "
    "SELECT id, inbox_message_id FROM cases "
    "WHERE id = ANY(CAST(:ids AS VARCHAR[])) AND inbox_message_id IS NOT NULL"
)
"""``record_delivery_keys`` and ``delivered_before`` in one statement (the select sees the
rows as they were before the update, which does not change ``inbox_message_id``)."""


def record_intent(conn: sa.Connection, keys: Mapping[str, str]) -> dict[str, str]:
    """Record each case's delivery key (``record_delivery_keys``); return the inbox message id
    of each case delivered already (``delivered_before``)."""
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_INTENT_PG, {"ids": literal(keys), "keys": literal(keys.values())})
        return {row.id: row.inbox_message_id for row in rows}
    record_delivery_keys(conn, keys)
    return delivered_before(conn, keys)


def delivered_before(conn: sa.Connection, case_ids: Iterable[str]) -> dict[str, str]:
    """The inbox message id of each case among ``case_ids`` that was delivered already."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(cases.c.id, cases.c.inbox_message_id).where(
            among(conn, cases.c.id, ids), cases.c.inbox_message_id.is_not(None)
        )
    )
    return {row.id: row.inbox_message_id for row in rows}


_DELIVERY_KEYS_PG = sa.text(
    "UPDATE cases SET delivery_key = i.key "
    "FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:keys AS VARCHAR[])) AS i(id, key) "
    "WHERE cases.id = i.id AND cases.delivery_key IS NULL"
)


def record_delivery_keys(conn: sa.Connection, keys: Mapping[str, str]) -> None:
    """Record the intent to deliver: each case's delivery key, before the inbox is called (a
    case that has one keeps it: the key is stable)."""
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_DELIVERY_KEYS_PG, {"ids": literal(keys), "keys": literal(keys.values())})
        return
    statement = (
        sa.update(cases)
        .where(cases.c.id == sa.bindparam("b_id"), cases.c.delivery_key.is_(None))
        .values(delivery_key=sa.bindparam("b_key"))
    )
    conn.execute(statement, [{"b_id": c, "b_key": k} for c, k in keys.items()])


def with_delivery_key(conn: sa.Connection, case_ids: Iterable[str]) -> set[str]:
    """Those of the cases whose delivery has begun (a delivery key recorded): the inbox may
    hold them, so a cancel no longer stops them."""
    ids = list(case_ids)
    if not ids:
        return set()
    rows = conn.execute(
        sa.select(cases.c.id).where(among(conn, cases.c.id, ids), cases.c.delivery_key.is_not(None))
    )
    return {row.id for row in rows}


def add_channels(conn: sa.Connection, sent: Mapping[str, Sequence[str]]) -> None:
    """Add to a notified case's recorded channels those notified since (a case's notifications
    may come in several messages, an SMS after quiet hours), keeping the order recorded."""
    ids = [c for c, channels in sent.items() if channels]
    if not ids:
        return
    rows = conn.execute(
        sa.select(cases.c.id, cases.c.channels).where(
            among(conn, cases.c.id, ids),
            cases.c.state.in_([CaseState.NOTIFIED.value, CaseState.READ.value]),
        )
    )
    for row in rows:
        have = [c for c in (row.channels or "").split(",") if c]
        missing = [c for c in sent[row.id] if c not in have]
        if missing:
            conn.execute(
                sa.update(cases)
                .where(cases.c.id == row.id)
                .values(channels=",".join(have + missing))
            )


def states_of(conn: sa.Connection, case_ids: Iterable[str]) -> dict[str, CaseState]:
    """The current state of each known case among ``case_ids``."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    result = conn.execute(sa.select(cases.c.id, cases.c.state).where(among(conn, cases.c.id, ids)))
    return {row.id: CaseState(row.state) for row in result}


def apply(conn: sa.Connection, transitions: Sequence[Transition], *, stage: str) -> set[str]:
    """Apply the transitions the state machine allows, in order.

    Returns
    -------
    set[str]
        The cases whose last transition here holds now: applied now, or already applied by an
        earlier delivery of the same message (so the next contract is emitted again after a
        crash, and downstream stages treat it as the duplicate it is).

    The sealed parts among a transition's values (``content``, ``case_bodies.PARTS``) are
    written to ``case_bodies`` if the transition applies now, in the same transaction.
    """
    transitions, bodies = _without_bodies(transitions)
    if conn.dialect.name == "postgresql":
        holding, applied = _apply_returning(conn, transitions, stage=stage)
    else:
        holding, applied = _apply_one_by_one(conn, transitions, stage=stage)
    case_bodies.write(conn, (body for pair, body in bodies if pair in applied))
    return holding


def _without_bodies(
    transitions: Sequence[Transition],
) -> tuple[Sequence[Transition], list[tuple[tuple[str, str], case_bodies.Body]]]:
    """The transitions without their sealed parts, and the parts, each with the ``(case,
    state)`` of the transition that sets it (the first such transition: a second to the same
    state never applies), in order."""
    if not any(k in case_bodies.PARTS for t in transitions for k in t.values):
        return transitions, []
    stripped: list[Transition] = []
    bodies: list[tuple[tuple[str, str], case_bodies.Body]] = []
    seen: set[tuple[str, str]] = set()
    for t in transitions:
        pair = (t.case_id, t.state.value)
        first = pair not in seen
        seen.add(pair)
        parts = case_bodies.parts_of(t.case_id, t.values)
        if not parts:
            stripped.append(t)
            continue
        if first:
            bodies.extend((pair, body) for body in parts)
        values = {k: v for k, v in t.values.items() if k not in case_bodies.PARTS}
        stripped.append(dataclasses.replace(t, values=values))
    return stripped, bodies


def _apply_one_by_one(
    conn: sa.Connection, transitions: Sequence[Transition], *, stage: str
) -> tuple[set[str], set[tuple[str, str]]]:
    """SQLite: read the states, apply what the state machine allows; the cases whose last
    transition holds, and the ``(case, state)`` pairs applied now."""
    current = states_of(conn, (t.case_id for t in transitions))
    holding: set[str] = set()
    to_apply: list[Transition] = []
    for transition in transitions:
        state = current.get(transition.case_id)
        if state is None:
            continue
        if state == transition.state:
            holding.add(transition.case_id)
        elif may_advance(state, transition.state, transition.until):
            to_apply.append(transition)
            current[transition.case_id] = transition.state
            holding.add(transition.case_id)
        else:
            holding.discard(transition.case_id)
    if not to_apply:
        return holding, set()
    now = utcnow()
    groups: dict[tuple[str, ...], list[Transition]] = defaultdict(list)
    for transition in _one_per_case(to_apply):
        groups[tuple(sorted(transition.values))].append(transition)
    for keys, group in groups.items():
        _update_each(conn, keys, group, now)
    bulk_insert(
        conn,
        case_events,
        [
            {
                "case_id": t.case_id,
                "state": t.state.value,
                "stage": stage,
                "reason": t.reason,
                "detail": (t.detail or None) and str(t.detail)[:500],
                "at": now,
            }
            for t in to_apply
        ],
    )
    return holding, {(t.case_id, t.state.value) for t in to_apply}


def _apply_returning(
    conn: sa.Connection, transitions: Sequence[Transition], *, stage: str
) -> tuple[set[str], set[tuple[str, str]]]:
    """PostgreSQL: each group of transitions is one statement that updates the rows the state
    machine allows, writes their history rows and returns them (no read first). Only cases whose
    last transition did not apply now are read, to tell "already there" from "not allowed".
    Returns the cases whose last transition holds and the ``(case, state)`` pairs applied now."""
    if not transitions:
        return set(), set()
    now = utcnow()
    last: dict[str, Transition] = {}
    for transition in transitions:
        last[transition.case_id] = transition
    applied: set[tuple[str, str]] = set()
    chains, rest = _chains(transitions)
    if chains:
        moved = _apply_chains(conn, chains, now=now, stage=stage)
        applied.update((c, t.state.value) for c in moved for t in chains[c])
        left = [chain for c, chain in chains.items() if c not in moved]
        for index in range(max(map(len, left), default=0)):  # in order: each chain's k-th
            rest.extend(chain[index] for chain in left if index < len(chain))
            applied.update(_apply_each(conn, rest, now=now, stage=stage))
            rest = []
    applied.update(_apply_each(conn, rest, now=now, stage=stage))
    holding = {c for c, t in last.items() if (c, t.state.value) in applied}
    unsure = [c for c in last if c not in holding]
    if unsure:
        current = states_of(conn, unsure)
        holding.update(c for c in unsure if current.get(c) == last[c].state)
    return holding, applied


def _apply_each(
    conn: sa.Connection, transitions: Sequence[Transition], *, now: dt.datetime, stage: str
) -> set[tuple[str, str]]:
    """PostgreSQL: the transitions grouped by the columns they set, each group in rounds
    (``_rounds``), one statement per round; the ``(case, state)`` pairs applied."""
    groups: dict[tuple[str, ...], list[Transition]] = defaultdict(list)
    for transition in transitions:
        groups[tuple(sorted(transition.values))].append(transition)
    applied: set[tuple[str, str]] = set()
    for keys, group in groups.items():
        for chosen in _rounds(group):
            rows = [_row(t, keys) for t in chosen]
            params = _row_arrays(rows, keys)
            params.update(now=now, stage=stage)
            result = conn.execute(_unnest_update_returning(keys, conn.dialect), params)
            applied.update((row[0], row[1]) for row in result)
    return applied


def _one_per_case(to_apply: Sequence[Transition]) -> list[Transition]:
    """SQLite: the transitions that apply now, one per case (its last state, the values of all
    of them, later ones winning), so a case moved twice in a stage is updated once; the
    history keeps every transition."""
    merged: dict[str, Transition] = {}
    for t in to_apply:
        before = merged.get(t.case_id)
        values = t.values if before is None else {**before.values, **t.values}
        merged[t.case_id] = dataclasses.replace(t, values=values)
    return list(merged.values())


def _chains(
    transitions: Sequence[Transition],
) -> tuple[dict[str, list[Transition]], list[Transition]]:
    """The cases moved forward more than once here (composition: ``composed`` then
    ``cleared``), each with its transitions in order, and the other transitions.

    A chain is forward moves only, each to a higher rank than the one before: applied in
    order, either all of it applies (the case ranks below its first state) or its first
    does not; so one UPDATE to its last state guarded by its first state's rank is the same
    as one UPDATE per transition, for the cases below that rank (``_apply_chains``)."""
    by_case: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        by_case[transition.case_id].append(transition)
    chains = {c: ts for c, ts in by_case.items() if len(ts) > 1 and _is_chain(ts)}
    if not chains:
        return {}, list(transitions)
    return chains, [t for t in transitions if t.case_id not in chains]


def _is_chain(ts: Sequence[Transition]) -> bool:
    ranks = [RANK[t.state] for t in ts]
    return all(t.state not in FINAL for t in ts) and all(
        a < b for a, b in itertools.pairwise(ranks)
    )


def _apply_chains(
    conn: sa.Connection, chains: Mapping[str, Sequence[Transition]], *, now: dt.datetime, stage: str
) -> set[str]:
    """PostgreSQL: each chain as one UPDATE to its last state (with the values of all its
    transitions) of the cases that rank below its first state, and one history row per
    transition of each case moved, in order, in the same statement. Returns the cases moved;
    the others go through the transitions one by one (``_rounds``), as before."""
    groups: dict[tuple[str, ...], list[Sequence[Transition]]] = defaultdict(list)
    for chain in chains.values():
        groups[tuple(sorted({k for t in chain for k in t.values}))].append(chain)
    moved: set[str] = set()
    for keys, group in groups.items():
        rows = []
        for chain in group:
            values: dict[str, Any] = {}
            for t in chain:
                values.update(t.values)
            folded = Transition(
                chain[0].case_id, chain[-1].state, values, chain[-1].reason, chain[-1].detail
            )
            rows.append({**_row(folded, keys), "b_below": below_rank(chain[0].state)})
        events = [_row(t, ()) for chain in group for t in chain]
        params = _row_arrays(rows, keys)
        params.update(
            {
                f"e_{name[2:]}": literal([e[name] for e in events])
                for name in ("b_id", "b_state", "b_reason", "b_detail")
            },
        )
        params.update(now=now, stage=stage)
        result = conn.execute(_chain_update_sql(keys, conn.dialect), params)
        moved.update(row[0] for row in result)
    return moved


@functools.cache
def _chain_update_sql(keys: tuple[str, ...], dialect: sa.Dialect) -> sa.TextClause:
    """The update of ``_unnest_update`` for chains, with each moved case's history rows (the
    ``e_`` arrays, every transition of every chain, in order) written by the same statement."""
    return _update_writing_events(
        keys,
        dialect,
        moved="cases.id",
        events="unnest(CAST(:e_id AS VARCHAR[]), CAST(:e_state AS VARCHAR[]), "
        "CAST(:e_reason AS VARCHAR[]), CAST(:e_detail AS VARCHAR[])) "
        "WITH ORDINALITY AS ev(id, state, reason, detail, n) "
        "JOIN moved ON moved.id = ev.id ORDER BY ev.n",
        returning="case_id",
    )


_ROW_COLUMNS = ("b_id", "b_rank", "b_below", "b_state", "b_reason", "b_detail")


def _row_arrays(rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """The rows of ``_row`` as one array parameter per column (``unnest`` takes them)."""
    names = (*_ROW_COLUMNS, *(f"v_{k}" for k in keys))
    return {name: literal([row[name] for row in rows]) for name in names}


def _rounds(group: list[Transition]) -> list[list[Transition]]:
    """A group's transitions in rounds in which each case appears at most once, in order (one
    UPDATE ... FROM applies at most one row to each case)."""
    rounds: list[list[Transition]] = []
    seen: dict[str, int] = {}
    for transition in group:
        index = seen.get(transition.case_id, 0)
        seen[transition.case_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(transition)
    return rounds


@functools.cache
def _unnest_update_returning(keys: tuple[str, ...], dialect: sa.Dialect) -> sa.TextClause:
    """The update of ``_unnest_update`` with its history rows written by the same statement."""
    return _update_writing_events(
        keys,
        dialect,
        moved="cases.id, i.b_state AS state, i.b_reason AS reason, i.b_detail AS detail",
        events="moved AS ev",
        returning="case_id, state",
    )


def _update_writing_events(
    keys: tuple[str, ...], dialect: sa.Dialect, *, moved: str, events: str, returning: str
) -> sa.TextClause:
    """``_unnest_update`` as the CTE ``moved`` (each updated case's ``moved`` columns), and in
    the same statement one ``case_events`` row per ``ev`` row of ``events`` (a FROM clause whose
    ``ev`` has ``id``, ``state``, ``reason`` and ``detail``), returning ``returning`` of them."""
    update = _unnest_update(keys, dialect).text
    return sa.text(
        f"WITH moved AS ({update} RETURNING {moved}) "  # noqa: S608 - our SQL
        "INSERT INTO case_events (case_id, state, stage, reason, detail, at) "
        f"SELECT ev.id, ev.state, :stage, ev.reason, ev.detail, :now FROM {events} "
        f"RETURNING {returning}"
    )


def _row(t: Transition, keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        "b_id": t.case_id,
        "b_rank": RANK[t.state],
        "b_below": below_rank(t.state, t.until),
        "b_state": t.state.value,
        "b_reason": t.reason,
        "b_detail": (t.detail or None) and str(t.detail)[:500],
        **{f"v_{key}": t.values[key] for key in keys},
    }


@functools.cache
def _unnest_update(keys: tuple[str, ...], dialect: sa.Dialect) -> sa.TextClause:
    """``UPDATE cases ... FROM unnest(arrays)``: one statement and one round trip for a whole
    group, with the same SQL text every time (so PostgreSQL and SQLAlchemy reuse it)."""
    extra = [(key, cases.c[key].type.compile(dialect=dialect)) for key in keys]
    arrays = ", ".join(
        [
            "CAST(:b_id AS VARCHAR[])",
            "CAST(:b_rank AS INTEGER[])",
            "CAST(:b_below AS INTEGER[])",
            "CAST(:b_state AS VARCHAR[])",
            "CAST(:b_reason AS VARCHAR[])",
            "CAST(:b_detail AS VARCHAR[])",
            *(f"CAST(:v_{key} AS {kind}[])" for key, kind in extra),
        ]
    )
    names = ", ".join(["b_id", "b_rank", "b_below", "b_state", "b_reason", "b_detail", *keys])
    sets = ", ".join(
        [
            "state = i.b_state",
            "state_rank = i.b_rank",
            "reason = i.b_reason",
            "detail = i.b_detail",
            "updated_at = :now",
            *(f"{key} = i.{key}" for key in keys),
        ]
    )
    return sa.text(
        f"UPDATE cases SET {sets} FROM unnest({arrays}) AS i({names}) "  # noqa: S608 - names are our columns
        "WHERE cases.id = i.b_id AND cases.state_rank < i.b_below"
    )


def _update_each(
    conn: sa.Connection, keys: tuple[str, ...], group: list[Transition], now: dt.datetime
) -> None:
    """SQLite: the update executed once per case (PostgreSQL: ``_apply_returning``)."""
    statement = (
        sa.update(cases)
        .where(
            cases.c.id == sa.bindparam("b_id"),
            cases.c.state_rank < sa.bindparam("b_below"),
        )
        .values(
            state=sa.bindparam("b_state"),
            state_rank=sa.bindparam("b_rank"),
            reason=sa.bindparam("b_reason"),
            detail=sa.bindparam("b_detail"),
            updated_at=now,
            **{key: sa.bindparam(f"v_{key}") for key in keys},
        )
    )
    conn.execute(statement, [_row(t, keys) for t in group])


def record_unreadable(
    conn: sa.Connection,
    *,
    queue: str,
    reason: str,
    detail: str,
    body: str | None,
    settings: Settings | None = None,
) -> None:
    """Keep a message no stage could read, with why, so on-call can put it right.

    Stage queues' publishers are authenticated by the broker: the body is kept (bounded, see
    ``workers/rejections.py``); with the process's ``settings``, sealed on a queue whose
    messages can carry an answer (``rejections.keep_from_stage``)."""
    from workers import rejections

    kept = None
    if body is not None:
        data = body.encode("utf-8", "surrogatepass")
        if settings is not None:
            kept = rejections.keep_from_stage(data, queue, settings)
        else:
            kept = rejections.keep(data, authenticated=True)
    rejections.record(conn, queue=queue, reason=reason, detail=detail, kept=kept)


def count_states(conn: sa.Connection, *, batch_id: str | None = None) -> Counter[str]:
    """How many cases are in each state (of one batch, or of all)."""
    query = sa.select(cases.c.state, sa.func.count()).group_by(cases.c.state)
    if batch_id is not None:
        query = query.where(cases.c.batch_id == batch_id)
    return Counter({row[0]: int(row[1]) for row in conn.execute(query)})


def count_reasons(conn: sa.Connection, *, batch_id: str | None = None) -> Counter[str]:
    """How many rejected cases there are per reason code."""
    query = (
        sa.select(cases.c.reason, sa.func.count())
        .where(cases.c.state == CaseState.REJECTED.value)
        .group_by(cases.c.reason)
    )
    if batch_id is not None:
        query = query.where(cases.c.batch_id == batch_id)
    return Counter({str(row[0]): int(row[1]) for row in conn.execute(query)})
