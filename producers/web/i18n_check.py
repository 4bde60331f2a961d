"""What the console says, and what of it is not translatable or not translated.

``messages()`` collects every Swedish text the console can show: each ``_("...")`` in the page
templates and in ``producers/web``'s Python, and the values of the word tables in
``producers.web.wording`` (statuses, reasons ...). ``unwrapped()`` finds text the templates show
without ``_()``: words between tags, in ``aria-label``, ``placeholder``, ``title`` or ``alt``,
and Swedish string literals inside template expressions. The tests hold both to zero
untranslated, so a page string added in Swedish only fails ``make test``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment

LETTERS = re.compile(r"[A-Za-zÅÄÖåäöÉé]{2,}")
SWEDISH = re.compile(r"[ÅÄÖåäö]")
CODE_LIKE = re.compile(r"^[a-z0-9_./:{},%-]*$")
"""A string literal in a template expression that is a code, a path or a format, not text."""
SHOWN_ATTRIBUTES = ("aria-label", "placeholder", "title", "alt")
TABLE_MODULES = ("wording.py", "explained.py")
"""Modules whose dictionaries' values are Swedish words the filters translate."""
UNTRANSLATED_WORDS = frozenset({"Omvänt", "1177", "HSA-id", "CSV", "Id"})


def _package() -> Path:
    return Path(str(resources.files("producers.web")))


def _environment() -> Environment:
    return Environment(extensions=["jinja2.ext.i18n"], autoescape=True)


def template_files() -> list[Path]:
    """Every page template of the console."""
    return sorted((_package() / "templates").glob("*.html"))


def template_messages(path: Path) -> set[str]:
    """The ``_()`` texts of one template."""
    source = path.read_text(encoding="utf-8")
    found: set[str] = set()
    environment: Any = _environment()  # the i18n extension adds extract_translations
    for _line, _function, message in environment.extract_translations(source):
        if isinstance(message, str):
            found.add(message)
        elif message is not None:  # None: ``_(name)`` of a variable (a table's words)
            found.update(m for m in message if isinstance(m, str))
    return found


def python_messages() -> set[str]:
    """The ``_("...")`` texts in ``producers/web``'s Python modules."""
    found: set[str] = set()
    for path in _package().rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"_", "gettext", "translate"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def table_messages() -> set[str]:
    """The Swedish words of the tables of ``producers.web.wording`` and
    ``producers.web.explained``, and the role names."""
    from producers.web import explained, wording
    from workers.store.users import ROLE_NAMES

    found = set(ROLE_NAMES.values())
    for module in (wording, explained):
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue  # ``__annotations__`` holds the tables' types
            if (
                isinstance(value, dict)
                and value
                and all(isinstance(v, str) for v in value.values())
            ):
                found.update(value.values())
    return found


def messages() -> set[str]:
    """Every Swedish text the console can show."""
    found = python_messages() | table_messages()
    for path in template_files():
        found |= template_messages(path)
    return found


class _TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (
                name in SHOWN_ATTRIBUTES
                and value
                and LETTERS.search(value)
                and not value.startswith("https://")
            ):
                self.found.append(f'{name}="{value}"')

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if LETTERS.search(text) and text not in UNTRANSLATED_WORDS:
            self.found.append(text)


def _without_expressions(path: Path) -> Iterator[str]:
    """The template's text with every Jinja expression, tag and comment replaced by ``X0``
    (a placeholder with no letters of its own, so what is left is the markup and the text)."""
    pieces: list[str] = []
    for _line, kind, value in _environment().lexer.tokeniter(path.read_text("utf-8"), None):
        if kind == "data":
            pieces.append(value)
        elif kind in {"variable_begin", "block_begin", "comment_begin"}:
            pieces.append("0")
    yield "".join(pieces)


def _translated_argument(tokens: list[Any], index: int) -> bool:
    """Whether the string at ``index`` is an argument of ``_(...)`` or ``ngettext(...)``:
    back over the call's other strings and commas to its ``(`` and the name before it."""
    before = [t for t in tokens[:index] if t[1] != "whitespace"]
    while before and (before[-1][1] == "string" or before[-1][2] == ","):
        before.pop()
    return len(before) >= 2 and before[-1][2] == "(" and before[-2][2] in {"_", "ngettext"}


def unwrapped(path: Path) -> list[str]:
    """Text in ``path`` shown to the user without ``_()``."""
    finder = _TextFinder()
    for text in _without_expressions(path):
        finder.feed(text)
    found = list(finder.found)
    tokens = list(_environment().lexer.tokeniter(path.read_text("utf-8"), None))
    for index, (_line, kind, value) in enumerate(tokens):
        if kind != "string":
            continue
        if _translated_argument(tokens, index):
            continue
        literal = value[1:-1]
        shown = re.sub(r"%[A-Za-z]", "", literal)
        if LETTERS.search(shown) and (SWEDISH.search(literal) or not CODE_LIKE.match(literal)):
            found.append(value)
    return found


def python_unwrapped() -> list[str]:
    """Swedish string literals in ``producers/web``'s Python that are not in ``_()``, a
    docstring or a word table of ``producers.web.wording`` (which its filters translate)."""
    found: list[str] = []
    for path in sorted(_package().rglob("*.py")):
        if "api" in path.parts or path.name == "i18n_check.py":
            continue  # the HTTP API speaks English; this module names the letters it looks for
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed: set[int] = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                allowed.add(id(body[0].value))  # a docstring
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"_", "gettext", "translate"}
                and node.args
            ):
                allowed.add(id(node.args[0]))
            if path.name in TABLE_MODULES and isinstance(node, ast.Dict):
                allowed.update(id(v) for v in node.values)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                allowed.add(id(node.value))  # an attribute's docstring
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SWEDISH.search(node.value)
                and id(node) not in allowed
                and node.value not in UNTRANSLATED_WORDS
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    return found
