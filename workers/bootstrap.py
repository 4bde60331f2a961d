"""Builds the adapters and settings once per process: the one place that wires things."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import dramatiq
import sqlalchemy as sa

from workers.adapters.account_directory import AccountDirectory, SimulatedAccountDirectory
from workers.adapters.blobs import BlobStore, FilesystemBlobStore
from workers.adapters.inbox import Inbox, SimulatedInbox
from workers.adapters.notifier_wiring import (
    build_email_sender,
    build_rate_limiter,
    build_sms_gateway,
)
from workers.adapters.notifiers import EmailSender, SmsGateway
from workers.adapters.rate_limits import RateLimiter, Unlimited
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue, StaffCatalogue
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
    rate_limits: RateLimiter = field(default_factory=Unlimited)
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))


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
        sms=build_sms_gateway(settings),
        email=build_email_sender(settings),
        blobs=FilesystemBlobStore(settings.blob_dir),
        today=lambda: dt.datetime.now(zone).date(),
        rate_limits=build_rate_limiter(settings),
    )
