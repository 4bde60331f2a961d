"""The template form of the console: a template's fields to the form and back.

The form posts the whole template (every fragment, question and answer option), so what it
sends becomes a complete set of changes for ``workers.templates.store.edited``; the store's
validation then applies the same rules, and gives the same messages, as ``omvant templates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from producers.web.i18n import gettext as _
from workers.templates.model import DEFAULT_ANSWER_LABELS, Template

EMPTY_FRAGMENT_ROWS = 3
NOTIFY_CHOICES = {"": None, "sms": ["sms"], "email": ["email"], "both": ["sms", "email"]}


@dataclass
class FormValues:
    """What the form shows: a template's values, or what was posted (to show again)."""

    name: str = ""
    template_type: str = "meddelande"
    text: str = ""
    fragments: list[tuple[str, str]] = field(default_factory=list)
    contact: str = ""
    contact_card_url: str = ""
    instruction: str = ""
    questions: str = ""
    answer_labels: dict[str, str] = field(default_factory=dict)
    notify: str = ""
    unread_after: str = ""
    unread_action: str = "flag"
    active: bool = False

    def fragment_rows(self) -> list[tuple[str, str]]:
        """The fragments, then a few empty rows for new ones."""
        return [*self.fragments, *([("", "")] * EMPTY_FRAGMENT_ROWS)]


def values_of(template: Template) -> FormValues:
    """The form filled in with ``template``."""
    notify = ""
    if template.resident_channels is not None:
        channels = set(template.resident_channels.channels)
        notify = "both" if channels == {"sms", "email"} else next(iter(channels))
    return FormValues(
        name=template.name,
        template_type=template.template_type,
        text=template.text,
        fragments=list(template.fragments.items()),
        contact=template.contact,
        contact_card_url=template.contact_card_url or "",
        instruction=template.instruction,
        questions="\n".join(template.questions),
        answer_labels={o.kind: o.label for o in template.answer_options},
        notify=notify,
        unread_after=str(template.unread_followup.after_hours) if template.unread_followup else "",
        unread_action=template.unread_followup.action if template.unread_followup else "flag",
        active=template.active,
    )


def blank_values(kind: str) -> FormValues:
    """An empty form ("Tom mall"); a question template starts with 1177's answer labels."""
    labels: dict[str, str] = (
        {str(k): v for k, v in DEFAULT_ANSWER_LABELS.items()} if kind == "questions" else {}
    )
    return FormValues(answer_labels=labels)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> Sequence[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def read_form(form: FormData) -> FormValues:
    """The values posted, as the form shows them again."""
    names, texts = _texts(form, "fragment_name"), _texts(form, "fragment_text")
    fragments = [
        (n.strip(), t) for n, t in zip(names, texts, strict=False) if n.strip() or t.strip()
    ]
    return FormValues(
        name=_text(form, "name"),
        template_type=_text(form, "template_type"),
        text=_text(form, "text"),
        fragments=fragments,
        contact=_text(form, "contact"),
        contact_card_url=_text(form, "contact_card_url").strip(),
        instruction=_text(form, "instruction"),
        questions=_text(form, "questions"),
        answer_labels={
            kind: _text(form, f"answer_{kind}").strip() for kind in DEFAULT_ANSWER_LABELS
        },
        notify=_text(form, "notify"),
        unread_after=_text(form, "unread_after").strip(),
        unread_action=_text(form, "unread_action") or "flag",
        active=_text(form, "active") == "on",
    )


def changes_of(values: FormValues, kind: str) -> tuple[dict[str, Any], list[str]]:
    """The template fields the form sets, and what is wrong with the form itself (the
    template's own rules are the store's to check)."""
    problems: list[str] = []
    fragments: dict[str, str] = {}
    for name, text in values.fragments:
        if not name:
            problems.append(_("Frasminnen: ett frasminne behöver ett namn."))
        elif name in fragments:
            problems.append(_("Frasminnen: namnet %(name)s används två gånger.", name=name))
        else:
            fragments[name] = text
    changes: dict[str, Any] = {
        "name": values.name,
        "template_type": values.template_type or "meddelande",
        "text": values.text,
        "fragments": fragments,
        "contact": values.contact,
        "contact_card_url": values.contact_card_url or None,
        "instruction": values.instruction,
    }
    if kind == "questions":
        changes["questions"] = [q.strip() for q in values.questions.splitlines() if q.strip()]
        changes["answer_options"] = [
            {"kind": k, "label": label} for k, label in values.answer_labels.items() if label
        ]
        if values.notify not in NOTIFY_CHOICES:
            problems.append(_("Avisering: välj sms, e-post, båda eller alla invånarens kanaler."))
        else:
            channels = NOTIFY_CHOICES[values.notify]
            changes["resident_channels"] = {"channels": channels} if channels else None
    if values.unread_after:
        try:
            hours = int(values.unread_after)
        except ValueError:
            problems.append(_("Påminnelse: ange ett helt antal timmar."))
        else:
            changes["unread_followup"] = (
                {"after_hours": hours, "action": values.unread_action} if hours else None
            )
    else:
        changes["unread_followup"] = None
    return changes, problems
