"""``omvant inbox-events`` (the bridge from the inbox's AMQP events to the read-receipt stage),
``omvant sim sms-gateway`` (the shipped SMS-gateway simulator) and ``omvant sim smtp-sink``
(the SMTP server that keeps what it takes), registered on the ``sim`` group."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from producers.cli.errors import note
from producers.cli.options import BrokerOption, DatabaseOption, settings_from
from workers.reasons import Note


def inbox_events(
    url: Annotated[
        str | None,
        typer.Option("--url", help="The inbox's AMQP URL (default OMVANT_INBOX_EVENTS_URL)."),
    ] = None,
    broker: BrokerOption = None,
    database: DatabaseOption = None,
) -> None:
    """Consume the inbox's opened/answered events and feed the read-receipt stage.

    Says ``worker.ready`` once it consumes and ``worker.stopped`` when it has forwarded what it
    held, as ``omvant worker`` does (at every ``OMVANT_LOG_LEVEL``)."""
    from workers import server_probe as servers
    from workers.answer_seal import answer_seal
    from workers.bootstrap import build_context
    from workers.broker import build_broker
    from workers.inbox_events_bridge import InboxEventsBridge
    from workers.log import configure
    from workers.readiness import lifecycle_log

    settings = settings_from(broker, database, require=(servers.BROKER, servers.DATABASE))
    answer_seal(settings)  # refused events are kept sealed: no key, one line and exit 2
    events = url or settings.inbox_events_url or settings.broker_url
    if events.split("://", 1)[0].lower() in {"amqp", "amqps"}:
        servers.probe_amqp(events, settings.connect_timeout, servers.INBOX_EVENTS)
    configure(settings.log_level, json=settings.log_json)
    ctx = build_context(settings, build_broker(settings.broker_url))
    said = lifecycle_log()
    bridge = InboxEventsBridge(
        ctx,
        events,
        chunk_size=settings.chunk_size,
        on_ready=lambda: said.info(
            "worker.ready",
            processes=1,
            stages=["inbox-events"],
            queues=1,
            queue=bridge.queue.name,
            pid=os.getpid(),
        ),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        bridge.run(stop)
    finally:
        ctx.broker.close()
    said.info("worker.stopped", pid=os.getpid(), forwarded=bridge.forwarded.receipts)


def sms_gateway(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one).")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run the SMS-gateway simulator (see workers/adapters/sms_gateway_server.py for its API)."""
    from workers.adapters.sms_gateway_server import SmsGatewaySimulator

    simulator = SmsGatewaySimulator(host, port)
    note(Note.LISTENING, f"sms gateway simulator on {simulator.url}", url=simulator.url)
    try:
        simulator.serve_forever()
    except KeyboardInterrupt:
        simulator.stop()


def smtp_sink(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one).")] = 0,
    record: Annotated[
        Path | None, typer.Option(help="Append one JSON line per message taken to this file.")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
) -> None:
    """Run the SMTP sink (an SMTP server that keeps what it takes; loopback by default)."""
    from workers.adapters.smtp_sink import SmtpSink

    sink = SmtpSink(port=port, record=record, host=host).start()
    note(Note.LISTENING, f"smtp sink on {sink.url}", url=sink.url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sink.stop()
