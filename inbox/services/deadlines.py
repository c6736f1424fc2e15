"""Changes to a ticket's legal clock: the Art. 12(3) extension and pauses, each audited.

The due moment is ``Ticket.due_at``. An extension replaces it with the extended period from
``inbox.sla``. A pause (identity verification, when the setting is on) moves it later by the
paused time once the pause ends.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.audit import record_event
from inbox.enums import RequestType
from inbox.errors import TransitionError
from inbox.models.audit import AuditTag
from inbox.models.message import Message
from inbox.models.ticket import Ticket
from inbox.models.workflow import ClockPause, DeadlineExtension
from inbox.services.workflows import refresh_plan
from inbox.sla import SlaPolicy, compute_extended_due_at

logger = logging.getLogger(__name__)

MAX_EXTENSION_REASON_CHARS = 2_000
"""Maximum length of the reason for an extension, in characters."""

PAUSE_IDENTITY = "identity_verification"
"""Reason of a pause while the requester's identity is being verified."""


class DeadlineError(TransitionError):
    """Raised when a deadline change is not allowed for the ticket in its current state."""


def extension_of(session: Session, ticket: Ticket) -> DeadlineExtension | None:
    """Return the ticket's extension, or None when its deadline was never extended."""
    return session.scalars(
        select(DeadlineExtension).where(DeadlineExtension.ticket_id == ticket.id)
    ).first()


def open_pause(session: Session, ticket: Ticket) -> ClockPause | None:
    """Return the pause that holds the ticket's clock now, or None."""
    return session.scalars(
        select(ClockPause).where(ClockPause.ticket_id == ticket.id, ClockPause.ended_at.is_(None))
    ).first()


def paused_time(session: Session, ticket: Ticket) -> timedelta:
    """Add up the finished pauses of a ticket's clock."""
    total = timedelta()
    for pause in session.scalars(
        select(ClockPause).where(
            ClockPause.ticket_id == ticket.id, ClockPause.ended_at.is_not(None)
        )
    ):
        assert pause.ended_at is not None
        total += pause.ended_at - pause.started_at
    return total


def effective_due_at(session: Session, ticket: Ticket, now: datetime) -> datetime | None:
    """Return the due moment as it is at ``now``, counting a pause that is still running."""
    if ticket.due_at is None:
        return None
    pause = open_pause(session, ticket)
    if pause is None:
        return ticket.due_at
    return ticket.due_at + (now - pause.started_at)


def check_extendable(session: Session, ticket: Ticket, now: datetime) -> datetime:
    """Check that the ticket's deadline may be extended now; return the original due moment.

    :raises DeadlineError: the ticket is closed, has no Art. 12(3) clock, was extended
        already, or its original due moment has passed.
    """
    if ticket.is_closed:
        raise DeadlineError(f"ticket {ticket.reference} is closed; reopen it first")
    if not RequestType(ticket.type).is_data_subject_request or ticket.due_at is None:
        raise DeadlineError(
            f"ticket {ticket.reference} is of type {ticket.type}, which has no deadline that "
            "GDPR Art. 12(3) lets you extend"
        )
    if extension_of(session, ticket) is not None:
        raise DeadlineError(
            f"the deadline of {ticket.reference} was extended already; Art. 12(3) allows one "
            "extension"
        )
    original = effective_due_at(session, ticket, now)
    assert original is not None
    if now >= original:
        raise DeadlineError(
            f"the original deadline of {ticket.reference} passed on {original.isoformat()}; "
            "an extension must be announced before it"
        )
    return original


def extend_deadline(
    session: Session, ticket: Ticket, reason: str, actor: str, policy: SlaPolicy, now: datetime
) -> DeadlineExtension:
    """Extend a data-subject request's deadline once by the Art. 12(3) period, with a reason.

    The new due moment is ``compute_extended_due_at`` (receipt plus three months by the month
    rule), moved later by the time the clock was paused. The caller commits, and queues the
    extension notice in the same transaction (``extend_and_notify`` does both).

    :raises DeadlineError: the reason is empty or too long, or ``check_extendable`` fails.
    """
    reason = reason.strip()
    if not reason:
        raise DeadlineError("an extension needs a reason, which the notice tells the requester")
    if len(reason) > MAX_EXTENSION_REASON_CHARS:
        raise DeadlineError(
            f"the reason has {len(reason)} characters; at most {MAX_EXTENSION_REASON_CHARS}"
        )
    original = check_extendable(session, ticket, now)
    assert ticket.due_at is not None
    stored_due = ticket.due_at
    paused = paused_time(session, ticket)
    ticket.due_at = compute_extended_due_at(ticket.received_at, policy) + paused
    ticket.updated_at = now
    extension = DeadlineExtension(
        ticket_id=ticket.id,
        original_due_at=original,
        extended_due_at=ticket.due_at,
        reason=reason,
        created_at=now,
        created_by=actor,
    )
    session.add(extension)
    refresh_plan(session, ticket)
    session.flush()

    record_event(
        session,
        AuditTag.DEADLINE_EXTEND,
        actor,
        ticket,
        {
            "original_due": original.isoformat(),
            "due_from": stored_due.isoformat(),
            "due_to": ticket.due_at.isoformat(),
            "paused_seconds": int(paused.total_seconds()),
            "reason": reason,
        },
    )
    logger.info("ticket %s deadline extended by %s", ticket.reference, actor)
    return extension


def extend_and_notify(
    session: Session, ticket: Ticket, reason: str, actor: str, policy: SlaPolicy, now: datetime
) -> Message:
    """Extend the deadline and queue the extension notice with the reason; the caller commits.

    :raises DeadlineError: see ``extend_deadline``.
    :raises WorkflowStateError: the notice cannot be queued, e.g. no requester address.
    :raises ConfigError: no sender address is configured.
    """
    from inbox.services.replies import Reply, queue_reply, render_draft  # local: imports this

    extend_deadline(session, ticket, reason, actor, policy, now)
    draft = render_draft(session, ticket, "extension", {"reason": reason.strip()})
    return queue_reply(session, ticket, Reply(draft.subject, draft.body, "extension"), actor)


def require_extension(session: Session, ticket: Ticket) -> None:
    """Check that an extension notice goes out only for a recorded extension.

    :raises DeadlineError: the deadline was not extended, so the notice would announce a due
        date that the ticket does not have.
    """
    if extension_of(session, ticket) is None:
        raise DeadlineError(
            f"the deadline of {ticket.reference} is not extended; use Extend deadline, which "
            "records the reason, moves the due date and sends this notice"
        )


def pause_clock(
    session: Session, ticket: Ticket, actor: str, reason: str, now: datetime
) -> ClockPause | None:
    """Stop the ticket's legal clock; return None when it has no clock or is paused already."""
    if ticket.due_at is None or ticket.is_closed or open_pause(session, ticket) is not None:
        return None
    pause = ClockPause(ticket_id=ticket.id, reason=reason, started_at=now, started_by=actor)
    session.add(pause)
    session.flush()

    record_event(
        session,
        AuditTag.CLOCK_PAUSE,
        actor,
        ticket,
        {"pause": pause.id, "reason": reason, "due_at": ticket.due_at.isoformat()},
    )
    logger.info("ticket %s clock paused for %s by %s", ticket.reference, reason, actor)
    return pause


def resume_clock(session: Session, ticket: Ticket, actor: str, now: datetime) -> ClockPause | None:
    """Restart a paused clock and move the due moment later by the paused time.

    Returns the ended pause, or None when the clock was running.
    """
    pause = open_pause(session, ticket)
    if pause is None:
        return None
    paused = max(now - pause.started_at, timedelta())
    pause.ended_at = pause.started_at + paused
    pause.ended_by = actor
    old_due = ticket.due_at
    if ticket.due_at is not None:
        ticket.due_at = ticket.due_at + paused
        ticket.updated_at = now
    refresh_plan(session, ticket)
    session.flush()

    record_event(
        session,
        AuditTag.CLOCK_RESUME,
        actor,
        ticket,
        {
            "pause": pause.id,
            "reason": pause.reason,
            "paused_seconds": int(paused.total_seconds()),
            "due_from": old_due.isoformat() if old_due else None,
            "due_to": ticket.due_at.isoformat() if ticket.due_at else None,
        },
    )
    logger.info("ticket %s clock resumed by %s after %s", ticket.reference, actor, paused)
    return pause
