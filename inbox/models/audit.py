"""Append-only audit events, each chained to the one before by a SHA-256 hash."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import db
from inbox.models.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from inbox.models.ticket import Ticket


class AuditTag(StrEnum):
    """Kind of audited change, as ``source:subject:action``."""

    TICKET_CREATE = "ticket:ticket:create"
    TICKET_TYPE_CHANGE = "ticket:type:change"
    TICKET_STATUS_CHANGE = "ticket:status:change"
    TICKET_MESSAGE_ADD = "ticket:message:add"
    TICKET_MESSAGE_COPY = "ticket:message:copy"
    TICKET_QUARANTINE = "ticket:ticket:quarantine"
    TICKET_TYPE_CONFIRM = "ticket:type:confirm"
    TICKET_ASSIGNEE_CHANGE = "ticket:assignee:change"
    TICKET_MERGE = "ticket:ticket:merge"
    CORRECTIONS_EXPORT = "triage:corrections:export"
    TICKET_ATTENTION_FLAG = "mail:attention:flag"
    MAILBOX_UIDVALIDITY_CHANGE = "mail:uidvalidity:change"
    MAILBOX_CREATE = "admin:mailbox:create"
    MAILBOX_UPDATE = "admin:mailbox:update"
    MAILBOX_DELETE = "admin:mailbox:delete"
    USER_CREATE = "user:user:create"
    USER_LOGIN = "user:session:login"
    USER_LOGIN_FAIL = "user:session:fail"
    USER_LOGOUT = "user:session:logout"
    USER_PASSWORD_CHANGE = "user:password:change"
    TICKET_CLOSE = "ticket:ticket:close"
    WORKFLOW_VERSION_ADD = "workflow:version:add"
    WORKFLOW_START = "workflow:instance:start"
    WORKFLOW_REPLAN = "workflow:instance:replan"
    STEP_CHECK = "workflow:step:check"
    STEP_UNCHECK = "workflow:step:uncheck"
    STEP_SKIP = "workflow:step:skip"
    STEP_NOTE = "workflow:step:note"
    STEP_ASSIGN = "workflow:step:assign"
    MAIL_QUEUE = "mail:message:queue"
    MAIL_SEND = "mail:message:send"
    MAIL_FAIL = "mail:message:fail"
    MAIL_RESEND = "mail:message:resend"
    MAIL_SUPPRESS = "mail:acknowledgement:suppress"
    DEADLINE_EXTEND = "ticket:deadline:extend"
    CLOCK_PAUSE = "ticket:clock:pause"
    CLOCK_RESUME = "ticket:clock:resume"
    IDENTITY_UPDATE = "workflow:identity:update"
    IDENTITY_EVIDENCE_ADD = "workflow:identity:evidence"
    EVIDENCE_DELETE = "workflow:evidence:delete"
    SEARCH_RECORD_ADD = "workflow:search:record"


class AuditEvent(db.Model):  # type: ignore[name-defined,misc]
    """One audited state change: who did what to which ticket, and the hash that seals it."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Unique, so two writers can never fork the chain from the same predecessor.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    # Not read anywhere. It makes the flush write new tickets before the events that name them,
    # which PostgreSQL's foreign key check requires when many of both go in together.
    ticket: Mapped[Ticket | None] = relationship()
