"""The request each case was made from, sealed: the sweep rebuilds a lost stage message from it.

A case stalled at ``received``, ``validated`` or ``composed`` (its stage message lost) could
only be counted: the request's fragments, free text, fields and attachments as sent were not
kept. ``cases.request`` keeps the ``SendCase`` record as taken in, sealed with the answer key
(``workers.answer_seal``) as ``content`` is. Cases made before this migration have none.

Revision ID: 0017_case_request
Revises: 0016_webhook_cursor
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_case_request"
down_revision = "0016_webhook_cursor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("request", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("request")
