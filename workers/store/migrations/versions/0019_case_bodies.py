"""A case's sealed request and content out of ``cases``, into ``case_bodies``.

``cases.request`` (0017) and ``cases.content`` (0012) are sealed text of about 0.5 KB each,
written once (the content again by the attachment check for a case with attachments) and read
only by the sweep's re-drive and ``cases show --content``; yet every state change of a case
copied them into its new row version, to the heap and the WAL (about 1.1 KB of a 1.5 KB row,
seven updates a case). ``case_bodies`` keeps them one row per case and part, written in the
transaction of the transition that makes them (``workers/store/case_bodies.py``).

Measured with ``omvant bench --cases 20000`` (RabbitMQ, PostgreSQL 15, two runs each, WAL
of the bench's database from ``pg_waldump``): a case row 1,382 -> 397 bytes; ``cases`` heap
4.5-5.2 KB -> 1.2-1.3 KB a case (``case_bodies`` 1.2 KB); the heap's WAL 3.2-3.4 -> 1.5-1.7 KB
a case, but ``case_bodies`` and its key add 1.6 KB, so WAL per case stays 9.5-10.5 KB: an
update on the same page logs only the bytes that changed, so the unchanged sealed columns at
the end of the row were rarely logged again. Most of the rest is index entries (a state change
is never HOT: ``state`` is indexed).

Upgrade moves the values there and drops the two columns; downgrade moves them back. On
PostgreSQL the dropped columns' bytes stay in existing row versions until they are written
again (or ``VACUUM FULL cases``).

Revision ID: 0019_case_bodies
Revises: 0018_lighter_case_updates
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_case_bodies"
down_revision = "0018_lighter_case_updates"
branch_labels = None
depends_on = None

PARTS = ("request", "content")


def upgrade() -> None:
    op.create_table(
        "case_bodies",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("part", sa.String(16), primary_key=True),
        sa.Column("sealed", sa.Text, nullable=False),
    )
    for part in PARTS:
        op.execute(
            "INSERT INTO case_bodies (case_id, part, sealed) "  # noqa: S608 - our names
            f"SELECT id, '{part}', {part} FROM cases WHERE {part} IS NOT NULL"
        )
    with op.batch_alter_table("cases") as batch:
        for part in PARTS:
            batch.drop_column(part)


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("content", sa.Text, nullable=True))
        batch.add_column(sa.Column("request", sa.Text, nullable=True))
    for part in PARTS:
        op.execute(
            f"UPDATE cases SET {part} = (SELECT b.sealed FROM case_bodies b "  # noqa: S608
            f"WHERE b.case_id = cases.id AND b.part = '{part}') "
            f"WHERE id IN (SELECT case_id FROM case_bodies WHERE part = '{part}')"
        )
    op.drop_table("case_bodies")
