"""An append-only JSONL file that simulators write what they receive to (one line per event).

Lines are written whole with one ``write`` on a file opened for appending, so several worker
processes can share one file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class JsonlRecorder:
    """Appends JSON objects as lines to ``path``, or keeps them in memory if no path is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        """Keep one record (in memory, and in the file if there is one)."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            self.records.append(record)
            if self.path is not None:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every record a :class:`JsonlRecorder` wrote to ``path`` (none if it does not exist)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
