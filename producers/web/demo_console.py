"""``omvant demo --serve``: the web console on the demo's data, with the demo's pipeline.

Three users are made for the demo's clinics (or given a new password if they exist): ``personal``
(staff at the first two clinics), ``admin`` (the first clinic's administrator and staff) and
``jour`` (on-call). Cases sent from the console go onto the demo's in-process broker, so its
workers carry them like the demo's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from producers.scenario import CLINICS
from producers.web.passwords import hash_password
from workers.bootstrap import Context
from workers.store import users

DEMO_USERS = (
    ("personal", "SE2321000016-S101", ("staff",), CLINICS[:2], "Sara Nilsson"),
    ("admin", "SE2321000016-S103", ("admin", "staff"), CLINICS[:1], "Karin Berg"),
    ("jour", "SE2321000016-S900", ("oncall",), (), "Nils Olsson"),
)


@dataclass(frozen=True)
class DemoLogin:
    """A demo user to sign in as."""

    username: str
    password: str
    roles: tuple[str, ...]


def demo_users(ctx: Context) -> list[DemoLogin]:
    """Make (or re-password) the demo's users; one fresh password for all of them."""
    password = secrets.token_urlsafe(12)
    hashed = hash_password(password)
    made: list[DemoLogin] = []
    with ctx.engine.begin() as conn:
        for username, hsa_id, roles, clinics, name in DEMO_USERS:
            found = users.by_username(conn, username)
            if found is None:
                users.add(
                    conn,
                    username=username,
                    display_name=name,
                    hsa_id=hsa_id,
                    roles=roles,
                    clinics=clinics,
                    password_hash=hashed,
                )
            else:
                users.set_password_hash(conn, found.id, hashed)
                users.set_active(conn, username, True)
            made.append(DemoLogin(username, password, roles))
    return made


def serve_console(
    host: str, port: int, announce: Callable[[str, list[DemoLogin]], None]
) -> Callable[[Context, dict[str, object]], None]:
    """What ``run_demo`` runs last: the console on the demo's database and broker."""

    def serve(ctx: Context, _summary: dict[str, object]) -> None:
        import uvicorn

        from producers.web.app import create_app

        logins = demo_users(ctx)
        app = create_app(ctx.settings)
        app.state.console.broker = ctx.broker  # sends go to the demo's in-process workers
        announce(f"http://{host}:{port}/", logins)
        uvicorn.run(app, host=host, port=port, log_level="warning")

    return serve
