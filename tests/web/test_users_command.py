"""``omvant users``: local console accounts with argon2 hashes; disabling ends sessions."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from producers.cli import app
from producers.web.passwords import verify_password
from workers.store import users
from workers.store.engine import make_engine, upgrade
from workers.store.schema import web_sessions

PASSWORD = "a-long-enough-password"


@pytest.fixture
def sqlite_url(sqlite_url: str) -> str:
    """A database as ``omvant db upgrade`` leaves it (``omvant users`` does not migrate)."""
    upgrade(sqlite_url)
    return sqlite_url


def _run(sqlite_url: str, *args: str, stdin: str | None = None) -> object:
    return CliRunner().invoke(app, ["users", *args, "--database", sqlite_url], input=stdin)


def test_add_stores_an_argon2_hash_and_list_shows_the_user(sqlite_url: str) -> None:
    added = _run(
        sqlite_url, "add", "Sara", "--hsa-id", "SE2321000016-S101", "--role", "staff",
        "--clinic", "SE2321000016-VC01", "--clinic", "SE2321000016-VC02", "--name", "Sara Nilsson",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output  # type: ignore[attr-defined]
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        user = users.by_username(conn, "sara")
    engine.dispose()
    assert user is not None and user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, PASSWORD)
    assert not verify_password(user.password_hash, PASSWORD + "x")
    listed = _run(sqlite_url, "list", "--json")
    record = json.loads(listed.stdout)[0]  # type: ignore[attr-defined]
    assert record["username"] == "sara" and record["roles"] == ["staff"]
    assert record["clinics"] == ["SE2321000016-VC01", "SE2321000016-VC02"]


def test_bad_users_are_refused_with_a_clear_message(sqlite_url: str) -> None:
    weak = _run(sqlite_url, "add", "bo", "--hsa-id", "SE2321000016-S1", "--role", "staff",
                "--clinic", "SE2321000016-VC01", "--password-stdin", stdin="kort\n")  # fmt: skip
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output  # type: ignore[attr-defined]
    bad = _run(sqlite_url, "add", "bo", "--hsa-id", "SE23-X", "--role", "chef",
               "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert bad.exit_code == 2  # type: ignore[attr-defined]
    assert "SE2321000016-ABCD" in bad.output and "unknown role chef" in bad.output  # type: ignore[attr-defined]
    no_clinic = _run(sqlite_url, "add", "bo", "--hsa-id", "SE2321000016-S1", "--role", "staff",
                     "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert no_clinic.exit_code == 2 and "at least one clinic" in no_clinic.output  # type: ignore[attr-defined]
    ok = _run(sqlite_url, "add", "bo", "--hsa-id", "SE2321000016-S1", "--role", "oncall",
              "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert ok.exit_code == 0  # type: ignore[attr-defined]
    again = _run(sqlite_url, "add", "BO", "--hsa-id", "SE2321000016-S1", "--role", "oncall",
                 "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert again.exit_code == 1 and "exists already" in again.output  # type: ignore[attr-defined]


def test_disable_ends_the_users_sessions_and_enable_lets_them_back(sqlite_url: str) -> None:
    _run(sqlite_url, "add", "jour", "--hsa-id", "SE2321000016-S9", "--role", "oncall",
         "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        user = users.by_username(conn, "jour")
        assert user is not None
        conn.execute(
            web_sessions.insert().values(
                token_hash="x" * 64, user_id=user.id, created_at=sa.func.now(),
                seen_at=sa.func.now(), expires_at=sa.func.now(),
            )
        )  # fmt: skip
    assert _run(sqlite_url, "disable", "jour").exit_code == 0  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar() == 0
        assert not users.by_username(conn, "jour").active  # type: ignore[union-attr]
    assert _run(sqlite_url, "enable", "jour").exit_code == 0  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert users.by_username(conn, "jour").active  # type: ignore[union-attr]
    engine.dispose()
    assert _run(sqlite_url, "disable", "nobody").exit_code == 1  # type: ignore[attr-defined]
