"""Ticket: one request or breach report, with its type, status and legal clock."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from inbox.enums import RequestType, TicketStatus
from inbox.extensions import db
from inbox.models.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from inbox.models.message import Message
    from inbox.models.user import User

__all__ = ["ReferenceCounter", "RequestType", "Ticket", "TicketStatus"]


class Ticket(db.Model):  # type: ignore[name-defined,misc]
    """A conversation with one requester about one request, or one breach report."""

    __tablename__ = "ticket"
    # forwarded_by's server default only serves rows older than the column, and its Python
    # default fills every new row. So an INSERT need not read it back with RETURNING, and new
    # tickets whose ids are known go in as one executemany.
    __mapper_args__ = {"eager_defaults": False}

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.NEW, index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    requester_name: Mapped[str] = mapped_column(String(255), default="")
    requester_email: Mapped[str] = mapped_column(String(320), default="", index=True)
    language: Mapped[str] = mapped_column(String(8), default="und")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    secondary_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    attention_reason: Mapped[str] = mapped_column(Text, default="")
    # The reason's code and values, from which screens show it translated (inbox.attention).
    attention_code: Mapped[str] = mapped_column(String(32), default="", server_default="")
    attention_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # Set when mail carried this ticket's reference but came from someone else than its
    # requester: a person decides whether it continues that ticket.
    possible_followup_of: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    # Set on a ticket that triage merged into another, so mail citing its reference follows.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    # Address of the colleague who forwarded the request; the requester is the original sender.
    forwarded_by: Mapped[str] = mapped_column(String(320), default="", server_default="")

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.received_at"
    )
    assignee: Mapped[User | None] = relationship()

    @property
    def request_type(self) -> RequestType:
        """The type as an enum member."""
        return RequestType(self.type)

    @property
    def is_closed(self) -> bool:
        """Whether the ticket is closed."""
        return self.status == TicketStatus.CLOSED

    def to_json(self, zone: tzinfo = UTC) -> dict[str, Any]:
        """Serialise the fields that scripts rely on, times in ISO 8601 with the offset of ``zone``."""
        return {
            "reference": self.reference,
            "type": self.type,
            "secondary_types": list(self.secondary_types or []),
            "confidence": round(self.confidence, 3),
            "language": self.language,
            "status": self.status,
            "requester": {"name": self.requester_name, "email": self.requester_email},
            "subject": self.subject,
            "received_at": self.received_at.astimezone(zone).isoformat(),
            "due_at": self.due_at.astimezone(zone).isoformat() if self.due_at else None,
            "needs_attention": self.needs_attention,
            "attention_reason": self.attention_reason,
        }


class ReferenceCounter(db.Model):  # type: ignore[name-defined,misc]
    """Last number handed out per reference prefix and year (PRQ-2026-00042)."""

    __tablename__ = "reference_counter"
    __table_args__ = (UniqueConstraint("prefix", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(8))
    year: Mapped[int] = mapped_column(Integer)
    value: Mapped[int] = mapped_column(Integer, default=0)
