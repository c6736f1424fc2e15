"""A second copy of a stored mail, with other bytes, joins the first one's ticket."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from inbox.enums import TicketStatus
from inbox.extensions import db
from inbox.mail.ingest import process_batch
from inbox.mail.store import store_raw
from inbox.mail.threading import _unescape_from_lines
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import Attachment, Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.services.intake import import_path, ingest_settings
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


def attach_scan(raw: bytes) -> bytes:
    """Return the mail with a scanned identity document attached."""
    mail = message_from_bytes(raw, policy=default)
    mail.add_attachment(b"%PDF-1.4 paspoort", "application", "pdf", filename="paspoort.pdf")
    return mail.as_bytes()


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


def test_copies_in_one_batch_share_ticket(app: Flask) -> None:
    # The second mail only reuses the Message-ID; the third is a copy of the first.
    mails = [
        request(),
        request(body="Een ander verzoek met dezelfde Message-ID."),
        request(relay="dpo.example.org"),
    ]
    ids = [store_raw(db.session, raw, IMPORTED_AT, None, "test").raw_message.id for raw in mails]
    db.session.commit()

    results = process_batch(db.session, ids, ingest_settings(app.config))

    assert [result.new_ticket for result in results] == [True, True, False]
    assert results[2].ticket.id == results[0].ticket.id
    assert count(Message) == 2
    assert len(copy_events()) == 1


def test_mbox_escaped_copy_joins_ticket(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request())
    escaped = request().replace(b"\nFrom now on", b"\n>From now on")

    import_mails(app, tmp_path, escaped)

    assert count(Ticket) == 1
    assert count(Message) == 1
    assert len(copy_events()) == 1


def test_copy_of_closed_ticket_keeps_it_closed(app: Flask, tmp_path: Path) -> None:
    import_mails(app, tmp_path, request())
    ticket = db.session.scalars(select(Ticket)).one()
    change_status(db.session, ticket, TicketStatus.CLOSED, "test")
    db.session.commit()

    import_mails(app, tmp_path, request(relay="dpo.example.org"))

    assert count(Ticket) == 1
    assert count(Message) == 1
    assert ticket.status == TicketStatus.CLOSED


def test_reused_message_id_new_request(app: Flask, tmp_path: Path) -> None:
    # Some web forms send every request with one Message-ID and one From address.
    import_mails(app, tmp_path, request())

    import_mails(app, tmp_path, request(body="Naam: Ivo Mulder\nIk wil inzage in mijn gegevens."))

    assert count(Ticket) == 2
    assert copy_events() == []


def test_third_copy_matches_first(app: Flask, tmp_path: Path) -> None:
    changed = request(body="Ik wil graag inzage. Met vriendelijke groet, Jan")
    import_mails(app, tmp_path, request())
    import_mails(app, tmp_path, changed)

    import_mails(app, tmp_path, request(relay="dpo.example.org"))

    assert count(Ticket) == 2
    assert count(Message) == 2
    assert len(copy_events()) == 1


def test_copy_after_evidence_deleted(app: Flask, tmp_path: Path) -> None:
    with_file = attach_scan(request())
    import_mails(app, tmp_path, with_file)
    (attachment,) = db.session.scalars(select(Attachment)).all()
    # What deleting identity evidence leaves: the name and size, no file.
    attachment.blob = None
    attachment.sha256 = None
    db.session.commit()

    import_mails(app, tmp_path, attach_scan(request(relay="dpo.example.org")))

    assert count(Message) == 1
    assert db.session.scalars(select(Attachment.sha256)).all() == [None]


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
