"""``omvant intake``: run the intake bridge (any-language producers into the pipeline)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any

import typer

from producers.cli.errors import fail
from producers.cli.options import BrokerOption, DatabaseOption, settings_from
from workers import server_probe as servers
from workers.broker import build_broker
from workers.intake_bridge import IntakeBridge
from workers.intake_sources import open_source
from workers.log import configure, get_logger
from workers.reasons import Reason
from workers.store.api_keys import intake_credentials
from workers.store.engine import check_schema, make_engine

log = get_logger(__name__)


def intake(
    source: Annotated[
        str | None,
        typer.Option("--source", help="Intake URL (amqp:// or redis://); default the broker's."),
    ] = None,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
    buffer: Annotated[int, typer.Option(min=1, help="Messages handled per round.")] = 500,
) -> None:
    """Take signed JSON SendCase records from omvant.intake into the pipeline until stopped."""
    settings = settings_from(broker, database, require=(servers.BROKER, servers.DATABASE))
    configure(settings.log_level, json=settings.log_json)
    if settings.broker_url.startswith("memory"):
        fail(Reason.USAGE_ERROR, "the intake bridge needs a real broker (amqp:// or redis://)")
    engine = make_engine(settings.database_url)
    check_schema(engine)
    with engine.connect() as conn:
        api_keys_in_use, _clinics = intake_credentials(conn)
    if not settings.intake_keys and not api_keys_in_use:
        engine.dispose()
        fail(
            Reason.INVALID_SETTING,
            "no intake credentials: make a key with `omvant api-keys create`, or set "
            'OMVANT_INTAKE_KEYS=\'{"key-id": "secret"}\'',
        )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    intake_source = open_source(source or settings.broker_url, prefix=settings.queue_prefix)
    pipeline = build_broker(settings.broker_url)
    bridge = IntakeBridge(
        intake_source, settings=settings, broker=pipeline, engine=engine, buffer=buffer
    )
    log.info("intake bridge started", integrations=len(settings.intake_keys) + len(api_keys_in_use))
    try:
        counts = bridge.run(stop)
    finally:
        intake_source.close()
        pipeline.close()
        engine.dispose()
    typer.echo(json.dumps(counts.__dict__))
