"""Builders for test mails and tickets with sensible defaults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from sqlalchemy import event

from inbox.extensions import db
from inbox.services.workflows import instance_of

if TYPE_CHECKING:
    from inbox.models.ticket import Ticket
    from inbox.models.workflow import WorkflowStep


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


def step_of(ticket: Ticket, step_id: str) -> WorkflowStep:
    """Return a step of the ticket's checklist by its workflow id."""
    instance = instance_of(db.session, ticket)
    assert instance is not None
    return next(step for step in instance.steps if step.step_id == step_id)


@contextmanager
def sent_statements(accept: Callable[[str], bool]) -> Iterator[list[str]]:
    """Collect the SQL statements that ``accept`` returns true for while the block runs."""
    seen: list[str] = []

    def listen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if accept(statement):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
