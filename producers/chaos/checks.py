"""What a chaos run is judged by, from outside: what the simulators received (the inbox's
deliveries, the SMS gateway's messages, the SMTP sink's mail) against what should have happened
(the dispatch list and the account directory's verdicts) and against the records (the cases
and the notification ledger in the database). ``evaluate`` is pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from workers.case_states import SETTLED, CaseState
from workers.store.notifications import OPEN, SENT, UNCONFIRMED, Resolution


@dataclass(frozen=True)
class Expected:
    """One line of the dispatch list: its case, and whether the directory says the resident
    can be reached (and on which channels)."""

    case_id: str
    reachable: bool
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Record:
    """A case as the database has it: state, channels recorded notified, inbox id, and the
    notification ledger's status and resolution (how an in-doubt one was settled) per channel
    (its first notification)."""

    case_id: str
    state: str
    channels: tuple[str, ...]
    inbox_message_id: str | None
    ledger: Mapping[str, str] = field(default_factory=dict)
    resolutions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    """What the simulators received, per case: inbox deliveries, SMS messages (distinct
    idempotency keys the gateway took) and e-mails (messages the SMTP sink took)."""

    inbox: Counter[str]
    sms: Counter[str]
    email: Counter[str]
    inbox_refused_duplicates: int = 0
    """Deliveries an idempotent inbox recognised as repeats (when it reports them)."""


@dataclass(frozen=True)
class Row:
    """One line of the verdict table."""

    check: str
    found: int
    detail: str = ""
    limit: int = 0

    @property
    def ok(self) -> bool:
        """Whether the check passed (found at most the limit, which is 0 for every miss)."""
        return self.found <= self.limit


def _channels(channels: Iterable[str]) -> str:
    return "+".join(sorted(channels)) or "none"


def _sample(ids: Iterable[str], n: int = 3) -> str:
    chosen = sorted(ids)[:n]
    return ", ".join(chosen)


def evaluate(
    expected: list[Expected], records: Mapping[str, Record], observed: Observed
) -> list[Row]:
    """The verdict table of a run (pure). Each row states what it counts; a row whose limit
    is its own count only reports (the in-doubt notifications and how they were settled)."""
    by_case = {e.case_id: e for e in expected}
    reachable = [e for e in expected if e.reachable]
    lost = [e.case_id for e in expected if e.case_id not in records]
    lost += [e.case_id for e in reachable if e.case_id in records and not observed.inbox[e.case_id]]
    stuck = [
        c
        for c, r in records.items()
        if CaseState(r.state) not in SETTLED or any(v in OPEN for v in r.ledger.values())
    ]
    failed = [c for c, r in records.items() if r.state == CaseState.FAILED]
    wrong_verdict = [
        c
        for c, r in records.items()
        if c in by_case and (r.state == CaseState.REJECTED) == by_case[c].reachable
    ]
    unreachable_delivered = [
        e.case_id for e in expected if not e.reachable and observed.inbox[e.case_id]
    ]
    inbox_twice = {c: n - 1 for c, n in observed.inbox.items() if n > 1}
    sms_twice = {c: n - 1 for c, n in observed.sms.items() if n > 1}
    resent = {
        c
        for c, r in records.items()
        if r.resolutions.get("email") == Resolution.RESENT_SAME_MESSAGE_ID
    }
    resent_twice = {c for c, n in observed.email.items() if n == 2 and c in resent}
    email_twice = {c: n - 1 for c, n in observed.email.items() if n > 1 and c not in resent_twice}
    unnotified = [
        e.case_id
        for e in reachable
        if not observed.sms[e.case_id] and not observed.email[e.case_id]
    ]
    strangers = [c for c in {*observed.inbox, *observed.sms, *observed.email} if c not in by_case]
    disagree_channels: list[str] = []
    disagree_inbox: list[str] = []
    disagree_ledger: list[str] = []
    unconfirmed: list[str] = []
    unconfirmed_received = 0
    for case_id, record in records.items():
        got = {
            ch for ch, seen in (("sms", observed.sms), ("email", observed.email)) if seen[case_id]
        }
        perhaps = {ch for ch, status in record.ledger.items() if status == UNCONFIRMED}
        if CaseState(record.state) in {CaseState.NOTIFIED, CaseState.READ}:
            recorded = set(record.channels)
            if not recorded <= got <= recorded | perhaps:
                disagree_channels.append(f"{case_id} ({_channels(recorded)}/{_channels(got)})")
        elif got - perhaps:  # notified at the simulators, not in the records
            disagree_channels.append(f"{case_id} ({record.state}/{_channels(got)})")
        if bool(record.inbox_message_id) != bool(observed.inbox[case_id]):
            disagree_inbox.append(case_id)
        for channel, status in record.ledger.items():
            if status == UNCONFIRMED:  # in doubt, settled unsent by policy: perhaps received
                unconfirmed.append(f"{case_id}:{channel}")
                unconfirmed_received += channel in got
            elif (status == SENT) != (channel in got):
                disagree_ledger.append(f"{case_id}:{channel}={status}")
    return [
        Row(
            "lost cases (no record, or reachable and never in the inbox)", len(lost), _sample(lost)
        ),
        Row("cases stuck (not settled, or a notification still open)", len(stuck), _sample(stuck)),
        Row("cases failed (technical failure)", len(failed), _sample(failed)),
        Row("verdict unlike the directory's", len(wrong_verdict), _sample(wrong_verdict)),
        Row("unreachable residents delivered to", len(unreachable_delivered)),
        Row("duplicate inbox deliveries", sum(inbox_twice.values()), _sample(inbox_twice)),
        Row("duplicate SMS", sum(sms_twice.values()), _sample(sms_twice)),
        Row(
            "duplicate e-mails (beyond the in-doubt resends below)",
            sum(email_twice.values()),
            _sample(email_twice),
        ),
        Row(
            "  in-doubt e-mails resent (same Message-ID), both received",
            len(resent_twice),
            _sample(resent_twice),
            limit=len(resent),
        ),
        Row(
            "  in-doubt e-mails resent (same Message-ID), all in-doubt resends",
            len(resent),
            _sample(resent),
            limit=len(resent),
        ),
        Row("reachable residents notified on no channel", len(unnotified), _sample(unnotified)),
        Row("deliveries for cases not in the dispatch", len(strangers), _sample(strangers)),
        Row(
            "records: channels unlike the SMS and e-mail received (recorded/received)",
            len(disagree_channels),
            _sample(disagree_channels),
        ),
        Row(
            "records: inbox id unlike the inbox's deliveries",
            len(disagree_inbox),
            _sample(disagree_inbox),
        ),
        Row(
            "records: ledger sent/not sent unlike what was received",
            len(disagree_ledger),
            _sample(disagree_ledger),
        ),
        Row(
            "  in doubt, settled unsent by policy (unconfirmed)",
            len(unconfirmed),
            _sample(unconfirmed),
            limit=len(unconfirmed),
        ),
        Row(
            "  of those, received all the same",
            unconfirmed_received,
            limit=unconfirmed_received,
        ),
    ]


def summary_counts(expected: list[Expected], observed: Observed) -> dict[str, int]:
    """The run's size in cases, reachable residents and what the simulators took."""
    return {
        "cases": len(expected),
        "reachable": sum(e.reachable for e in expected),
        "inbox_deliveries": sum(observed.inbox.values()),
        "sms": sum(observed.sms.values()),
        "emails": sum(observed.email.values()),
    }
