"""The console's languages: Swedish (the default, and the text in the templates) and English.

Page text is written in Swedish inside ``{{ _("...") }}`` (Jinja2's ``i18n`` extension) and in
Python through ``gettext``; the English words are in ``locale/en.json`` (Swedish text -> English
text), which ships in the package. The language of a request is its ``omvant_lang`` cookie
(set by the switch in the page header), else Swedish. A text with no English entry is shown in
Swedish and remembered in ``MISSING``, which the tests read: every page string must have one.
"""

from __future__ import annotations

import functools
import json
from contextvars import ContextVar
from importlib import resources
from typing import Any

LANGUAGES = {"sv": "Svenska", "en": "English"}
DEFAULT = "sv"
COOKIE = "omvant_lang"

current: ContextVar[str] = ContextVar("omvant_language", default=DEFAULT)
MISSING: set[str] = set()
"""Swedish texts asked for in English that have no English entry (read by the tests)."""


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """Swedish text -> text in ``language`` (empty for Swedish)."""
    if language == DEFAULT:
        return {}
    path = resources.files("producers.web") / "locale" / f"{language}.json"
    found: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return found


def language_of(cookie: str | None) -> str:
    """The language a cookie asks for (Swedish when it asks for none we have)."""
    return cookie if cookie in LANGUAGES else DEFAULT


def translate(text: str) -> str:
    """``text`` (Swedish) in the request's language (Swedish when it has no entry)."""
    language = current.get()
    if language == DEFAULT:
        return text
    found = catalogue(language).get(text)
    if found is None:
        MISSING.add(text)
        return text
    return found


def translate_plural(singular: str, plural: str, count: int) -> str:
    """The singular or plural form, in the request's language (for Jinja2's ``ngettext``)."""
    return translate(singular if count == 1 else plural)


def gettext(text: str, **values: Any) -> str:
    """For Python code: ``text`` in the request's language, ``%(name)s`` filled from
    ``values``."""
    translated = translate(text)
    return translated % values if values else translated


class LanguageMiddleware:
    """Sets the request's language (its ``omvant_lang`` cookie) for everything that runs
    for it: the route, the page templates and the error pages."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from http.cookies import CookieError, SimpleCookie

        chosen = DEFAULT
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                try:
                    cookies = SimpleCookie(value.decode("latin-1"))
                except CookieError:
                    continue
                if COOKIE in cookies:
                    chosen = language_of(cookies[COOKIE].value)
        token = current.set(chosen)
        try:
            await self.app(scope, receive, send)
        finally:
            current.reset(token)
