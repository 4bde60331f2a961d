"""Notification ledger (per case, channel and round), unread follow-ups, the access log.

Revision ID: 0006_dispatch
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_dispatch"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_ledger",
        sa.Column("idempotency_key", sa.String(120), primary_key=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_ref", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index("ix_notification_ledger_case", "notification_ledger", ["case_id"])
    # the rows of 0001's notifications table become round 1 of the ledger
    op.execute(
        "INSERT INTO notification_ledger (idempotency_key, case_id, channel, round, status,"
        " provider_ref, reason, attempts, created_at, updated_at, sent_at)"
        " SELECT case_id || ':' || channel, case_id, channel, 1, status, provider_ref,"
        " reason, attempts, updated_at, updated_at,"
        " CASE WHEN status = 'sent' THEN updated_at END FROM notifications"
    )
    op.drop_table("notifications")
    op.create_table(
        "unread_follow_ups",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
    )
    op.create_index("ix_unread_follow_ups_due", "unread_follow_ups", ["done_at", "due_at"])
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("user_hsa_id", sa.String(48), nullable=False),
        sa.Column("unit_hsa_id", sa.String(48), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("case_count", sa.Integer, nullable=False),
        sa.Column("case_ids", sa.Text, nullable=False),
        sa.Column("personnummer", sa.Text, nullable=False),
        sa.Column("unmasked", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_access_log_unit_at", "access_log", ["unit_hsa_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_access_log_unit_at", table_name="access_log")
    op.drop_table("access_log")
    op.drop_index("ix_unread_follow_ups_due", table_name="unread_follow_ups")
    op.drop_table("unread_follow_ups")
    op.create_table(
        "notifications",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(8), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_ref", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.execute(
        "INSERT INTO notifications (case_id, channel, status, provider_ref, reason, attempts,"
        " updated_at) SELECT case_id, channel, status, provider_ref, reason, attempts,"
        " updated_at FROM notification_ledger WHERE round = 1"
    )
    op.drop_index("ix_notification_ledger_case", table_name="notification_ledger")
    op.drop_table("notification_ledger")
