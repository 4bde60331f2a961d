"""JSON read strictly: a key twice in one object is refused, not "the last one wins".

Python's ``json`` keeps the last of two equal keys without a word, so
``{"personnummer": "A", "personnummer": "B"}`` would send to B while a proxy, a log or the
integration's own tests read A. The HTTP API (``producers/web/api/strict_json.py``) and
``omvant push`` read with :func:`loads_strictly`, and both refuse with ``duplicate-json-key``.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """An object of the text has ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    @property
    def detail(self) -> str:
        """The refusal's words: the key (cut to 80 characters), never a value."""
        return f"the key {self.key[:80]!r} appears twice in one object"


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


def loads_strictly(text: bytes | str) -> Any:
    """``json.loads`` that refuses a key twice in one object.

    Raises
    ------
    DuplicateKey
        Naming the first repeated key.
    json.JSONDecodeError
        The text is not JSON.
    """
    return json.loads(text, object_pairs_hook=_unique)
