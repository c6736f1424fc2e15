"""Every ticket state change, each with its audit event in the same transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.attention import Attention
from inbox.audit import SYSTEM_ACTOR, record_event
from inbox.enums import RequestType, TicketStatus, parse_choice
from inbox.errors import TransitionError
from inbox.ids import ensure_id
from inbox.models.audit import AuditTag
from inbox.models.ticket import ReferenceCounter, Ticket
from inbox.models.types import utcnow
from inbox.sla import SlaPolicy, compute_due_at
from inbox.txcache import transaction_cache

logger = logging.getLogger(__name__)

BREACH_PREFIX = "BRE"
"""Reference prefix of breach reports."""

REQUEST_PREFIX = "PRQ"
"""Reference prefix of every other ticket."""


def sla_policy(config: Mapping[str, Any]) -> SlaPolicy:
    """Build the deadline policy from the app settings."""
    return SlaPolicy(
        timezone=config["ORG_TIMEZONE"],
        holiday_country=config["HOLIDAY_COUNTRY"],
        month_rule=config["SLA_MONTH_RULE"],
        request_days=config["SLA_REQUEST_DAYS"],
        breach_hours=config["SLA_BREACH_HOURS"],
    )


def next_reference(session: Session, request_type: RequestType, year: int) -> str:
    """Hand out the next reference number, such as PRQ-2026-00042, under a row lock.

    The counter row stays locked until the transaction ends, so later tickets of the same
    transaction count on from the cached row instead of reading it again.
    """
    prefix = BREACH_PREFIX if request_type == RequestType.BREACH else REQUEST_PREFIX
    cache = transaction_cache(session)
    counter = cache.get(("reference_counter", prefix, year))
    if counter is None:
        # A counter added in this transaction is in the cache, so the look-up need not flush.
        with session.no_autoflush:
            counter = session.scalars(
                select(ReferenceCounter)
                .where(ReferenceCounter.prefix == prefix, ReferenceCounter.year == year)
                .with_for_update()
            ).first()
        if counter is None:
            counter = ReferenceCounter(prefix=prefix, year=year, value=0)
            session.add(counter)
        cache[("reference_counter", prefix, year)] = counter
    counter.value += 1
    return f"{prefix}-{year}-{counter.value:05d}"


@dataclass
class NewTicket:
    """Fields of a ticket known when it is opened."""

    request_type: RequestType
    received_at: datetime
    subject: str = ""
    requester_name: str = ""
    requester_email: str = ""
    language: str = "und"
    confidence: float = 0.0
    secondary_types: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    attention: Attention | None = None


def open_ticket(session: Session, new: NewTicket, policy: SlaPolicy, actor: str) -> Ticket:
    """Create a ticket with its reference and due date, and audit its creation."""
    year = new.received_at.astimezone(ZoneInfo(policy.timezone)).year
    ticket = Ticket(
        reference=next_reference(session, new.request_type, year),
        type=str(new.request_type),
        status=str(TicketStatus.NEW),
        subject=new.subject,
        requester_name=new.requester_name,
        requester_email=new.requester_email,
        language=new.language,
        confidence=new.confidence,
        secondary_types=list(new.secondary_types),
        evidence=list(new.evidence),
        received_at=new.received_at,
        due_at=compute_due_at(new.request_type, new.received_at, policy),
        needs_attention=new.attention is not None,
    )
    if new.attention is not None:
        _set_attention(ticket, new.attention)
    session.add(ticket)
    ensure_id(session, ticket)

    record_event(
        session,
        AuditTag.TICKET_CREATE,
        actor,
        ticket,
        {
            "reference": ticket.reference,
            "type": ticket.type,
            "confidence": ticket.confidence,
            "received_at": ticket.received_at.isoformat(),
            "due_at": ticket.due_at.isoformat() if ticket.due_at else None,
            "needs_attention": ticket.needs_attention,
        },
    )
    logger.info("opened ticket %s of type %s", ticket.reference, ticket.type)
    from inbox.services.workflows import start_workflow  # local: that module imports this one

    start_workflow(session, ticket, actor)
    return ticket


def change_type(
    session: Session, ticket: Ticket, new_type: str, policy: SlaPolicy, actor: str
) -> bool:
    """Retype a ticket and recompute its due date; return False when nothing changed.

    The reference keeps its prefix: a reference is an identifier the requester already has.

    :raises TransitionError: ``new_type`` is not a request type.
    """
    request_type = parse_choice(RequestType, new_type, "request type", TransitionError)
    if ticket.type == request_type:
        return False

    old_type, old_due = ticket.type, ticket.due_at
    ticket.type = str(request_type)
    ticket.due_at = compute_due_at(request_type, ticket.received_at, policy)
    ticket.updated_at = utcnow()

    record_event(
        session,
        AuditTag.TICKET_TYPE_CHANGE,
        actor,
        ticket,
        {
            "from": old_type,
            "to": ticket.type,
            "due_from": old_due.isoformat() if old_due else None,
            "due_to": ticket.due_at.isoformat() if ticket.due_at else None,
        },
    )
    logger.info(
        "ticket %s retyped from %s to %s by %s", ticket.reference, old_type, ticket.type, actor
    )
    from inbox.services.workflows import replan_workflow  # local: that module imports this one

    replan_workflow(session, ticket, actor)
    return True


def flag_ticket(session: Session, ticket: Ticket, attention: Attention) -> None:
    """Mark a ticket as needing a person's attention, with the reason, and audit it."""
    _set_attention(ticket, attention)
    record_event(
        session,
        AuditTag.TICKET_ATTENTION_FLAG,
        SYSTEM_ACTOR,
        ticket,
        {"reason": attention.english, "code": attention.code},
    )


def clear_attention(ticket: Ticket) -> None:
    """Remove a ticket's reason for attention; the caller audits why."""
    ticket.needs_attention = False
    ticket.attention_reason = ""
    ticket.attention_code = ""
    ticket.attention_params = None


def _set_attention(ticket: Ticket, attention: Attention) -> None:
    """Store a reason for attention on a ticket: its code, its values and its English text."""
    ticket.needs_attention = True
    ticket.attention_reason = attention.english[:2000]
    ticket.attention_code = attention.code
    ticket.attention_params = dict(attention.params)


def change_status(session: Session, ticket: Ticket, new_status: str, actor: str) -> bool:
    """Move a ticket to another status; return False when nothing changed.

    :raises TransitionError: ``new_status`` is not a ticket status.
    """
    status = parse_choice(TicketStatus, new_status, "status", TransitionError)
    if ticket.status == status:
        return False

    old_status = ticket.status
    ticket.status = str(status)
    ticket.closed_at = utcnow() if status == TicketStatus.CLOSED else None
    ticket.updated_at = utcnow()

    record_event(
        session,
        AuditTag.TICKET_STATUS_CHANGE,
        actor,
        ticket,
        {"from": old_status, "to": ticket.status},
    )
    logger.info(
        "ticket %s status from %s to %s by %s", ticket.reference, old_status, ticket.status, actor
    )
    return True


def find_ticket(session: Session, reference: str) -> Ticket | None:
    """Return the ticket with this reference, or None."""
    return session.scalars(select(Ticket).where(Ticket.reference == reference)).first()
