"""``/v1/attachments``: upload a file, checked with the pipeline's attachment checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from producers import integration
from producers.web.api.models import AttachmentStored
from producers.web.api.refusals import refused
from producers.web.api.strict_json import StrictJsonRoute
from producers.web.api_keys_auth import Integration
from producers.web.deps import Context
from producers.web.problems import PROBLEM_RESPONSES
from workers.store.api_keys import ApiKey

router = APIRouter(route_class=StrictJsonRoute, tags=["attachments"], responses=PROBLEM_RESPONSES)


@router.post(
    "/attachments",
    status_code=201,
    response_model=AttachmentStored,
    responses={403: PROBLEM_RESPONSES[422] | {"description": "`clinic-not-allowed`"}},
    summary="Upload an attachment",
)
async def upload(
    file: UploadFile,
    clinic_hsa_id: Annotated[str, Form(pattern=r"^SE[0-9]{10}-[A-Za-z0-9]{1,31}$")],
    key: Integration,
    context: Context,
    declared_type: Annotated[str | None, Form(max_length=127)] = None,
) -> AttachmentStored:
    """A pdf, jpg or png for one of the key's clinics. It is checked as the pipeline checks
    it (magic bytes, structure, active content, pixel limit, virus scan); a refused file is
    422 with the check's reason code and is not stored. Put the answer's `ref` in a SendCase's
    `attachments`."""
    data = await file.read(context.settings.max_attachment_bytes + 1)
    return await run_in_threadpool(
        _store, key, context, clinic_hsa_id, data, file=file, declared_type=declared_type
    )


def _store(
    key: ApiKey,
    context: Context,
    clinic_hsa_id: str,
    data: bytes,
    *,
    file: UploadFile,
    declared_type: str | None,
) -> AttachmentStored:
    try:
        stored = integration.upload_attachment(
            key,
            clinic_hsa_id=clinic_hsa_id,
            data=data,
            filename=file.filename or "attachment",
            declared_type=declared_type or file.content_type or "application/octet-stream",
            settings=context.settings,
            engine=context.engine,
        )
    except integration.Refused as exc:
        raise refused(exc) from None
    return AttachmentStored(
        ref=stored.ref, kind=stored.kind or "", pages=stored.pages, cleaned=stored.cleaned
    )
