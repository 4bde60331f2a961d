"""The tables. Alembic migrations under ``migrations/`` create and change them."""

from __future__ import annotations

import sqlalchemy as sa

from workers.store.sql import UtcDateTime

metadata = sa.MetaData()

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
    sa.Column("sender_hsa_id", sa.String(48), nullable=False),
    sa.Column("template_id", sa.String(80), nullable=False),
    sa.Column("template_version", sa.Integer, nullable=True),
    sa.Column("personnummer", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=True),
    sa.Column("priority", sa.String(16), nullable=False, server_default="normal"),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("intake_message_id", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("state_rank", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("detail", sa.String(500), nullable=True),
    sa.Column("channels", sa.String(32), nullable=True),
    sa.Column("subject", sa.String(200), nullable=True),
    sa.Column("inbox_message_id", sa.String(64), nullable=True),
    sa.Column("delivery_key", sa.String(120), nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Column("notified_at", UtcDateTime(), nullable=True),
    sa.Column("read_at", UtcDateTime(), nullable=True),
    sa.Column("answered_at", UtcDateTime(), nullable=True),
    sa.Column("answer_kind", sa.String(32), nullable=True),
    sa.Column("producer_reference", sa.String(64), nullable=True),
    sa.UniqueConstraint("clinic_hsa_id", "idempotency_key", name="uq_cases_clinic_key"),
    sa.Index(
        "ix_cases_clinic_reference",
        "clinic_hsa_id",
        "producer_reference",
        postgresql_where=sa.text("producer_reference IS NOT NULL"),
    ),
    sa.Index("ix_cases_clinic_state", "clinic_hsa_id", "state"),
    sa.Index("ix_cases_batch", "batch_id"),
    sa.Index(
        "ix_cases_state_updated",
        "state",
        "updated_at",
        postgresql_where=sa.text(
            "state IN ('received', 'validated', 'composed', 'cleared', 'delivered')"
        ),
    ),
    postgresql_with={"fillfactor": 50},
)
"""A case and where it is. On PostgreSQL (migration 0018) the indexes a transition touches
hold only the rows they find (a settled case leaves ``ix_cases_state_updated``) and pages
keep room for the next version of their rows (``fillfactor``). Its sealed parts (the request,
the composed content) are in ``case_bodies`` (migration 0019)."""

case_bodies = sa.Table(
    "case_bodies",
    metadata,
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("part", sa.String(16), primary_key=True),
    sa.Column("sealed", sa.Text, nullable=False),
)
"""A case's large sealed parts, each written once beside the transition that makes it
(``workers/store/case_bodies.py``): ``request`` (the ``SendCase`` as taken in) and ``content``
(what composition composed; the attachment check writes it again with the cleared
attachments). Out of ``cases``, so that a state change does not copy them into a new row
version (about 1.1 KB of a 1.5 KB row)."""

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("detail", sa.String(500), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index("ix_case_events_case", "case_id"),
)

rejected_messages = sa.Table(
    "rejected_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.String(1000), nullable=True),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("sender", sa.String(128), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("headers", sa.Text, nullable=True),
    sa.Column("excerpt", sa.Text, nullable=True),
    sa.Column("body_encoding", sa.String(8), nullable=True),
    sa.Column("reference", sa.String(200), nullable=True),
    sa.Index("ix_rejected_messages_at", "at"),
    sa.Index("ix_rejected_messages_reference", "reference"),
)
"""Messages no stage could read or the intake refused (``workers/rejections.py`` decides what
of each is kept: the body only from a sender who authenticated, bounded; otherwise its size,
hash, the headers Omvänt reads and a redacted excerpt). ``reference`` is the producer's own id
of the message (``message-id``), so a sender can find its reject. Purged after the retention."""

message_deliveries = sa.Table(
    "message_deliveries",
    metadata,
    sa.Column("queue", sa.String(128), primary_key=True),
    sa.Column("message_id", sa.String(128), primary_key=True),
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("first_at", UtcDateTime(), nullable=False),
    sa.Column("last_at", UtcDateTime(), nullable=False),
    sa.Index("ix_message_deliveries_last_at", "last_at"),
)
"""Messages being handled right now, with how often each was started: a row left behind by a
process that died is counted up on the next delivery, and a message started too often is set
aside (``poison-message``) instead of killing its worker again (``workers/poison.py``)."""

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
    sa.Column("sender_hsa_id", sa.String(48), nullable=False),
    sa.Column("template_id", sa.String(80), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lane", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("enqueued", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_batches_status", "status"),
)

intake_keys = sa.Table(
    "intake_keys",
    metadata,
    sa.Column("clinic_hsa_id", sa.String(48), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("integration", sa.String(64), nullable=False),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Index("ix_intake_keys_case", "case_id"),
)
case_attachments = sa.Table(
    "case_attachments",
    metadata,
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Index("ix_case_attachments_sha256", "sha256"),
)
"""Which blobs each case refers to (as sent, and cleaned): a blob is kept while a live case
refers to it."""

attachment_verdicts = sa.Table(
    "attachment_verdicts",
    metadata,
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
    sa.Column("checked_at", UtcDateTime(), nullable=False),
)
"""The content verdict of each file checked, by sha256 and the checking policy: the same PDF
sent to 100,000 residents is checked once; PDF page counts are kept here."""

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(48), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("current_version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_templates_scope_owner", "scope", "owner"),
)
"""One row per template: who owns it, whether it is active, its current version."""

template_versions = sa.Table(
    "template_versions",
    metadata,
    sa.Column("template_id", sa.String(80), sa.ForeignKey("templates.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(150), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)
"""Every version of every template, immutable: ``content`` is the version's JSON."""

notification_ledger = sa.Table(
    "notification_ledger",
    metadata,
    sa.Column("idempotency_key", sa.String(120), primary_key=True),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_ref", sa.String(128), nullable=True),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("detail", sa.String(300), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Column("address", sa.String(320), nullable=True),
    sa.Column("due_at", UtcDateTime(), nullable=True),
    sa.Column("resolution", sa.String(32), nullable=True),
    sa.Index("ix_notification_ledger_case", "case_id"),
    sa.Index(
        "ix_notification_ledger_status_due",
        "status",
        "due_at",
        postgresql_where=sa.text("status IN ('queued', 'retry', 'pending')"),
    ),
    postgresql_with={"fillfactor": 70},
)
"""The notification outbox: one row per notification (case, channel, round), written queued
with the delivery, claimed pending just before the provider call, marked sent / refused /
retry at once after it; a pending row found later is "in doubt" and settled, with how in
``resolution`` (issues 6 and 11). Replaces 0001's ``notifications``."""

unread_follow_ups = sa.Table(
    "unread_follow_ups",
    metadata,
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=False),
    sa.Column("done_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(64), nullable=True),
    sa.Index("ix_unread_follow_ups_due", "done_at", "due_at"),
)
"""A template's "if unread after N hours" rule, set for a case when it is delivered."""

case_answers = sa.Table(
    "case_answers",
    metadata,
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("answered_at", UtcDateTime(), nullable=False),
    sa.Column("alert", sa.String(16), nullable=True),
    sa.Column("alerted_at", UtcDateTime(), nullable=True),
    sa.Index("ix_case_answers_clinic", "clinic_hsa_id", "answered_at"),
)
"""A case's answer (the first one): the kind in clear, the text and the answers to the
questions sealed with ``OMVANT_ANSWER_KEY``; whether (and how) the clinic was alerted."""

clinic_settings = sa.Table(
    "clinic_settings",
    metadata,
    sa.Column("clinic_hsa_id", sa.String(48), primary_key=True),
    sa.Column("answer_alert", sa.String(8), nullable=False),
    sa.Column("mailbox", sa.String(254), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
"""How each clinic is alerted of answers (none, or e-mail to a functional mailbox)."""

access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("user_hsa_id", sa.String(48), nullable=False),
    sa.Column("unit_hsa_id", sa.String(48), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("case_count", sa.Integer, nullable=False),
    sa.Column("case_ids", sa.Text, nullable=False),
    sa.Column("personnummer", sa.Text, nullable=False),
    sa.Column("unmasked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("outcome", sa.String(16), nullable=False, server_default="allowed"),
    sa.Column("detail", sa.String(300), nullable=True),
    sa.Index("ix_access_log_unit_at", "unit_hsa_id", "at"),
)
"""Every attempt to read case data (Patient Data Act 4 kap. 3 §): who, for which unit, when,
which cases were asked for and which residents were shown, and the outcome (``allowed``,
``refused``, ``usage-error``). Personnummer are kept as the system of record keeps them."""

blob_owners = sa.Table(
    "blob_owners",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("owner_hsa_id", sa.String(48), primary_key=True),
    sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("template_id", sa.String(80), nullable=True),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.Index("ix_blob_owners_shared", "sha256", "shared"),
)
"""Which clinic uploaded each blob (issue 10): a case may reference only its own clinic's
blobs, or one shared for every clinic through a national or regional template (``shared``,
``owner_hsa_id`` the template's owner)."""

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("signing_key", sa.String(64), nullable=False),
    sa.Column("clinics", sa.Text, nullable=False),
    sa.Column("webhook_url", sa.String(500), nullable=True),
    sa.Column("rate_per_second", sa.Integer, nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
)
"""One key per integration (migration ``0014_http_api``): the bearer token's sha256 (never
the token), the HMAC key it signs intake messages and checks webhooks with, the clinics it
may act for (JSON list), its webhook."""

api_requests = sa.Table(
    "api_requests",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)
"""HTTP requests with an ``Idempotency-Key``: the body's digest and the answer given."""

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
)
"""Status callbacks to deliver: one row per case event per integration, keyed by event id."""

webhook_cursor = sa.Table(
    "webhook_cursor",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
    sa.Column("snapshot", sa.Text, nullable=True),
)
"""How far into ``case_events`` the webhook collector has read: the last id (SQLite, and the
events from before migration 0016), and on PostgreSQL the snapshot it read up to. PostgreSQL's
``case_events`` also has ``xact_id`` (each event's transaction, migration 0016), kept out of
this metadata because SQLite has no such column."""
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(120), nullable=False),
    sa.Column("hsa_id", sa.String(48), nullable=False),
    sa.Column("roles", sa.String(64), nullable=False),
    sa.Column("clinics", sa.Text, nullable=False, server_default="[]"),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("oidc_subject", sa.String(255), nullable=True, unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("last_login_at", UtcDateTime(), nullable=True),
)
"""People who sign in to the web console: staff, clinic administrators, on-call. ``hsa_id``
is who the access log records; ``clinics`` (JSON list of HSA-ids) the units they act for;
``roles`` comma-separated (staff, admin, oncall); ``password_hash`` argon2 (null: OIDC only)."""

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("seen_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index("ix_web_sessions_user", "user_id"),
)
"""Signed-in sessions, by the sha256 of the cookie's random token: revocable (sign out,
user disabled) and never holding the token itself."""

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("key", sa.String(160), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_at", UtcDateTime(), nullable=False),
    sa.Column("last_at", UtcDateTime(), nullable=False),
    sa.Column("locked_until", UtcDateTime(), nullable=True),
)
"""Failed sign-ins per account (``user:NAME``) and per address (``ip:ADDR``), for lockout
with growing back-off; shared by every process serving the console."""

send_drafts = sa.Table(
    "send_drafts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=False),
    sa.Column("template_id", sa.String(80), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_send_drafts_user", "user_id"),
)
"""A case being written in the console ("Skicka ärende"), step by step: residents and their
verdicts, fragments, free text, checked attachments. Gone when sent (or after a day)."""

failures = sa.Table(
    "failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("actor", sa.String(80), nullable=True),
    sa.Column("contract", sa.String(64), nullable=True),
    sa.Column("contract_version", sa.Integer, nullable=True),
    sa.Column("message_id", sa.String(64), nullable=True),
    sa.Column("broker_message_id", sa.String(64), nullable=True),
    sa.Column("case_ids", sa.Text, nullable=False),
    sa.Column("case_count", sa.Integer, nullable=False),
    sa.Column("clinic_hsa_id", sa.String(48), nullable=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.String(500), nullable=True),
    sa.Column("exception_type", sa.String(128), nullable=True),
    sa.Column("traceback", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_failed_at", UtcDateTime(), nullable=False),
    sa.Column("last_failed_at", UtcDateTime(), nullable=False),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("body_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
    sa.Column("replayed_at", UtcDateTime(), nullable=True),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Index("ix_failures_status_queue_reason", "status", "queue", "reason"),
    sa.Index("ix_failures_last_failed_at", "last_failed_at"),
)
"""One row per message dramatiq dead-lettered and per case rejected for a reason an operator
can fix (issue 12): what failed, why, and the (bounded) body needed to replay it. Kept after
the broker's dead-letter copy expires; ``status`` is open, replaying, replayed, settled (a
replay found nothing left to do) or purged."""

oncall_audit = sa.Table(
    "oncall_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("who", sa.String(80), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("selection", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Index("ix_oncall_audit_at", "at"),
)
"""Every on-call action on failures (show, replay, purge): who, when, what, how many."""

sweep_runs = sa.Table(
    "sweep_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("counts", sa.Text, nullable=False),
)
"""What each ``omvant sweep`` run found and did (JSON counts), for on-call (``omvant status``);
runs older than a week are dropped by the sweep itself."""
