"""The console's words: statuses, states and reason codes in Swedish (the code stays beside
them, since staff quote it to support)."""

from __future__ import annotations

import html

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
    "batch-cancelled": "Utskicket avbröts",
}

STAGE = {
    "intake": "mottagning",
    "recipient-validation": "kontroll av mottagare",
    "composition": "sammanställning",
    "attachment-check": "kontroll av bilagor",
    "notification-dispatch": "leverans och avisering",
    "read-receipts": "läskvitto",
    "follow-up": "påminnelse",
}

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

KIND = {"information": "Mall med information", "questions": "Mall med frågor"}
SCOPE = {"national": "Nationell", "regional": "Regional", "local": "Lokal"}


def reason_text(code: str | None) -> str:
    """A reason code in Swedish (the code itself when there is no wording for it)."""
    if code is None:
        return ""
    return REASON.get(code, code)


def jinja_filters() -> dict[str, object]:
    """The filters the page templates use."""
    return {
        "status_text": lambda code: STATUS.get(code, code),
        "state_text": lambda code: STATE.get(code, code),
        "reason_text": reason_text,
        "channel_text": lambda code: CHANNEL.get(code, code),
        "answer_text": lambda code: ANSWER_KIND.get(code, code or ""),
        "kind_text": lambda code: KIND.get(code, code),
        "scope_text": lambda code: SCOPE.get(code, code),
        "unescape_html": html.unescape,
        "stage_text": lambda code: STAGE.get(code, code),
        "notification_text": lambda code: NOTIFICATION.get(code, code),
    }
