"""The store's fixed tables (migrated with Alembic) and the column types shared with form tables.

Raw layer: form_versions, submissions, submission_versions, blobs, submission_attachments.
Derived layer (rebuilt from the raw layer): problems and the generated form tables.
Form metadata for screens and exports: form_tables, form_columns, form_fields, form_choices.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """An instant, always handed back as an aware UTC datetime.

    PostgreSQL stores timestamptz; SQLite has no time zones, so the UTC wall time is stored
    (its ISO text sorts correctly). The submitted offset lives in its own column.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


ID = String(255)  # form ids, instanceIDs, versions: ODK puts no bound on them; Central uses text

forms = Table(
    "forms",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("title", Text, nullable=False, server_default=""),
    Column("latest_version", ID, nullable=False),
    Column("encrypted", Boolean, nullable=False),
    Column("raw_only", Boolean, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
)

form_versions = Table(
    "form_versions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("form_id", ID, ForeignKey("forms.form_id"), nullable=False),
    Column("version", ID, nullable=False),
    Column("xform", LargeBinary, nullable=False),
    Column("xform_sha256", String(64), nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    UniqueConstraint("form_id", "version"),
)

form_tables = Table(
    "form_tables",
    metadata,
    Column("table_name", String(63), primary_key=True),
    Column("form_id", ID, ForeignKey("forms.form_id"), nullable=False),
    Column("repeat_path", Text, nullable=False),  # "" for the submission table
    Column("parent_repeat_path", Text, nullable=True),
    UniqueConstraint("form_id", "repeat_path"),
)

form_columns = Table(
    "form_columns",
    metadata,
    Column("table_name", String(63), ForeignKey("form_tables.table_name"), primary_key=True),
    Column("column_name", String(63), primary_key=True),
    Column("form_id", ID, nullable=False),
    Column("repeat_path", Text, nullable=False),
    Column("field_path", Text, nullable=False),
    Column("part", Text, nullable=False),  # "" | latitude | ... | utc_offset | choice:<name>
    Column("storage", String(16), nullable=False),
    Column("position", Integer, nullable=False),
    Index(None, "form_id", "field_path"),
)

form_fields = Table(
    "form_fields",
    metadata,
    Column("form_id", ID, ForeignKey("forms.form_id"), primary_key=True),
    Column("field_path", String(1000), primary_key=True),
    Column("repeat_path", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("bind_type", String(32), nullable=False),
    Column("sensitivity", String(32), nullable=True),
    Column("restricted", Boolean, nullable=False),
    Column("label_en", Text, nullable=True),
    Column("label_ur", Text, nullable=True),
    Column("labels", Text, nullable=False),  # JSON {language: label} for other languages
    Column("position", Integer, nullable=False),
    Column("first_version", ID, nullable=False),
    Column("last_version", ID, nullable=False),
    Column("in_latest_version", Boolean, nullable=False),
)

form_choices = Table(
    "form_choices",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("field_path", String(1000), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("label_en", Text, nullable=True),
    Column("label_ur", Text, nullable=True),
    Column("labels", Text, nullable=False),
    Column("position", Integer, nullable=False),
)

# The logical submission: one row per root instanceID, whatever number of edits it had.
submissions = Table(
    "submissions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("form_id", ID, nullable=False),
    Column("root_id", ID, nullable=False),
    Column("current_instance_id", ID, nullable=False),
    Column("form_version", ID, nullable=True),
    Column("source", String(16), nullable=False),  # openrosa | central | file
    Column("encrypted", Boolean, nullable=False),
    Column("edits", Integer, nullable=False, server_default="0"),
    Column("first_received_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # As Central reports them (sync); None for submissions received directly.
    Column("central_submission_date", Text, nullable=True),
    Column("central_updated_at", Text, nullable=True),
    Column("submitter_id", Text, nullable=True),
    Column("submitter_name", Text, nullable=True),
    Column("device_id", Text, nullable=True),
    Column("review_state", String(32), nullable=True),
    Column("status", String(32), nullable=True),
    Column("deleted_at", Text, nullable=True),
    # typed | raw_only (identities, encrypted) | unknown_form
    Column("normalised", String(16), nullable=False),
    UniqueConstraint("form_id", "root_id"),
)

# Every version of every submission, verbatim; a submission's versions in id order are its history.
# Nothing here is ever updated but `current`, except that Store.add_history writes versions again
# (same payload) after a version Central held that arrived late, with Central's deprecatedID.
submission_versions = Table(
    "submission_versions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("form_id", ID, nullable=True),  # None only for a payload that named no form
    Column("instance_id", ID, nullable=True),
    Column("root_id", ID, nullable=True),
    Column("deprecated_id", ID, nullable=True),
    Column("form_version", ID, nullable=True),
    Column("source", String(16), nullable=False),
    Column("payload_kind", String(8), nullable=False),  # xml | json
    Column("payload", LargeBinary, nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("current", Boolean, nullable=False),
    # Who sent this version to nigraan's own server (device account, Collect's deviceID), so
    # an edit from another tablet names its editor; None for Central rows and loaded files.
    Column("submitter_name", Text, nullable=True),
    Column("device_id", Text, nullable=True),
    UniqueConstraint("form_id", "instance_id"),
    Index(None, "form_id", "root_id"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
)

submission_attachments = Table(
    "submission_attachments",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("instance_id", ID, primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=True),  # None: not yet here
    Column("content_type", String(255), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("received_at", UTCDateTime, nullable=True),
)

problems = Table(
    "problems",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("form_id", ID, nullable=True),
    Column("root_id", ID, nullable=True),
    Column("instance_id", ID, nullable=True),
    Column("version_id", BigInteger, nullable=True),  # submission_versions.id
    Column("code", String(32), nullable=False),
    Column("field_path", Text, nullable=True),
    Column("value", Text, nullable=True),
    Column("message", Text, nullable=False),
    Index(None, "form_id", "root_id"),
)

# Device accounts of the embedded OpenRosa server ("app users", as ODK Central calls them).
# Neither secret is stored: the token only as its sha256, the Digest password only as the
# HA1 hash RFC 2617 needs to check a response.
app_users = Table(
    "app_users",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", String(100), nullable=False, unique=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("digest_ha1", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

app_user_forms = Table(
    "app_user_forms",
    metadata,
    Column(
        "app_user_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("app_users.id"),
        primary_key=True,
    ),
    Column("form_id", ID, primary_key=True),
)

# Sync with ODK Central: one row per synced form (scope = Central URL, project and form).
# `watermark` only moves once a whole pass is committed; `resume_link` is the next OData page of
# a pass in progress, so a killed sync picks up where it stopped.
sync_state = Table(
    "sync_state",
    metadata,
    Column("scope", String(1000), primary_key=True),
    Column("form_id", ID, nullable=False),
    Column("watermark", Text, nullable=True),  # newest submissionDate/updatedAt fully synced
    Column("pass_filter", Text, nullable=True),  # the $filter of the pass in progress
    Column("pass_high", Text, nullable=True),  # newest timestamp seen in that pass so far
    Column("resume_link", Text, nullable=True),  # @odata.nextLink to continue that pass
    Column("updated_at", UTCDateTime, nullable=False),
)

# Review decisions made in nigraan, waiting to be applied in Central. Each step (review state,
# comment) is marked done once Central confirmed it, so a retry never applies a step twice.
review_outbox = Table(
    "review_outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("form_id", ID, nullable=False),
    Column("root_id", ID, nullable=False),
    Column("review_state", String(32), nullable=True),
    Column("comment", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("state_pushed_at", UTCDateTime, nullable=True),
    Column("comment_pushed_at", UTCDateTime, nullable=True),
    Column("done_at", UTCDateTime, nullable=True),
    Index(None, "done_at"),
)

# --- identity register (store/identity_register.py; migration 0005) ---------------------------
# Named without "identity": no table may look like a plain identity form table. Only
# ciphertext: every value is AES-256-GCM under the data key, which lives outside the database;
# a survivor is found by the HMAC of her code, never by the code itself.
sealed_identities = Table(
    "sealed_identities",
    metadata,
    Column("code_hmac", String(64), primary_key=True),  # hex HMAC-SHA256 of the survivor code
    Column("code_sealed", LargeBinary, nullable=False),  # the code itself, for key rotation
    Column("key_id", String(16), nullable=False),  # which data key sealed this row's values
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

sealed_values = Table(
    "sealed_values",
    metadata,
    Column(
        "code_hmac",
        String(64),
        ForeignKey("sealed_identities.code_hmac", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("field", String(255), primary_key=True),  # the form's field path, e.g. person/cnic
    Column("sealed", LargeBinary, nullable=False),  # nonce || ciphertext || tag
    Column("key_id", String(16), nullable=False),
)

# Which stored submission versions filed which survivor's identity (store/erasure.py): the
# lookup key of the code, so erasing her identity also erases the envelopes it came from.
sealed_sources = Table(
    "sealed_sources",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("instance_id", ID, primary_key=True),
    Column("code_hmac", String(64), nullable=False),
    Column("filed_at", UTCDateTime, nullable=False),
    Index(None, "code_hmac"),
)

# Tombstones of erased identities: the lookup key of the code (and the code sealed under the
# data key, so a key rotation can recompute it), when, why and by whom; never an identity.
# An erased code is never filed again, and its submissions never stored again.
erasures = Table(
    "erasures",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("code_hmac", String(64), nullable=False),
    Column("code_sealed", LargeBinary, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("erased_at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),  # "retention" or the survivor's request, in words
    Column("actor", String(100), nullable=False),
    Index(None, "code_hmac"),
)

# The submissions an erasure removed (every version's instanceID, and its root): ingest answers
# a resend of any of them, or an edit of one, as a duplicate and stores nothing.
erased_submissions = Table(
    "erased_submissions",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("instance_id", ID, primary_key=True),
    Column("root_id", ID, nullable=True),
    Column("erasure_id", BigInteger, ForeignKey("erasures.id"), nullable=False),
    Index(None, "form_id", "root_id"),
)

# Encrypted submissions that would not decrypt (wrong key, missing part, signature mismatch):
# they stay encrypted in the raw layer and are never trusted; the flag goes when one decrypts.
decryption_flags = Table(
    "decryption_flags",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("instance_id", ID, primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("flagged_at", UTCDateTime, nullable=False),
)

# --- web-queue (issue 12): cross-form check flags and the review queue's lookup columns. ---

# A cross-form check that fires on a submission (store/cross_form_checks.py): one row per
# submission and rule while the cause lasts; `since` is when it first fired.
flags = Table(
    "flags",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("root_id", ID, primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("reason_en", Text, nullable=False),
    Column("reason_ur", Text, nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Index(None, "rule_id"),
)

# The keys each check last grouped a submission by (a survivor code, a facility and day, as
# JSON): the other members of a group are found by index, and an edit or a delete that changes
# a key re-checks the submissions that shared the old one.
check_keys = Table(
    "check_keys",
    metadata,
    Column("rule_id", String(64), primary_key=True),
    Column("key", String(1000), primary_key=True),
    Column("form_id", ID, primary_key=True),
    Column("root_id", ID, primary_key=True),
    Index(None, "form_id", "root_id"),
)

# What the review queue shows and filters on that lives in the form tables under each form's
# own field names: the place (facility, district, support unit) and the codes (survivor,
# participant, event, visit), kept per submission by the same pass that evaluates the checks.
submission_summary = Table(
    "submission_summary",
    metadata,
    Column("form_id", ID, primary_key=True),
    Column("root_id", ID, primary_key=True),
    Column("district", Text, nullable=True),
    Column("facility", Text, nullable=True),
    Column("support_unit", Text, nullable=True),
    Column("codes", Text, nullable=False, server_default=""),  # space-separated, lowercased
    Index(None, "support_unit"),
)

# The queue's orders and filters: newest first overall, per form, per review state.
Index("ix_submissions_first_received_at", submissions.c.first_received_at)
Index(
    "ix_submissions_form_id_first_received_at",
    submissions.c.form_id,
    submissions.c.first_received_at,
)
Index(
    "ix_submissions_review_state_first_received_at",
    submissions.c.review_state,
    submissions.c.first_received_at,
)
# Covers the counts per state (and the total) of what a caller may see: read from the index.
Index(
    "ix_submissions_form_id_review_state_deleted_at",
    submissions.c.form_id,
    submissions.c.review_state,
    submissions.c.deleted_at,
)

# One Central sync at a time across processes (the server's schedule, its button, `nigraan
# sync` from a shell): a lease on a named row, taken by a conditional UPDATE.
sync_lease = Table(
    "sync_lease",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Text, nullable=True),
    Column("until", UTCDateTime, nullable=True),
)

# Every sync run: when, started by what, what came in, and why it failed (for the queue page).
sync_runs = Table(
    "sync_runs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("trigger", String(16), nullable=False),  # schedule | button | shell
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("ok", Boolean, nullable=True),  # None while running
    Column("new", Integer, nullable=False, server_default="0"),
    Column("changed", Integer, nullable=False, server_default="0"),
    Column("deleted", Integer, nullable=False, server_default="0"),
    Column("reviews_pushed", Integer, nullable=False, server_default="0"),
    Column("summary", Text, nullable=False, server_default=""),  # per form, what came in
    Column("failure", Text, nullable=True),  # in words a supervisor can act on
    Index(None, "started_at"),
)

# People's accounts for the web app (apart from the device accounts above). Only an argon2id
# hash of the password is kept. `failures`/`failed_at`/`locked_until` hold the sign-in
# throttle in the database, so it holds across threads, processes and restarts.
users = Table(
    "users",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("unit", String(50), nullable=True),  # a caseworker's support unit
    Column("language", String(8), nullable=True),  # the interface language they chose
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("failed_at", UTCDateTime, nullable=True),
    Column("locked_until", UTCDateTime, nullable=True),
)

# Who did what, append-only: the migration adds triggers refusing UPDATE and DELETE, and the
# store has no function to change a row.
audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),  # a person's or a device account's name
    Column("actor_kind", String(10), nullable=False),  # "person" | "device"
    Column("role", String(20), nullable=True),
    Column("action", String(40), nullable=False),
    Column("form_id", ID, nullable=True),
    Column("record", String(255), nullable=True),  # a submission, user, file... it concerns
    Column("address", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Index(None, "at"),
    Index(None, "actor"),
)
