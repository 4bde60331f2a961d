"""The notification ledger as a transactional outbox; the inbox delivery key on cases.

Revision ID: 0010_notification_outbox
Revises: 0011_failures
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_notification_outbox"
down_revision = "0011_failures"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notification_ledger") as table:
        table.add_column(sa.Column("address", sa.String(320), nullable=True))
        table.add_column(sa.Column("due_at", TS, nullable=True))
        table.add_column(sa.Column("resolution", sa.String(32), nullable=True))
    op.create_index(
        "ix_notification_ledger_status_due", "notification_ledger", ["status", "due_at"]
    )
    with op.batch_alter_table("cases") as table:
        table.add_column(sa.Column("delivery_key", sa.String(120), nullable=True))
    op.create_index("ix_cases_state_updated", "cases", ["state", "updated_at"])
    op.create_table(
        "sweep_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sweep_runs")
    op.drop_index("ix_cases_state_updated", table_name="cases")
    with op.batch_alter_table("cases") as table:
        table.drop_column("delivery_key")
    op.drop_index("ix_notification_ledger_status_due", table_name="notification_ledger")
    with op.batch_alter_table("notification_ledger") as table:
        table.drop_column("resolution")
        table.drop_column("due_at")
        table.drop_column("address")
