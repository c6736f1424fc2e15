"""Append-only, hash-chained audit log: record events and verify the chain.

Each event's hash covers its own fields and the hash of the event before it, so removing,
reordering or editing a row breaks every hash after it. ``verify_chain`` finds the first break.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inbox.ids import ensure_id, hands_out_ids
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.types import utcnow
from inbox.rowqueue import queue_rows
from inbox.txcache import transaction_cache

if TYPE_CHECKING:
    from inbox.models.ticket import Ticket

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
"""The prev_hash of the first event."""

SYSTEM_ACTOR = "system"
"""Actor name for changes made by the poller and periodic jobs."""

_ADVISORY_LOCK_KEY = 7_240_331
"""PostgreSQL advisory lock id that serialises appends to the chain."""

_TAIL_KEY = "audit.chain_tail"
"""Key in the transaction cache of the hash of the last event this session added."""


def compute_hash(event: AuditEvent) -> str:
    """Return the SHA-256 over the event's fields and its predecessor's hash."""
    return hash_of(
        {
            "prev_hash": event.prev_hash,
            "created_at": event.created_at,
            "tag": event.tag,
            "actor": event.actor,
            "ticket_id": event.ticket_id,
            "data": event.data,
        }
    )


def hash_of(fields: dict[str, Any]) -> str:
    """Return the SHA-256 over an event's fields, given as a row, and its predecessor's hash."""
    payload = {**fields, "created_at": fields["created_at"].isoformat()}
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def record_event(
    session: Session,
    tag: AuditTag,
    actor: str,
    ticket: Ticket | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event to the chain within the caller's transaction.

    The caller commits, so the event and the change it records succeed or fail together. The
    first event of a transaction takes the chain's lock and reads the last hash. Later events of
    the same transaction reuse the hash this session wrote last, because no other writer can
    append while the lock is held.
    """
    previous = cached_tail(session)
    if previous is None and session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
        )
    ticket_id = ensure_id(session, ticket) if ticket is not None else None

    if previous is None:
        # Without a cached tail, no event of this transaction is waiting to be written: every
        # event passes through here, and a SAVEPOINT (whose rollback drops the cache) writes
        # what is pending before it begins. So the read need not flush.
        with session.no_autoflush:
            previous = session.scalars(
                select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
            ).first()
    row: dict[str, Any] = {
        "prev_hash": previous or GENESIS_HASH,
        "created_at": utcnow().replace(microsecond=0),
        "tag": str(tag),
        "actor": actor,
        "ticket_id": ticket_id,
        "data": json.loads(json.dumps(data or {}, default=str)),
    }
    row["hash"] = hash_of(row)
    transaction_cache(session)[_TAIL_KEY] = row["hash"]
    if hands_out_ids(session):
        # A batch's events go in as plain rows after the rows they name, in the order recorded:
        # on SQLite each has its id now, on PostgreSQL the sequence numbers them in that order.
        queue_rows(session, AuditEvent.__table__, [row])
        return AuditEvent(**row)
    event = AuditEvent(**row)
    # The next flush writes the event with the other pending rows, in the order they were added.
    session.add(event)
    return event


def cached_tail(session: Session) -> str | None:
    """Return the hash of the last event added in the session's current transaction, or None.

    The hash is the chain's tail for the rest of the transaction. On PostgreSQL the advisory
    lock taken before the first event is held until the transaction ends. On SQLite the event's
    INSERT holds the database's write lock until then.
    """
    tail = transaction_cache(session).get(_TAIL_KEY)
    return None if tail is None else str(tail)


@dataclass(frozen=True)
class ChainReport:
    """Outcome of a chain verification."""

    checked: int
    first_bad_id: int | None
    reason: str

    @property
    def is_intact(self) -> bool:
        """Whether every event's hash and link matched."""
        return self.first_bad_id is None


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash in id order and report the first event that does not match."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.id, "previous hash does not match the event before")
        if compute_hash(event) != event.hash:
            return ChainReport(checked, event.id, "hash does not match the event's content")
        expected_prev = event.hash
        checked += 1
    return ChainReport(checked, None, "")
