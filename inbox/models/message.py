"""Raw messages as fetched, parsed messages on tickets, and their attachments."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from inbox.extensions import db
from inbox.models import compression
from inbox.models.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from inbox.models.ticket import Ticket


class RawMessage(db.Model):  # type: ignore[name-defined,misc]
    """The bytes of one mail exactly as the server returned them, stored before anything else.

    Keyed by its content hash, so a mailbox restored under a new UIDVALIDITY, or the same file
    imported twice, duplicates nothing. Where it was fetched from is kept in MailLocation.
    """

    __tablename__ = "raw_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    size: Mapped[int] = mapped_column(Integer)
    internaldate: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(255), default="")

    content: Mapped[RawMessageContent | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_processed(self) -> bool:
        """Whether the message has become a ticket or joined one."""
        return self.processed_at is not None

    @property
    def raw(self) -> bytes:
        """The stored bytes, read from the database unless kept in memory (``hold_raw``)."""
        in_memory = self.__dict__.get(_KEPT_RAW)
        if in_memory is not None:
            return in_memory
        if self.content is None:
            raise LookupError(f"raw message {self.id} has no row in raw_message_content")
        return self.content.raw

    @raw.setter
    def raw(self, value: bytes) -> None:
        """Store ``value`` as this message's bytes with the next flush."""
        self.content = RawMessageContent(raw=value)
        self.hold_raw(value)

    def hold_raw(self, value: bytes) -> None:
        """Keep the stored bytes that the caller already has, so ``raw`` does not read them back.

        ``value`` must be the bytes stored for this message.
        """
        self.__dict__[_KEPT_RAW] = value


_KEPT_RAW = "_kept_raw"
"""Attribute of a RawMessage that keeps its bytes in memory; the ORM does not manage it."""


class RawMessageContent(db.Model):  # type: ignore[name-defined,misc]
    """The bytes of a raw message, in a table of their own.

    SQLite rewrites a whole row when an UPDATE changes its size, large values included. Marking
    a message processed would otherwise write its bytes a second time.
    """

    __tablename__ = "raw_message_content"

    raw_message_id: Mapped[int] = mapped_column(
        ForeignKey("raw_message.id", ondelete="CASCADE"), primary_key=True
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class MailLocation(db.Model):  # type: ignore[name-defined,misc]
    """Position of a raw message on an IMAP server: mailbox, UIDVALIDITY and UID.

    A re-fetch of a known location is a no-op. The server-side mark (flag or move) is done only
    for locations whose raw message is committed and processed.
    """

    __tablename__ = "mail_location"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid"),
        # Each poll looks for the locations still to mark. Without this index that read scans
        # every location the mailbox ever had.
        Index(
            "ix_mail_location_unmarked",
            "mailbox",
            "uidvalidity",
            postgresql_where=text("marked_at IS NULL"),
            sqlite_where=text("marked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("raw_message.id"), index=True)
    marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    raw_message: Mapped[RawMessage] = relationship()


class Message(db.Model):  # type: ignore[name-defined,misc]
    """One parsed mail in a ticket's conversation, incoming or outgoing."""

    __tablename__ = "message"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    raw_message_id: Mapped[int | None] = mapped_column(ForeignKey("raw_message.id"))
    direction: Mapped[str] = mapped_column(String(8), default="in")
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    in_reply_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(255), default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    date_header: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    is_automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    parse_failed: Mapped[bool] = mapped_column(Boolean, default=False)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    raw_message: Mapped[RawMessage | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id"
    )


class Blob(db.Model):  # type: ignore[name-defined,misc]
    """A file's SHA-256 and size, one row however many attachments carry the file.

    `data` is None for a file that arrived by mail: its bytes are kept once, inside each raw
    mail that carries it, and ``inbox.mail.attachments`` decodes them from there. A file with no
    raw mail, such as one uploaded with a reply, keeps its bytes here.
    """

    __tablename__ = "blob"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))


class Attachment(db.Model):  # type: ignore[name-defined,misc]
    """A file attached to a message; its bytes live in a Blob."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(998))
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blob.sha256"))

    message: Mapped[Message] = relationship(back_populates="attachments")
    blob: Mapped[Blob | None] = relationship()


compression.register(RawMessageContent.__table__)
compression.register(Blob.__table__)
