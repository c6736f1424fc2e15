"""Find the ticket a message belongs to: In-Reply-To and References first, then the subject token."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from sqlalchemy import select

from inbox.models.message import Message
from inbox.models.ticket import Ticket

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from inbox.mail.parse import ParsedMail

logger = logging.getLogger(__name__)

REFERENCE_PATTERN = re.compile(r"\[?\b((?:PRQ|BRE)-\d{4}-\d{5})\b\]?")
"""A ticket reference such as PRQ-2026-00042 anywhere in a subject, behind any reply prefix."""


def find_reference_token(subject: str) -> str | None:
    """Return the first ticket reference in a subject, or None."""
    match = REFERENCE_PATTERN.search(subject)
    return match.group(1) if match else None


def find_thread(session: Session, parsed: ParsedMail) -> Ticket | None:
    """Return the ticket this mail continues, or None when it starts a new conversation.

    A subject token alone is trusted only from the ticket's requester, so a stranger cannot add
    text to someone else's request by copying its reference.
    """
    message_ids = [mid for mid in (*parsed.in_reply_to, *parsed.references) if mid]
    if message_ids:
        known = session.scalars(
            select(Message)
            .where(Message.message_id.in_(message_ids[-50:]))
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        if known is not None:
            return known.ticket

    reference = find_reference_token(parsed.subject)
    if reference is None:
        return None
    ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).first()
    if ticket is None:
        return None
    if parsed.from_addr and parsed.from_addr == ticket.requester_email.lower():
        return ticket
    logger.warning(
        "mail carries reference %s but comes from someone other than its requester", reference
    )
    return None
