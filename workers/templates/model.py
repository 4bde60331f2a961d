"""The template model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TemplateKind = Literal["information", "questions"]
TemplateScope = Literal["national", "regional", "local"]


@dataclass(frozen=True)
class Template:
    """One version of a template. ``name`` is the case type and the inbox subject."""

    id: str
    version: int
    kind: TemplateKind
    scope: TemplateScope
    owner: str
    name: str
    instruction: str
    text: str = ""
    fragments: dict[str, str] = field(default_factory=dict)
    active: bool = True
    questions: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        """Whether the resident can answer (a template with questions)."""
        return self.kind == "questions"

    def usable_by(self, clinic_hsa_id: str) -> bool:
        """National and regional templates serve everyone; a local one its own clinic only."""
        return self.scope != "local" or self.owner == clinic_hsa_id
