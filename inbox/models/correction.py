"""Type corrections: a person's verdict on a classified ticket, kept as a labelled example."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import db
from inbox.models.types import UTCDateTime, utcnow


class TypeCorrection(db.Model):  # type: ignore[name-defined,misc]
    """A confirmed or changed request type, with the text the classifier saw.

    The subject and text are snapshots taken when the correction is made, so a later merge or
    retype does not change the example.

    NOTE: the snapshot is a copy of the requester's mail. Erasing a requester's data must delete
    the rows of their tickets here as well.
    """

    __tablename__ = "type_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="und")
    predicted_type: Mapped[str] = mapped_column(String(32))
    corrected_type: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    @property
    def is_confirmation(self) -> bool:
        """Whether the person kept the predicted type."""
        return self.predicted_type == self.corrected_type
