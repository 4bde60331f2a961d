"""The template library the workers use: the system of record, cached for speed.

A version never changes once stored, so ``(id, version)`` is cached for the life of the
process. What changes (the current version, activation, a new version's arrival) is cached for
``ttl`` seconds, so an edit or a deactivation reaches every worker within that time. The
starter library is seeded (idempotently) the first time the library is used.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from workers.templates import store
from workers.templates.library import TemplateLibrary, starter_templates
from workers.templates.model import Template

_MAX_CACHED = 10_000


class DatabaseTemplateLibrary(TemplateLibrary):
    """Templates from the ``templates`` and ``template_versions`` tables."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        ttl: float = 2.0,
        seed_starter: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._seed_pending = seed_starter
        self._lock = threading.Lock()
        self._heads: dict[str, tuple[float, store.Head | None]] = {}
        self._versions: dict[tuple[str, int], Template] = {}
        self._active: dict[tuple[str, int, bool], Template] = {}

    def ensure_seeded(self) -> None:
        """Seed the starter library once per process (a no-op when it is there already)."""
        if not self._seed_pending:
            return
        with self._lock:
            if self._seed_pending:
                with self.engine.begin() as conn:
                    store.seed(conn, starter_templates())
                self._seed_pending = False

    def head(self, template_id: str) -> store.Head | None:
        """The template's head, at most ``ttl`` seconds old."""
        now = self.clock()
        cached = self._heads.get(template_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        self.ensure_seeded()
        with self.engine.connect() as conn:
            found = store.head(conn, template_id)
        if len(self._heads) >= _MAX_CACHED:
            self._heads.clear()
        self._heads[template_id] = (now + self.ttl, found)
        return found

    def _version(self, template_id: str, version: int) -> Template | None:
        key = (template_id, version)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            found = store.load(conn, template_id, version)
        if found is None:
            return None
        if len(self._versions) >= _MAX_CACHED:
            self._versions.clear()
            self._active.clear()
        self._versions[key] = found
        return found

    def get(self, template_id: str, version: int | None = None) -> Template | None:
        top = self.head(template_id)
        if top is None:
            return None
        wanted = top.current_version if version is None else version
        key = (template_id, wanted, top.active)
        cached = self._active.get(key)
        if cached is not None:
            return cached
        found = self._version(template_id, wanted)
        if found is None:
            return None
        if found.active != top.active:
            found = found.model_copy(update={"active": top.active})
        self._active[key] = found
        return found

    def version_at(self, template_id: str, at: dt.datetime) -> int | None:
        top = self.head(template_id)
        return None if top is None else top.version_at(at)

    def forget(self) -> None:
        """Drop the cached heads (after an edit made in this process)."""
        self._heads.clear()
