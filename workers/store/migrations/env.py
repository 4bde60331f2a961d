"""Alembic environment: runs migrations on the URL set by workers.store.engine.alembic_config."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from workers.store.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None
connectable = sa.create_engine(url, poolclass=sa.pool.NullPool)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
