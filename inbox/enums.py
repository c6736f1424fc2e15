"""String-valued enums shared by the pure modules (sla, classify) and the models."""

from __future__ import annotations

from enum import StrEnum


class RequestType(StrEnum):
    """The kind of request a ticket is, which sets its workflow and its legal clock."""

    ACCESS = "access"  # GDPR Art. 15
    ERASURE = "erasure"  # Art. 17
    RECTIFICATION = "rectification"  # Art. 16
    OBJECTION = "objection"  # Art. 21
    RESTRICTION = "restriction"  # Art. 18
    PORTABILITY = "portability"  # Art. 20
    AUTOMATED_DECISION = "automated_decision"  # Art. 22
    CONSENT_WITHDRAWAL = "consent_withdrawal"  # Art. 7(3)
    BREACH = "breach"  # Art. 33 and 34
    OTHER = "other"

    @property
    def is_data_subject_request(self) -> bool:
        """Whether the one-month clock of Art. 12(3) applies to this type."""
        return self not in (RequestType.BREACH, RequestType.OTHER)


class TicketStatus(StrEnum):
    """Where a ticket stands in its life."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"  # waiting for the requester, e.g. identity verification
    CLOSED = "closed"
