"""The attachment-check stage's pure decisions: per-case claims, the count limit, cleaned blobs."""

from __future__ import annotations

import datetime as dt

from contracts.attachments_cleared import AttachmentsClearedV1
from contracts.common import AttachmentRef
from contracts.message_composed import MessageComposedV1
from producers import attachment_samples as samples
from workers.attachment_check import handle, missing, removable
from workers.attachments.checker import inspect
from workers.attachments.limits import Limits
from workers.attachments.scanner import SimulatedVirusScanner
from workers.reasons import Reason
from workers.stage import Advance, Reject

SCANNER = SimulatedVirusScanner()
PDF = inspect(samples.pdf(2), Limits(), SCANNER)
PHOTO = inspect(samples.jpeg_with_gps(64, 48), Limits(), SCANNER)
DOCX = inspect(samples.docx(), Limits(), SCANNER)


def composed(case_id: str, *refs: AttachmentRef) -> MessageComposedV1:
    return MessageComposedV1(
        case_id=case_id,
        clinic_hsa_id="SE2321000016-VC01",
        personnummer="191212121212",
        template_id="meddelande-till-invanare",
        template_version=1,
        answerable=False,
        subject="Meddelande",
        body="Hej",
        signature="Vårdcentralen",
        sent_on=dt.date(2026, 1, 2),
        channels=["sms"],
        attachments=list(refs),
    )


def ref(sha256: str, filename: str, declared: str = "application/octet-stream") -> AttachmentRef:
    return AttachmentRef(sha256=sha256, filename=filename, declared_type=declared, size=1)


VERDICTS = {v.sha256: v for v in (PDF, PHOTO, DOCX)}


def test_a_case_whose_files_pass_is_cleared_with_the_cleaned_blobs_and_page_counts() -> None:
    [decision] = handle(
        [composed("c1", ref(PDF.sha256, "brev.pdf"), ref(PHOTO.sha256, "bild.jpg"))],
        VERDICTS,
        Limits(),
    )
    assert isinstance(decision, Advance)
    assert isinstance(decision.next_item, AttachmentsClearedV1)
    pdf, photo = decision.next_item.attachments
    assert (pdf.sha256, pdf.type, pdf.pages) == (PDF.sha256, "pdf", 2)
    assert photo.sha256 == PHOTO.cleaned_sha256 != PHOTO.sha256
    assert photo.size == PHOTO.cleaned_size


def test_the_same_file_passes_for_one_case_and_is_refused_for_a_case_that_misnames_it() -> None:
    good, misnamed = handle(
        [
            composed("c1", ref(PDF.sha256, "brev.pdf", "application/pdf")),
            composed("c2", ref(PDF.sha256, "brev.png")),
        ],
        VERDICTS,
        Limits(),
    )
    assert isinstance(good, Advance)
    assert isinstance(misnamed, Reject) and misnamed.reason == Reason.ATTACHMENT_TYPE_MISMATCH


def test_one_bad_file_rejects_the_case_naming_the_file() -> None:
    [decision] = handle(
        [composed("c1", ref(PDF.sha256, "brev.pdf"), ref(DOCX.sha256, "remiss.pdf"))],
        VERDICTS,
        Limits(),
    )
    assert isinstance(decision, Reject)
    assert decision.reason == Reason.ATTACHMENT_TYPE_NOT_ALLOWED
    assert decision.detail is not None and decision.detail.startswith("remiss.pdf:")


def test_more_files_than_the_limit_rejects_the_case() -> None:
    refs = [ref(PDF.sha256, f"brev{n}.pdf") for n in range(4)]
    over, within = handle(
        [composed("c1", *refs), composed("c2", *refs[:3])], VERDICTS, Limits(max_files=3)
    )
    assert isinstance(over, Reject) and over.reason == Reason.TOO_MANY_ATTACHMENTS
    assert isinstance(within, Advance)


def test_a_reference_without_a_blob_is_missing() -> None:
    absent = "0" * 64
    [decision] = handle(
        [composed("c1", ref(absent, "brev.pdf"))], {absent: missing(absent)}, Limits()
    )
    assert isinstance(decision, Reject) and decision.reason == Reason.ATTACHMENT_MISSING
    [unknown] = handle([composed("c2", ref(absent, "brev.pdf"))], {}, Limits())
    assert isinstance(unknown, Reject) and unknown.reason == Reason.ATTACHMENT_MISSING


def test_refused_content_and_originals_of_cleaned_images_are_removable_and_nothing_else() -> None:
    assert removable([PDF, PHOTO, DOCX, missing("1" * 64)]) == {PHOTO.sha256, DOCX.sha256}
