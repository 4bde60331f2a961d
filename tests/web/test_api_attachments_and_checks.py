"""``/v1/attachments`` (checked as the pipeline checks, stored for the clinic) and
``/v1/recipients/check`` (the pre-send check with the pipeline's reason codes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from producers import attachment_samples as samples
from tests.reachable import reachable_residents
from tests.web.api_support import CLINIC_A, CLINIC_B, app_for, make_key
from workers.store.engine import make_engine
from workers.store.schema import blob_owners


def test_an_upload_that_passes_is_stored_for_the_clinic_and_a_refused_one_is_not(
    sqlite_url: str, tmp_path: Path
) -> None:
    key = make_key(sqlite_url, "journal-a", [CLINIC_A])
    blobs = tmp_path / "blobs"
    good = samples.pdf(2)
    docx_renamed = b"PK\x03\x04" + b"\x00" * 200
    with TestClient(app_for(sqlite_url, blob_dir=blobs)) as client:
        stored = client.post(
            "/v1/attachments",
            files={"file": ("kallelse.pdf", good, "application/pdf")},
            data={"clinic_hsa_id": CLINIC_A},
            headers=key.headers,
        )
        refused = client.post(
            "/v1/attachments",
            files={"file": ("remiss.pdf", docx_renamed, "application/pdf")},
            data={"clinic_hsa_id": CLINIC_A},
            headers=key.headers,
        )
        elsewhere = client.post(
            "/v1/attachments",
            files={"file": ("kallelse.pdf", good, "application/pdf")},
            data={"clinic_hsa_id": CLINIC_B},
            headers=key.headers,
        )
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["ref"]["sha256"] == hashlib.sha256(good).hexdigest()
    assert body["kind"] == "pdf" and body["pages"] == 2
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"].startswith("attachment-")
    assert elsewhere.status_code == 403 and elsewhere.json()["reason"] == "clinic-not-allowed"
    stored_files = {p.name for p in blobs.rglob("*") if p.is_file()}
    assert any(body["ref"]["sha256"] in name for name in stored_files)
    assert not any(hashlib.sha256(docx_renamed).hexdigest() in n for n in stored_files)
    with make_engine(sqlite_url).connect() as conn:
        owners = conn.execute(sa.select(blob_owners.c.sha256, blob_owners.c.owner_hsa_id)).all()
    assert owners == [(body["ref"]["sha256"], CLINIC_A)]


def test_the_recipients_check_gives_the_pipelines_verdicts(sqlite_url: str) -> None:
    key = make_key(sqlite_url, "journal-a", [CLINIC_A])
    reachable = reachable_residents(1, 1177)[0]
    with TestClient(app_for(sqlite_url)) as client:
        answer = client.post(
            "/v1/recipients/check",
            json={"personnummer": [reachable, "19121212-1213"]},
            headers=key.headers,
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [r["reachable"] for r in body["results"]] == [True, False]
    assert body["results"][1]["reason"] == "invalid-identity-number"
    assert body["checked"] == 2 and body["reachable"] == 1
    assert body["reasons"] == {"invalid-identity-number": 1}


def test_the_openapi_document_declares_the_upload_a_binary_file(sqlite_url: str) -> None:
    document = app_for(sqlite_url).openapi()
    body = document["paths"]["/v1/attachments"]["post"]["requestBody"]["content"]
    reference = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    upload = document["components"]["schemas"][reference]["properties"]["file"]
    assert upload["type"] == "string" and upload["format"] == "binary"
    assert upload["contentMediaType"] == "application/octet-stream"  # 3.1's own form, kept
    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert committed["components"]["schemas"][reference]["properties"]["file"] == upload
