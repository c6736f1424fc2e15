"""Translated names of request types and statuses, for screens and mails."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from inbox.attention import shown_reason
from inbox.enums import RequestType, TicketStatus
from inbox.models.ticket import Ticket
from inbox.models.workflow import DeliveryStatus

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


def _choice_label(labels: Mapping[Any, Any], choice: type[StrEnum], value: str) -> str:
    """Return the translated label of an enum value, or the raw value when it is unknown."""
    try:
        return str(labels[choice(value)])
    except ValueError:
        return value


def type_label(value: str) -> str:
    """Return the translated name of a request type, or the raw value when unknown."""
    return _choice_label(TYPE_LABELS, RequestType, value)


DELIVERY_LABELS = {
    DeliveryStatus.QUEUED: _l("Queued"),
    DeliveryStatus.SENDING: _l("Sending"),
    DeliveryStatus.SENT: _l("Sent"),
    DeliveryStatus.FAILED: _l("Not delivered"),
}


def delivery_label(value: str) -> str:
    """Return the translated delivery status of an outgoing mail, or the raw value when unknown."""
    return _choice_label(DELIVERY_LABELS, DeliveryStatus, value)


def attention_label(ticket: Ticket) -> str:
    """Return why a ticket needs attention, in the reader's language where the reason has a code."""
    return shown_reason(
        ticket.attention_code, ticket.attention_params, ticket.attention_reason, gettext
    )


def status_label(value: str) -> str:
    """Return the translated name of a ticket status, or the raw value when unknown."""
    return _choice_label(STATUS_LABELS, TicketStatus, value)


AUDIT_LABELS = {
    "ticket:ticket:create": _l("Ticket opened"),
    "ticket:type:change": _l("Type changed"),
    "ticket:type:confirm": _l("Type confirmed"),
    "ticket:status:change": _l("Status changed"),
    "ticket:message:add": _l("Message added"),
    "ticket:message:copy": _l("Second copy of a message received"),
    "ticket:ticket:quarantine": _l("Message could not be read"),
    "ticket:assignee:change": _l("Assignee changed"),
    "ticket:ticket:merge": _l("Tickets merged"),
    "ticket:ticket:close": _l("Ticket closed"),
    "mail:attention:flag": _l("Flagged for attention"),
    "workflow:instance:start": _l("Checklist started"),
    "workflow:instance:replan": _l("Checklist re-planned"),
    "workflow:step:check": _l("Step done"),
    "workflow:step:uncheck": _l("Step reopened"),
    "workflow:step:skip": _l("Step skipped"),
    "workflow:step:note": _l("Note added"),
    "workflow:step:assign": _l("Step assigned"),
    "mail:message:queue": _l("Mail queued"),
    "mail:message:send": _l("Mail sent"),
    "mail:message:fail": _l("Mail delivery failed"),
    "mail:message:resend": _l("Mail queued again"),
    "mail:acknowledgement:suppress": _l("No acknowledgement sent"),
    "ticket:deadline:extend": _l("Deadline extended"),
    "ticket:clock:pause": _l("Clock paused"),
    "ticket:clock:resume": _l("Clock resumed"),
    "workflow:identity:update": _l("Identity check updated"),
    "workflow:identity:evidence": _l("Identity evidence added"),
    "workflow:evidence:delete": _l("Evidence file deleted"),
    "workflow:search:record": _l("System search recorded"),
    "triage:corrections:export": _l("Corrections exported"),
    "user:password:change": _l("Password changed"),
}
"""Readable names of audit tags on the ticket page; an unlisted tag is shown as it is."""


def audit_label(tag: str) -> str:
    """Return the translated name of an audit tag, or the tag itself when it has none."""
    label = AUDIT_LABELS.get(tag)
    return str(label) if label is not None else tag


def audit_details(tag: str, data: dict[str, Any]) -> str:
    """Summarise an audit event's data: translated from and to values, else key=value pairs."""
    if tag == "ticket:type:change":
        return f"{type_label(str(data.get('from')))} → {type_label(str(data.get('to')))}"
    if tag == "ticket:status:change":
        return f"{status_label(str(data.get('from')))} → {status_label(str(data.get('to')))}"
    if "from" in data and "to" in data:
        return f"{data['from']} → {data['to']}"
    return " ".join(f"{key}={value}" for key, value in data.items())
