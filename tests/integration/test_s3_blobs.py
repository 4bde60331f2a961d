"""The S3-compatible blob store against a real S3 API: moto's server on loopback (port 0)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_blob_store_and_gc import exercise_store
from workers.adapters.blobs import S3BlobStore, blob_store_from
from workers.attachments.ownership import store_attachment

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 API on 127.0.0.1 at a free port, with throwaway credentials."""
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "omvant-test",
        "AWS_SECRET_ACCESS_KEY": "omvant-test",  # a local fake's, not a secret
        "AWS_DEFAULT_REGION": "eu-north-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def bucket_store(endpoint: str, prefix: str = "/attachments") -> S3BlobStore:
    """A store in a new bucket (moto keeps its buckets for the whole process)."""
    url = f"s3://omvant-{uuid.uuid4().hex[:12]}{prefix}"
    store = blob_store_from(Path("unused"), url, endpoint)
    assert isinstance(store, S3BlobStore)
    store.client.create_bucket(
        Bucket=store.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    return store


def test_the_s3_store_is_content_addressed(s3_endpoint: str) -> None:
    store = bucket_store(s3_endpoint)
    assert store.prefix == "attachments/"
    exercise_store(store)


def test_the_s3_store_lists_blobs_with_their_age(s3_endpoint: str) -> None:
    store = bucket_store(s3_endpoint)
    sha = store.put(b"x" * 1000)
    store.client.put_object(Bucket=store.bucket, Key="attachments/README", Body=b"not a blob")
    [info] = store.blobs()
    assert (info.sha256, info.size) == (sha, 1000)
    assert abs(info.stored_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_the_pipeline_checks_attachments_stored_in_s3(
    s3_endpoint: str, sqlite_url: str, queue_prefix: str, tmp_path: Path
) -> None:
    from contracts.common import AttachmentRef
    from contracts.send_case import SendCaseV2
    from producers import attachment_samples as samples
    from producers.demo import count_settled, start_pipeline, wait_for
    from tests.reachable import reachable_residents
    from workers.settings import Settings
    from workers.stage import emit
    from workers.store import cases

    bucket = bucket_store(s3_endpoint, "").bucket
    settings = Settings(
        database_url=sqlite_url,
        blob_url=f"s3://{bucket}",
        s3_endpoint_url=s3_endpoint,
        queue_prefix=queue_prefix,
        blob_dir=tmp_path / "never-used",
    )
    pipeline = start_pipeline(settings, threads=2)
    try:
        ctx = pipeline.ctx
        assert isinstance(ctx.blobs, S3BlobStore)
        files = {"photo": samples.jpeg_with_gps(64, 48), "script": samples.pdf_with_javascript()}
        refs = {
            name: store_attachment(
                ctx.engine,
                ctx.blobs,
                data,
                owner_hsa_id="SE2321000016-VC01",
                filename=f"{name}.bin",
            )
            for name, data in files.items()
        }
        requests = [
            SendCaseV2(
                clinic_hsa_id="SE2321000016-VC01",
                sender_hsa_id="SE2321000016-S101",
                template_id="meddelande-till-invanare",
                fragments=["halsning"],
                personnummer=resident,
                attachments=[AttachmentRef(**{**refs[name].model_dump(), "filename": filename})],
                idempotency_key=f"s3:{name}",
                batch_id="s3",
            )
            for (name, filename), resident in zip(
                {"photo": "bild.jpg", "script": "blankett.pdf"}.items(),
                reachable_residents(2, 1177),
                strict=True,
            )
        ]
        emit(ctx, requests, correlation_id="s3")
        assert wait_for(lambda: count_settled(ctx, "s3"), 2, timeout=60) == 2
        with ctx.engine.connect() as conn:
            assert cases.count_reasons(conn, batch_id="s3") == {"attachment-pdf-active-content": 1}
        assert ctx.blobs.get(refs["script"].sha256) is None
        assert ctx.blobs.get(refs["photo"].sha256) is None
        assert len(list(ctx.blobs.blobs())) == 1, "only the cleaned photo is left"
        assert not (tmp_path / "never-used").exists()
    finally:
        pipeline.stop()
