"""Template files: the YAML or JSON form that import, export and the starter library share.

A file is ``{"templates": [definition, ...]}`` (a bare list is accepted too). Definitions are
validated one by one; every broken rule of every template is reported, not just the first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from workers.templates.model import Template, TemplateInvalid, validated

FileFormat = Literal["yaml", "json"]


def format_of(path: Path) -> FileFormat:
    """The format a file's name says: ``.json`` is JSON, anything else YAML."""
    return "json" if path.suffix.lower() == ".json" else "yaml"


def parse_templates(text: str, file_format: FileFormat = "yaml") -> list[Template]:
    """The templates a file's text defines.

    Raises
    ------
    TemplateInvalid
        The text is not YAML/JSON of the expected shape, or a definition breaks a rule.
    """
    try:
        data: Any = json.loads(text) if file_format == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise TemplateInvalid([f"not valid {file_format.upper()}: {exc}"]) from None
    items = data.get("templates") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise TemplateInvalid(["a template file holds a non-empty list under 'templates'"])
    templates: list[Template] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"templates[{index}]: a template is a mapping of fields")
            continue
        try:
            templates.append(validated(item))
        except TemplateInvalid as exc:
            label = exc.template_id or f"templates[{index}]"
            problems.extend(f"{label}: {problem}" for problem in exc.problems)
    if problems:
        raise TemplateInvalid(problems)
    return templates


def render_templates(templates: Sequence[Template], file_format: FileFormat = "yaml") -> str:
    """The text of a file holding ``templates``: ``parse_templates`` reads it back."""
    data = {"templates": [template.definition() for template in templates]}
    if file_format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
