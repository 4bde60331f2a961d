"""structlog set-up with a processor that masks identity numbers wherever they occur."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_PAYLOAD = re.compile(r"""(['"]payload['"]:\s*)\[.*\]""", flags=re.DOTALL)
_IDENTITY = re.compile(
    r"(?<![0-9])((?:18|19|20)?[0-9]{6})([-+ ]?)([0-9]{4}|[A-Za-z][0-9]{3})(?![0-9])",
)
"""Ten or twelve digits as identity numbers are written (with '-', '+' or a space before the
last four, or none), also inside longer text, and interim numbers (a letter in the serial)."""
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$)", flags=re.DOTALL | re.MULTILINE)
"""pydantic's error text quotes the offending input (``input_value=...``): a body, free text
or a whole chunk of records can be in it, so it goes."""
SENSITIVE_KEYS = frozenset({"body", "free_text", "text", "subject", "fields", "content"})
"""Keys whose values are message content: never logged, whatever they hold."""


def mask_identity_numbers(text: str) -> str:
    """Replace the serial and check digits of every identity-number-like run with ``****``."""
    return _IDENTITY.sub(lambda m: f"{m.group(1)}{(m.group(2) or '-').strip() or '-'}****", text)


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
