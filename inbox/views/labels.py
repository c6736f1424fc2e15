"""Translated names of request types and statuses, for screens and mails."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from inbox.enums import RequestType, TicketStatus

TYPE_LABELS = {
    RequestType.ACCESS: _l("Access request"),
    RequestType.ERASURE: _l("Erasure request"),
    RequestType.RECTIFICATION: _l("Rectification request"),
    RequestType.OBJECTION: _l("Objection"),
    RequestType.RESTRICTION: _l("Restriction of processing"),
    RequestType.PORTABILITY: _l("Data portability"),
    RequestType.AUTOMATED_DECISION: _l("Automated decision"),
    RequestType.CONSENT_WITHDRAWAL: _l("Consent withdrawal"),
    RequestType.BREACH: _l("Data breach"),
    RequestType.OTHER: _l("Other"),
}

STATUS_LABELS = {
    TicketStatus.NEW: _l("New"),
    TicketStatus.OPEN: _l("Open"),
    TicketStatus.WAITING: _l("Waiting for requester"),
    TicketStatus.CLOSED: _l("Closed"),
}


def type_label(value: str) -> str:
    """Return the translated name of a request type, or the raw value when unknown."""
    try:
        return str(TYPE_LABELS[RequestType(value)])
    except ValueError:
        return value


def status_label(value: str) -> str:
    """Return the translated name of a ticket status, or the raw value when unknown."""
    try:
        return str(STATUS_LABELS[TicketStatus(value)])
    except ValueError:
        return value
