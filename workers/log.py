"""structlog set-up with a processor that masks identity numbers wherever they occur."""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_PAYLOAD = re.compile(r"""(['"]payload['"]:\s*)\[.*\]""", flags=re.DOTALL)
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$)", flags=re.DOTALL | re.MULTILINE)
"""pydantic's error text quotes the offending input (``input_value=...``): a body, free text
or a whole chunk of records can be in it, so it goes."""
SENSITIVE_KEYS = frozenset({"body", "free_text", "text", "subject", "fields", "content"})
"""Keys whose values are message content: never logged, whatever they hold."""

_SOFT = (
    "\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
"""Invisible characters (Unicode categories Cc and Cf: NUL, other controls, zero-width and
direction marks, the byte-order mark): inside a number they hide it from a plain pattern, so
the masker reads through them."""
_INSIDE = _SOFT.replace("\x00-\x1f\x7f-\x9f", "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f")
"""The invisible characters read through between any two digits: all but the line and space
controls (tab, line feed, carriage return, NEL ...), which separate runs of digits (two numbers
on two lines are two numbers) and count only as the separator between date and serial."""
_S = f"[{_INSIDE}]*"
_D = rf"\d{_S}"
_DASH = "-+\u2010-\u2015\u2212\ufe58\ufe63\uff0b\uff0d"
_IDENTITY = re.compile(
    rf"(?<!\d)(?P<date>(?:{_D}){{6}}(?:{_D}){{2}}|(?:{_D}){{6}})"
    rf"(?P<sep>[\s\u00a0{_SOFT}]*[{_DASH}][\s\u00a0{_SOFT}]*|[\s\u00a0]|){_S}"
    rf"(?P<serial>(?:{_D}){{3}}\d|[A-Za-z]{_S}(?:{_D}){{2}}\d)(?!{_S}\d)"
)
"""An identity number as it may be written: six or eight date digits, then four (or a letter
and three: interim numbers), with '-', '+' (aged 100 or more), a space, a line break or nothing
between, and invisible characters anywhere; bounded by non-digits (also letters:
``pnr191212121212`` is a number). The check digit is not checked (a typo is still someone's
number)."""
_PROTECTED = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])SE[0-9]{6,14}(?:-[A-Za-z0-9]+)*"
    r"|(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{16,}(?![0-9A-Za-z])"
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
"""Identifiers that are never identity numbers, whatever digits they hold: UUIDs, HSA-ids
(``SE2321000016-VC01``, ``SE232100-0016-VC01``), hex digests (16 or more hex digits with a
letter among them) and ISO-8601 timestamps. Logs stay searchable by case, unit and time."""


def _digits(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) for c in text if c.isdigit())


def _plausible(date: str) -> bool:
    """Whether ``date`` (YYMMDD or YYYYMMDD) has a month and a day (or a samordningsnummer's
    day + 60; 00 where a samordningsnummer's month or day is unknown): ten digits that cannot
    be a date (a count, an epoch time) are left alone."""
    month, day = int(date[-4:-2]), int(date[-2:])
    return month <= 12 and (day <= 31 or 60 <= day <= 91)


def _masked(match: re.Match[str]) -> str:
    date = _digits(match.group("date"))
    if len(date) == 8 and date[:2] not in ("18", "19", "20"):
        return match.group(0)  # twelve digits that are not a date with its century
    if not _plausible(date):
        return match.group(0)
    return f"{date}{'+' if '+' in match.group('sep') else '-'}****"


def _mask_outside_ids(text: str) -> str:
    return _IDENTITY.sub(_masked, text)


def mask_identity_numbers(text: str) -> str:
    """Replace the serial and check digits of every identity number in ``text`` with ``****``
    (``19121212-****``, ``121212+****``), wherever and however it is written; identifiers that
    hold digits (UUIDs, HSA-ids, hex digests, timestamps) are left exactly as they are."""
    if not any(c.isdigit() for c in text):
        return text
    parts: list[str] = []
    start = 0
    for found in _PROTECTED.finditer(text):
        parts.append(_mask_outside_ids(text[start : found.start()]))
        parts.append(found.group(0))
        start = found.end()
    parts.append(_mask_outside_ids(text[start:]))
    return "".join(parts)


def scrub(text: str) -> str:
    """``text`` fit for a log: quoted inputs and payloads dropped, identity numbers masked."""
    if "input_value=" in text:
        text = _INPUT_VALUE.sub("input_value=[redacted]", text)
    return mask_identity_numbers(text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {_mask(k): _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10**9:
        return mask_identity_numbers(str(value))
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask identity numbers and drop message content from every event.

    An exception is rendered to text here, before it is masked, so that a traceback naming
    a number (in a message or a local value) never reaches the renderer in clear.
    """
    if event_dict.get("exc_info"):
        event_dict = structlog.processors.format_exc_info(_logger, _method, event_dict)
    for key in list(event_dict):
        if key in SENSITIVE_KEYS:
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _mask(event_dict[key])
    return event_dict


class MaskingFilter(logging.Filter):
    """A stdlib logging filter: libraries (dramatiq, SQLAlchemy) log exceptions whose text can
    hold identity numbers; mask them in the message and the traceback before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format
            message = f"{record.msg} {record.args}"
        record.msg = scrub(_PAYLOAD.sub(r"\1[redacted]", message))
        record.args = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written: a logger cached while a test runner
    (or a CLI runner) had swapped the stream in must not keep writing to it once it is closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


CHATTY_LIBRARIES = ("pika", "kombu", "amqp", "alembic", "dramatiq")
"""Libraries that log every connection attempt, migration step and consumer start at INFO:
below DEBUG they say only warnings and errors."""


def configure(level: str = "INFO", *, json: bool = False) -> None:
    """Configure structlog (and the stdlib loggers it wraps) once per process."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=numeric)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(
            logging.DEBUG if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
        )
    if numeric > logging.DEBUG:
        # pika logs every lost or closed connection at ERROR with a traceback (dozens of lines
        # per idle connection RabbitMQ dropped for missed heartbeats, each time a worker stops);
        # a connection failure during work is said by dramatiq's consumer (the server watch's
        # one line, masked URL) and by the exception the publishing code gets
        logging.getLogger("pika").setLevel(logging.CRITICAL)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A structlog logger named for its module."""
    return structlog.get_logger(name)


def warn_on_stderr(name: str, event: str, **fields: Any) -> None:
    """A warning, on stderr also in a process that configured no logging (most ``omvant``
    commands do not: structlog's default would print it on stdout, among their output)."""
    if structlog.is_configured():
        structlog.get_logger(name).warning(event, **fields)
        return
    structlog.wrap_logger(
        structlog.PrintLogger(_CurrentStderr()),  # type: ignore[arg-type]
        processors=[
            structlog.processors.add_log_level,
            redact,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
    ).warning(event, **fields)
