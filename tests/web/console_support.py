"""Helpers for the web console's tests: users, an application on a database, signing in."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producers.web.passwords import hash_password
from producers.web.services import Console
from workers.adapters.account_directory import AccountStatus, SimulatedAccountDirectory
from workers.adapters.population import test_personnummer
from workers.settings import Settings
from workers.store import users

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


def build_app(settings: Settings) -> FastAPI:
    """The application ``omvant serve`` runs, on ``settings``."""
    from producers.web.app import create_app

    return create_app(settings)


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
