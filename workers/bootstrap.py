"""Builds the adapters and settings once per process: the one place that wires things."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dramatiq
import sqlalchemy as sa

from workers.adapters.account_directory import AccountDirectory, SimulatedAccountDirectory
from workers.adapters.blobs import BlobStore, blob_store_from
from workers.adapters.inbox import Inbox, SimulatedInbox
from workers.adapters.notifier_wiring import (
    build_email_sender,
    build_rate_limits,
    build_sms_gateway,
)
from workers.adapters.notifiers import ChannelRateLimits, EmailSender, SmsGateway
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue, StaffCatalogue
from workers.attachments.scanner import SimulatedVirusScanner, VirusScanner, scanner_from
from workers.batch_control import BatchCache
from workers.settings import Settings
from workers.store.engine import make_engine
from workers.templates.database import DatabaseTemplateLibrary
from workers.templates.library import TemplateLibrary

if TYPE_CHECKING:
    from workers.case_ownership import ChunkCases
    from workers.failures import Reading


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
    batches: BatchCache
    """The process's view of dispatches (status and bulk lane), refreshed every second."""
    today: Callable[[], dt.date] = field(default=dt.date.today)
    scanner: VirusScanner = field(default_factory=SimulatedVirusScanner)
    rate_limits: ChannelRateLimits = field(default_factory=ChannelRateLimits)
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    reading: Reading | None = None
    """The message a stage is running (set by the actor shell on the context it passes the
    stage): its records are kept with the rejections an operator can put right."""
    chunk_cases: ChunkCases | None = None
    """What the actor shell read of the message's cases with its ownership check (their
    arrivals: composition's pins), so that the stage does not read the same rows again."""


def build_context(settings: Settings, broker: dramatiq.Broker) -> Context:
    """Wire a process: the simulators of outside systems unless configuration says otherwise."""
    zone = ZoneInfo(settings.timezone)
    engine = make_engine(settings.database_url)
    inbox = build_inbox(settings)
    sms: SmsGateway = build_sms_gateway(settings)
    email: EmailSender = build_email_sender(settings)
    if settings.sim_latency_ms or settings.sim_failure_rate:
        from workers.adapters.degraded import (
            DegradedEmailSender,
            DegradedInbox,
            DegradedSmsGateway,
        )

        slow, flaky, seed = settings.sim_latency_ms, settings.sim_failure_rate, settings.seed
        inbox = DegradedInbox(inbox, slow, flaky, seed)
        sms = DegradedSmsGateway(sms, slow, flaky, seed + 1)
        email = DegradedEmailSender(email, slow, flaky, seed + 2)
    return Context(
        settings=settings,
        broker=broker,
        engine=engine,
        directory=build_directory(settings),
        catalogue=SimulatedStaffCatalogue(settings.seed),
        templates=DatabaseTemplateLibrary(engine, ttl=settings.template_cache_seconds),
        inbox=inbox,
        sms=sms,
        email=email,
        blobs=blob_store_from(settings.blob_dir, settings.blob_url, settings.s3_endpoint_url),
        batches=BatchCache(engine),
        today=lambda: dt.datetime.now(zone).date(),
        scanner=scanner_from(settings.clamd_socket, settings.clamd_url, settings.clamd_timeout),
        rate_limits=build_rate_limits(settings),
    )


def build_inbox(settings: Settings) -> Inbox:
    """The inbox over HTTP when ``inbox_url`` is set, else the simulated one (which shares its
    deliveries between processes through ``sim_outbox`` when that is set)."""
    if settings.inbox_url:
        from workers.adapters.http_inbox import HttpInbox

        return HttpInbox(settings.inbox_url, timeout=settings.notifier_timeout_seconds)
    return SimulatedInbox(settings.sim_outbox)


def build_directory(settings: Settings) -> AccountDirectory:
    """The account directory: HTTP behind a cache and a rate limit if ``directory_url`` is
    set (both shared through Redis if ``redis_url`` is), else the simulator."""
    if not settings.directory_url:
        return SimulatedAccountDirectory(settings.seed)
    from workers.adapters.directory_cache import (
        AccountCache,
        CachedAccountDirectory,
        InMemoryAccountCache,
        RedisAccountCache,
    )
    from workers.adapters.http_account_directory import HttpAccountDirectory
    from workers.rate_limit import in_process_limiter, redis_limiter

    key, rate = "omvant:directory-rate", settings.directory_rate
    cache: AccountCache
    if settings.redis_url:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        limiter = redis_limiter(settings.redis_url, key, per_second=rate)
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=1,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 1),
        )
        cache = RedisAccountCache(client, ttl=settings.directory_cache_seconds)
    else:
        limiter = in_process_limiter(key, per_second=rate)
        cache = InMemoryAccountCache(ttl=settings.directory_cache_seconds)
    http = HttpAccountDirectory(
        settings.directory_url,
        timeout=settings.directory_timeout,
        batch_size=settings.directory_batch_size,
        limiter=limiter,
        token=settings.directory_token,
    )
    if settings.directory_cache_seconds <= 0:
        return http
    return CachedAccountDirectory(http, cache)
