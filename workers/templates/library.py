"""Where templates come from: the shipped starter library, in memory."""

from __future__ import annotations

import abc
from importlib import resources

import yaml

from workers.templates.model import Template


class TemplateLibrary(abc.ABC):
    """Finds the template a case names."""

    @abc.abstractmethod
    def get(self, template_id: str, version: int | None = None) -> Template | None:
        """The given version of a template (the newest if ``version`` is None), or None."""


class InMemoryTemplateLibrary(TemplateLibrary):
    """Templates held in memory; the starter library by default."""

    def __init__(self, templates: list[Template] | None = None) -> None:
        self._by_id: dict[str, dict[int, Template]] = {}
        for template in templates if templates is not None else starter_templates():
            self._by_id.setdefault(template.id, {})[template.version] = template

    def get(self, template_id: str, version: int | None = None) -> Template | None:
        versions = self._by_id.get(template_id)
        if not versions:
            return None
        return versions.get(version if version is not None else max(versions))


def starter_templates() -> list[Template]:
    """The national and regional templates shipped with the product (``starter.yaml``)."""
    text = resources.files(__package__).joinpath("starter.yaml").read_text(encoding="utf-8")
    return [
        Template(
            id=item["id"],
            version=int(item.get("version", 1)),
            kind=item["kind"],
            scope=item["scope"],
            owner=item["owner"],
            name=item["name"],
            instruction=item["instruction"],
            text=item.get("text", ""),
            fragments=dict(item.get("fragments", {})),
            active=bool(item.get("active", True)),
            questions=tuple(item.get("questions", ())),
        )
        for item in yaml.safe_load(text)["templates"]
    ]
