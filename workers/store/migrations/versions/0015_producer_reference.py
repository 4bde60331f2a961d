"""The producer's own references: its ``case_id`` on the case, its message id on a reject.

Revision ID: 0015_producer_reference
Revises: 0012_answers
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_producer_reference"
down_revision = "0012_answers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("producer_reference", sa.String(64), nullable=True))
        batch.create_index("ix_cases_clinic_reference", ["clinic_hsa_id", "producer_reference"])
    with op.batch_alter_table("rejected_messages") as batch:
        batch.add_column(sa.Column("reference", sa.String(200), nullable=True))
        batch.create_index("ix_rejected_messages_reference", ["reference"])


def downgrade() -> None:
    with op.batch_alter_table("rejected_messages") as batch:
        batch.drop_index("ix_rejected_messages_reference")
        batch.drop_column("reference")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_clinic_reference")
        batch.drop_column("producer_reference")
