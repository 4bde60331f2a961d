"""Dispatches as batches, and the intake's record of idempotency keys.

Revision ID: 0007_batches_intake
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_batches_intake"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
        sa.Column("sender_hsa_id", sa.String(48), nullable=False),
        sa.Column("template_id", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lane", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enqueued", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "intake_keys",
        sa.Column("clinic_hsa_id", sa.String(48), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("intake_keys")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_table("batches")
