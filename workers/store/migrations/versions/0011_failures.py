"""Failure records (dead letters and replayable rejections) and the audit of on-call actions.

Revision ID: 0011_failures
Revises: 0009_ownership
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_failures"
down_revision = "0009_ownership"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(80), nullable=True),
        sa.Column("contract", sa.String(64), nullable=True),
        sa.Column("contract_version", sa.Integer, nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("broker_message_id", sa.String(64), nullable=True),
        sa.Column("case_ids", sa.Text, nullable=False),
        sa.Column("case_count", sa.Integer, nullable=False),
        sa.Column("clinic_hsa_id", sa.String(48), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("exception_type", sa.String(128), nullable=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_failed_at", TS, nullable=False),
        sa.Column("last_failed_at", TS, nullable=False),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("body_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replayed_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
    )
    op.create_index("ix_failures_status_queue_reason", "failures", ["status", "queue", "reason"])
    op.create_index("ix_failures_last_failed_at", "failures", ["last_failed_at"])
    op.create_table(
        "oncall_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("who", sa.String(80), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("selection", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
    )
    op.create_index("ix_oncall_audit_at", "oncall_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_oncall_audit_at", "oncall_audit")
    op.drop_table("oncall_audit")
    op.drop_index("ix_failures_last_failed_at", "failures")
    op.drop_index("ix_failures_status_queue_reason", "failures")
    op.drop_table("failures")
