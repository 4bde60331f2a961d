"""Realistic dispatches for the demo, load tests and benchmarks.

Residents are Skatteverket's test numbers (they belong to nobody); shares of unreachable
residents come from the simulated account directory. A few cases carry deliberate faults:
samordningsnummer, numbers with a broken check digit, an unknown or inactive template, and
attachments the attachment check refuses (a Word file renamed to .pdf, a PDF that runs
JavaScript) and photos it cleans of their GPS position.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.common import AttachmentRef
from contracts.send_case import SendCaseV2
from producers import attachment_samples
from workers.adapters.blobs import BlobStore
from workers.adapters.population import draw_residents, test_samordningsnummer
from workers.attachments.ownership import store_attachment

CLINICS = ("SE2321000016-VC01", "SE2321000016-VC02", "SE2321000016-BMM3", "SE2321000016-REH4")
SENDERS = ("SE2321000016-S101", "SE2321000016-S102", "SE2321000016-S203", "SE2321000016-S304")
PLANS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kallelse-screening", ("tid", "avboka")),
    ("meddelande-om-provsvar", ("normalt", "journal")),
    ("meddelande-till-invanare", ("halsning", "tid-bokad", "aterkom")),
    ("bifoga-bild-till-varden", ("hud",)),
    ("fragor-infor-vardkontakt-sjukskrivning", ("arbete", "tidigare")),
)


def broken_check_digit(number: str) -> str:
    """A test number with its check digit changed: invalid, so it can be nobody's."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@dataclass(frozen=True)
class SampleFiles:
    """Attachment files stored once in the blob store and referred to by many cases."""

    pdf: AttachmentRef
    png: AttachmentRef
    renamed_docx: AttachmentRef
    gps_photo: AttachmentRef
    scripted_pdf: AttachmentRef


def store_sample_files(
    blobs: BlobStore, engine: sa.Engine, clinics: Sequence[str] = CLINICS
) -> SampleFiles:
    """Make a one-page PDF, a PNG, a Word file renamed to .pdf, a phone photo with its GPS
    position and a PDF that runs JavaScript; store them for each of ``clinics`` (each clinic
    uploads its own copy of the letter: a case may send only its own clinic's files)."""

    def ref(data: bytes, name: str, declared: str) -> AttachmentRef:
        stored = [
            store_attachment(
                engine, blobs, data, owner_hsa_id=c, filename=name, declared_type=declared
            )
            for c in clinics
        ]
        return stored[0]

    return SampleFiles(
        pdf=ref(attachment_samples.pdf(), "kallelse.pdf", "application/pdf"),
        png=ref(attachment_samples.png(64, 48), "karta.png", "image/png"),
        renamed_docx=ref(attachment_samples.docx(), "remiss.pdf", "application/pdf"),
        gps_photo=ref(attachment_samples.jpeg_with_gps(320, 240), "utslag.jpg", "image/jpeg"),
        scripted_pdf=ref(
            attachment_samples.pdf_with_javascript(), "blankett.pdf", "application/pdf"
        ),
    )


def build_dispatch(
    count: int, *, seed: int, batch_id: str, files: SampleFiles | None = None
) -> list[SendCaseV2]:
    """``count`` send requests over a few templates and clinics, with deliberate faults."""
    rng = random.Random(seed)
    residents = draw_residents(count, seed=seed)
    coordination = test_samordningsnummer()
    requests: list[SendCaseV2] = []
    for index, resident in enumerate(residents):
        number = resident
        template_id, fragments = PLANS[index % len(PLANS)]
        roll = rng.random()
        attachments: list[AttachmentRef] = []
        if roll < 0.02:
            number = coordination[index % len(coordination)]
        elif roll < 0.03:
            number = broken_check_digit(number)
        elif roll < 0.04:
            template_id, fragments = "gammal-kallelse", ()
        elif roll < 0.045:
            template_id, fragments = "finns-inte", ()
        if files is not None:
            pick = rng.random()
            if pick < 0.03:
                attachments = [files.renamed_docx]
            elif pick < 0.10:
                attachments = [files.pdf]
            elif pick < 0.15:
                attachments = [files.png]
            elif pick < 0.18:
                attachments = [files.gps_photo]
            elif pick < 0.19:
                attachments = [files.scripted_pdf]
        requests.append(
            _request(
                index,
                number=number,
                template_id=template_id,
                fragments=fragments,
                attachments=attachments,
                batch_id=batch_id,
            )
        )
    return requests


def written_as(number: str, style: int, this_year: int) -> str:
    """A 12-digit number as staff write it: YYYYMMDD-NNNN, YYMMDDNNNN (YYMMDD+NNNN at 100 or
    more, where the century cannot be told otherwise) or 12 digits."""
    if style == 0:
        return f"{number[:8]}-{number[8:]}"
    if style == 1:
        on = dt.date.today()
        centenarian = number[:8] <= f"{this_year - 100:04d}{on:%m%d}"
        return f"{number[2:8]}+{number[8:]}" if centenarian else number[2:]
    return number


def _request(
    index: int,
    *,
    number: str,
    template_id: str,
    fragments: tuple[str, ...],
    attachments: list[AttachmentRef],
    batch_id: str,
) -> SendCaseV2:
    return SendCaseV2(
        clinic_hsa_id=CLINICS[index % len(CLINICS)],
        sender_hsa_id=SENDERS[(index // 3) % len(SENDERS)],
        template_id=template_id,
        fragments=list(fragments),
        free_text="Välkommen!" if index % 7 == 0 else None,
        personnummer=written_as(number, index % 3, dt.date.today().year),
        attachments=attachments,
        priority="urgent" if index % 250 == 0 else "normal",
        idempotency_key=f"{batch_id}:{index}",
        batch_id=batch_id,
    )


def new_batch_id(prefix: str = "demo") -> str:
    """A fresh batch id."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
