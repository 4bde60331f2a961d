"""The system of record: SQLAlchemy Core on PostgreSQL (servers) or SQLite (embedded)."""
