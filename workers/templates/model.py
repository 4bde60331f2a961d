"""The template model: one version of a template, validated once when it is made or read.

A template is what a clinic sends from. ``name`` is the case type staff pick from the list and
the subject the resident sees in the inbox. The information text is one ``text`` and/or named
phrase ``fragments`` that senders "plus in" per case. A question template also carries the
questions to the resident, the answer form and, optionally, a notification setting that
overrides the clinic's default. Versions are immutable: an edit is a new version.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

TemplateKind = Literal["information", "questions"]
TemplateScope = Literal["national", "regional", "local"]
AnswerKind = Literal["answer", "partial-answer", "counter-question"]
Channel = Literal["sms", "email"]
FollowupAction = Literal["notify-again", "flag"]

TEMPLATE_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"
HSA_ID_PATTERN = r"^SE[0-9]{10}-[A-Za-z0-9]{1,31}$"
FRAGMENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,79}$"
FIELD_PATTERN = re.compile(r"\{\{\s*([a-z][a-z0-9_]{0,39})\s*\}\}")
"""A personalisation field in a template's text: ``{{ name }}``. Nothing else is syntax."""

TemplateId = Annotated[str, StringConstraints(pattern=TEMPLATE_ID_PATTERN)]
HsaId = Annotated[str, StringConstraints(pattern=HSA_ID_PATTERN)]
FragmentName = Annotated[str, StringConstraints(pattern=FRAGMENT_NAME_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=10_000)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

DEFAULT_ANSWER_LABELS: dict[AnswerKind, str] = {
    "answer": "Svara",
    "partial-answer": "Delsvar",
    "counter-question": "Motfråga",
}
"""The answer form of a question template unless the template says otherwise."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnswerOption(_Part):
    """One way the resident may reply: an answer, a partial answer or a counter-question."""

    kind: AnswerKind
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


MAILBOX_PATTERN = r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$"
AnswerAlertKind = Literal["none", "email"]


class NotificationSetting(_Part):
    """How the clinic's case handlers are told that a resident answered a case of this
    template, instead of the clinic's default ("aviseringsinställning"): not at all, or by a
    content-free e-mail to a functional mailbox."""

    alert: AnswerAlertKind
    mailbox: Annotated[str, StringConstraints(pattern=MAILBOX_PATTERN)] | None = None

    @model_validator(mode="after")
    def _mailbox_with_email(self) -> NotificationSetting:
        if (self.alert == "email") != (self.mailbox is not None):
            raise ValueError("an e-mail answer alert needs a mailbox, and only it has one")
        return self


class ResidentChannels(_Part):
    """Which of the resident's channels to notify on for cases of this template (a separate
    option; before issue 13 the notification setting did this). The resident's own settings
    still decide: the case is notified on the channels both turned on and allowed here.
    """

    channels: tuple[Channel, ...] = Field(min_length=1, max_length=2)

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each channel once")
        return value


class UnreadFollowup(_Part):
    """What to do when a case of this template is still unread ``after_hours`` after delivery."""

    after_hours: int = Field(ge=1, le=24 * 90)
    action: FollowupAction


class Template(_Part):
    """One version of a template."""

    id: TemplateId
    version: int = Field(default=1, ge=1)
    kind: TemplateKind
    scope: TemplateScope
    owner: HsaId
    """The owning region (national, regional) or clinic (local): an HSA-id."""
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=150)] = Field(
        default="", validate_default=True
    )
    """The case type, and the subject of the message in the resident's inbox."""
    instruction: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = Field(
        default="", validate_default=True
    )
    """To the case handler; mandatory, a single "." when there is none."""
    template_type: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)
    ] = "meddelande"
    text: Text = ""
    fragments: dict[FragmentName, Text] = Field(default_factory=dict, max_length=200)
    questions: tuple[Line, ...] = Field(default=(), max_length=50)
    answer_options: tuple[AnswerOption, ...] = ()
    notification: NotificationSetting | None = None
    """How the clinic is alerted of answers to this template's cases (else the clinic's
    default, ``omvant clinics answer-alert``)."""
    resident_channels: ResidentChannels | None = None
    unread_followup: UnreadFollowup | None = None
    contact: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    """The clinic's contact information, added under the text of every message."""
    contact_card_url: (
        Annotated[str, StringConstraints(pattern=r"^https://[^\s<>\"']{1,490}$")] | None
    ) = None
    """A link to the clinic's contact card on 1177 (recommended for adopted copies)."""
    adopted_from: Annotated[str, StringConstraints(max_length=100)] | None = None
    """``template-id@version`` this local copy was adopted from."""
    active: bool = False
    created_at: dt.datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _channels_were_the_notification(cls, data: object) -> object:
        """Versions stored before issue 13 held the resident channels in ``notification``."""
        if isinstance(data, dict):
            old = data.get("notification")
            if isinstance(old, dict) and "channels" in old and "alert" not in old:
                data = {**data, "notification": None}
                data.setdefault("resident_channels", old)
                if data["resident_channels"] is None:
                    data["resident_channels"] = old
        return data

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value:
            raise ValueError("a template needs a name (the case type and the inbox subject)")
        return value

    @field_validator("instruction")
    @classmethod
    def _instructed(cls, value: str) -> str:
        if not value:
            raise ValueError(
                'a template needs an instruction to the case handler (write "." if none)'
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Template:
        if not self.text.strip() and not self.fragments:
            raise ValueError("a template needs a text or at least one phrase fragment")
        if self.kind == "questions":
            if not self.questions:
                raise ValueError("a question template needs at least one question")
            if not self.answer_options:
                defaults = tuple(
                    AnswerOption(kind=k, label=v) for k, v in DEFAULT_ANSWER_LABELS.items()
                )
                object.__setattr__(self, "answer_options", defaults)
            kinds = [option.kind for option in self.answer_options]
            if len(set(kinds)) != len(kinds):
                raise ValueError("each answer option (answer, partial-answer, ...) at most once")
        elif self.questions or self.answer_options or self.notification or self.resident_channels:
            raise ValueError(
                "questions, answer options, a notification setting and resident channels "
                "belong to a question "
                "template (kind: questions); the resident cannot answer an information template"
            )
        return self

    @property
    def answerable(self) -> bool:
        """Whether the resident can answer (a template with questions)."""
        return self.kind == "questions"

    def usable_by(self, clinic_hsa_id: str) -> bool:
        """National and regional templates serve everyone; a local one its own clinic only."""
        return self.scope != "local" or self.owner == clinic_hsa_id

    def content(self, *, compact: bool = False) -> dict[str, object]:
        """What a version holds (everything but identity, version, activation and time).

        Stored in full, so that a later change of a default never changes an old version's
        meaning; ``compact`` leaves out the defaults (for files people read).
        """
        return self.model_dump(
            mode="json",
            exclude={"id", "version", "scope", "owner", "active", "created_at"},
            exclude_defaults=compact,
        )

    def definition(self) -> dict[str, object]:
        """The template as a file holds it (``omvant templates export``)."""
        data: dict[str, object] = {
            "id": self.id,
            "version": self.version,
            "kind": self.kind,
            "scope": self.scope,
            "owner": self.owner,
            "active": self.active,
        }
        data.update(self.model_dump(mode="json", include={"name", "instruction"}))
        data.update(self.content(compact=True))
        return data


class TemplateInvalid(ValueError):
    """A template definition breaks a rule; ``problems`` says which, one line each."""

    def __init__(self, problems: list[str], template_id: str | None = None) -> None:
        where = f"template {template_id!r}: " if template_id else ""
        super().__init__(where + "; ".join(problems))
        self.problems = problems
        self.template_id = template_id


def describe(error: ValidationError) -> list[str]:
    """Turn pydantic's errors into one clear line per problem."""
    problems: list[str] = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "string_pattern_mismatch":
            message = f"is not well formed (pattern {item['ctx']['pattern']})"
        problems.append(f"{where}: {message}" if where else message)
    return problems


def validated(data: dict[str, object]) -> Template:
    """A template from a plain definition (a file, the command line).

    Raises
    ------
    TemplateInvalid
        With one line per broken rule.
    """
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        template_id = data.get("id")
        raise TemplateInvalid(
            describe(exc), str(template_id) if isinstance(template_id, str) else None
        ) from None
