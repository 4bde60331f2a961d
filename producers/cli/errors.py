"""Configuration that points nowhere or is out of bounds: one clear line and exit status 2,
never a traceback.

A broker or database URL that names no supported server, or a server that cannot be reached,
is a mistake in the command line or the environment (``OMVANT_*``), not a bug; people running
``omvant demo``, ``push``, ``worker`` or ``templates`` should be told which, in one line.
"""

from __future__ import annotations

import dramatiq.errors
import pydantic
import redis.exceptions
import sqlalchemy.exc

from workers.broker import BrokerUrlError

EXIT_CONFIGURATION = 2

_BROKER_CONNECTION: type[Exception] = (
    getattr(dramatiq.errors, "BrokerConnectionError", None) or dramatiq.errors.ConnectionError
)
"""dramatiq 2 renamed ``ConnectionError`` (pyproject allows 1.17 and later)."""

CONFIGURATION_ERRORS: tuple[type[BaseException], ...] = (
    BrokerUrlError,
    _BROKER_CONNECTION,
    redis.exceptions.ConnectionError,
    sqlalchemy.exc.ArgumentError,
    sqlalchemy.exc.OperationalError,
)
"""What a wrong URL or an unreachable broker or database raises."""


def is_configuration_error(error: BaseException) -> bool:
    """Whether ``error`` comes from configuration: a server that cannot be used, or an
    ``OMVANT_*`` setting out of bounds (checked when ``Settings`` is made)."""
    if isinstance(error, pydantic.ValidationError):
        return error.title == "Settings"
    return isinstance(error, CONFIGURATION_ERRORS)


def describe(error: BaseException) -> str:
    """One line saying what could not be used, and why."""
    if isinstance(error, pydantic.ValidationError):
        problems = [
            f"OMVANT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        ]
        return f"invalid setting: {'; '.join(problems)}"
    if isinstance(error, sqlalchemy.exc.OperationalError):
        what, why = "the database", str(error.orig or error).strip()
    elif isinstance(error, sqlalchemy.exc.ArgumentError):
        what, why = "the database URL", str(error)
    else:
        what, why = "the broker", str(error)
    return f"cannot use {what}: {' '.join(why.split())[:300]}"
