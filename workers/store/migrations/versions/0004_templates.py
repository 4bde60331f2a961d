"""Templates and their immutable versions.

Revision ID: 0004_templates
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_templates"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(48), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_templates_scope_owner", "templates", ["scope", "owner"])
    op.create_table(
        "template_versions",
        sa.Column("template_id", sa.String(80), sa.ForeignKey("templates.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(150), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("template_versions")
    op.drop_index("ix_templates_scope_owner", table_name="templates")
    op.drop_table("templates")
