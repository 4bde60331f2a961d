"""What the console's pages use, built once per application: the one place that wires it.

The pages call the same functions the CLI and the workers call (the template store, the
recipient check, the attachment checks, composition, the clinic's case queries, the access
log); nothing is decided here.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from zoneinfo import ZoneInfo

import dramatiq
import sqlalchemy as sa
from fastapi.templating import Jinja2Templates

from producers.web.console_settings import WebSettings
from producers.web.sessions import SessionManager
from workers.adapters.account_directory import AccountDirectory
from workers.adapters.blobs import BlobStore, blob_store_from
from workers.adapters.staff_catalogue import SimulatedStaffCatalogue, StaffCatalogue
from workers.attachments.limits import Limits
from workers.attachments.scanner import VirusScanner, scanner_from
from workers.bootstrap import build_directory
from workers.settings import Settings
from workers.store.engine import make_engine


def template_folder() -> str:
    """Where the console's Jinja2 templates ship (inside the package)."""
    return str(resources.files("producers.web") / "templates")


def static_folder() -> str:
    """Where the console's CSS and JavaScript ship (inside the package: no CDN)."""
    return str(resources.files("producers.web") / "static")


@dataclass
class Console:
    """Settings, database, outside systems and page templates of one application."""

    settings: Settings
    web: WebSettings
    engine: sa.Engine
    sessions: SessionManager
    directory: AccountDirectory
    catalogue: StaffCatalogue
    blobs: BlobStore
    scanner: VirusScanner
    limits: Limits
    pages: Jinja2Templates
    broker: dramatiq.Broker | None = None
    broker_factory: Callable[[], dramatiq.Broker] | None = None
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Stockholm"))
    _broker_lock: threading.Lock = field(default_factory=threading.Lock)
    owns_engine: bool = True
    isolated_broker: bool = False
    """``omvant serve`` on ``memory://``: sends reach no worker in another process (the pages
    say so; ``omvant demo --serve`` runs its workers in-process and leaves this off)."""
    _seeded: bool = False

    def today(self) -> dt.date:
        """Today in the deployment's time zone (the date a message carries)."""
        return dt.datetime.now(self.zone).date()

    def now(self) -> dt.datetime:
        """Now, in UTC."""
        return dt.datetime.now(dt.UTC)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction on the system of record."""
        with self.engine.begin() as conn:
            yield conn

    def send_broker(self) -> dramatiq.Broker:
        """The broker cases are sent on (built on first use)."""
        with self._broker_lock:
            if self.broker is None:
                if self.broker_factory is not None:
                    self.broker = self.broker_factory()
                else:
                    from workers.broker import build_broker

                    self.broker = build_broker(self.settings.broker_url)
            return self.broker

    def ensure_templates(self) -> None:
        """Seed the shipped national and regional templates once per process (as every
        ``omvant templates`` command does), so a new installation has some to adopt."""
        if self._seeded:
            return
        from workers.templates import store
        from workers.templates.library import starter_templates

        with self.engine.begin() as conn:
            store.seed(conn, starter_templates())
        self._seeded = True

    def close(self) -> None:
        """Release the database pool (and the broker, if this console made it)."""
        if self.owns_engine:
            self.engine.dispose()


def build_console(
    settings: Settings,
    web: WebSettings | None = None,
    *,
    broker: dramatiq.Broker | None = None,
    broker_factory: Callable[[], dramatiq.Broker] | None = None,
    engine: sa.Engine | None = None,
    filters: dict[str, object] | None = None,
) -> Console:
    """Wire the console from settings: the simulators of outside systems unless configured."""
    web = web or WebSettings()
    from producers.web import i18n
    from producers.web.wording import jinja_filters

    pages = Jinja2Templates(directory=template_folder())
    pages.env.add_extension("jinja2.ext.i18n")
    pages.env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.translate, i18n.translate_plural, newstyle=True
    )
    zone = ZoneInfo(settings.timezone)
    for name, function in {**jinja_filters(zone), **(filters or {})}.items():
        pages.env.filters[name] = function
    return Console(
        settings=settings,
        web=web,
        engine=engine or make_engine(settings.database_url),
        sessions=SessionManager(web),
        directory=build_directory(settings),
        catalogue=SimulatedStaffCatalogue(settings.seed),
        blobs=blob_store_from(settings.blob_dir, settings.blob_url, settings.s3_endpoint_url),
        scanner=scanner_from(settings.clamd_socket, settings.clamd_url, settings.clamd_timeout),
        limits=Limits.from_settings(settings),
        pages=pages,
        broker=broker,
        broker_factory=broker_factory,
        zone=zone,
        owns_engine=engine is None,
    )
