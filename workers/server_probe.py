"""Is each server a process needs there? One bounded probe per kind of server.

A command (or a worker) that cannot reach its broker, database, account directory, SMTP server,
e-mail API, SMS gateway, virus scanner, Redis, the inbox API or the S3 blob store should say so
in one line, within seconds, naming the URL (password masked) and what to check, instead of a
library retrying and logging for minutes.
``require`` probes the servers the settings name; ``ServerUnreachable`` carries the verdict.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from workers.settings import Settings

BROKER = "broker"
DATABASE = "database"
DIRECTORY = "directory"
SMTP = "smtp"
SMS_GATEWAY = "sms-gateway"
EMAIL_API = "email-api"
CLAMD = "clamd"
REDIS = "redis"
INBOX_EVENTS = "inbox-events"
INBOX = "inbox"
BLOB_STORE = "blob-store"

_WHAT = {
    BROKER: (
        "the broker",
        "that RabbitMQ or Redis runs there and the URL (--broker, OMVANT_BROKER_URL)",
    ),
    DATABASE: (
        "the database",
        (
            "that PostgreSQL runs there, the database exists and the URL "
            "(--database, OMVANT_DATABASE_URL)"
        ),
    ),
    DIRECTORY: (
        "the account directory",
        "that the directory runs there and the URL (--directory, OMVANT_DIRECTORY_URL)",
    ),
    SMTP: ("the SMTP server", "that the mail server runs there and the URL (OMVANT_SMTP_URL)"),
    SMS_GATEWAY: (
        "the SMS gateway",
        "that the gateway runs there and the URL (OMVANT_SMS_GATEWAY_URL)",
    ),
    EMAIL_API: (
        "the e-mail API",
        "that the e-mail provider runs there and the URL (OMVANT_EMAIL_API_URL)",
    ),
    CLAMD: (
        "the virus scanner (clamd)",
        "that clamd runs there and OMVANT_CLAMD_URL or OMVANT_CLAMD_SOCKET",
    ),
    REDIS: ("Redis", "that Redis runs there and the URL (OMVANT_REDIS_URL)"),
    INBOX: (
        "the 1177 inbox API",
        "that the inbox runs there and the URL (OMVANT_INBOX_URL)",
    ),
    BLOB_STORE: (
        "the blob store (S3)",
        (
            "that the S3 service runs there, the bucket exists, and OMVANT_BLOB_URL, "
            "OMVANT_S3_ENDPOINT_URL and the credentials boto3 finds"
        ),
    ),
    INBOX_EVENTS: (
        "the inbox's event exchange",
        "that RabbitMQ runs there and the URL (--url, OMVANT_INBOX_EVENTS_URL)",
    ),
}


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url


@dataclass(eq=False)
class ServerUnreachable(Exception):
    """A server a command needs did not answer (within the probe's time)."""

    server: str
    url: str
    cause: str

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def reason(self) -> str:
        """A stable reason code, e.g. ``broker-unreachable``."""
        return f"{self.server}-unreachable"

    @property
    def message(self) -> str:
        """One line: which server, where, why, and what to check."""
        what, check = _WHAT.get(self.server, (self.server, "the URL"))
        if self.server == DATABASE and self.url.startswith("sqlite"):
            check = "that its folder exists and may be written (OMVANT_HOME, --database)"
        cause = " ".join(self.cause.split())[:200]
        return f"cannot reach {what} at {mask_url(self.url)}: {cause}; check {check}"


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence libraries that log every failed connection attempt while we probe."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _cause(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def probe_amqp(url: str, timeout: float, server: str = BROKER) -> None:
    """Connect and log in to RabbitMQ once.

    Raises
    ------
    ServerUnreachable
        No answer within ``timeout`` seconds, or the login is refused.
    """
    import kombu

    with _quiet("amqp", "kombu", "pika"):
        try:
            with kombu.Connection(url, connect_timeout=timeout, heartbeat=0) as connection:
                connection.ensure_connection(max_retries=0, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - every failure to connect is the verdict
            raise ServerUnreachable(server, url, _cause(exc)) from None


def probe_redis(url: str, timeout: float, server: str = BROKER) -> None:
    """PING Redis once (see ``probe_amqp``)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - every failure to connect is the verdict
        raise ServerUnreachable(server, url, _cause(exc)) from None


def probe_broker(url: str, timeout: float) -> None:
    """The broker ``url`` names answers (``memory://`` always does)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"amqp", "amqps"}:
        probe_amqp(url, timeout)
    elif scheme in {"redis", "rediss"}:
        probe_redis(url, timeout)


def probe_database(url: str, timeout: float) -> None:
    """Open one connection to the database (SQLite: the file can be opened)."""
    import sqlalchemy as sa

    from workers.store.engine import make_engine, normalise_url

    normal = normalise_url(url)
    if normal.startswith("postgresql"):
        engine = sa.create_engine(
            normal,
            connect_args={"connect_timeout": max(1, int(timeout))},
            poolclass=sa.pool.NullPool,
        )
    else:
        engine = make_engine(normal)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        raise ServerUnreachable(DATABASE, url, _cause(exc.orig or exc)) from None
    finally:
        engine.dispose()


def probe_http(url: str, timeout: float, server: str) -> None:
    """Any HTTP answer at ``url`` (even 404) means the server is there."""
    import httpx

    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(server, url, _cause(exc)) from None


def probe_smtp(url: str, timeout: float) -> None:
    """The SMTP server greets us (TLS and login are the sender's business)."""
    from workers.adapters.smtp_email import SmtpConfig

    config = SmtpConfig.from_url(url)
    kind = smtplib.SMTP_SSL if config.implicit_tls else smtplib.SMTP
    try:
        with kind(config.host, config.port, timeout=timeout) as smtp:
            smtp.noop()
    except (OSError, smtplib.SMTPException) as exc:
        raise ServerUnreachable(SMTP, url, _cause(exc)) from None


def probe_clamd(address: str, timeout: float) -> None:
    """clamd answers PING with PONG."""
    from workers.attachments.scanner import ClamdScanner

    if not ClamdScanner(address, timeout=timeout).ping():
        raise ServerUnreachable(CLAMD, address, "no PONG to PING (not running, or not clamd)")


def probe_s3(url: str, endpoint_url: str | None, timeout: float) -> None:
    """The bucket ``url`` (``s3://bucket/prefix``) names answers a HEAD request: any answer but
    "no such bucket" means the service is there (the store's own calls find what it may do).

    Raises
    ------
    ServerUnreachable
        No answer within ``timeout`` seconds, no credentials, or no such bucket.
    """
    from urllib.parse import urlsplit

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = urlsplit(url).netloc
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 0})
    with _quiet("botocore", "boto3", "urllib3"):
        try:
            client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchBucket"}:
                raise ServerUnreachable(BLOB_STORE, url, f"no bucket {bucket}") from None
        except (BotoCoreError, ValueError) as exc:
            cause = _cause(exc)
            if endpoint_url:  # botocore names the endpoint as given, password and all
                cause = cause.replace(endpoint_url, mask_url(endpoint_url))
            raise ServerUnreachable(BLOB_STORE, endpoint_url or url, cause) from None


def require(settings: Settings, servers: Iterable[str]) -> None:
    """Probe each of ``servers`` that ``settings`` configure (simulated ones need nothing).

    Raises
    ------
    ServerUnreachable
        The first server that does not answer within ``settings.connect_timeout``.
    """
    timeout = settings.connect_timeout
    for server in servers:
        if server == BROKER:
            probe_broker(settings.broker_url, timeout)
        elif server == DATABASE:
            probe_database(settings.database_url, timeout)
        elif server == DIRECTORY and settings.directory_url:
            probe_http(settings.directory_url, timeout, DIRECTORY)
        elif server == SMS_GATEWAY and settings.sms_gateway_url:
            probe_http(settings.sms_gateway_url, timeout, SMS_GATEWAY)
        elif server == EMAIL_API and settings.email_api_url:
            probe_http(settings.email_api_url, timeout, EMAIL_API)
        elif server == SMTP and settings.smtp_url and not settings.email_api_url:
            probe_smtp(settings.smtp_url, timeout)  # the e-mail API wins over SMTP when set
        elif server == CLAMD and (settings.clamd_url or settings.clamd_socket):
            probe_clamd(str(settings.clamd_url or settings.clamd_socket), timeout)
        elif server == INBOX and settings.inbox_url:
            probe_http(settings.inbox_url, timeout, INBOX)
        elif server == BLOB_STORE and settings.blob_url:
            probe_s3(settings.blob_url, settings.s3_endpoint_url, timeout)
        elif server == REDIS and settings.redis_url:
            probe_redis(settings.redis_url, timeout, REDIS)
