"""Attachment references of cases and content verdicts of checked files.

Revision ID: 0005_attachments
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_attachments"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_attachments",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
    )
    op.create_index("ix_case_attachments_sha256", "case_attachments", ["sha256"])
    op.create_table(
        "attachment_verdicts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("policy", sa.String(64), primary_key=True),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("kind", sa.String(8), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("pages", sa.Integer, nullable=True),
        sa.Column("cleaned_sha256", sa.String(64), nullable=True),
        sa.Column("cleaned_size", sa.BigInteger, nullable=True),
        sa.Column("checked_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attachment_verdicts")
    op.drop_index("ix_case_attachments_sha256", table_name="case_attachments")
    op.drop_table("case_attachments")
