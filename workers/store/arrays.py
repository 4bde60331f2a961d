"""Lists sent to PostgreSQL as one array parameter, written as PostgreSQL's array literal.

The hot path reads and writes a chunk's cases with one statement each: ``id = ANY(:ids)``
instead of ``id IN (:p1, ..., :p100)``, and ``INSERT/UPDATE ... FROM unnest(:a, :b, ...)``.
Two costs are avoided that way, both measured on the stages (``omvant bench --profile``):

- an expanding ``IN`` makes SQLAlchemy render a new SQL text per list length and bind every
  element; one array parameter keeps one SQL text, compiled and cached once;
- psycopg dumps a Python list element by element in Python (about 1.5 µs each, several arrays
  of 100 per chunk per stage); ``literal`` writes the same array in one join, a tenth of that,
  and PostgreSQL reads it with the explicit ``CAST(... AS type[])`` the statements carry.

Other databases (SQLite) keep ``IN`` and executemany.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def _element(value: object) -> str:
    if isinstance(value, str):  # str enums too: their content, as psycopg sends them
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return '"' + value.isoformat() + '"'
    raise TypeError(f"no array literal for {type(value).__name__}")


def literal(values: Iterable[object]) -> str:
    """PostgreSQL's text form of a one-dimensional array of ``values`` (strings, numbers,
    booleans, dates and times, None as NULL), for a ``CAST(:param AS type[])``.

    Every string element is quoted, so commas, braces, quotes, backslashes, spaces and the
    word NULL arrive as they are.
    """
    chosen: list[Any] = values if isinstance(values, list) else list(values)
    kinds = set(map(type, chosen))
    # the usual columns of a chunk (ids, states, keys, counts, one time), written at once
    if kinds and kinds <= _STR_OR_NONE:
        strings = chosen if str in kinds and len(kinds) == 1 else [v for v in chosen if v]
        flat = "".join(strings)
        if "\\" not in flat and '"' not in flat:
            if strings is chosen:
                return '{"' + '","'.join(chosen) + '"}'
            return "{" + ",".join(["NULL" if v is None else f'"{v}"' for v in chosen]) + "}"
    elif kinds == _INT:
        return "{" + ",".join(map(str, chosen)) + "}"
    elif kinds == _DATETIME:
        return '{"' + '","'.join([v.isoformat() for v in chosen]) + '"}'
    return "{" + ",".join(map(_element, chosen)) + "}"


_STR_OR_NONE = frozenset({str, type(None)})
_INT = frozenset({int})
_DATETIME = frozenset({dt.datetime})


def among(
    conn: sa.Connection, column: sa.ColumnElement[Any], values: Iterable[object]
) -> sa.ColumnElement[bool]:
    """``column IN values`` as one array parameter on PostgreSQL (``column = ANY(...)``, the
    same SQL text whatever the number of values), an expanding ``IN`` elsewhere."""
    wanted = list(values)
    if conn.dialect.name != "postgresql":
        return column.in_(wanted)
    # An untyped parameter: PostgreSQL reads the literal once, as the array (a parameter cast
    # to text first would be read again for every row the condition tests).
    array = sa.cast(
        sa.bindparam(None, literal(wanted), type_=sa.types.NullType()),
        postgresql.ARRAY(column.type),
    )
    return column == sa.any_(array)
