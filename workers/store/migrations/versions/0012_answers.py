"""Answers home: the resident's answers (sealed), and each clinic's answer alert setting.

Revision ID: 0012_answers
Revises: 0014_http_api
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_answers"
down_revision = "0014_http_api"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("content", sa.Text, nullable=True))
    op.create_table(
        "case_answers",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("answered_at", TS, nullable=False),
        sa.Column("alert", sa.String(16), nullable=True),
        sa.Column("alerted_at", TS, nullable=True),
    )
    op.create_index("ix_case_answers_clinic", "case_answers", ["clinic_hsa_id", "answered_at"])
    op.create_table(
        "clinic_settings",
        sa.Column("clinic_hsa_id", sa.String(48), primary_key=True),
        sa.Column("answer_alert", sa.String(8), nullable=False),
        sa.Column("mailbox", sa.String(254), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("clinic_settings")
    op.drop_index("ix_case_answers_clinic", table_name="case_answers")
    op.drop_table("case_answers")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("content")
