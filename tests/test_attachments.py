"""Files that arrive by mail are kept once, in the raw mail, and decoded from it when opened."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.mail.attachments import attachment_bytes
from inbox.mail.store import blob_for
from inbox.models.message import Attachment, Blob, Message, RawMessageContent
from inbox.models.ticket import Ticket
from inbox.services.intake import import_path
from tests.conftest import AuthActions

IMPORTED_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SCAN = b"%PDF-1.4 scan van een identiteitsbewijs, nummer afgeschermd"


def mail_with_file(message_id: str, data: bytes = SCAN, filename: str = "scan.pdf") -> bytes:
    """Build a request with one attached file."""
    mail = EmailMessage()
    mail["From"] = "Fatima El Amrani <fatima@example.net>"
    mail["To"] = "privacy@example.org"
    mail["Subject"] = "Verwijderverzoek"
    mail["Date"] = "Tue, 01 Dec 2026 08:15:00 +0100"
    mail["Message-ID"] = message_id
    mail.set_content("Verwijder alstublieft mijn gegevens. Een kopie van mijn paspoort zit erbij.")
    mail.add_attachment(data, "application", "pdf", filename=filename)
    return mail.as_bytes()


def import_mails(app: Flask, folder: Path, *mails: bytes) -> list[Ticket]:
    """Import raw mails from files and return their tickets, in order, read afresh."""
    folder.mkdir()
    for number, raw in enumerate(mails):
        (folder / f"{number:03d}.eml").write_bytes(raw)
    result = import_path(db.session, folder, app.config, IMPORTED_AT)
    db.session.commit()
    db.session.expunge_all()
    return [
        db.session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        for reference in result.references
    ]


def attachment_of(ticket: Ticket) -> Attachment:
    """Return the one attachment of a ticket."""
    return db.session.scalars(
        select(Attachment).join(Message).where(Message.ticket_id == ticket.id)
    ).one()


def replace_raw_mail(raw_message_id: int) -> None:
    """Overwrite a stored raw mail with one that carries no file, and forget loaded rows."""
    content = db.session.get(RawMessageContent, raw_message_id)
    content.raw = b"Subject: no file here\r\n\r\nbody\r\n"
    db.session.commit()
    db.session.expunge_all()


def test_mail_file_is_read_from_raw_mail(app: Flask, tmp_path: Path) -> None:
    (ticket,) = import_mails(app, tmp_path / "mail", mail_with_file("<one@example.net>"))
    attachment = attachment_of(ticket)

    assert attachment.blob is not None
    assert attachment.blob.data is None
    assert (attachment.size, attachment.blob.size) == (len(SCAN), len(SCAN))
    assert attachment.sha256 == hashlib.sha256(SCAN).hexdigest()
    assert attachment_bytes(attachment) == SCAN


def test_two_mails_share_one_blob(app: Flask, tmp_path: Path) -> None:
    first, second = import_mails(
        app,
        tmp_path / "mail",
        mail_with_file("<one@example.net>"),
        mail_with_file("<two@example.net>", filename="paspoort.pdf"),
    )

    assert db.session.scalar(select(func.count()).select_from(Blob)) == 1
    assert attachment_bytes(attachment_of(first)) == SCAN
    assert attachment_bytes(attachment_of(second)) == SCAN


def test_upload_of_a_mail_file_keeps_its_bytes(app: Flask, tmp_path: Path) -> None:
    (ticket,) = import_mails(app, tmp_path / "mail", mail_with_file("<one@example.net>"))
    sha256 = hashlib.sha256(SCAN).hexdigest()

    blob = blob_for(db.session, sha256, len(SCAN), SCAN)
    db.session.commit()

    assert blob is attachment_of(ticket).blob
    assert db.session.get(Blob, sha256).data == SCAN


def test_stored_bytes_are_preferred_to_the_raw_mail(app: Flask, tmp_path: Path) -> None:
    (ticket,) = import_mails(app, tmp_path / "mail", mail_with_file("<one@example.net>"))
    attachment = attachment_of(ticket)
    # A row written before files stayed in the raw mail contains its bytes.
    attachment.blob.data = SCAN
    db.session.commit()
    attachment_id, raw_message_id = attachment.id, attachment.message.raw_message_id
    replace_raw_mail(raw_message_id)
    attachment = db.session.get(Attachment, attachment_id)

    assert attachment_bytes(attachment) == SCAN


def test_file_missing_from_raw_mail_404(
    app: Flask, client: FlaskClient, auth: AuthActions, tmp_path: Path
) -> None:
    (ticket,) = import_mails(app, tmp_path / "mail", mail_with_file("<one@example.net>"))
    reference = ticket.reference
    attachment = attachment_of(ticket)
    attachment_id, raw_message_id = attachment.id, attachment.message.raw_message_id
    replace_raw_mail(raw_message_id)
    attachment = db.session.get(Attachment, attachment_id)
    auth.login()

    response = client.get(f"/tickets/{reference}/attachments/{attachment_id}")

    assert response.status_code == 404
    assert "could not be read from the original mail" in response.text
    assert attachment_bytes(attachment) is None


def test_inline_image_keeps_its_bytes(app: Flask, tmp_path: Path) -> None:
    logo = b"\x89PNG\r\n\x1a\n logo"
    mail = EmailMessage()
    mail["From"] = "Fatima El Amrani <fatima@example.net>"
    mail["To"] = "privacy@example.org"
    mail["Subject"] = "Inzageverzoek"
    mail["Message-ID"] = "<inline@example.net>"
    mail.set_content("Ik wil inzage in mijn gegevens.")
    mail.add_alternative('<p>Ik wil inzage.</p><img src="cid:logo@example.net">', subtype="html")
    mail.get_payload()[1].add_related(logo, "image", "png", cid="<logo@example.net>")
    mail.add_attachment(SCAN, "application", "pdf", filename="scan.pdf")

    (ticket,) = import_mails(app, tmp_path / "mail", mail.as_bytes())
    image, scan = db.session.scalars(
        select(Attachment)
        .join(Message)
        .where(Message.ticket_id == ticket.id)
        .order_by(Attachment.id)
    ).all()

    assert image.content_id == "logo@example.net"
    assert image.blob.data == logo
    assert scan.blob.data is None
    assert attachment_bytes(scan) == SCAN
