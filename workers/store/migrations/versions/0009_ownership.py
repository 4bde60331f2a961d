"""Ownership (issue 10): which clinic owns each blob, and the outcome of every access attempt.

Revision ID: 0009_ownership
Revises: 0004_templates, 0005_attachments, 0006_dispatch, 0007_batches_intake
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_ownership"
down_revision = ("0004_templates", "0005_attachments", "0006_dispatch", "0007_batches_intake")
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "blob_owners",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("owner_hsa_id", sa.String(48), primary_key=True),
        sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("template_id", sa.String(80), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("ix_blob_owners_shared", "blob_owners", ["sha256", "shared"])
    # the clinics whose cases already refer to a blob own it: cases in flight keep their files
    op.execute(
        "INSERT INTO blob_owners (sha256, owner_hsa_id, shared, recorded_at) "
        "SELECT DISTINCT ca.sha256, c.clinic_hsa_id, false, CURRENT_TIMESTAMP "
        "FROM case_attachments ca JOIN cases c ON c.id = ca.case_id"
    )
    with op.batch_alter_table("access_log") as table:
        table.add_column(
            sa.Column("outcome", sa.String(16), nullable=False, server_default="allowed")
        )
        table.add_column(sa.Column("detail", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log") as table:
        table.drop_column("detail")
        table.drop_column("outcome")
    op.drop_index("ix_blob_owners_shared", table_name="blob_owners")
    op.drop_table("blob_owners")
