"""Builds the adapters and settings once per process: the one place that wires things."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import dramatiq
import sqlalchemy as sa

from workers.adapters.account_directory import AccountDirectory, SimulatedAccountDirectory
from workers.adapters.blobs import BlobStore, blob_store_from
from workers.adapters.inbox import Inbox, SimulatedInbox
from workers.adapters.notifiers import (
    EmailSender,
    SimulatedEmailSender,
    SimulatedSmsGateway,
    SmsGateway,
)
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue, StaffCatalogue
from workers.attachments.scanner import SimulatedVirusScanner, VirusScanner, scanner_from
from workers.settings import Settings
from workers.store.engine import make_engine
from workers.templates.library import InMemoryTemplateLibrary, TemplateLibrary


@dataclass
class Context:
    """Everything a stage needs besides its input: settings, broker, database, adapters."""

    settings: Settings
    broker: dramatiq.Broker
    engine: sa.Engine
    directory: AccountDirectory
    catalogue: StaffCatalogue
    templates: TemplateLibrary
    inbox: Inbox
    sms: SmsGateway
    email: EmailSender
    blobs: BlobStore
    today: Callable[[], dt.date] = field(default=dt.date.today)
    scanner: VirusScanner = field(default_factory=SimulatedVirusScanner)


def build_context(settings: Settings, broker: dramatiq.Broker) -> Context:
    """Wire a process: the simulators of outside systems unless configuration says otherwise."""
    zone = ZoneInfo(settings.timezone)
    outbox = settings.sim_outbox
    return Context(
        settings=settings,
        broker=broker,
        engine=make_engine(settings.database_url),
        directory=SimulatedAccountDirectory(settings.seed),
        catalogue=SimulatedStaffCatalogue(settings.seed),
        templates=InMemoryTemplateLibrary(),
        inbox=SimulatedInbox(outbox),
        sms=SimulatedSmsGateway(outbox),
        email=SimulatedEmailSender(outbox),
        blobs=blob_store_from(settings.blob_dir, settings.blob_url, settings.s3_endpoint_url),
        today=lambda: dt.datetime.now(zone).date(),
        scanner=scanner_from(settings.clamd_socket, settings.clamd_url, settings.clamd_timeout),
    )
