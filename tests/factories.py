"""Builders for test mails and tickets with sensible defaults."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from inbox.extensions import db
from inbox.services.workflows import instance_of

if TYPE_CHECKING:
    from inbox.models.ticket import Ticket
    from inbox.models.workflow import MailDelivery, WorkflowStep


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


def leave_acknowledgement_uncomposed(config: Mapping[str, Any]) -> MailDelivery:
    """Open a ticket whose acknowledgement is queued but never composed nor handed on.

    This is what a poll leaves that was killed between its commit and the delivery.
    """
    from dataclasses import replace

    from sqlalchemy import select

    from inbox.mail.ingest import process_batch
    from inbox.mail.store import store_raw
    from inbox.models.workflow import MailDelivery
    from inbox.services.intake import ingest_settings

    stored = store_raw(db.session, make_mail(), datetime.now(UTC), None, "test")
    db.session.commit()
    settings = replace(ingest_settings(config), deliver=None)
    process_batch(db.session, [stored.raw_message.id], settings)
    return db.session.scalars(select(MailDelivery)).one()


def block_outbox(instance_path: str) -> Path:
    """Put a plain file where the outbox folder goes, so that every write to it fails."""
    outbox = Path(instance_path) / "outbox"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_text("not a folder")
    return outbox
