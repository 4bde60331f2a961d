"""Which clinic owns each blob, and whether a case may send it (issue 10).

Every upload records its owner (``omvant attachments put --clinic``, ``store_attachment`` for
Python callers). A case may reference a blob its own clinic uploaded, or one shared for every
clinic through a national or regional template (``put --template``); anything else is refused
with ``attachment-not-owned``, at intake (recipient validation) and again by the attachment
check. Storing the same bytes again for another clinic makes that clinic an owner too: each
clinic that has the file may send it, none may send another's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from contracts.common import AttachmentRef
from workers.adapters.blobs import BlobStore
from workers.store.cases import utcnow
from workers.store.schema import blob_owners
from workers.store.sql import dialect_insert

_BATCH = 500


@dataclass(frozen=True)
class NotOwned:
    """The first attachment of a case that its clinic may not send."""

    sha256: str
    filename: str

    def detail(self, clinic_hsa_id: str) -> str:
        """The rejection's detail (names the file by name and short hash, never its content)."""
        return f"{self.filename}: blob {self.sha256[:12]} is not {clinic_hsa_id}'s file"


def record_owner(
    conn: sa.Connection,
    sha256: str,
    owner_hsa_id: str,
    *,
    shared: bool = False,
    template_id: str | None = None,
) -> None:
    """Record that ``owner_hsa_id`` uploaded the blob (``shared``: for every clinic, through
    the national or regional ``template_id``). Recording it again changes nothing but sharing,
    which is only ever added."""
    statement = dialect_insert(conn, blob_owners).values(
        sha256=sha256,
        owner_hsa_id=owner_hsa_id,
        shared=shared,
        template_id=template_id,
        recorded_at=utcnow(),
    )
    if shared:
        statement = statement.on_conflict_do_update(
            index_elements=["sha256", "owner_hsa_id"],
            set_={"shared": True, "template_id": template_id},
        )
    else:
        statement = statement.on_conflict_do_nothing()
    conn.execute(statement)


def usable(
    conn: sa.Connection, wanted: Iterable[tuple[str, str]], stored: Callable[[str], bool]
) -> set[tuple[str, str]]:
    """Those ``(clinic_hsa_id, sha256)`` pairs where the clinic may send the blob: its own, or
    shared through a national or regional template. A blob nobody uploaded that is not in the
    store either (``stored``) passes here, to be refused as ``attachment-missing`` by the
    attachment check; one in the store with no owner (stored behind Omvänt's back) is no
    clinic's to send."""
    pairs = set(wanted)
    sha256s = sorted({sha for _clinic, sha in pairs})
    owners: dict[str, set[str]] = {}
    shared: set[str] = set()
    for start in range(0, len(sha256s), _BATCH):
        rows = conn.execute(
            sa.select(blob_owners.c.sha256, blob_owners.c.owner_hsa_id, blob_owners.c.shared).where(
                blob_owners.c.sha256.in_(sha256s[start : start + _BATCH])
            )
        )
        for row in rows:
            owners.setdefault(row.sha256, set()).add(row.owner_hsa_id)
            if row.shared:
                shared.add(row.sha256)
    absent = {sha for sha in sha256s if sha not in owners and not stored(sha)}
    return {(c, s) for c, s in pairs if s in shared or s in absent or c in owners.get(s, set())}


def first_not_owned(
    clinic_hsa_id: str, attachments: Iterable[AttachmentRef], allowed: set[tuple[str, str]]
) -> NotOwned | None:
    """The case's first attachment its clinic may not send, or None."""
    for ref in attachments:
        if (clinic_hsa_id, ref.sha256) not in allowed:
            return NotOwned(ref.sha256, ref.filename)
    return None


def forget(conn: sa.Connection, sha256s: Iterable[str]) -> None:
    """Drop the owners of deleted blobs."""
    doomed = sorted(set(sha256s))
    for start in range(0, len(doomed), _BATCH):
        conn.execute(
            blob_owners.delete().where(blob_owners.c.sha256.in_(doomed[start : start + _BATCH]))
        )


def store_attachment(
    engine: sa.Engine,
    blobs: BlobStore,
    data: bytes,
    *,
    owner_hsa_id: str,
    filename: str,
    declared_type: str = "application/octet-stream",
    shared: bool = False,
    template_id: str | None = None,
) -> AttachmentRef:
    """Store a file for a clinic (every upload path goes through here): the blob first, then
    its owner, so a recorded owner never names a blob that was not stored.

    Raises
    ------
    pydantic.ValidationError
        The name or declared type is not one an ``AttachmentRef`` can carry.
    """
    import hashlib

    ref = AttachmentRef(
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename,
        declared_type=declared_type,
        size=len(data),
    )
    stored = blobs.put(data)
    with engine.begin() as conn:
        record_owner(conn, stored, owner_hsa_id, shared=shared, template_id=template_id)
    return ref.model_copy(update={"sha256": stored})
