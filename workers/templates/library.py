"""Where the composition stage finds templates: the interface, and an in-memory library.

``workers.templates.database.DatabaseTemplateLibrary`` is the one the workers use; the in-memory
one serves unit tests, the benchmark and previews of files that are not stored.
"""

from __future__ import annotations

import abc
import datetime as dt
from importlib import resources

from workers.templates.files import parse_templates
from workers.templates.model import Template


class TemplateLibrary(abc.ABC):
    """Finds the template, in the version, a case names."""

    @abc.abstractmethod
    def get(self, template_id: str, version: int | None = None) -> Template | None:
        """The given version of a template (the current one if ``version`` is None), or None.

        ``active`` is the template's activation now, whatever the version.
        """

    @abc.abstractmethod
    def version_at(self, template_id: str, at: dt.datetime) -> int | None:
        """The version that was current at ``at`` (the first if the template is younger), or
        None if there is no such template. A case keeps the version current when it arrived."""


class InMemoryTemplateLibrary(TemplateLibrary):
    """Templates held in memory; the starter library by default."""

    def __init__(self, templates: list[Template] | None = None) -> None:
        self._by_id: dict[str, dict[int, Template]] = {}
        for template in templates if templates is not None else starter_templates():
            self.add(template)

    def add(self, template: Template) -> None:
        """Hold ``template`` (a new version of its id, or a first one)."""
        self._by_id.setdefault(template.id, {})[template.version] = template

    def get(self, template_id: str, version: int | None = None) -> Template | None:
        versions = self._by_id.get(template_id)
        if not versions:
            return None
        current = versions[max(versions)]
        found = versions.get(version if version is not None else current.version)
        if found is None or found.active == current.active:
            return found
        return found.model_copy(update={"active": current.active})

    def version_at(self, template_id: str, at: dt.datetime) -> int | None:
        versions = self._by_id.get(template_id)
        if not versions:
            return None
        earlier = [v for v, t in versions.items() if t.created_at is None or t.created_at <= at]
        return max(earlier) if earlier else min(versions)


def starter_templates() -> list[Template]:
    """The national and regional templates shipped with the product (``starter.yaml``)."""
    text = resources.files(__package__).joinpath("starter.yaml").read_text(encoding="utf-8")
    return parse_templates(text, "yaml")
