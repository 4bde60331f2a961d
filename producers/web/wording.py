"""The console's words: statuses, states and reason codes in Swedish (the code stays beside
them, since staff quote it to support)."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from zoneinfo import ZoneInfo

from producers.web.explained import detail_text, explained
from producers.web.i18n import translate
from workers.log import mask_identity_numbers
from workers.store.sql import aware_utc

STATUS = {
    "read": "Läst av invånaren",
    "unread": "Oläst av invånaren",
    "overdue": "Oläst efter påminnelsetiden",
    "answered": "Besvarat",
    "unanswered": "Obesvarat",
    "rejected": "Avvisat",
    "failed": "Misslyckat",
    "in-progress": "Skickas",
}
"""The clinic's statuses (``case_queries.STATUSES``) as 1177's staff tool names them."""

STATE = {
    "received": "Mottaget",
    "validated": "Mottagare kontrollerad",
    "composed": "Meddelande sammanställt",
    "cleared": "Bilagor kontrollerade",
    "delivered": "Levererat till inkorgen",
    "notified": "Avisering skickad",
    "read": "Läst av invånaren",
    "answered": "Besvarat av invånaren",
    "rejected": "Avvisat",
    "failed": "Misslyckat",
}

REASON = {
    "invalid-identity-number": "Personnumret är inte giltigt",
    "no-account": "Invånaren har ingen inloggning på 1177",
    "login-blocked": "Invånaren har spärrat sin inloggning",
    "no-notification-channel": "Invånaren har inte slagit på avisering till sms eller e-post",
    "account-deactivated": "Invånarens konto på 1177 är avslutat",
    "samordningsnummer-not-reachable": "Ett samordningsnummer kan inte logga in på 1177",
    "directory-refused": "Kontokatalogen svarade inte på frågan",
    "template-unknown": "Mallen finns inte för mottagningen",
    "template-inactive": "Mallen är inte aktiverad",
    "fragment-unknown": "Frasen finns inte i mallen",
    "body-too-long": "Meddelandet är för långt",
    "field-missing": "Ett fält som texten använder saknas",
    "sender-unknown": "Avsändaren finns inte i HSA-katalogen",
    "clinic-unknown": "Mottagningen finns inte i HSA-katalogen",
    "template-channel-unavailable": "Mallens aviseringsinställning passar inte invånarens",
    "attachment-missing": "Bilagan saknas",
    "attachment-type-not-allowed": "Filen är inte pdf, jpg eller png",
    "attachment-type-mismatch": "Filens namn eller typ stämmer inte med innehållet",
    "attachment-too-large": "Filen är för stor",
    "too-many-attachments": "För många bilagor",
    "attachment-truncated": "Filen är avkortad",
    "attachment-corrupt": "Filen är trasig",
    "attachment-polyglot": "Filen innehåller mer än den ska (flera format i en fil)",
    "attachment-pdf-encrypted": "PDF-filen är krypterad",
    "attachment-pdf-active-content": "PDF-filen innehåller aktivt innehåll (t.ex. JavaScript)",
    "attachment-image-too-large": "Bilden har för många bildpunkter",
    "attachment-infected": "Virusskanningen hittade skadlig kod",
    "inbox-refused": "Inkorgen tog inte emot meddelandet",
    "notification-refused": "Aviseringen togs inte emot",
    "notification-address-missing": "Invånaren saknar adress för aviseringen",
    "notification-in-doubt": "Oklart om aviseringen kom fram (skickas inte igen)",
    "technical-failure": "Tekniskt fel",
    "outage": "Avbrott: ett system som steget behöver svarade inte",
    "batch-cancelled": "Utskicket avbröts",
}

STAGE = {
    "intake": "mottagning",
    "recipient-validation": "kontroll av mottagare",
    "composition": "sammanställning",
    "attachment-check": "kontroll av bilagor",
    "notification-dispatch": "leverans till inkorgen",
    "notification-sending": "avisering",
    "read-receipts": "läskvitto",
    "follow-up": "påminnelse",
    "batch-control": "styrning av utskick",
    "dead-letter": "död bokstav",
    "replay": "omkörning",
}
"""The stages (``workers.routes.STAGES``) and the other steps a case's history names."""

NOTIFICATION = {
    "pending": "pågår",
    "sent": "skickad",
    "refused": "inte mottagen",
    "retry": "försöker igen",
    "unconfirmed": "obekräftad",
}

CHANNEL = {"sms": "sms", "email": "e-post"}

ANSWER_KIND = {
    "answer": "Svar",
    "partial-answer": "Delsvar",
    "counter-question": "Motfråga",
}

LANE = {
    "normal": "normal",
    "urgent": "brådskande",
    "bulk-1": "massutskick 1",
    "bulk-2": "massutskick 2",
}

FAILURE_KIND = {
    "dead-letter": "Död bokstav (gav upp efter försöken)",
    "rejected-case": "Avvisat ärende som kan rättas",
    "unreadable": "Oläsbart meddelande",
}

FAILURE_STATUS = {
    "open": "Väntar",
    "replaying": "Körs om",
    "replayed": "Körd om",
    "settled": "Redan klar",
    "purged": "Rensad",
}

REPLAY_RESULT = {
    "would-replay": "Skickas igen",
    "would-settled": "Redan klar: inget skickas",
    "would-not-replayable": "Kan inte köras om",
    "skipped": "Hoppas över",
    "replayed": "Körd om",
    "settled": "Redan klar",
    "not-replayable": "Kan inte köras om",
    "failed": "Misslyckades",
}

TEMPLATE_NOTICE = {
    "adopted": "Mallen är hämtad till mottagningen. Anpassa den, bocka i Aktivera mall och spara.",
    "saved": "Mallen är sparad som en ny version.",
    "unchanged": "Inga ändringar att spara.",
    "activated": "Mallen är aktiverad: vårdpersonalen kan använda den.",
    "deactivated": "Mallen är avaktiverad.",
    "created": "Mallen är skapad.",
}
"""What the template pages say after an action (``?info=``)."""

BATCH_STATUS = {"running": "Pågår", "paused": "Pausat", "cancelled": "Avbrutet"}

KIND = {"information": "Mall med information", "questions": "Mall med frågor"}
SCOPE = {"national": "Nationell", "regional": "Regional", "local": "Lokal"}


def reason_text(code: str | None) -> str:
    """A reason code in Swedish (the code itself when there is no wording for it)."""
    if code is None:
        return ""
    return REASON.get(code, code)


def age_text(seconds: float | None) -> str:
    """A duration as on-call reads it: 45 s, 12 min, 3,5 h, 2,0 d ("–" for none)."""
    if seconds is None:
        return "–"
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".", ",")
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _local_time(zone: ZoneInfo) -> Callable[[object], str]:
    def local(value: object) -> str:
        if value is None or value == "":
            return "–"
        when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return aware_utc(when).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    return local


def _pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _table(words: dict[str, str]) -> Callable[[str | None], str]:
    """A filter: the code's words in the request's language (the code itself without)."""

    def text(code: str | None) -> str:
        if code is None:
            return ""
        found = words.get(code)
        return translate(found) if found is not None else code

    return text


def jinja_filters(zone: ZoneInfo | None = None) -> dict[str, object]:
    """The filters the page templates use."""
    return {
        "mask_identity_numbers": mask_identity_numbers,
        "local_time": _local_time(zone or ZoneInfo("Europe/Stockholm")),
        "age_text": age_text,
        "pretty_json": _pretty_json,
        "lane_text": _table(LANE),
        "failure_kind_text": _table(FAILURE_KIND),
        "failure_status_text": _table(FAILURE_STATUS),
        "replay_result_text": _table(REPLAY_RESULT),
        "batch_status_text": _table(BATCH_STATUS),
        "status_text": _table(STATUS),
        "state_text": _table(STATE),
        "reason_text": _table(REASON),
        "channel_text": _table(CHANNEL),
        "answer_text": _table(ANSWER_KIND),
        "kind_text": _table(KIND),
        "scope_text": _table(SCOPE),
        "unescape_html": html.unescape,
        "stage_text": _table(STAGE),
        "notification_text": _table(NOTIFICATION),
        "explained": explained,
        "detail_text": detail_text,
    }
