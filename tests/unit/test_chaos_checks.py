"""The chaos suite's verdict: each kind of miss, seen at the simulators or in the records, is
found and counted; a clean run passes."""

from __future__ import annotations

from collections import Counter

from producers.chaos.checks import Expected, Observed, Record, evaluate

SMS_ONLY = Expected("c-sms", True, ("sms",))
BOTH = Expected("c-both", True, ("sms", "email"))
UNREACHABLE = Expected("c-none", False, ())
EXPECTED = [SMS_ONLY, BOTH, UNREACHABLE]


def clean_records() -> dict[str, Record]:
    return {
        "c-sms": Record("c-sms", "notified", ("sms",), "i1", {"sms": "sent"}),
        "c-both": Record(
            "c-both", "notified", ("sms", "email"), "i2", {"sms": "sent", "email": "sent"}
        ),
        "c-none": Record("c-none", "rejected", (), None),
    }


def clean_observed() -> Observed:
    return Observed(
        inbox=Counter({"c-sms": 1, "c-both": 1}),
        sms=Counter({"c-sms": 1, "c-both": 1}),
        email=Counter({"c-both": 1}),
    )


def misses(records: dict[str, Record], observed: Observed) -> dict[str, int]:
    return {row.check: row.found for row in evaluate(EXPECTED, records, observed) if not row.ok}


def test_a_clean_run_has_no_miss() -> None:
    assert misses(clean_records(), clean_observed()) == {}


def test_a_case_with_no_record_or_never_delivered_is_lost() -> None:
    records = clean_records()
    del records["c-sms"]
    observed = clean_observed()
    observed.inbox["c-sms"] = 0
    found = misses(records, observed)
    assert found["lost cases (no record, or reachable and never in the inbox)"] == 1


def test_duplicates_at_each_simulator_are_counted() -> None:
    observed = clean_observed()
    observed.inbox["c-both"] += 2
    observed.sms["c-sms"] += 1
    observed.email["c-both"] += 1
    found = misses(clean_records(), observed)
    assert found["duplicate inbox deliveries"] == 2
    assert found["duplicate SMS"] == 1
    assert found["duplicate e-mails (beyond the in-doubt resends below)"] == 1


def test_an_in_doubt_email_resent_by_policy_and_received_twice_is_reported_not_a_miss() -> None:
    records = clean_records()
    records["c-both"] = Record(
        "c-both",
        "notified",
        ("sms", "email"),
        "i2",
        {"sms": "sent", "email": "sent"},
        {"email": "resent-same-message-id"},
    )
    observed = clean_observed()
    observed.email["c-both"] += 1
    rows = {row.check: row for row in evaluate(EXPECTED, records, observed)}
    assert all(row.ok for row in rows.values())
    assert rows["  in-doubt e-mails resent (same Message-ID), both received"].found == 1
    observed.email["c-both"] += 1  # a third copy is beyond the policy's one resend
    assert misses(records, observed) == {"duplicate e-mails (beyond the in-doubt resends below)": 2}


def test_a_reachable_resident_with_no_sms_and_no_email_is_a_miss() -> None:
    records = clean_records()
    records["c-sms"] = Record("c-sms", "delivered", (), "i1", {"sms": "unconfirmed"})
    observed = clean_observed()
    observed.sms["c-sms"] = 0
    found = misses(records, observed)
    assert found == {"reachable residents notified on no channel": 1}


def test_stuck_and_failed_cases_are_misses() -> None:
    records = clean_records()
    records["c-sms"] = Record("c-sms", "composed", (), None)
    records["c-both"] = Record("c-both", "failed", (), None)
    observed = Observed(inbox=Counter(), sms=Counter(), email=Counter())
    found = misses(records, observed)
    assert found["cases stuck (not settled, or a notification still open)"] == 1
    assert found["cases failed (technical failure)"] == 1
    assert found["reachable residents notified on no channel"] == 2


def test_an_email_received_but_still_pending_in_the_ledger_is_stuck_and_a_disagreement() -> None:
    records = clean_records()
    records["c-both"] = Record(
        "c-both", "notified", ("sms",), "i2", {"sms": "sent", "email": "pending"}
    )
    found = misses(records, clean_observed())
    assert found == {
        "cases stuck (not settled, or a notification still open)": 1,
        "records: channels unlike the SMS and e-mail received (recorded/received)": 1,
        "records: ledger sent/not sent unlike what was received": 1,
    }


def test_an_email_in_doubt_settled_unconfirmed_may_have_been_received_either_way() -> None:
    records = clean_records()
    records["c-both"] = Record(
        "c-both", "notified", ("sms",), "i2", {"sms": "sent", "email": "unconfirmed"}
    )
    for copies in (0, 1):
        observed = clean_observed()
        observed.email["c-both"] = copies
        rows = {row.check: row for row in evaluate(EXPECTED, records, observed)}
        assert all(row.ok for row in rows.values()), rows
        assert rows["  in doubt, settled unsent by policy (unconfirmed)"].found == 1
        assert rows["  of those, received all the same"].found == copies


def test_a_record_of_a_delivery_the_inbox_never_had_is_a_disagreement() -> None:
    records = clean_records()
    records["c-none"] = Record("c-none", "rejected", (), "i3")
    found = misses(records, clean_observed())
    assert found == {"records: inbox id unlike the inbox's deliveries": 1}


def test_an_unreachable_resident_delivered_to_and_a_wrong_verdict_are_misses() -> None:
    records = clean_records()
    records["c-none"] = Record("c-none", "notified", ("sms",), "i3", {"sms": "sent"})
    observed = clean_observed()
    observed.inbox["c-none"] = 1
    observed.sms["c-none"] = 1
    found = misses(records, observed)
    assert found["verdict unlike the directory's"] == 1
    assert found["unreachable residents delivered to"] == 1
