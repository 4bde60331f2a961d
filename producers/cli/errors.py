"""Errors as users meet them: one line (or one JSON object with ``--json``) and an exit status.

A broker or database URL that names no supported server, a server that cannot be reached, a
schema that is not up to date, or a setting out of bounds is a mistake in the command line or
the environment (``OMVANT_*``), not a bug: the command says which in one line, with the URL
(password masked) and what to check, and exits with status 2. With ``--json`` the line is
``{"error": {"reason": ..., "message": ...}}`` on stderr. ``fail`` is how a command refuses:
under ``--json`` every refusal, a usage error (``usage-error``) and even a bug
(``internal-error``) is that one JSON object, with a stable reason code and a nonzero exit.
``note`` is how a command tells its operator something on the way (a warning, where it listens):
under ``--json`` one ``{"note": {"code": ..., "message": ...}}`` object per line on stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import typer

from workers.reasons import Reason

if TYPE_CHECKING:
    from workers.settings import Settings

EXIT_CONFIGURATION = 2
# the libraries ``classify`` knows the errors of are imported when an error is classified:
# ``omvant --version``, ``--help`` and every command that does not fail need none of them


@dataclass(frozen=True)
class Problem:
    """What went wrong, for people (``message``) and for scripts (``reason``)."""

    reason: str
    message: str
    coded: bool = False
    """Whether the plain line names the reason too (``omvant: invalid-id: ...``)."""


_json_asked: list[bool] = []
"""Whether the running command's line has ``--json`` (one command per process, or per
``CliRunner.invoke``: the root command sets it as it parses its line)."""


def note_command_line(args: list[str]) -> None:
    """Note whether ``--json`` is on the command line the root command is about to parse."""
    _json_asked[:] = ["--json" in args]


def json_asked() -> bool:
    """Whether the running command's line has ``--json`` (its errors are JSON then)."""
    return bool(_json_asked and _json_asked[0])


def report(problem: Problem, *, as_json: bool | None = None) -> None:
    """Print ``problem`` on stderr: one line, or one JSON object (``as_json``, or ``--json`` on
    the command line)."""
    if as_json or json_asked():
        typer.echo(
            json.dumps(
                {"error": {"reason": problem.reason, "message": problem.message}},
                ensure_ascii=False,
            ),
            err=True,
        )
    else:
        code = f"{problem.reason}: " if problem.coded else ""
        typer.echo(f"omvant: {code}{problem.message}", err=True)


def note(code: str, message: str, *, as_json: bool | None = None, **details: object) -> None:
    """Tell the operator ``message`` on stderr (not an error: the command goes on): the plain
    line, or one ``{"note": {"code", "message", ...details}}`` object per line (``as_json``, or
    ``--json`` on the command line), so stderr stays JSON as stdout does. ``code`` is a
    ``workers.reasons.Note``."""
    if as_json or json_asked():
        body = {"code": str(code), "message": message, **details}
        typer.echo(json.dumps({"note": body}, ensure_ascii=False), err=True)
    else:
        typer.echo(message, err=True)


def fail(
    reason: str,
    message: str,
    code: int = EXIT_CONFIGURATION,
    *,
    as_json: bool | None = None,
    coded: bool = False,
) -> NoReturn:
    """Refuse: report ``reason`` and ``message`` and exit with ``code`` (as JSON when
    ``--json`` is on the command line, whether or not ``as_json`` says so; ``coded``: the
    plain line names the reason too)."""
    report(Problem(reason, message, coded), as_json=as_json)
    raise typer.Exit(code)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_broker_failure(error: BaseException) -> bool:
    import dramatiq.errors
    import redis.exceptions

    # dramatiq 2 renamed ``ConnectionError`` (pyproject allows 1.17 and later)
    broker_connection: type[Exception] = (
        getattr(dramatiq.errors, "BrokerConnectionError", None) or dramatiq.errors.ConnectionError
    )
    module = type(error).__module__
    return (
        isinstance(error, broker_connection | redis.exceptions.ConnectionError)
        or module.startswith(("pika.", "amqp."))
        or (module.startswith("kombu.") and "Operational" in type(error).__name__)
    )


def classify(error: BaseException, settings: Settings | None) -> Problem | None:  # noqa: PLR0911 - one return per kind of error
    """The user's view of ``error`` if it comes from configuration, else ``None`` (a bug)."""
    import pydantic
    import sqlalchemy.exc

    from workers.broker import BrokerUrlError
    from workers.server_probe import ServerUnreachable
    from workers.store.engine import SchemaOutdated

    if isinstance(error, ServerUnreachable):
        return Problem(error.reason, error.message)
    from workers.answer_seal import AnswerKeyMissing, AnswerUnreadable

    if isinstance(error, AnswerKeyMissing):
        return Problem(Reason.ANSWER_KEY_MISSING, str(error))
    if isinstance(error, AnswerUnreadable):
        return Problem(Reason.ANSWER_UNREADABLE, str(error))
    if isinstance(error, SchemaOutdated):
        return Problem(Reason.SCHEMA_OUTDATED, str(error))
    if isinstance(error, pydantic.ValidationError) and error.title == "Settings":
        problems = [
            f"OMVANT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        ]
        return Problem(Reason.INVALID_SETTING, f"invalid setting: {'; '.join(problems)}")
    if isinstance(error, BrokerUrlError):
        return Problem(Reason.INVALID_SETTING, f"cannot use the broker: {error}")
    if isinstance(error, sqlalchemy.exc.ArgumentError):
        return Problem(Reason.INVALID_SETTING, f"cannot use the database URL: {error}")
    for link in _chain(error):
        server = _server_of(link, settings)
        if server is not None:
            kind, url = server
            return Problem(
                f"{kind}-unreachable",
                ServerUnreachable(kind, url, _why(link)).message,
            )
    return None


def _why(error: BaseException) -> str:
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.OperationalError):
        return str(error.orig or error)
    return str(error) or type(error).__name__


def _server_of(error: BaseException, settings: Settings | None) -> tuple[str, str] | None:  # noqa: PLR0911 - one return per server
    """Which configured server ``error`` says could not be reached, and its URL: from the
    command's own ``settings`` (built once per process; never built again here, where a setting
    out of bounds would raise anew), or its name when the command built none."""
    import sqlalchemy.exc

    from workers import server_probe
    from workers.adapters.account_directory import DirectoryUnavailable
    from workers.attachments.scanner import ScannerUnavailable
    from workers.server_probe import mask_url

    def url(name: str, unknown: str) -> str:
        """The configured URL, or what it is called when the command built no settings."""
        return str(getattr(settings, name, None) or unknown)

    if isinstance(error, sqlalchemy.exc.OperationalError):
        return server_probe.DATABASE, url("database_url", "(OMVANT_DATABASE_URL)")
    if isinstance(error, DirectoryUnavailable):
        return server_probe.DIRECTORY, url("directory_url", "(the directory)")
    if isinstance(error, ScannerUnavailable):
        return server_probe.CLAMD, url("clamd_url", url("clamd_socket", "(clamd)"))
    if _is_broker_failure(error):
        return server_probe.BROKER, url("broker_url", "(OMVANT_BROKER_URL)")
    import httpx

    if isinstance(error, httpx.TransportError):
        called = str(error.request.url) if _has_request(error) else ""
        for name, kind in (
            ("sms_gateway_url", server_probe.SMS_GATEWAY),
            ("email_api_url", server_probe.EMAIL_API),
            ("directory_url", server_probe.DIRECTORY),
            ("inbox_url", server_probe.INBOX),
        ):
            configured = url(name, "")
            if configured and called.startswith(configured.rstrip("/")):
                return kind, configured
        return "http-server", mask_url(called)
    if isinstance(error, ConnectionError | TimeoutError) and url("smtp_url", ""):
        return server_probe.SMTP, url("smtp_url", "")
    return None


def _has_request(error: BaseException) -> bool:
    try:
        _ = error.request  # type: ignore[attr-defined]
    except RuntimeError:
        return False
    return True
