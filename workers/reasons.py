"""Stable reason codes. Operators and integration teams depend on them: never rename one.

Each code is documented in docs/reason-codes.md (a test keeps the two in step).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a case or a message was rejected, or why a case failed."""

    # messages that could not be read at all (recorded in rejected_messages)
    MALFORMED_MESSAGE = "malformed-message"
    UNKNOWN_CONTRACT = "unknown-contract"
    UNKNOWN_CONTRACT_VERSION = "unknown-contract-version"
    INVALID_PAYLOAD = "invalid-payload"
    UNKNOWN_CASE = "unknown-case"
    CASE_NOT_DELIVERED = "case-not-delivered"
    ANSWER_NOT_EXPECTED = "answer-not-expected"
    ANSWER_KIND_NOT_OFFERED = "answer-kind-not-offered"
    QUESTION_NOT_ASKED = "question-not-asked"
    EVENT_IN_FUTURE = "event-in-future"
    EVENT_BEFORE_DELIVERY = "event-before-delivery"
    WRONG_QUEUE = "wrong-queue"
    # recipient validation
    INVALID_IDENTITY_NUMBER = "invalid-identity-number"
    NO_ACCOUNT = "no-account"
    LOGIN_BLOCKED = "login-blocked"
    NO_NOTIFICATION_CHANNEL = "no-notification-channel"
    ACCOUNT_DEACTIVATED = "account-deactivated"
    SAMORDNINGSNUMMER_NOT_REACHABLE = "samordningsnummer-not-reachable"
    DIRECTORY_REFUSED = "directory-refused"
    # composition
    TEMPLATE_UNKNOWN = "template-unknown"
    TEMPLATE_INACTIVE = "template-inactive"
    FRAGMENT_UNKNOWN = "fragment-unknown"
    BODY_TOO_LONG = "body-too-long"
    FIELD_MISSING = "field-missing"
    SENDER_UNKNOWN = "sender-unknown"
    CLINIC_UNKNOWN = "clinic-unknown"
    TEMPLATE_CHANNEL_UNAVAILABLE = "template-channel-unavailable"
    # attachments
    ATTACHMENT_MISSING = "attachment-missing"
    ATTACHMENT_TYPE_NOT_ALLOWED = "attachment-type-not-allowed"
    ATTACHMENT_TYPE_MISMATCH = "attachment-type-mismatch"
    ATTACHMENT_TOO_LARGE = "attachment-too-large"
    TOO_MANY_ATTACHMENTS = "too-many-attachments"
    ATTACHMENT_TRUNCATED = "attachment-truncated"
    ATTACHMENT_CORRUPT = "attachment-corrupt"
    ATTACHMENT_POLYGLOT = "attachment-polyglot"
    ATTACHMENT_PDF_ENCRYPTED = "attachment-pdf-encrypted"
    ATTACHMENT_PDF_ACTIVE_CONTENT = "attachment-pdf-active-content"
    ATTACHMENT_IMAGE_TOO_LARGE = "attachment-image-too-large"
    ATTACHMENT_INFECTED = "attachment-infected"
    # dispatch
    INBOX_REFUSED = "inbox-refused"
    NOTIFICATION_REFUSED = "notification-refused"
    NOTIFICATION_ADDRESS_MISSING = "notification-address-missing"
    NOTIFICATION_IN_DOUBT = "notification-in-doubt"
    # configuration, refused at start-up
    NOTIFICATION_TEXT_PERSONALISED = "notification-text-personalised"
    # any stage
    TECHNICAL_FAILURE = "technical-failure"
    OUTAGE = "outage"
    # dispatches (batches)
    BATCH_CANCELLED = "batch-cancelled"
    MISSING_IDENTITY_NUMBER = "missing-identity-number"
    # the intake bridge (messages refused to omvant.intake.rejects)
    SIGNATURE_MISSING = "signature-missing"
    SIGNATURE_INVALID = "signature-invalid"
    UNKNOWN_KEY_ID = "unknown-key-id"
    CONTRACT_VERSION_MISSING = "contract-version-missing"
    CLINIC_NOT_ALLOWED = "clinic-not-allowed"
    # any entrance: bodies that cannot be read as sent (intake, inbox events)
    UNSUPPORTED_CONTENT_ENCODING = "unsupported-content-encoding"
    UNSUPPORTED_COMPRESSION = "unsupported-compression"
    BODY_UNDECODABLE = "body-undecodable"
    HEADER_UNDECODABLE = "header-undecodable"
    MESSAGE_TOO_LARGE = "message-too-large"
    UNPROCESSABLE_MESSAGE = "unprocessable-message"
    # stage queues: messages dramatiq itself cannot run (recorded before the dead-letter queue)
    UNKNOWN_ACTOR = "unknown-actor"
    POISON_MESSAGE = "poison-message"
    # commands: what stops an omvant command (one line, or {"error": ...} with --json)
    BROKER_UNREACHABLE = "broker-unreachable"
    DATABASE_UNREACHABLE = "database-unreachable"
    DIRECTORY_UNREACHABLE = "directory-unreachable"
    SMTP_UNREACHABLE = "smtp-unreachable"
    SMS_GATEWAY_UNREACHABLE = "sms-gateway-unreachable"
    EMAIL_API_UNREACHABLE = "email-api-unreachable"
    CLAMD_UNREACHABLE = "clamd-unreachable"
    REDIS_UNREACHABLE = "redis-unreachable"
    INBOX_EVENTS_UNREACHABLE = "inbox-events-unreachable"
    INBOX_UNREACHABLE = "inbox-unreachable"
    BLOB_STORE_UNREACHABLE = "blob-store-unreachable"
    HTTP_SERVER_UNREACHABLE = "http-server-unreachable"
    INVALID_SETTING = "invalid-setting"
    SCHEMA_OUTDATED = "schema-outdated"
    USAGE_ERROR = "usage-error"
    ABORTED = "aborted"
    INTERNAL_ERROR = "internal-error"
    DISPATCH_LIST_UNREADABLE = "dispatch-list-unreadable"
    DISPATCH_WOULD_REJECT_ALL = "dispatch-would-reject-all"
    LIST_EMPTY = "list-empty"
    ANSWER_KEY_MISSING = "answer-key-missing"
    ANSWER_UNREADABLE = "answer-unreadable"
    # commands: a request that names nothing, or a value a command cannot read
    INVALID_SINCE = "invalid-since"
    INVALID_ID = "invalid-id"
    INVALID_RATE = "invalid-rate"
    INVALID_DATE = "invalid-date"
    INVALID_HSA_ID = "invalid-hsa-id"
    INVALID_FILTER = "invalid-filter"
    UNKNOWN_STATUS = "unknown-status"
    UNKNOWN_CASE_TYPE = "unknown-case-type"
    TEMPLATE_INVALID = "template-invalid"
    TEMPLATE_NOT_CHANGEABLE = "template-not-changeable"
    TEMPLATE_CONFLICT = "template-conflict"
    USER_EXISTS = "user-exists"
    BENCH_INCOMPLETE = "bench-incomplete"

    CASE_ID_CONFLICT = "case-id-conflict"
    CASE_NOT_OWNED = "case-not-owned"
    BATCH_NOT_OWNED = "batch-not-owned"
    BATCH_EXISTS = "batch-exists"
    ATTACHMENT_NOT_OWNED = "attachment-not-owned"
    # the HTTP API (problem details, docs/api.md)
    API_KEY_MISSING = "api-key-missing"
    API_KEY_INVALID = "api-key-invalid"
    RATE_LIMITED = "rate-limited"
    REQUEST_TOO_LARGE = "request-too-large"
    IDEMPOTENCY_KEY_REUSED = "idempotency-key-reused"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    BATCH_TRANSITION_REFUSED = "batch-transition-refused"
    TOO_MANY_RECORDS = "too-many-records"
    DUPLICATE_JSON_KEY = "duplicate-json-key"


class Note(StrEnum):
    """What an ``omvant`` command tells its operator on stderr that is not an error: under
    ``--json`` one ``{"note": {"code": ..., "message": ...}}`` object per line, so stderr stays
    machine-readable as its errors (``{"error": ...}``) are. Documented in
    docs/reason-codes.md (notes) like the reason codes."""

    DISPATCH_WILL_REJECT_SOME = "dispatch-will-reject-some"
    LISTING_CUT = "listing-cut"
    SERVER_WAITING = "server-waiting"
    LISTENING = "listening"
    MEMORY_BROKER = "memory-broker"
    NOTHING_TO_PURGE = "nothing-to-purge"
    PROFILE_WRITTEN = "profile-written"
    LINE_INVALID = "line-invalid"
    PROGRESS = "progress"
    DEMO_OWNS_SETTINGS = "demo-owns-settings"
    HOME_NOT_PRIVATE = "home-not-private"
