"""Configuration from the environment (``OMVANT_*``); the defaults are the embedded setup."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.envelope import MAX_CHUNK

_PERSONALISATION = re.compile(
    r"\{\{[^}]*\}\}|\{[^}]*\}|%\([A-Za-z_]+\)[-#0+]*[0-9.]*[sdifr]|%[-#0+]*[0-9.]*[sdifr]"
    r"|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|<[A-Za-z_]+>|[{}]"
)
"""Placeholders of the common template syntaxes: {x}, {{x}}, %s, %(x)s, $x, ${x}, <x>."""


def default_home() -> Path:
    """The embedded default's data folder: ``$XDG_DATA_HOME/omvant`` or
    ``~/.local/share/omvant``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "omvant"


class Settings(BaseSettings):
    """Everything a process needs to know to join the pipeline.

    The defaults run with no servers: the in-process memory broker, SQLite and blobs in one
    data folder (``home``) and the shipped simulators of outside systems.
    """

    model_config = SettingsConfigDict(env_prefix="OMVANT_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    """The embedded default's data folder (``OMVANT_HOME``; ``.`` for the current folder, empty
    as unset): the SQLite database and the blobs live here unless their own settings say
    otherwise."""
    broker_url: str = "memory://"
    database_url: str = ""
    """Default: ``sqlite:///HOME/omvant.db``."""
    queue_prefix: str = ""
    """Prepended to every queue name; keeps test runs apart on a shared broker."""
    blob_dir: Path = Path()
    """Default: ``HOME/omvant-blobs``."""
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    """Seconds a command waits for a server to answer its first connection before it says
    which server cannot be reached (exit status 2)."""
    seed: int = 1177
    """Seed of the simulated population (account directory, HSA catalogue)."""
    sim_outbox: Path | None = None
    """If set, simulated SMS, e-mail and inbox append what they receive to JSONL files here."""
    chunk_size: int = Field(default=100, ge=1, le=MAX_CHUNK)
    """Cases per message on the hops between stages on the urgent and normal lanes (at most
    what an envelope carries): small, so a single case or a clinic's few are not held behind
    a large chunk."""
    bulk_chunk_size: int = Field(default=500, ge=1, le=MAX_CHUNK)
    """Cases per message on the bulk lanes (dispatches), from the dispatch's enqueue through
    every stage: a message's fixed cost (the poison guard, the clinic check, a transaction,
    a publish) is shared by more cases."""
    idle_poll_ms: int = Field(default=100, ge=10, le=10_000)
    """How long a worker's consumer of an empty queue sleeps at most before it looks again
    (dramatiq's worker timeout). Redis is polled: with dramatiq's default of 1 s, an urgent case
    arriving on an idle urgent lane waited up to a second at every stage."""
    send_concurrency: int = Field(default=4, ge=1, le=64)
    """Notifications a worker thread sends at once (claimed together just before, each marked
    the moment its provider answers): a crash leaves at most these in doubt per thread."""
    sms_batch_size: int = Field(default=500, ge=1, le=1000)
    """The most SMS sent in one gateway request (the batch endpoint: one text, a key per
    recipient), claimed together just before it; a crash leaves at most one batch per thread
    in doubt, settled by asking the gateway by key. 1: each SMS on its own, in groups of
    ``send_concurrency`` as e-mail is (a gateway without a batch endpoint)."""
    email_batch_size: int = Field(default=500, ge=1, le=1000)
    """The same for e-mail through an e-mail API with a batch endpoint (``email_api_url``; it
    can be asked by key). SMTP e-mail is never batched: it cannot be asked, so an SMTP e-mail
    in doubt is sent again, and only a group of ``send_concurrency`` may be in flight."""
    notification_in_flight_seconds: float = Field(default=60.0, ge=0)
    """How long a claimed notification may be in flight; a claim older than this is in doubt
    (settled by asking the provider, or by the e-mail policy)."""
    email_in_doubt: Literal["resend", "at-most-once"] = "resend"
    """An in-doubt e-mail (SMTP cannot be asked): ``resend`` it once, after
    ``email_resend_after_seconds``, with the same Message-ID (a resident is never left with
    none; a duplicate is recognisable), or leave it ``at-most-once`` (unconfirmed)."""
    email_resend_after_seconds: float = Field(default=60.0, ge=0)
    mark_retry_seconds: float = Field(default=30.0, ge=0)
    """How long the record of a provider's answer is tried again while the database is away
    (a restart), before the notification is left in doubt for the next attempt to resolve."""
    sweep_limits: dict[str, float] = {}
    """Seconds per case state (``received`` .. ``delivered``, and ``notification``) a case may
    stay still before ``omvant sweep`` acts on it; unset states keep ``workers.sweep``'s
    defaults."""
    max_retries: int = 5
    """Retries of a technically failing single-case message before it is dead-lettered."""
    outage_retry_seconds: float = Field(default=600.0, ge=0)
    """How long a chunk that fails because a server is away (database, broker, SMS gateway,
    SMTP, directory, scanner) is retried, backing off to 20 s, before it is dead-lettered."""
    startup_timeout_seconds: float = Field(default=60.0, ge=0)
    """How long ``omvant worker`` waits for its broker and database to answer at start (one
    line per attempt, backing off) before it gives up with exit status 2."""
    outage_timeout_seconds: float = Field(default=120.0, gt=0)
    """How long a running worker waits for a broker that stopped answering before it exits
    with status 2 (for its supervisor to restart it)."""
    directory_url: str | None = None
    """Base URL of the 1177 account directory (HTTP); unset: the shipped simulator."""
    directory_token: str | None = None
    """Bearer token for the account directory, if it wants one."""
    directory_timeout: float = 5.0
    directory_batch_size: int = 500
    """Numbers per look-up request to the account directory (at most 1,000)."""
    directory_rate: int = 20
    """Look-up requests per second to the account directory, shared through Redis if set."""
    directory_cache_seconds: float = 300.0
    """How long a directory answer is reused (0: not cached)."""
    redis_url: str | None = None
    """Redis for the shared directory cache and rate limit; unset: each process its own."""
    log_level: str = "INFO"
    log_json: bool = False
    max_body_chars: int = 10_000
    max_attachment_bytes: int = 20 * 1024 * 1024
    """Largest attachment file (1177 practice: 20 MB)."""
    max_attachments: int = 10
    """Most attachments on one message (1177 practice: 10)."""
    max_image_pixels: int = 50_000_000
    """Largest image, width times height, checked before decoding (decompression bombs)."""
    clamd_socket: Path | None = None
    """clamd's unix socket; when set (or ``clamd_url``), attachments are scanned by ClamAV."""
    clamd_url: str | None = None
    """clamd as ``tcp://host:port`` (or ``unix:///path``)."""
    clamd_timeout: float = 30.0
    blob_url: str | None = None
    """``s3://bucket/prefix`` for an S3-compatible blob store; unset: files under blob_dir."""
    s3_endpoint_url: str | None = None
    """Endpoint of the S3-compatible service (MinIO, Ceph, ...); credentials as boto3 finds them."""
    template_cache_seconds: float = 2.0
    """How long a worker trusts its cached view of a template's current version and activation."""
    timezone: str = "Europe/Stockholm"
    sim_latency_ms: float = 0.0
    """Load tests: latency added to every simulated inbox delivery, SMS and e-mail."""
    sim_failure_rate: float = 0.0
    """Load tests: share of simulated provider calls that fail transiently (then retried)."""
    batch_pause_recheck_ms: int = 5_000
    """How long a paused dispatch's chunk waits on its lane before it is looked at again."""
    intake_keys: dict[str, str] = {}
    """Intake credentials: key id -> HMAC-SHA256 secret, one per integration (JSON in the env)."""
    intake_clinics: dict[str, list[str]] = {}
    """Optionally, key id -> the clinic HSA-ids that integration may send for (else any)."""
    intake_window_days: float = 30.0
    """How long an idempotency key on the intake stands for the same case."""
    api_rate: int = Field(default=50, ge=1)
    """HTTP API requests per second per key (a key may have its own), shared through Redis
    when ``redis_url`` is set."""
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest HTTP API request body (attachments: ``max_attachment_bytes`` plus the form)."""
    api_idempotency_hours: float = Field(default=24.0, gt=0)
    """How long an HTTP ``Idempotency-Key`` stands for the same request and answer."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)
    """Deliveries of one status callback before it is given up (backoff doubles from 2 s to
    an hour between them)."""
    intake_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest intake message, also once decompressed (``message-too-large``)."""
    reject_max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    """Largest body a reject keeps (from an authenticated sender; others keep none)."""
    reject_retention_days: float = Field(default=30.0, gt=0)
    """How long rejected messages are kept (``omvant rejects purge`` deletes older ones)."""
    poison_deliveries: int = Field(default=3, ge=1, le=100)
    """How often a message may be started and leave its process dead before it is set aside
    (``poison-message``) instead of started again."""
    notification_text: str = (
        "Du har ett meddelande i e-tjänsterna på 1177. "
        "Meddelandet finns i inkorgen när du loggat in på 1177."
    )
    """The one notification text of the deployment: no health information, no clinic name, no
    personalisation fields (refused at start-up, ``notification-text-personalised``)."""
    smtp_url: str | None = None
    """E-mail over SMTP: ``smtp://[user:password@]host[:port][?starttls=true&cafile=PATH]`` or
    ``smtps://...``; unset: the simulated e-mail sender."""
    smtp_from: str = "1177 <no-reply@1177.example>"
    email_api_url: str | None = None
    """Base URL of an HTTP e-mail provider API (``omvant sim email-api``'s); when set it is used
    instead of SMTP (``smtp_url`` is then ignored): it dedupes by idempotency key and can be
    asked about a message, so an in-doubt e-mail is settled by asking, not by
    ``email_in_doubt``."""
    email_api_token: SecretStr | None = None
    """Bearer token for the e-mail API, if it wants one (masked wherever settings are shown)."""
    inbox_url: str | None = None
    """Base URL of the 1177 inbox API (``omvant sim inbox``'s); unset: the simulated inbox."""
    sms_gateway_url: str | None = None
    """Base URL of the HTTP SMS gateway; unset: the simulated gateway."""
    notifier_timeout_seconds: float = 10.0
    sms_per_second: float = 50.0
    """SMS per second, shared by every worker through Redis when ``redis_url`` is set (per
    process otherwise); 0: no limit."""
    email_per_second: float = 200.0
    sms_quiet_hours: str = ""
    """Local time (``timezone``) in which SMS wait for the morning, e.g. ``21:00-08:00``; empty
    (the default, so that tests and demos behave the same at any hour): no quiet hours."""
    inbox_events_url: str | None = None
    """Where the inbox publishes opened/answered events (AMQP); unset: the broker URL."""
    inbox_events_exchange: str = "omvant.inbox-events"
    event_clock_skew_seconds: float = Field(default=300.0, ge=0)
    """How far ahead of the time received an inbox event's time may lie (the inbox's clock
    running fast); beyond it the event is refused (``event-in-future``). The same allowance
    before the case's delivery (``event-before-delivery``)."""
    answer_key: SecretStr | None = None
    """Fernet key(s), comma-separated (the first seals), that residents' answers are stored
    sealed with; the embedded default makes its own in ``home``, servers must set one."""

    @field_validator("home", mode="before")
    @classmethod
    def _empty_home_is_unset(cls, value: object) -> object:
        """``OMVANT_HOME=`` (empty, or spaces) is the default folder, not the current one:
        ``Path("")`` is ``.``, and a stray export must not scatter databases."""
        if isinstance(value, str) and not value.strip():
            return default_home()
        return value

    @model_validator(mode="after")
    def _in_home(self) -> Settings:
        """Place the embedded database and blobs in ``home`` unless set on their own."""
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'omvant.db'}"
        if "blob_dir" not in self.model_fields_set:
            self.blob_dir = self.home / "omvant-blobs"
        return self

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded default (SQLite), which owns its data folder."""
        return self.database_url.startswith("sqlite")

    @field_validator("notification_text")
    @classmethod
    def _no_personalisation(cls, text: str) -> str:
        match = _PERSONALISATION.search(text)
        if match:
            raise ValueError(
                "notification-text-personalised: the notification text must be one fixed text "
                f"for every resident, but it holds a placeholder ({match.group(0)!r} at "
                f"character {match.start()})"
            )
        if not text.strip():
            raise ValueError("notification-text-personalised: the notification text is empty")
        return text

    @field_validator("sms_quiet_hours")
    @classmethod
    def _quiet_hours_form(cls, value: str) -> str:
        if value and not re.fullmatch(
            r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]", value
        ):
            raise ValueError("sms_quiet_hours must look like 21:00-08:00 (or be empty)")
        return value
