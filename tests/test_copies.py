"""A second copy of a stored mail, with other bytes, joins the first one's ticket."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from inbox.enums import TicketStatus
from inbox.extensions import db
from inbox.mail.ingest import _unescape_from_lines
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.services.intake import import_path
from inbox.services.tickets import change_status
from tests.factories import make_mail

IMPORTED_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MESSAGE_ID = "<verzoek-1@example.net>"
BODY = "Ik wil graag weten welke persoonsgegevens u van mij verwerkt.\nFrom now on, mail me."

_folders = itertools.count()


def import_mails(app: Flask, tmp_path: Path, *mails: bytes) -> None:
    """Import raw mails from one folder, in one run of the importer."""
    folder = tmp_path / f"mail-{next(_folders)}"
    folder.mkdir()
    for number, raw in enumerate(mails):
        (folder / f"{number:03d}.eml").write_bytes(raw)
    import_path(db.session, folder, app.config, IMPORTED_AT)
    db.session.commit()


def request(
    body: str = BODY, sender: str = "Jan Jansen <jan@example.net>", relay: str = ""
) -> bytes:
    """Build the request; ``relay`` adds a Received header, as a second route would."""
    headers = {"Received": f"from {relay} by mx.example.org"} if relay else None
    return make_mail(body=body, sender=sender, message_id=MESSAGE_ID, headers=headers)


def count(model: type) -> int:
    """Return the number of rows of a model."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def copy_events() -> list[AuditEvent]:
    """Return the audit events of copies that added no message."""
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == str(AuditTag.TICKET_MESSAGE_COPY))
        )
    )


def test_copy_via_second_route_joins_ticket(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request())
    import_mails(app, tmp_path, request(relay="dpo.example.org"))

    assert count(Ticket) == 1
    assert count(Message) == 1
    assert count(RawMessage) == 2
    assert db.session.scalar(select(func.count()).where(RawMessage.processed_at.is_(None))) == 0
    (event,) = copy_events()
    assert event.data["copy_of"] == db.session.scalars(select(Message.id)).one()


def test_copies_in_one_batch_share_ticket(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request(), request(relay="dpo.example.org"))

    assert count(Ticket) == 1
    assert count(Message) == 1
    assert len(copy_events()) == 1


def test_mbox_escaped_copy_joins_ticket(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request())
    escaped = request().replace(b"\nFrom now on", b"\n>From now on")

    import_mails(app, tmp_path, escaped)

    assert count(Ticket) == 1
    assert count(Message) == 1
    assert len(copy_events()) == 1


def test_changed_copy_added_without_reopening(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request())
    ticket = db.session.scalars(select(Ticket)).one()
    change_status(db.session, ticket, TicketStatus.CLOSED, "test")
    db.session.commit()

    import_mails(app, tmp_path, request(body="Ik wil graag inzage. Met vriendelijke groet, Jan"))

    assert count(Ticket) == 1
    assert count(Message) == 2
    assert ticket.status == TicketStatus.CLOSED
    assert copy_events() == []


def test_same_id_other_sender_new_ticket(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request())

    import_mails(app, tmp_path, request(sender="Piet <piet@example.com>"))

    assert count(Ticket) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("From now on", "From now on"),
        (">From now on", "From now on"),
        (">>From now on", ">From now on"),
        ("> From: a quoted header", "> From: a quoted header"),
        ("Dear team,\n>From March on", "Dear team,\nFrom March on"),
        ("text >From mid-line", "text >From mid-line"),
    ],
)
def test_unescape_from_lines(text: str, expected: str) -> None:
    assert _unescape_from_lines(text) == expected
