"""Store raw mail bytes once, with every IMAP location they were fetched from.

The raw bytes are the evidence: they are committed before anything parses them. A message is
known by its SHA-256 (``content_digest``) and each location by mailbox, UIDVALIDITY and UID, both
with unique keys, so fetching a message again stores nothing new. Attachment bytes are likewise
kept once per SHA-256 (``blob_for``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.ids import ensure_id, hands_out_ids
from inbox.models.message import Blob, MailLocation, RawMessage, RawMessageContent
from inbox.rowqueue import queue_rows
from inbox.txcache import transaction_cache

_NEW_BLOBS = "store.new_blobs"
"""Key in the transaction cache of the blobs added in the transaction, by SHA-256."""

_BARE_LF = re.compile(rb"(?<!\r)\n")
"""A line feed without the carriage return before it."""

_KNOWN_BLOBS = "store.known_blobs"
"""Key in the transaction cache of looked-up hashes: the stored blob, or None when there is none."""


@dataclass(frozen=True)
class Location:
    """Position of a fetched message on an IMAP server."""

    mailbox: str
    uidvalidity: int
    uid: int


@dataclass
class StoreResult:
    """The stored raw message and whether this call created it."""

    raw_message: RawMessage
    created: bool


def header_block(raw: bytes, limit: int = 65536) -> bytes:
    """Return the header section of a raw message: up to the first empty line, at most ``limit``."""
    head = raw[:limit]
    # Every end found is a blank line, so the parser stops at or before the earliest one.
    ends = [
        position + len(separator)
        for separator in (b"\r\n\r\n", b"\n\n")
        if (position := head.find(separator)) != -1
    ]
    return head[: min(ends)] if ends else head


def content_digest(raw: bytes) -> str:
    """Return the SHA-256 of a message in its wire form: CRLF line endings, one at the end.

    IMAP (RFC 3501) sends messages with CRLF line endings, while a saved .eml or mbox file often
    has bare LF, and an editor may add or drop the last line break. The same mail fetched once
    and imported once from a file thus gets the same key. The stored bytes stay as they came.
    """
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raw = _BARE_LF.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n") or raw.endswith(b"\r\n\r\n"):
        raw = raw.rstrip(b"\r\n") + b"\r\n"
    return hashlib.sha256(raw).hexdigest()


def message_id_of(raw: bytes) -> str:
    """Read the Message-ID header without a full parse; return "" when there is none."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw), headersonly=True)
        value = str(headers.get("Message-ID", "") or "")
    except Exception:  # noqa: BLE001 - the standard parser's faults on hostile headers vary
        return ""
    return value.strip().strip("<>")[:998]


def store_raw(
    session: Session, raw: bytes, received_at: datetime, location: Location | None, source: str
) -> StoreResult:
    """Store the raw bytes and their location unless already stored; the caller commits.

    A known location is a no-op. Known bytes at a new location (a mailbox restored under a new
    UIDVALIDITY, a copy in a second folder) only add the location.
    """
    if location is not None:
        known = session.scalars(
            select(MailLocation).where(
                MailLocation.mailbox == location.mailbox,
                MailLocation.uidvalidity == location.uidvalidity,
                MailLocation.uid == location.uid,
            )
        ).first()
        if known is not None:
            return StoreResult(known.raw_message, created=False)

    digest = content_digest(raw)
    raw_message = session.scalars(select(RawMessage).where(RawMessage.sha256 == digest)).first()
    created = raw_message is None
    if raw_message is None:
        raw_message = RawMessage(
            sha256=digest,
            message_id=message_id_of(raw),
            size=len(raw),
            raw=raw,
            internaldate=received_at,
            source=source,
        )
        session.add(raw_message)
        session.flush()

    if location is not None:
        session.add(
            MailLocation(
                mailbox=location.mailbox,
                uidvalidity=location.uidvalidity,
                uid=location.uid,
                raw_message_id=raw_message.id,
            )
        )
        session.flush()
    return StoreResult(raw_message, created)


@dataclass(frozen=True)
class FetchedMail:
    """Raw bytes fetched from an IMAP server, with their INTERNALDATE and location."""

    raw: bytes
    received_at: datetime
    location: Location


def store_fetched(session: Session, fetched: list[FetchedMail], source: str) -> list[StoreResult]:
    """Store a batch of fetched mail like ``store_raw`` with two look-ups for the whole batch.

    Every item must come from the same mailbox and UIDVALIDITY. The caller commits.
    """
    if not fetched:
        return []
    first = fetched[0].location
    known = {
        location.uid: location
        for location in session.scalars(
            select(MailLocation).where(
                MailLocation.mailbox == first.mailbox,
                MailLocation.uidvalidity == first.uidvalidity,
                MailLocation.uid.in_([item.location.uid for item in fetched]),
            )
        )
    }
    digests = [content_digest(item.raw) for item in fetched]
    by_digest = {
        raw_message.sha256: raw_message
        for raw_message in session.scalars(
            select(RawMessage).where(RawMessage.sha256.in_(set(digests)))
        )
    }

    results = []
    contents: list[dict[str, object]] = []
    for item, digest in zip(fetched, digests, strict=True):
        location = known.get(item.location.uid)
        if location is not None:
            results.append(StoreResult(location.raw_message, created=False))
            continue
        raw_message = by_digest.get(digest)
        created = raw_message is None
        if raw_message is None:
            raw_message = RawMessage(
                sha256=digest,
                message_id=message_id_of(item.raw),
                size=len(item.raw),
                internaldate=item.received_at,
                source=source,
            )
            session.add(raw_message)
            if hands_out_ids(session):
                # A plain row: the ORM's unit of work would cost more than the INSERT.
                contents.append(
                    {"raw_message_id": ensure_id(session, raw_message), "raw": item.raw}
                )
                raw_message.hold_raw(item.raw)
            else:
                raw_message.raw = item.raw
            by_digest[digest] = raw_message
        location = MailLocation(
            mailbox=item.location.mailbox,
            uidvalidity=item.location.uidvalidity,
            uid=item.location.uid,
            raw_message=raw_message,
        )
        session.add(location)
        known[item.location.uid] = location
        results.append(StoreResult(raw_message, created))
    queue_rows(session, RawMessageContent.__table__, contents)
    session.flush()
    return results


@dataclass(frozen=True)
class StoredBatch:
    """The outcome of storing one fetched batch."""

    raw_by_id: dict[int, bytes]
    """Bytes of the stored messages that still need processing, by raw message id, in UID order."""
    fetched: int
    created: int


def summarise(fetched: list[FetchedMail], stored: list[StoreResult]) -> StoredBatch:
    """Count a stored batch and collect the bytes of its messages that still need processing."""
    raw_by_id: dict[int, bytes] = {}
    for item, outcome in zip(fetched, stored, strict=True):
        if not outcome.raw_message.is_processed:
            raw_by_id[outcome.raw_message.id] = item.raw
    created = sum(1 for outcome in stored if outcome.created)
    return StoredBatch(raw_by_id, fetched=len(fetched), created=created)


def look_up_blobs(session: Session, sha256s: set[str]) -> None:
    """Read which of these attachment hashes are stored, in one query, for ``blob_for``.

    The ingest calls it before a batch, so each attachment does not query on its own.
    """
    if not sha256s:
        return
    known: dict[str, Blob | None] = transaction_cache(session).setdefault(_KNOWN_BLOBS, {})
    with session.no_autoflush:
        found = {
            blob.sha256: blob
            for blob in session.scalars(select(Blob).where(Blob.sha256.in_(sha256s)))
        }
    for sha256 in sha256s:
        known[sha256] = found.get(sha256)


def blob_for(session: Session, sha256: str, size: int, data: bytes | None = None) -> Blob:
    """Return the blob row of a file's hash, adding one when no row has this hash yet.

    A file that arrived by mail passes no ``data``: its bytes stay in the raw mail. A file with
    no raw mail passes its bytes, and they are added to a row that had none. Blobs added earlier
    in the transaction are found in the transaction cache and stored ones by their key, so the
    look-up does not flush the session.
    """
    cache = transaction_cache(session)
    added: dict[str, Blob] = cache.setdefault(_NEW_BLOBS, {})
    blob = added.get(sha256)
    if blob is None:
        known: dict[str, Blob | None] = cache.get(_KNOWN_BLOBS, {})
        if sha256 in known:
            blob = known[sha256]
        else:
            with session.no_autoflush:
                blob = session.get(Blob, sha256)
    if blob is None:
        blob = Blob(sha256=sha256, size=size, data=data)
        session.add(blob)
        added[sha256] = blob
    elif data is not None and blob.data is None:
        blob.data = data
    return blob
