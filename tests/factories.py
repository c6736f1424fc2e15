"""Builders for test mails and tickets with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def make_mail(
    subject: str = "Inzageverzoek",
    body: str = "Ik wil graag weten welke persoonsgegevens u van mij verwerkt (art. 15 AVG).",
    sender: str = "Jan Jansen <jan@example.net>",
    to: str = "privacy@example.org",
    date: datetime | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Build a plain-text mail as raw bytes."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    message["Message-ID"] = message_id or make_msgid(domain="example.net")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def incoming(ticket: object) -> list[object]:
    """Return a ticket's incoming messages, leaving out acknowledgements and replies we sent."""
    return [m for m in ticket.messages if m.direction == "in"]  # type: ignore[attr-defined]
