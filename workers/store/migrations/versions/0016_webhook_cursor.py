"""An exact webhook cursor: each case event's transaction (PostgreSQL), the cursor's snapshot.

PostgreSQL hands out ``case_events.id`` when a row is inserted, not when its transaction
commits, so an id cursor can pass an event committed late with a lower id. Each event now
carries its transaction's id (``xact_id``, ``pg_current_xact_id()``) and the cursor keeps the
snapshot it read up to (``workers.store.webhooks``). SQLite commits one writer at a time, so
its ids are in commit order and the id cursor is exact there.

Revision ID: 0016_webhook_cursor
Revises: 0015_producer_reference
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_webhook_cursor"
down_revision = "0015_producer_reference"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_cursor") as batch:
        batch.add_column(sa.Column("snapshot", sa.Text, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # added without a default first, so the existing rows are not rewritten (they keep
        # NULL: the cursor's id covers them), then every new row gets its transaction's id
        op.execute("ALTER TABLE case_events ADD COLUMN xact_id xid8")
        op.execute("ALTER TABLE case_events ALTER COLUMN xact_id SET DEFAULT pg_current_xact_id()")
        op.create_index("ix_case_events_xact", "case_events", ["xact_id"])
    cursor = sa.table(
        "webhook_cursor", sa.column("name", sa.String), sa.column("last_event_id", sa.BigInteger)
    )
    exists = (
        op.get_bind()
        .execute(sa.select(cursor.c.name).where(cursor.c.name == "case-events"))
        .first()
    )
    if exists is None:  # one row from the start, so that two senders can lock it
        op.bulk_insert(cursor, [{"name": "case-events", "last_event_id": 0}])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_case_events_xact", "case_events")
        op.execute("ALTER TABLE case_events DROP COLUMN xact_id")
    with op.batch_alter_table("webhook_cursor") as batch:
        batch.drop_column("snapshot")
