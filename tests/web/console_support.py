"""Helpers for the web console's tests: users, an application on a database, signing in."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.registry import envelope_for
from contracts.send_case import SendCaseV2
from producers.web.passwords import hash_password
from producers.web.services import Console
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.population import test_personnummer
from workers.settings import Settings
from workers.store import failures as failure_store
from workers.store import users
from workers.store.schema import failures

PASSWORD = "correct-horse-battery-staple-17"
CLINIC_A = "SE2321000016-VC01"
CLINIC_B = "SE2321000016-VC02"
NURSE_A = "SE2321000016-S101"
NURSE_B = "SE2321000016-S202"
ADMIN_A = "SE2321000016-S103"
ONCALL = "SE2321000016-S900"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_users(engine: sa.Engine) -> None:
    """A nurse at each clinic, clinic A's administrator, and on-call."""
    hashed = hash_password(PASSWORD)
    with engine.begin() as conn:
        for username, hsa, roles, clinics, name in (
            ("nurse-a", NURSE_A, ["staff"], [CLINIC_A], "Sara Nilsson"),
            ("nurse-b", NURSE_B, ["staff"], [CLINIC_B], "Per Holm"),
            ("admin-a", ADMIN_A, ["admin", "staff"], [CLINIC_A], "Karin Berg"),
            ("oncall", ONCALL, ["oncall"], [], "Nils Olsson"),
        ):
            users.add(
                conn,
                username=username,
                display_name=name,
                hsa_id=hsa,
                roles=roles,
                clinics=clinics,
                password_hash=hashed,
            )


FREE_TEXT = "Provsvaret visar klamydia, ring oss"
"""Message text a dead letter carries, which the on-call pages must never show."""


def dead_letter(resident: str, key: str) -> tuple[dict[str, Any], str]:
    """The failure record ``RecordDeadLetters`` writes when dramatiq gives up on a SendCase
    (an outage of the account directory), and the id of its case. The traceback is left
    unmasked on purpose: the pages must mask it themselves."""
    record = SendCaseV2.model_validate(
        {
            "clinic_hsa_id": CLINIC_A,
            "sender_hsa_id": NURSE_A,
            "template_id": "meddelande-till-invanare",
            "personnummer": resident,
            "free_text": FREE_TEXT,
            "idempotency_key": key,
        }
    )
    envelope = envelope_for([record]).model_dump(mode="json")
    now = dt.datetime.now(dt.UTC)
    row = {
        "kind": "dead-letter",
        "queue": "recipient-validation",
        "actor": "validate_recipients",
        "contract": "SendCase",
        "contract_version": 2,
        "message_id": envelope["message_id"],
        "broker_message_id": f"m-{key}",
        "case_ids": json.dumps([record.resolved_case_id()]),
        "case_count": 1,
        "clinic_hsa_id": CLINIC_A,
        "reason": "outage",
        "detail": f"DirectoryUnavailable: 503 for {resident}",
        "exception_type": "workers.adapters.account_directory.DirectoryUnavailable",
        "traceback": f"Traceback ...\nDirectoryUnavailable: 503 for {resident}",
        "attempts": 3,
        "first_failed_at": now - dt.timedelta(minutes=20),
        "last_failed_at": now - dt.timedelta(minutes=5),
        "body": json.dumps(envelope),
        "body_truncated": False,
    }
    return row, record.resolved_case_id()


def insert_dead_letter(engine: sa.Engine, resident: str, key: str) -> tuple[str, str]:
    """Write a dead letter (``dead_letter``); returns its failure id and its case id."""
    row, case_id = dead_letter(resident, key)
    with engine.begin() as conn:
        failure_store.insert(conn, [row])
        number = conn.execute(sa.select(sa.func.max(failures.c.id))).scalar_one()
    return f"F{number}", case_id


def build_app(settings: Settings) -> FastAPI:
    """The application ``omvant serve`` runs, on ``settings``."""
    from producers.web.app import create_app

    return create_app(settings, migrate=True)  # the tests' databases are their own


def console_of(app: FastAPI) -> Console:
    """The console services of ``app``."""
    found: Console = app.state.console
    return found


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the CSRF token of the signed-in session."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:500]
    return csrf_of(client.get(answer.headers["location"]).text)


def residents_with(status: AccountStatus, count: int, seed: int = 1177) -> list[str]:
    """Official test numbers whose simulated account has ``status`` (active: with a channel)."""
    directory = SimulatedAccountDirectory(seed)
    found: list[str] = []
    for number in test_personnummer():
        account = directory.account(number)
        if account.status == status and (status != AccountStatus.ACTIVE or account.channels):
            found.append(number)
            if len(found) == count:
                return found
    raise AssertionError("not enough residents of that kind in the test population")


def no_channel_residents(count: int, seed: int = 1177) -> Sequence[str]:
    """Active accounts without any notification channel."""
    directory = SimulatedAccountDirectory(seed)
    found = [
        n
        for n in test_personnummer()
        if directory.account(n).status == AccountStatus.ACTIVE and not directory.account(n).channels
    ]
    return found[:count]
