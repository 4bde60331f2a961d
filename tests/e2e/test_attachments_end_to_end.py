"""Every kind of file gets the right verdict end to end: from ``omvant attachments check`` and
from the attachment-check worker in the whole in-process pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contracts.common import AttachmentRef
from contracts.send_case import SendCaseV2
from producers import attachment_samples as samples
from producers.cli import app
from producers.demo import count_settled, start_pipeline, wait_for
from tests.reachable import reachable_residents
from workers.attachments.ownership import store_attachment
from workers.attachments.scanner import ScanResult, VirusScanner
from workers.settings import Settings
from workers.stage import emit
from workers.store.engine import upgrade
from workers.store.schema import attachment_verdicts, cases

CORPUS = samples.corpus()


def test_the_check_command_gives_every_kind_of_file_its_verdict(tmp_path: Path) -> None:
    runner = CliRunner()
    written = runner.invoke(app, ["attachments", "corpus", str(tmp_path / "corpus")])
    assert written.exit_code == 0, written.output
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    lines = []
    for declared in sorted({entry["declared_type"] for entry in manifest}):
        files = [entry["file"] for entry in manifest if entry["declared_type"] == declared]
        result = runner.invoke(app, ["attachments", "check", "--json", "--type", declared, *files])
        all_pass = all(e["ok"] for e in manifest if e["file"] in files)
        assert result.exit_code == (0 if all_pass else 1)
        lines += [json.loads(line) for line in result.stdout.splitlines()]
    by_file = {line["file"]: line for line in lines}
    assert len(by_file) == len(manifest)
    for entry in manifest:
        line = by_file[entry["file"]]
        assert set(line) == {"file", "ok", "type", "reason", "detail"}
        assert (line["ok"], line["reason"]) == (entry["ok"], entry["reason"]), line
        if entry["type"]:
            assert line["type"] == entry["type"]
    passing = [e["file"] for e in manifest if e["ok"] and e["declared_type"].endswith("stream")]
    assert runner.invoke(app, ["attachments", "check", "--json", *passing]).exit_code == 0


def test_put_prints_the_reference_a_send_case_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMVANT_BLOB_DIR", str(tmp_path / "blobs"))
    monkeypatch.setenv("OMVANT_DATABASE_URL", f"sqlite:///{tmp_path}/o.db")
    upgrade(f"sqlite:///{tmp_path}/o.db")
    photo = tmp_path / "utslag.jpg"
    photo.write_bytes(samples.jpeg(32, 32))
    result = CliRunner().invoke(
        app,
        ["attachments", "put", str(photo), "--type", "image/jpeg", "--clinic", "SE2321000016-VC01"],
    )
    assert result.exit_code == 0, result.output
    ref = AttachmentRef.model_validate_json(result.stdout)
    assert ref.filename == "utslag.jpg" and ref.size == photo.stat().st_size
    assert (tmp_path / "blobs" / ref.sha256[:2] / ref.sha256).read_bytes() == photo.read_bytes()


def test_the_worker_gives_every_kind_of_file_its_verdict_end_to_end(
    sqlite_url: str, tmp_path: Path, queue_prefix: str
) -> None:
    settings = Settings(
        database_url=sqlite_url,
        blob_dir=tmp_path / "blobs",
        sim_outbox=tmp_path / "outbox",
        queue_prefix=queue_prefix,
        chunk_size=7,
    )
    pipeline = start_pipeline(settings, threads=4)
    try:
        ctx = pipeline.ctx
        blobs = ctx.blobs

        def ref(
            data: bytes, filename: str, declared: str = "application/octet-stream"
        ) -> AttachmentRef:
            return store_attachment(
                ctx.engine,
                blobs,
                data,
                owner_hsa_id="SE2321000016-VC01",
                filename=filename,
                declared_type=declared,
            )

        letter = samples.pdf(2)
        plan: dict[str, tuple[list[AttachmentRef], str | None]] = {
            s.name: ([ref(s.data, s.filename, s.declared_type)], s.reason) for s in CORPUS
        }
        plan["eleven-files"] = (
            [ref(letter, f"brev{n}.pdf") for n in range(11)],
            "too-many-attachments",
        )
        plan["ten-files"] = ([ref(letter, f"brev{n}.pdf") for n in range(10)], None)
        plan["missing-blob"] = (
            [AttachmentRef(sha256="a" * 64, filename="saknas.pdf", size=10)],
            "attachment-missing",
        )
        plan["good-and-bad"] = (
            [ref(letter, "brev.pdf"), ref(samples.gif(), "bild.png")],
            "attachment-type-not-allowed",
        )
        for n in range(5):
            plan[f"shared-letter-{n}"] = ([ref(letter, "kallelse.pdf", "application/pdf")], None)
        plan["shared-letter-misnamed"] = ([ref(letter, "kallelse.jpg")], "attachment-type-mismatch")

        batch = "attachments-e2e"
        residents = reachable_residents(len(plan), settings.seed)
        requests = {
            name: SendCaseV2(
                clinic_hsa_id="SE2321000016-VC01",
                sender_hsa_id="SE2321000016-S101",
                template_id="meddelande-till-invanare",
                fragments=["halsning"],
                personnummer=resident,
                attachments=attachments,
                idempotency_key=f"{batch}:{name}",
                batch_id=batch,
            )
            for (name, (attachments, _)), resident in zip(plan.items(), residents, strict=True)
        }
        emit(ctx, list(requests.values()), correlation_id=batch)
        settled = wait_for(lambda: count_settled(ctx, batch), len(plan), timeout=180)
        assert settled == len(plan)
        with ctx.engine.connect() as conn:
            rows = {
                row.id: row
                for row in conn.execute(sa.select(cases).where(cases.c.batch_id == batch))
            }
        for name, (_, reason) in plan.items():
            row = rows[requests[name].resolved_case_id()]
            if reason is None:
                assert row.state in ("delivered", "notified"), (
                    name,
                    row.state,
                    row.reason,
                    row.detail,
                )
            else:
                assert (row.state, row.reason) == ("rejected", reason), (name, row.detail)

        delivered = [
            json.loads(line)
            for line in (tmp_path / "outbox" / "inbox.jsonl").read_text().splitlines()
        ]
        attachments_of = {m["case_id"]: m["attachments"] for m in delivered}
        photo = plan["jpeg-with-gps"][0][0]
        [cleaned] = attachments_of[requests["jpeg-with-gps"].resolved_case_id()]
        assert cleaned != photo.sha256
        cleaned_bytes = blobs.get(cleaned)
        assert cleaned_bytes is not None and b"Omvant Test Camera" not in cleaned_bytes
        assert blobs.get(photo.sha256) is None, "the original with its GPS position is removed"
        for name in ("pdf-javascript", "docx-renamed", "png-zip-polyglot", "pdf-eicar"):
            assert blobs.get(plan[name][0][0].sha256) is None, name
        assert blobs.get(plan["valid-pdf"][0][0].sha256) is not None
        assert blobs.get(plan["shared-letter-misnamed"][0][0].sha256) is not None, (
            "a file refused for one case's claims stays for the cases that name it right"
        )
    finally:
        pipeline.stop()


def test_gc_command_removes_old_unreferenced_blobs_and_keeps_recent_ones(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("OMVANT_BLOB_DIR", str(tmp_path / "blobs"))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--database", sqlite_url]).exit_code == 0
    files = []
    for name, data in (("old.pdf", samples.pdf(1)), ("new.pdf", samples.pdf(2))):
        (tmp_path / name).write_bytes(data)
        put = runner.invoke(
            app,
            [
                *("attachments", "put", str(tmp_path / name)),
                *("--clinic", "SE2321000016-VC01", "--database", sqlite_url),
            ],
        )
        files.append(AttachmentRef.model_validate_json(put.stdout).sha256)
    old = tmp_path / "blobs" / files[0][:2] / files[0]
    os.utime(old, (0, 0))
    args = ["attachments", "gc", "--older-than", "30d", "--database", sqlite_url, "--json"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["deleted"] == 1 and old.exists()
    done = runner.invoke(app, args)
    assert json.loads(done.stdout) == {
        "examined": 2,
        "kept_recent": 1,
        "kept_referenced": 0,
        "deleted": 1,
        "bytes_freed": len(samples.pdf(1)),
        "dry_run": False,
    }
    assert not old.exists()
    assert (tmp_path / "blobs" / files[1][:2] / files[1]).exists()
    assert runner.invoke(app, ["attachments", "gc", "--older-than", "soon"]).exit_code == 2


class CountingScanner(VirusScanner):
    """A scanner that finds nothing and counts what it is asked to scan."""

    name = "counting"

    def __init__(self) -> None:
        self.scans = 0

    def scan(self, data: bytes) -> ScanResult:
        self.scans += 1
        return ScanResult(False)


def test_one_file_sent_to_many_residents_is_checked_once(
    sqlite_url: str, tmp_path: Path, queue_prefix: str
) -> None:
    settings = Settings(
        database_url=sqlite_url,
        blob_dir=tmp_path / "blobs",
        queue_prefix=queue_prefix,
        chunk_size=5,
    )
    pipeline = start_pipeline(settings, threads=1)
    try:
        ctx = pipeline.ctx
        scanner = CountingScanner()
        ctx.scanner = scanner
        letter = samples.pdf(3)
        ref = store_attachment(
            ctx.engine, ctx.blobs, letter, owner_hsa_id="SE2321000016-VC02", filename="kallelse.pdf"
        )
        residents = reachable_residents(30, settings.seed)
        requests = [
            SendCaseV2(
                clinic_hsa_id="SE2321000016-VC02",
                sender_hsa_id="SE2321000016-S102",
                template_id="meddelande-till-invanare",
                fragments=["halsning"],
                personnummer=resident,
                attachments=[ref],
                idempotency_key=f"many:{n}",
                batch_id="many",
            )
            for n, resident in enumerate(residents)
        ]
        emit(ctx, requests, correlation_id="many")
        assert wait_for(lambda: count_settled(ctx, "many"), 30, timeout=120) == 30
        with ctx.engine.connect() as conn:
            states = {
                row.state
                for row in conn.execute(sa.select(cases.c.state).where(cases.c.batch_id == "many"))
            }
            pages = conn.execute(
                sa.select(attachment_verdicts.c.pages).where(
                    attachment_verdicts.c.sha256 == ref.sha256
                )
            ).scalar_one()
        assert states <= {"delivered", "notified"}
        assert scanner.scans == 1
        assert pages == 3
    finally:
        pipeline.stop()
