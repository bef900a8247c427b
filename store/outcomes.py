"""The words the store answers with: sources, ingest outcomes, how a submission was typed.

Each is a str-valued enum, so `result.status == "created"` and the database's text columns
keep working; the module-level names (CREATED, TYPED, ...) are the members themselves.
"""

from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """Where a submission came from."""

    OPENROSA = "openrosa"  # nigraan's own OpenRosa server (ODK Collect)
    CENTRAL = "central"  # read from ODK Central (OData, history)
    FILE = "file"  # `nigraan store load`


class Outcome(StrEnum):
    """What ingest did with one submission. The rejected ones store nothing."""

    CREATED = "created"
    EDITED = "edited"
    DUPLICATE = "duplicate"
    UNREADABLE = "unreadable"  # kept raw with a problem
    CONFLICT = "conflict"  # same instanceID, different content
    STALE_EDIT = "stale_edit"  # the edited version is no longer current
    UNKNOWN_DEPRECATED = "unknown_deprecated"  # the edited version is not stored
    DELETED_RESEND = "deleted_resend"  # a device sends again what was deleted in Central
    REFUSED = "refused"  # could not be stored whole, and the sender keeps its copy


class Normalised(StrEnum):
    """How a submission's current version was derived (`submissions.normalised`)."""

    TYPED = "typed"
    RAW_ONLY = "raw_only"  # identities or encrypted: never in plain typed tables
    UNKNOWN_FORM = "unknown_form"  # typed once its form is registered
    NOT_TYPED = "not_typed"  # a nigraan bug; the raw submission is kept
    DELETED = "deleted"  # deleted in Central: kept raw, no typed rows until restored
    ERASED = "erased"  # an identity erased (store/erasure.py): no raw version left, never again


class Registration(StrEnum):
    """What registering an XForm version did."""

    NEW_FORM = "new_form"
    NEW_VERSION = "new_version"
    UNCHANGED = "unchanged"


OPENROSA, CENTRAL, FILE = Source.OPENROSA, Source.CENTRAL, Source.FILE
CREATED, EDITED, DUPLICATE = Outcome.CREATED, Outcome.EDITED, Outcome.DUPLICATE
UNREADABLE, CONFLICT, STALE_EDIT = Outcome.UNREADABLE, Outcome.CONFLICT, Outcome.STALE_EDIT
UNKNOWN_DEPRECATED, DELETED_RESEND = Outcome.UNKNOWN_DEPRECATED, Outcome.DELETED_RESEND
REFUSED = Outcome.REFUSED
# The sender keeps its copy and is told why: nothing of these was stored.
REJECTED = frozenset({CONFLICT, STALE_EDIT, UNKNOWN_DEPRECATED, DELETED_RESEND, REFUSED})
TYPED, RAW_ONLY, UNKNOWN_FORM = Normalised.TYPED, Normalised.RAW_ONLY, Normalised.UNKNOWN_FORM
NOT_TYPED, DELETED, ERASED = Normalised.NOT_TYPED, Normalised.DELETED, Normalised.ERASED
