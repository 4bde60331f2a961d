"""Options several commands share."""

from __future__ import annotations

from typing import Annotated

import typer

from workers.settings import Settings

BrokerOption = Annotated[
    str | None, typer.Option("--broker", help="Broker URL (amqp://, redis://, memory://).")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", help="Database URL (postgresql://, sqlite:///).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_from(broker: str | None = None, database: str | None = None) -> Settings:
    """Settings from the environment, with the command line's URLs on top."""
    overrides: dict[str, str] = {}
    if broker:
        overrides["broker_url"] = broker
    if database:
        overrides["database_url"] = database
    return Settings(**overrides)  # type: ignore[arg-type]
