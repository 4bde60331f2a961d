"""The English messages of the shared rules, in the console's language.

The template store, the template model's validation, the dispatch (batch) rules, composition,
the attachment checks, the case list's filter checks and the replay speak English: the CLI and
the HTTP API show them as they are. The console shows each through ``explained``: the first
pattern of ``MESSAGES`` that the whole message matches gives its Swedish words (translated
like every page text), with the pattern's named parts filled in. A problem of a template
field (``name: ...``) is explained part by part: the field's name from ``FIELDS``, then its
message.

A message no pattern matches: ``explained`` gives it as it is; ``detail_text`` (for a detail
beside a reason that the page already says in words) gives nothing in Swedish. The tests raise
every message these rules can give the console and hold each to a pattern here.
"""

from __future__ import annotations

import functools
import re

from producers.web.i18n import DEFAULT, current, translate

_ID = r"(?P<id>[a-z0-9][a-z0-9._-]{0,79})"

MESSAGES: dict[str, str] = {
    # the template store (workers.templates.store)
    rf"template-unknown: no template '{_ID}'(?: in version (?P<version>\d+))?(?: for \S+)?": (
        "Mallen %(id)s finns inte för mottagningen."
    ),
    rf"{_ID} is a national template; a clinic adapts it by adopting it \(.*\)": (
        "%(id)s är en nationell mall: mottagningen anpassar den genom att använda den "
        "(Använd mall) och ändra sin kopia."
    ),
    rf"{_ID} is a regional template; a clinic adapts it by adopting it \(.*\)": (
        "%(id)s är en regional mall: mottagningen anpassar den genom att använda den "
        "(Använd mall) och ändra sin kopia."
    ),
    rf"a template '{_ID}' exists already; edit it instead": (
        "Det finns redan en mall med id %(id)s; ändra den i stället."
    ),
    rf"{_ID} is \w+ owned by \S+; scope and owner do not change": (
        "Mallen %(id)s har en annan ägare; ägare och omfattning ändras inte."
    ),
    rf"{_ID} was changed meanwhile; try again": "%(id)s ändrades under tiden; försök igen.",
    rf"{_ID} is a local template; only national and regional ones can be adopted": (
        "%(id)s är en lokal mall; bara nationella och regionala mallar kan användas."
    ),
    _ID: "Mallen %(id)s finns inte.",
    # the template model's rules (workers.templates.model)
    r"a template needs a name \(the case type and the inbox subject\)": (
        "Mallen behöver ett namn (ärendetypen och rubriken i invånarens inkorg)."
    ),
    r'a template needs an instruction to the case handler \(write "\." if none\)': (
        "Mallen behöver en instruktion till ärendehandläggaren (skriv en punkt om det inte "
        "finns någon)."
    ),
    r"a template needs a text or at least one phrase fragment": (
        "Mallen behöver en text eller minst ett frasminne."
    ),
    r"a question template needs at least one question": (
        "En mall med frågor behöver minst en fråga."
    ),
    r"each answer option \(answer, partial-answer, \.\.\.\) at most once": (
        "Varje svarsalternativ får finnas en gång."
    ),
    r"questions, answer options, .* belong to a question template .*": (
        "Frågor, svarsalternativ och aviseringsinställning hör till en mall med frågor."
    ),
    r"each channel once": "Varje kanal får anges en gång.",
    r"is required": "måste fyllas i.",
    r"is not well formed \(pattern .*\)": "har fel form.",
    r"String should have at most (?P<n>\d+) characters?": "får vara högst %(n)s tecken.",
    r"String should have at least (?P<n>\d+) characters?": "måste vara minst %(n)s tecken.",
    r"Input should be greater than or equal to (?P<n>\d+)": "måste vara minst %(n)s.",
    r"Input should be less than or equal to (?P<n>\d+)": "får vara högst %(n)s.",
    r"Input should be .*": "har ett värde som inte finns att välja.",
    r"(?:Dictionary|Tuple|List) should have at most (?P<n>\d+) items? .*": (
        "får ha högst %(n)s delar."
    ),
    # dispatches (workers.store.batches)
    r"batch (?P<batch>\S+) is cancelled": "Utskicket %(batch)s är avbrutet.",
    r"batch (?P<batch>\S+) has finished: every case is settled, nothing to \w+": (
        "Utskicket %(batch)s är klart: varje ärende är avgjort, det finns inget att ändra."
    ),
    # composition (workers.composition)
    r"no template '(?P<id>.*)'": "Mallen %(id)s finns inte för mottagningen.",
    rf"{_ID} is not active": "Mallen %(id)s är inte aktiverad.",
    r"(?P<where>\S+) uses the field '(?P<field>\w+)'": "Texten använder fältet %(field)s.",
    r"(?P<where>\S+) uses the field '(?P<field>\w+)', which is empty": (
        "Texten använder fältet %(field)s, som är tomt."
    ),
    r"(?P<chars>\d+) characters, limit (?P<limit>\d+)": (
        "%(chars)s tecken; högst %(limit)s får plats."
    ),
    r"(?P<hsa>\S+) is not in HSA": "%(hsa)s finns inte i HSA-katalogen.",
    rf"{_ID} has no fragment '(?P<name>.*)'": "Mallen %(id)s har ingen fras %(name)s.",
    rf"{_ID} notifies by (?P<allowed>\S+) only; the resident has (?P<has>\S+)": (
        "Mallen aviserar bara via %(allowed)s; invånaren har %(has)s."
    ),
    # the clinic's case list (workers.case_access)
    r"(?:invalid-filter: )?--template holds a NUL or is too long": (
        "Mallfiltret innehåller ett otillåtet tecken eller är för långt."
    ),
    r"(?:invalid-filter: )?--limit takes 1 to [\d,]+ \(and an offset 0 to [\d,]+\)": (
        "Sidan finns inte i listan."
    ),
    # the replay (workers.replay)
    r"to (?P<queue>[\w.-]+)": "Skickas till kön %(queue)s.",
    r"no such record": "Det finns inget sådant felat meddelande.",
    r"already (?P<status>\w+)": "Redan hanterat (%(status)s).",
    r"taken by another replay": "En annan omkörning tog det.",
    r"every case has settled": "Varje ärende är redan avgjort.",
    r"a message no stage could read: fix the producer and resend": (
        "Ett meddelande som inget steg kunde läsa: rätta avsändarsystemet och skicka igen."
    ),
    r"the body was not kept whole: replay from the producer": (
        "Innehållet sparades inte helt: skicka om från avsändarsystemet."
    ),
}
"""An English message (the pattern the whole of it matches) -> its Swedish words."""

FIELDS: dict[str, str] = {
    "id": "Id",
    "kind": "Sorts mall",
    "name": "Namn",
    "instruction": "Instruktion till ärendehandläggaren",
    "template_type": "Malltyp",
    "text": "Informationstext",
    "fragments": "Frasminnen",
    "questions": "Frågor",
    "answer_options": "Svarsalternativ",
    "contact": "Kontaktuppgifter",
    "contact_card_url": "Länk till kontaktkort",
    "resident_channels": "Avisering",
    "unread_followup": "Påminnelse",
}
"""A template field (the first part of a problem's location) -> its name on the form."""


@functools.cache
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern), swedish) for pattern, swedish in MESSAGES.items()]


def _words(message: str) -> str | None:
    for pattern, swedish in _compiled():
        found = pattern.fullmatch(message)
        if found:
            return translate(swedish) % {k: v or "" for k, v in found.groupdict().items()}
    return None


def _field_problem(message: str) -> str | None:
    where, separator, rest = message.partition(": ")
    field = FIELDS.get(where.split(".", 1)[0])
    if not separator or field is None:
        return None
    said = _words(rest)
    return f"{translate(field)}: {said}" if said else None


def words_for(message: str | None) -> str | None:
    """The message in the request's language, or None when no pattern knows it."""
    if not message:
        return None
    return _words(message) or _field_problem(message)


def explained(message: object) -> str:
    """An error message of the shared rules in the request's language (as it is when no
    pattern knows it)."""
    text = str(message) if message is not None else ""
    return words_for(text) or text


def detail_text(detail: object) -> str:
    """A detail shown beside a reason the page already gives in words: in the request's
    language, else nothing in Swedish (the reason's words say it) and the detail in English."""
    text = str(detail) if detail is not None else ""
    found = words_for(text)
    if found is not None:
        return found
    return "" if current.get() == DEFAULT else text
