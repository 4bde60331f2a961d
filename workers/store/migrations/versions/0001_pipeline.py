"""The pipeline's tables: cases, their history, notifications, unreadable messages.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
        sa.Column("sender_hsa_id", sa.String(48), nullable=False),
        sa.Column("template_id", sa.String(80), nullable=False),
        sa.Column("template_version", sa.Integer, nullable=True),
        sa.Column("personnummer", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("priority", sa.String(16), nullable=False, server_default="normal"),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("intake_message_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_rank", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("channels", sa.String(32), nullable=True),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("inbox_message_id", sa.String(64), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("notified_at", TS, nullable=True),
        sa.Column("read_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("answer_kind", sa.String(32), nullable=True),
        sa.UniqueConstraint("clinic_hsa_id", "idempotency_key", name="uq_cases_clinic_key"),
    )
    op.create_index("ix_cases_clinic_state", "cases", ["clinic_hsa_id", "state"])
    op.create_index("ix_cases_batch", "cases", ["batch_id"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id"])
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
    op.create_table(
        "rejected_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rejected_messages")
    op.drop_table("notifications")
    op.drop_index("ix_case_events_case", table_name="case_events")
    op.drop_table("case_events")
    op.drop_index("ix_cases_batch", table_name="cases")
    op.drop_index("ix_cases_clinic_state", table_name="cases")
    op.drop_table("cases")
