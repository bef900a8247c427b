"""Submission attachments: each file stored once by sha256, linked to the versions naming it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Engine

from store import tables as t
from store.bulk_insert import insert_ignore
from store.incoming import fitting_content_type, sha256


def add_attachment(
    engine: Engine,
    form_id: str,
    instance_id: str,
    name: str,
    content: bytes,
    content_type: str | None = None,
) -> bool:
    """Fill in an attachment the submission names; False if it names no such file."""
    with engine.begin() as conn:
        row = conn.execute(
            select(t.submission_attachments.c.sha256).where(
                t.submission_attachments.c.form_id == form_id,
                t.submission_attachments.c.instance_id == instance_id,
                t.submission_attachments.c.name == name,
            )
        ).first()
        if row is None:
            return False
        fill_attachment(conn, form_id, instance_id, name, content, content_type)
    return True


def add_attachments(
    engine: Engine, form_id: str, files: Iterable[tuple[str, str, bytes, str | None]]
) -> int:
    """Fill in many attachments, (instanceID, name, content, content type) each, in one
    transaction; returns how many the submissions name (the others are ignored).

    Three statements whatever the number of files (which are named, the blobs, the links): a
    sync stores its downloads in batches while its download threads hold the GIL in between,
    so every statement saved is a wait saved."""
    files = list(files)
    if not files:
        return 0
    sa = t.submission_attachments
    received = t.utcnow()
    with engine.begin() as conn:
        instance_ids = sorted({instance_id for instance_id, _, _, _ in files})
        named = set()
        for at in range(0, len(instance_ids), 500):  # bound the IN list (SQLite's 999 limit)
            named |= set(
                conn.execute(
                    select(sa.c.instance_id, sa.c.name).where(
                        sa.c.form_id == form_id, sa.c.instance_id.in_(instance_ids[at : at + 500])
                    )
                ).all()
            )
        wanted = [f for f in files if (f[0], f[1]) in named]
        if not wanted:
            return 0
        digests = [sha256(content) for _, _, content, _ in wanted]
        blobs = {d: content for d, (_, _, content, _) in zip(digests, wanted, strict=True)}
        insert_ignore(
            conn,
            t.blobs,
            [{"sha256": d, "size": len(c), "content": c} for d, c in blobs.items()],
        )
        conn.execute(
            update(sa)
            .where(
                sa.c.form_id == form_id,
                sa.c.instance_id == bindparam("b_instance_id"),
                sa.c.name == bindparam("b_name"),
            )
            .values(
                sha256=bindparam("b_sha256"),
                size=bindparam("b_size"),
                content_type=bindparam("b_content_type"),
                received_at=received,
            ),
            [
                {
                    "b_instance_id": instance_id,
                    "b_name": name,
                    "b_sha256": digest,
                    "b_size": len(content),
                    "b_content_type": fitting_content_type(content_type),
                }
                for digest, (instance_id, name, content, content_type) in zip(
                    digests, wanted, strict=True
                )
            ],
        )
    return len(wanted)


def fill_attachment(
    conn: Connection,
    form_id,
    instance_id,
    name,
    content,
    content_type,
    received: datetime | None = None,
) -> None:
    """Store a file once by sha256 and link it to the submission version that names it."""
    sa = t.submission_attachments
    digest = sha256(content)
    blob = {"sha256": digest, "size": len(content), "content": content}
    insert_ignore(conn, t.blobs, [blob])
    conn.execute(
        update(sa)
        .where(sa.c.form_id == form_id, sa.c.instance_id == instance_id, sa.c.name == name)
        .values(
            sha256=digest,
            size=len(content),
            content_type=fitting_content_type(content_type),
            received_at=received or t.utcnow(),
        )
    )


def attachment(engine: Engine, form_id: str, instance_id: str, name: str) -> bytes | None:
    """The bytes of a submission version's file (None until it has arrived)."""
    with engine.connect() as conn:
        return conn.execute(
            select(t.blobs.c.content)
            .join(t.submission_attachments, t.submission_attachments.c.sha256 == t.blobs.c.sha256)
            .where(
                t.submission_attachments.c.form_id == form_id,
                t.submission_attachments.c.instance_id == instance_id,
                t.submission_attachments.c.name == name,
            )
        ).scalar()


def attachments(engine: Engine, form_id: str, instance_id: str) -> list[dict]:
    """The files a submission version names, as Central lists them: name and whether the
    file has arrived (plus its size, type and sha256)."""
    sa = t.submission_attachments
    with engine.connect() as conn:
        rows = conn.execute(
            select(sa.c.name, sa.c.sha256, sa.c.size, sa.c.content_type)
            .where(sa.c.form_id == form_id, sa.c.instance_id == instance_id)
            .order_by(sa.c.name)
        )
        return [{**r._mapping, "exists": r.sha256 is not None} for r in rows]
