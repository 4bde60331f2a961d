"""``omvant api-keys create|list|revoke``: integrations' keys for the HTTP API and the intake."""

from __future__ import annotations

import json
from typing import Annotated

import sqlalchemy as sa
import typer

from producers.cli.errors import fail
from producers.cli.options import DatabaseOption, JsonOption, checked_engine, settings_from
from workers.reasons import Reason
from workers.store import api_keys
from workers.store.api_keys import ApiKey, ApiKeyError

app = typer.Typer(
    help="API keys per integration: HTTP API tokens and intake signing keys.",
    no_args_is_help=True,
)


def _record(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "clinics": list(key.clinics),
        "webhook_url": key.webhook_url,
        "rate_per_second": key.rate_per_second,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "active": key.active,
    }


def _engine(database: str | None, *, existing_database: bool = False) -> sa.Engine:
    settings = settings_from(None, database, existing_database=existing_database)
    return checked_engine(settings.database_url)


@app.command("create")
def create(
    key_id: Annotated[str, typer.Argument(help="The integration's key id, e.g. journal-a.")],
    clinic: Annotated[
        list[str], typer.Option("--clinic", help="HSA-id of a clinic it may act for (repeat).")
    ],
    name: Annotated[str | None, typer.Option(help="What the integration is.")] = None,
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", help="Where case state changes are posted.")
    ] = None,
    rate: Annotated[
        int | None, typer.Option(min=1, help="Requests per second (default OMVANT_API_RATE).")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a key; prints its bearer token and signing key once (only hashes are kept of the
    token). Exit status 2 on a malformed id, clinic or URL, or an id in use."""
    engine = _engine(database)
    try:
        with engine.begin() as conn:
            made = api_keys.create(
                conn,
                key_id=key_id,
                name=name or key_id,
                clinics=clinic,
                webhook_url=webhook_url,
                rate_per_second=rate,
            )
    except ApiKeyError as exc:
        fail(Reason.USAGE_ERROR, str(exc))
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps({**_record(made.key), "token": made.token, "signing_key": made.signing_key})
        )
        return
    typer.echo(f"key {made.key.key_id} for {', '.join(made.key.clinics)}")
    typer.echo(f"token (HTTP API, Authorization: Bearer ...): {made.token}")
    typer.echo(f"signing key (intake omvant-signature, webhooks): {made.signing_key}")
    typer.echo("both are shown this once; keep them in the integration's secret store")


@app.command("list")
def list_command(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Every key (never a secret), revoked ones too."""
    engine = _engine(database, existing_database=True)
    try:
        with engine.connect() as conn:
            keys = api_keys.list_all(conn)
    finally:
        engine.dispose()
    for key in keys:
        if as_json:
            typer.echo(json.dumps(_record(key)))
        else:
            state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
            hook = f" webhook {key.webhook_url}" if key.webhook_url else ""
            typer.echo(f"{key.key_id}\t{state}\t{','.join(key.clinics)}{hook}")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key to revoke.")],
    database: DatabaseOption = None,
) -> None:
    """Revoke a key for good: its token and signing key stop working (the intake bridge
    within 5 s). Exit status 2 for an unknown key."""
    engine = _engine(database)
    try:
        with engine.begin() as conn:
            key = api_keys.revoke(conn, key_id)
    except ApiKeyError as exc:
        fail(Reason.USAGE_ERROR, str(exc))
    finally:
        engine.dispose()
    typer.echo(f"revoked {key.key_id}")
