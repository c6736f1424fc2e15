"""Workflow versions, the workflow instance of a ticket with its steps, and outgoing mail delivery.

A WorkflowVersion row is never changed after it is written: an edit adds a new version, and a
ticket's steps keep pointing at the version they were planned from. That is what keeps a ticket
in flight unaffected by later edits.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.extensions import db
from inbox.models.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from inbox.models.message import Attachment, Message
    from inbox.models.ticket import Ticket
    from inbox.models.user import User


class StepStatus(StrEnum):
    """Status of a checklist step."""

    OPEN = "open"
    DONE = "done"
    SKIPPED = "skipped"
    PENDING = "pending"  # waits for an earlier decision
    NOT_APPLICABLE = "not_applicable"  # an earlier decision ruled it out
    DROPPED = "dropped"  # left behind by a change of request type; kept with its notes


class Outcome(StrEnum):
    """Result of a request, recorded when the ticket is closed."""

    GRANTED = "granted"
    PARTLY_GRANTED = "partly_granted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    NO_DATA_FOUND = "no_data_found"


class IdentityStatus(StrEnum):
    """State of the identity verification of a requester (GDPR Art. 12(6))."""

    NOT_NEEDED = "not_needed"
    REQUESTED = "requested"  # waiting for the requester's additional information
    VERIFIED = "verified"
    FAILED = "failed"


class SearchResult(StrEnum):
    """Result of searching one system for the requester's personal data."""

    DATA_FOUND = "data_found"
    NOTHING_FOUND = "nothing_found"  # checked, nothing found
    NOT_APPLICABLE = "not_applicable"


class DeliveryStatus(StrEnum):
    """Delivery status of an outgoing mail."""

    QUEUED = "queued"
    SENDING = "sending"  # an attempt has claimed it and has not finished
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry


class WorkflowVersion(db.Model):  # type: ignore[name-defined,misc]
    """One immutable version of the workflow of a request type."""

    __tablename__ = "workflow_version"
    __table_args__ = (UniqueConstraint("type", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(Integer)
    source_text: Mapped[str] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320), default="")


class WorkflowInstance(db.Model):  # type: ignore[name-defined,misc]
    """The checklist of one ticket and, once closed, its outcome."""

    __tablename__ = "workflow_instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), unique=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_version.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(32))
    override_reason: Mapped[str] = mapped_column(Text, default="")

    ticket: Mapped[Ticket] = relationship()
    version: Mapped[WorkflowVersion] = relationship()
    steps: Mapped[list[WorkflowStep]] = relationship(
        back_populates="instance", order_by="WorkflowStep.position"
    )


class WorkflowStep(db.Model):  # type: ignore[name-defined,misc]
    """One checklist item of a ticket, planned from a step of ``version``."""

    __tablename__ = "workflow_step"
    __table_args__ = (UniqueConstraint("instance_id", "step_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The unique key on (instance_id, step_id) serves look-ups by instance too.
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instance.id"))
    # A step kept across a type change still comes from the version it was planned from.
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_version.id"))
    step_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.OPEN)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision: Mapped[str | None] = mapped_column(String(64))
    skip_reason: Mapped[str] = mapped_column(Text, default="")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[str] = mapped_column(String(320), default="")

    instance: Mapped[WorkflowInstance] = relationship(back_populates="steps")
    version: Mapped[WorkflowVersion] = relationship()
    assignee: Mapped[User | None] = relationship()
    notes: Mapped[list[StepNote]] = relationship(
        back_populates="step", order_by="StepNote.id", cascade="all, delete-orphan"
    )

    @property
    def is_finished(self) -> bool:
        """Whether the step is done or skipped."""
        return self.status in (StepStatus.DONE, StepStatus.SKIPPED)


class StepNote(db.Model):  # type: ignore[name-defined,misc]
    """A note written on a checklist step, optionally with a file uploaded as evidence."""

    __tablename__ = "workflow_step_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_pk: Mapped[int] = mapped_column(ForeignKey("workflow_step.id"), index=True)
    author: Mapped[str] = mapped_column(String(320))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The evidence file links the step to an Attachment row, whose bytes live in a Blob.
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachment.id"), index=True)

    step: Mapped[WorkflowStep] = relationship(back_populates="notes")
    evidence: Mapped[Attachment | None] = relationship()


class MailDelivery(db.Model):  # type: ignore[name-defined,misc]
    """The delivery state of one outgoing Message, sent after the commit that created it."""

    __tablename__ = "mail_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Empty while an acknowledgement waits to be composed: the ingest queues only the promise.
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    # Lower-cased, so the one-automatic-mail-per-sender-per-day rule is a plain query.
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    template: Mapped[str] = mapped_column(String(64), default="")
    is_automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # When the last attempt began: the start of the wait for the next one.
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    message: Mapped[Message | None] = relationship()


class IdentityCheck(db.Model):  # type: ignore[name-defined,misc]
    """The identity verification state of one ticket, kept on its identity step.

    Only a short note of what was checked is stored, never a copy of an identity document.
    """

    __tablename__ = "identity_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_pk: Mapped[int] = mapped_column(ForeignKey("workflow_step.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=IdentityStatus.NOT_NEEDED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    checked_note: Mapped[str] = mapped_column(Text, default="")
    evidence_attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachment.id"))
    evidence_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")

    step: Mapped[WorkflowStep] = relationship()
    evidence: Mapped[Attachment | None] = relationship()


class SystemSearch(db.Model):  # type: ignore[name-defined,misc]
    """One system searched for the requester's personal data, recorded on the search step."""

    __tablename__ = "system_search"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_pk: Mapped[int] = mapped_column(ForeignKey("workflow_step.id"), index=True)
    system: Mapped[str] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    evidence_attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachment.id"))
    recorded_by: Mapped[str] = mapped_column(String(320))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    step: Mapped[WorkflowStep] = relationship()
    evidence: Mapped[Attachment | None] = relationship()


class ClockPause(db.Model):  # type: ignore[name-defined,misc]
    """A period in which a ticket's legal clock stood still; open while ``ended_at`` is None."""

    __tablename__ = "clock_pause"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(320))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str] = mapped_column(String(320), default="")


class DeadlineExtension(db.Model):  # type: ignore[name-defined,misc]
    """The one Art. 12(3) extension of a ticket's deadline, with its reason."""

    __tablename__ = "deadline_extension"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique, because Art. 12(3) allows one extension of at most two months.
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), unique=True)
    original_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    extended_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
