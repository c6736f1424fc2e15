"""Evidence files uploaded on checklist steps: storage by hash, audit, download, limits."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from inbox.enums import RequestType
from inbox.extensions import db
from inbox.mail.outgoing import MailFile
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import Attachment, Blob
from inbox.models.ticket import Ticket
from inbox.models.workflow import StepNote, SystemSearch, WorkflowStep
from inbox.services.replies import AttachmentTooLargeError
from inbox.services.tickets import NewTicket, open_ticket, sla_policy
from inbox.services.verification import (
    EVIDENCE_DIRECTION,
    SearchRecordInput,
    add_evidence_note,
    add_search_record,
)
from inbox.services.workflows import WorkflowStateError
from tests.conftest import AuthActions
from tests.factories import step_of

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AGENT = "agent@example.org"
SCREENSHOT = b"\x89PNG\r\n\x1a\n screenshot of the CRM search"


def new_ticket(app: Flask) -> Ticket:
    new = NewTicket(
        request_type=RequestType.ACCESS, received_at=RECEIVED, requester_email="a@b.example"
    )
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    db.session.commit()
    return ticket


def last_event(ticket: Ticket, tag: AuditTag) -> AuditEvent:
    return db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.ticket_id == ticket.id, AuditEvent.tag == str(tag))
        .order_by(AuditEvent.id.desc())
    ).first()


def upload(data: bytes = SCREENSHOT, name: str = "crm-search.png") -> MailFile:
    return MailFile(name, "image/png", data)


def note_url(ticket: Ticket, step: WorkflowStep, action: str = "note") -> str:
    return f"/tickets/{ticket.reference}/steps/{step.id}/{action}"


def test_evidence_note_stores_attachment(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    add_evidence_note(db.session, step, AGENT, "CRM searched", upload())
    db.session.commit()
    note = db.session.scalars(select(StepNote).where(StepNote.step_pk == step.id)).one()

    assert note.evidence is not None
    assert note.evidence.filename == "crm-search.png"
    assert note.evidence.sha256 == hashlib.sha256(SCREENSHOT).hexdigest()
    assert note.evidence.blob is not None
    assert note.evidence.blob.data == SCREENSHOT
    assert note.evidence.message.ticket_id == ticket.id
    assert note.evidence.message.direction == EVIDENCE_DIRECTION


def test_evidence_note_is_audited(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    note = add_evidence_note(db.session, step, AGENT, "CRM searched", upload())
    db.session.commit()
    event = last_event(ticket, AuditTag.STEP_NOTE)

    assert event.data["note"] == note.id
    assert event.actor == AGENT
    assert event.data["step"] == "search_systems"
    assert event.data["attachment_sha256"] == hashlib.sha256(SCREENSHOT).hexdigest()
    assert event.data["attachment_size"] == len(SCREENSHOT)


def test_evidence_note_file_without_text(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    add_evidence_note(db.session, step, AGENT, "", upload())
    db.session.commit()

    assert db.session.scalar(select(func.count()).select_from(StepNote)) == 1


def test_evidence_note_needs_text_or_file(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    with pytest.raises(WorkflowStateError, match="characters or a file"):
        add_evidence_note(db.session, step, AGENT, "  ", None)


def test_evidence_same_file_one_blob(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    add_evidence_note(db.session, step, AGENT, "first", upload())
    add_evidence_note(db.session, step, AGENT, "second", upload(name="again.png"))
    db.session.commit()

    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 2
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 1


def test_evidence_over_limit_rejected(app: Flask) -> None:
    app.config["MAX_ATTACHMENT_BYTES"] = 10
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    with pytest.raises(
        AttachmentTooLargeError,
        match=f"'crm-search.png' has {len(SCREENSHOT)} bytes; the limit is 10 bytes",
    ):
        add_evidence_note(db.session, step, AGENT, "CRM", upload())


def test_search_record_with_upload(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")
    record = SearchRecordInput(system="CRM", result="data_found", upload=upload())

    row = add_search_record(db.session, step, record, AGENT)
    db.session.commit()
    event = last_event(ticket, AuditTag.SEARCH_RECORD_ADD)

    assert row.evidence is not None
    assert row.evidence.blob is not None
    assert event.data["attachment"] == row.evidence.id
    assert event.data["uploaded"] is True
    assert event.data["attachment_sha256"] == hashlib.sha256(SCREENSHOT).hexdigest()


def test_search_record_upload_and_choice_rejected(app: Flask) -> None:
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")
    record = SearchRecordInput(system="CRM", result="data_found", attachment_id=1, upload=upload())

    with pytest.raises(WorkflowStateError, match="not both"):
        add_search_record(db.session, step, record, AGENT)


def test_note_form_uploads_evidence(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    response = client.post(
        note_url(ticket, step),
        data={"text": "Mail archive searched", "evidence": (io.BytesIO(SCREENSHOT), "mail.png")},
        content_type="multipart/form-data",
    )
    page = client.get(f"/tickets/{ticket.reference}").text
    attachment = db.session.scalars(select(Attachment)).one()

    assert response.status_code == 302
    assert f'/tickets/{ticket.reference}/attachments/{attachment.id}">mail.png</a>' in page


def test_note_form_without_file_still_works(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    client.post(
        note_url(ticket, step),
        data={"text": "Only a note", "evidence": (io.BytesIO(b""), "")},
        content_type="multipart/form-data",
    )

    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 0
    assert db.session.scalar(select(func.count()).select_from(StepNote)) == 1


def test_note_form_file_over_limit(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    app.config["MAX_ATTACHMENT_BYTES"] = 10
    auth.login()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    response = client.post(
        note_url(ticket, step),
        data={"text": "CRM", "evidence": (io.BytesIO(SCREENSHOT), "big.png")},
        content_type="multipart/form-data",
    )
    page = client.get(response.headers["Location"]).text

    assert "The file big.png is larger than 10 bytes" in page
    assert db.session.scalar(select(func.count()).select_from(StepNote)) == 0


def test_search_form_uploads_evidence(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    client.post(
        note_url(ticket, step, "search"),
        data={
            "system": "HR system",
            "result": "nothing_found",
            "attachment": "",
            "evidence": (io.BytesIO(SCREENSHOT), "hr.png"),
        },
        content_type="multipart/form-data",
    )
    record = db.session.scalars(select(SystemSearch)).one()
    page = client.get(f"/tickets/{ticket.reference}").text

    assert record.evidence is not None
    assert f'attachments/{record.evidence.id}">hr.png</a>' in page


def test_evidence_forms_are_multipart(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app)
    step = step_of(ticket, "search_systems")

    page = client.get(f"/tickets/{ticket.reference}").text

    for action in ("note", "search"):
        start = page.index(f'action="{note_url(ticket, step, action)}"')
        assert 'enctype="multipart/form-data"' in page[start : page.index(">", start)]
    assert 'type="file" name="evidence"' in page


def test_evidence_download_is_attachment(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    ticket = new_ticket(app)
    add_evidence_note(db.session, step_of(ticket, "search_systems"), AGENT, "x", upload())
    db.session.commit()
    attachment = db.session.scalars(select(Attachment)).one()

    response = client.get(f"/tickets/{ticket.reference}/attachments/{attachment.id}")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="crm-search.png"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data == SCREENSHOT


def test_evidence_message_not_in_conversation(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    ticket = new_ticket(app)
    add_evidence_note(db.session, step_of(ticket, "search_systems"), AGENT, "x", upload())
    db.session.commit()

    page = client.get(f"/tickets/{ticket.reference}").text

    assert 'class="message evidence' not in page


def test_evidence_offered_for_reply_and_search(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    ticket = new_ticket(app)
    add_evidence_note(db.session, step_of(ticket, "search_systems"), AGENT, "x", upload())
    db.session.commit()
    attachment = db.session.scalars(select(Attachment)).one()

    page = client.get(f"/tickets/{ticket.reference}").text

    assert f'name="attach" value="{attachment.id}"' in page
    assert f'<option value="{attachment.id}">crm-search.png</option>' in page


def test_evidence_kept_in_audit_chain(app: Flask, runner: Any) -> None:
    ticket = new_ticket(app)
    add_evidence_note(db.session, step_of(ticket, "search_systems"), AGENT, "x", upload())
    db.session.commit()

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code == 0
