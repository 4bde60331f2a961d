"""What a rejected message keeps (size, hash, sender, headers, excerpt), and deliveries per
message so that a message that kills its worker again and again is set aside.

Revision ID: 0008_rejects_kept
Revises: 0013_web_console
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rejects_kept"
down_revision = "0013_web_console"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("rejected_messages") as table:
        table.add_column(sa.Column("sender", sa.String(128), nullable=True))
        table.add_column(sa.Column("size", sa.BigInteger, nullable=True))
        table.add_column(sa.Column("sha256", sa.String(64), nullable=True))
        table.add_column(sa.Column("headers", sa.Text, nullable=True))
        table.add_column(sa.Column("excerpt", sa.Text, nullable=True))
        table.add_column(sa.Column("body_encoding", sa.String(8), nullable=True))
    op.create_index("ix_rejected_messages_at", "rejected_messages", ["at"])
    op.create_table(
        "message_deliveries",
        sa.Column("queue", sa.String(128), primary_key=True),
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
    )
    op.create_index("ix_message_deliveries_last_at", "message_deliveries", ["last_at"])


def downgrade() -> None:
    op.drop_table("message_deliveries")
    op.drop_index("ix_rejected_messages_at", "rejected_messages")
    with op.batch_alter_table("rejected_messages") as table:
        for name in ("body_encoding", "excerpt", "headers", "sha256", "size", "sender"):
            table.drop_column(name)
