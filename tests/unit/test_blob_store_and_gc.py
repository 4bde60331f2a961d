"""The filesystem blob store, and garbage collection that never takes a blob a live case needs."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.databases import migrated_engine
from tests.delivery_support import received_row
from workers.adapters.blobs import BlobStore, FilesystemBlobStore
from workers.attachments import references
from workers.attachments.gc import collect
from workers.case_states import CaseState
from workers.store import cases
from workers.store.cases import Transition
from workers.store.schema import cases as cases_table


def exercise_store(store: BlobStore) -> None:
    """What every blob store must do (also run against S3 in the integration tests)."""
    sha = store.put(b"brev")
    assert sha == hashlib.sha256(b"brev").hexdigest()
    assert store.put(b"brev") == sha
    assert store.get(sha) == b"brev" and store.size(sha) == 4
    assert {b.sha256 for b in store.blobs()} == {sha}
    assert store.get("f" * 64) is None and store.size("f" * 64) is None
    assert store.get("../../etc/passwd") is None
    store.delete(sha)
    store.delete(sha)
    assert store.get(sha) is None and list(store.blobs()) == []


def test_the_filesystem_store_is_content_addressed(tmp_path: Path) -> None:
    exercise_store(FilesystemBlobStore(tmp_path / "blobs"))


def test_storing_a_blob_again_marks_it_stored_now(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    sha = store.put(b"x")
    path = tmp_path / sha[:2] / sha
    os.utime(path, (0, 0))
    store.put(b"x")
    [info] = store.blobs()
    assert info.stored_at > dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def engine(sqlite_url: str) -> sa.Engine:
    return migrated_engine(sqlite_url)


def new_case(engine: sa.Engine, case_id: str, *sha256s: str) -> None:
    with engine.begin() as conn:
        cases.insert_received(conn, [received_row(case_id)])
        references.record(conn, [(case_id, s) for s in sha256s])


def age(store: FilesystemBlobStore, sha256: str, days: int) -> None:
    then = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).timestamp()
    os.utime(store.root / sha256[:2] / sha256, (then, then))


def test_gc_keeps_a_shared_blob_while_any_case_is_live(engine: sa.Engine, tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    shared = store.put(b"one PDF for many residents")
    for n in range(50):
        new_case(engine, f"c{n}", shared)
    age(store, shared, 60)
    with engine.begin() as conn:
        cases.apply(
            conn,
            [Transition(f"c{n}", CaseState.REJECTED, reason="no-account") for n in range(49)],
            stage="test",
        )
    report = collect(engine, store, older_than=dt.timedelta(days=30))
    assert (report.deleted, report.kept_referenced) == (0, 1)
    assert store.get(shared) is not None
    with engine.begin() as conn:
        cases.apply(conn, [Transition("c49", CaseState.REJECTED, reason="x")], stage="test")
    report = collect(engine, store, older_than=dt.timedelta(days=30))
    assert report.deleted == 1 and store.get(shared) is None


def test_gc_removes_blobs_of_expired_cases_and_spares_recent_uploads(
    engine: sa.Engine, tmp_path: Path
) -> None:
    store = FilesystemBlobStore(tmp_path)
    old, fresh, unreferenced = store.put(b"old"), store.put(b"fresh"), store.put(b"loose")
    new_case(engine, "expired", old)
    new_case(engine, "live", fresh)
    with engine.begin() as conn:
        conn.execute(
            sa.update(cases_table)
            .where(cases_table.c.id == "expired")
            .values(updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=90))
        )
    age(store, old, 90)
    age(store, fresh, 90)
    dry = collect(engine, store, older_than=dt.timedelta(days=30), dry_run=True)
    assert dry.deleted == 1 and store.get(old) is not None
    report = collect(engine, store, older_than=dt.timedelta(days=30))
    assert report.deleted_sha256 == [old]
    assert report.kept_recent == 1 and report.kept_referenced == 1
    assert store.get(unreferenced) is not None and store.get(fresh) is not None
    with engine.connect() as conn:
        assert references.live_references(conn, [old, fresh]) == {fresh}
