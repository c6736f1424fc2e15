"""IMAP mailboxes to poll, and what the poller last saw of each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inbox.extensions import db
from inbox.models.types import UTCDateTime


class Mailbox(db.Model):  # type: ignore[name-defined,misc]
    """One IMAP folder to poll; the one named ``default`` mirrors the INBOX_IMAP_* settings."""

    __tablename__ = "mailbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16), default="ssl")
    username: Mapped[str] = mapped_column(String(320))
    password: Mapped[str] = mapped_column(String(1024))
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    processed_action: Mapped[str] = mapped_column(String(8), default="seen")
    processed_folder: Mapped[str] = mapped_column(String(255), default="Processed")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
