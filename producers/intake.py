"""Reading SendCase requests from JSONL (``omvant push``); they go on the intake lanes through
``workers.enqueue.push_chunk``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from pydantic import ValidationError

from contracts.registry import VERSIONS, latest_version, read_record
from contracts.send_case import NAME as SEND_CASE
from contracts.send_case import SendCaseV2
from contracts.strict_json import DuplicateKey, loads_strictly
from workers.reasons import Reason


@dataclass(frozen=True)
class LineError:
    """A line of a JSONL file that is not a valid SendCase."""

    line: int
    reason: str
    detail: str


def read_send_cases(
    lines: Iterable[str], *, version: int | None = None
) -> Iterator[SendCaseV2 | LineError]:
    """Parse JSONL lines as SendCase records of ``version`` (the latest by default).

    A line with a key twice in one object is refused (``duplicate-json-key``), as the HTTP API
    refuses such a body: the last one does not silently win.
    """
    version = version or latest_version(SEND_CASE)
    if version not in VERSIONS[SEND_CASE]:
        raise ValueError(f"SendCase has versions {sorted(VERSIONS[SEND_CASE])}")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads_strictly(line)
            yield cast(SendCaseV2, read_record(SEND_CASE, version, record))
        except DuplicateKey as exc:
            yield LineError(
                number,
                Reason.DUPLICATE_JSON_KEY,
                exc.detail,
            )
        except json.JSONDecodeError as exc:
            yield LineError(number, "malformed-message", f"not JSON: {exc.msg}")
        except RecursionError:
            yield LineError(number, "malformed-message", "not JSON: nested too deep")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            yield LineError(number, "invalid-payload", f"{where}: {first['msg']}")
        except (TypeError, AttributeError):
            yield LineError(number, "invalid-payload", "a line must be a JSON object")
