"""String-valued enums shared by the pure modules (sla, classify) and the models."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

ChoiceT = TypeVar("ChoiceT", bound=StrEnum)


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
    """Stage of a ticket's life."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"  # waiting for the requester, e.g. identity verification
    CLOSED = "closed"


def parse_choice(
    enum_type: type[ChoiceT], value: str, name: str, error: type[Exception]
) -> ChoiceT:
    """Return the member of ``enum_type`` whose value is ``value``.

    :raises error: no member has that value; the message names ``name``, the value and the
        allowed values.
    """
    try:
        return enum_type(value)
    except ValueError as exc:
        allowed = ", ".join(member.value for member in enum_type)
        raise error(f"unknown {name} {value!r}; allowed: {allowed}") from exc
