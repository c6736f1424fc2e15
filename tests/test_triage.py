"""Triage: confirm and correct types, bulk assign and retype, merge duplicates, export examples."""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app
from flask.testing import FlaskClient
from sqlalchemy import select

from inbox.audit import verify_chain
from inbox.cli_triage import register_triage_commands
from inbox.extensions import db
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.correction import TypeCorrection
from inbox.models.message import Message
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.services.intake import import_path
from inbox.services.tickets import sla_policy
from inbox.services.triage import (
    RequesterMismatchError,
    confirm_type,
    export_corrections,
    merge_tickets,
    retype_with_correction,
)
from inbox.services.users import create_user
from inbox.sla import compute_due_at
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.factories import incoming, make_mail

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""Import time of the test mails; their receipt time comes from their Date header."""

AGENT_EMAIL = "agent@example.org"
AGENT_PASSWORD = "agent-password-123"

ACCESS_MAIL = {
    "subject": "Inzageverzoek",
    "body": "Ik wil graag weten welke persoonsgegevens u van mij verwerkt (art. 15 AVG).",
}
MIXED_MAIL = {
    "subject": "My data",
    "body": "Please delete my data and also send me a copy of what you hold about me.",
}
BREACH_MAIL = {
    "subject": "Data leak",
    "body": "We sent an email with customer data to the wrong recipient by mistake.",
}

_folder_numbers = itertools.count()


def import_mails(app: Flask, tmp_path: Path, *mails: bytes) -> list[Ticket]:
    """Write the mails as .eml files and import them; return their tickets in order."""
    folder = tmp_path / f"mail-{next(_folder_numbers)}"
    folder.mkdir()
    for number, raw in enumerate(mails):
        (folder / f"{number:03d}.eml").write_bytes(raw)
    result = import_path(db.session, folder, app.config, NOW)
    db.session.commit()
    return [
        db.session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        for reference in result.references
    ]


def events_of(ticket: Ticket, tag: AuditTag) -> list[AuditEvent]:
    """Return the audit events with ``tag`` on ``ticket``, oldest first."""
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.ticket_id == ticket.id, AuditEvent.tag == str(tag))
            .order_by(AuditEvent.id)
        )
    )


def corrections_of(ticket: Ticket) -> list[TypeCorrection]:
    """Return the type corrections stored for ``ticket``, oldest first."""
    return list(
        db.session.scalars(
            select(TypeCorrection)
            .where(TypeCorrection.ticket_id == ticket.id)
            .order_by(TypeCorrection.id)
        )
    )


def bulk_form(action: str, references: list[str], **fields: str) -> dict[str, Any]:
    """Return the POST data of the queue's bulk form."""
    data: dict[str, Any] = {"action": action, "assignee": "", "type": "access", "next": "/"}
    data.update(fields)
    data["ticket"] = references
    return data


@pytest.fixture
def signed_in(client: FlaskClient, auth: Any) -> FlaskClient:
    """The test client signed in as the admin."""
    auth.login()
    return client


@pytest.fixture
def agent(app: Flask) -> Any:
    """An agent account."""
    user = create_user(
        db.session,
        email=AGENT_EMAIL,
        password=AGENT_PASSWORD,
        role=Role.AGENT,
        actor="test",
        name="Agent Smit",
    )
    db.session.commit()
    return user


def test_confirm_type_writes_audit_event(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))

    response = signed_in.post(f"/triage/tickets/{ticket.reference}/confirm")

    assert response.status_code == 302
    db.session.refresh(ticket)
    assert ticket.confidence == 1.0
    events = events_of(ticket, AuditTag.TICKET_TYPE_CONFIRM)
    assert len(events) == 1
    assert events[0].actor == ADMIN_EMAIL
    assert events[0].data["type"] == ticket.type


def test_confirm_type_stores_example(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))

    signed_in.post(f"/triage/tickets/{ticket.reference}/confirm")

    (correction,) = corrections_of(ticket)
    assert correction.corrected_type == ticket.type
    assert correction.predicted_type == ticket.type
    assert correction.subject == MIXED_MAIL["subject"]
    assert correction.text == MIXED_MAIL["body"]
    assert correction.language == ticket.language
    assert correction.message_id == ticket.messages[0].id


def test_confirm_type_twice_stores_one_example(app: Flask, tmp_path: Path) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))

    first = confirm_type(db.session, ticket, "tester")
    second = confirm_type(db.session, ticket, "tester")
    db.session.commit()

    assert first is True
    assert second is False
    assert len(corrections_of(ticket)) == 1


def test_confirm_type_redirects_to_queue(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))

    response = signed_in.post(
        f"/triage/tickets/{ticket.reference}/confirm", data={"next": "/?status=all"}
    )

    assert response.headers["Location"] == "/?status=all"


def test_confirm_type_ignores_offsite_next(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))

    response = signed_in.post(
        f"/triage/tickets/{ticket.reference}/confirm", data={"next": "//evil.example/"}
    )

    assert response.headers["Location"] == f"/tickets/{ticket.reference}"


def test_set_type_form_recomputes_due_date(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))
    old_due = ticket.due_at

    response = signed_in.post(f"/tickets/{ticket.reference}/type", data={"type": "breach"})

    assert response.status_code == 302
    db.session.refresh(ticket)
    assert ticket.type == "breach"
    assert ticket.due_at != old_due
    assert ticket.due_at == compute_due_at("breach", ticket.received_at, sla_policy(app.config))


def test_set_type_form_audits_change(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))

    signed_in.post(f"/tickets/{ticket.reference}/type", data={"type": "erasure"})

    (change,) = events_of(ticket, AuditTag.TICKET_TYPE_CHANGE)
    assert change.data["from"] == "access"
    assert change.data["to"] == "erasure"
    assert change.actor == ADMIN_EMAIL
    (confirmation,) = events_of(ticket, AuditTag.TICKET_TYPE_CONFIRM)
    assert confirmation.data["via"] == "retype"


def test_set_type_form_stores_correction(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))

    signed_in.post(f"/tickets/{ticket.reference}/type", data={"type": "erasure"})

    (correction,) = corrections_of(ticket)
    assert correction.predicted_type == "access"
    assert correction.corrected_type == "erasure"
    assert correction.actor == ADMIN_EMAIL
    db.session.refresh(ticket)
    assert ticket.confidence == 1.0


def test_set_type_form_same_type_stores_nothing(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))

    signed_in.post(f"/tickets/{ticket.reference}/type", data={"type": "access"})

    assert corrections_of(ticket) == []


def test_bulk_assign_audits_each_ticket(
    app: Flask, tmp_path: Path, signed_in: FlaskClient, agent: Any
) -> None:
    tickets = import_mails(
        app, tmp_path, make_mail(**ACCESS_MAIL), make_mail(**BREACH_MAIL, sender="b@example.net")
    )
    references = [t.reference for t in tickets]

    response = signed_in.post(
        "/triage/bulk", data=bulk_form("assign", references, assignee=str(agent.id))
    )

    assert response.status_code == 302
    for ticket in tickets:
        db.session.refresh(ticket)
        assert ticket.assignee_id == agent.id
        (event,) = events_of(ticket, AuditTag.TICKET_ASSIGNEE_CHANGE)
        assert event.data["to"] == AGENT_EMAIL
        assert event.data["from"] is None


def test_bulk_assign_to_nobody_unassigns(
    app: Flask, tmp_path: Path, signed_in: FlaskClient, agent: Any
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))
    signed_in.post(
        "/triage/bulk", data=bulk_form("assign", [ticket.reference], assignee=str(agent.id))
    )

    signed_in.post("/triage/bulk", data=bulk_form("assign", [ticket.reference], assignee=""))

    db.session.refresh(ticket)
    assert ticket.assignee_id is None
    events = events_of(ticket, AuditTag.TICKET_ASSIGNEE_CHANGE)
    assert events[-1].data["from"] == AGENT_EMAIL


def test_bulk_retype_recomputes_each_due_date(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    tickets = import_mails(
        app,
        tmp_path,
        make_mail(**ACCESS_MAIL),
        make_mail(**MIXED_MAIL, sender="m@example.net", date=datetime(2026, 11, 3, 9, tzinfo=UTC)),
    )

    signed_in.post(
        "/triage/bulk", data=bulk_form("retype", [t.reference for t in tickets], type="breach")
    )

    policy = sla_policy(app.config)
    for ticket in tickets:
        db.session.refresh(ticket)
        assert ticket.type == "breach"
        assert ticket.due_at == compute_due_at("breach", ticket.received_at, policy)
        assert len(events_of(ticket, AuditTag.TICKET_TYPE_CHANGE)) == 1
        assert corrections_of(ticket)[-1].corrected_type == "breach"


def test_bulk_unknown_reference_changes_nothing(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))

    response = signed_in.post(
        "/triage/bulk",
        data=bulk_form("retype", [ticket.reference, "PRQ-2026-99999"], type="breach"),
        follow_redirects=True,
    )

    assert b"PRQ-2026-99999" in response.data
    db.session.refresh(ticket)
    assert ticket.type == "access"


def test_bulk_without_tickets_asks_for_selection(signed_in: FlaskClient) -> None:
    response = signed_in.post("/triage/bulk", data=bulk_form("merge", []), follow_redirects=True)

    assert b"Tick at least one ticket first." in response.data


def import_duplicates(app: Flask, tmp_path: Path) -> tuple[Ticket, Ticket]:
    """Import two requests of one requester, the later one first; return (earlier, later)."""
    later, earlier = import_mails(
        app,
        tmp_path,
        make_mail(
            **MIXED_MAIL,
            sender="Jan Jansen <JAN@example.net>",
            date=datetime(2026, 11, 5, 9, tzinfo=UTC),
        ),
        make_mail(**ACCESS_MAIL, date=datetime(2026, 11, 2, 9, tzinfo=UTC)),
    )
    return earlier, later


def test_merge_keeps_earliest_clock(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    earlier, later = import_duplicates(app, tmp_path)
    reference, due_at, received_at = earlier.reference, earlier.due_at, earlier.received_at

    signed_in.post("/triage/bulk", data=bulk_form("merge", [later.reference, earlier.reference]))

    db.session.refresh(earlier)
    assert earlier.reference == reference
    assert earlier.received_at == received_at
    assert earlier.due_at == due_at
    assert earlier.status != "closed"


def test_merge_moves_messages(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    earlier, later = import_duplicates(app, tmp_path)
    moved_id = later.messages[0].id

    signed_in.post("/triage/bulk", data=bulk_form("merge", [later.reference, earlier.reference]))

    db.session.expire_all()
    assert db.session.get(Message, moved_id).ticket_id == earlier.id
    assert [m.subject for m in earlier.messages] == ["Inzageverzoek", "My data"]
    assert later.messages == []


def test_merge_closes_other_with_audit_events(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    earlier, later = import_duplicates(app, tmp_path)

    signed_in.post("/triage/bulk", data=bulk_form("merge", [later.reference, earlier.reference]))

    db.session.expire_all()
    assert later.status == "closed"
    assert later.closed_at is not None
    (kept_event,) = events_of(earlier, AuditTag.TICKET_MERGE)
    assert kept_event.data["merged"] == later.reference
    (closed_event,) = events_of(later, AuditTag.TICKET_MERGE)
    assert closed_event.data["kept"] == earlier.reference
    assert len(events_of(later, AuditTag.TICKET_STATUS_CHANGE)) == 1
    assert verify_chain(db.session).is_intact


def test_reply_citing_merged_reference_joins_kept_ticket(app: Flask, tmp_path: Path) -> None:
    earlier, later = import_duplicates(app, tmp_path)
    merge_tickets(db.session, [earlier, later], "tester")
    db.session.commit()
    reply = make_mail(subject=f"Re: [{later.reference}] My data", body="Any news?")

    (joined,) = import_mails(app, tmp_path, reply)

    assert joined.id == earlier.id
    assert later.status == "closed"


def test_merge_adds_other_type_as_secondary(app: Flask, tmp_path: Path) -> None:
    earlier, later = import_duplicates(app, tmp_path)
    other_type = later.type

    merge_tickets(db.session, [earlier, later], "tester")
    db.session.commit()

    assert other_type in earlier.secondary_types


def test_merge_different_requesters_rejected(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    first, second = import_mails(
        app,
        tmp_path,
        make_mail(**ACCESS_MAIL, sender="Jan Jansen <jan@example.net>"),
        make_mail(**MIXED_MAIL, sender="Piet Pieters <piet@example.com>"),
    )

    response = signed_in.post(
        "/triage/bulk",
        data=bulk_form("merge", [first.reference, second.reference]),
        follow_redirects=True,
    )

    assert b"jan@example.net" in response.data
    assert b"piet@example.com" in response.data
    db.session.expire_all()
    assert second.status != "closed"
    assert len(incoming(second)) == 1
    assert events_of(first, AuditTag.TICKET_MERGE) == []


def test_merge_different_requesters_raises(app: Flask, tmp_path: Path) -> None:
    first, second = import_mails(
        app,
        tmp_path,
        make_mail(**ACCESS_MAIL, sender="jan@example.net"),
        make_mail(**MIXED_MAIL, sender="piet@example.com"),
    )

    with pytest.raises(RequesterMismatchError, match="jan@example.net and piet@example.com"):
        merge_tickets(db.session, [first, second], "tester")


def test_merge_closed_ticket_rejected(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    earlier, later = import_duplicates(app, tmp_path)
    signed_in.post(
        f"/tickets/{later.reference}/close",
        data={"outcome": "withdrawn", "override_reason": "Sent twice by mistake."},
    )

    response = signed_in.post(
        "/triage/bulk",
        data=bulk_form("merge", [earlier.reference, later.reference]),
        follow_redirects=True,
    )

    assert f"{later.reference} is closed".encode() in response.data
    db.session.expire_all()
    assert len(incoming(earlier)) == 1


def test_merge_single_ticket_rejected(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))

    response = signed_in.post(
        "/triage/bulk", data=bulk_form("merge", [ticket.reference]), follow_redirects=True
    )

    assert b"Select at least two tickets to merge." in response.data


def correct_three_tickets(app: Flask, tmp_path: Path) -> list[Ticket]:
    """Import three requests, confirm one, retype one twice and leave the third alone."""
    tickets = import_mails(
        app,
        tmp_path,
        make_mail(**ACCESS_MAIL),
        make_mail(**MIXED_MAIL, sender="m@example.net"),
        make_mail(**BREACH_MAIL, sender="b@example.net"),
    )
    policy = sla_policy(app.config)
    confirm_type(db.session, tickets[0], "tester")
    retype_with_correction(db.session, tickets[1], "objection", policy, "tester")
    retype_with_correction(db.session, tickets[1], "portability", policy, "tester")
    db.session.commit()
    return tickets


def test_export_writes_one_example_per_ticket(app: Flask, tmp_path: Path) -> None:
    tickets = correct_three_tickets(app, tmp_path)
    out = tmp_path / "corrections"

    count = export_corrections(db.session, out)

    assert count == 2
    with (out / "MANIFEST.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["expected_type"] for r in rows] == ["access", "portability"]
    assert rows[1]["language"] == tickets[1].language
    first_lines = (out / rows[1]["file"]).read_text(encoding="utf-8").split("\n")
    assert first_lines[:3] == [f"Subject: {MIXED_MAIL['subject']}", "", MIXED_MAIL["body"]]


def test_export_readable_by_classify_eval(app: Flask, tmp_path: Path) -> None:
    classify_eval = pytest.importorskip("inbox.classify_eval")
    correct_three_tickets(app, tmp_path)
    out = tmp_path / "corrections"
    export_corrections(db.session, out)

    report = classify_eval.evaluate(out)

    assert report.total == 2
    assert [o.sample.expected.value for o in report.outcomes] == ["access", "portability"]
    assert report.outcomes[1].sample.subject == MIXED_MAIL["subject"]


def test_export_subject_newline_stays_on_first_line(app: Flask, tmp_path: Path) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))
    ticket.subject = "Line one\nexpected_type: breach"
    confirm_type(db.session, ticket, "tester")
    db.session.commit()
    out = tmp_path / "corrections"

    export_corrections(db.session, out)

    first_line = (out / "1.txt").read_text(encoding="utf-8").split("\n")[0]
    assert first_line == "Subject: Line one expected_type: breach"


def test_corrections_zip_matches_export(app: Flask, tmp_path: Path, signed_in: FlaskClient) -> None:
    correct_three_tickets(app, tmp_path)
    out = tmp_path / "corrections"
    export_corrections(db.session, out)

    response = signed_in.get("/triage/corrections.zip")

    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(archive.namelist()) == ["1.txt", "2.txt", "MANIFEST.csv"]
    for name in archive.namelist():
        assert archive.read(name).decode("utf-8") == (out / name).read_text(encoding="utf-8")
    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == str(AuditTag.CORRECTIONS_EXPORT))
    ).all()
    assert event.data["examples"] == 2


def test_corrections_zip_forbidden_for_agent(client: FlaskClient, auth: Any, agent: Any) -> None:
    auth.login(AGENT_EMAIL, AGENT_PASSWORD)

    response = client.get("/triage/corrections.zip")

    assert response.status_code == 403


def test_corrections_zip_allowed_for_manager(app: Flask, client: FlaskClient, auth: Any) -> None:
    create_user(
        db.session,
        email="manager@example.org",
        password="manager-password-1",
        role=Role.MANAGER,
        actor="test",
    )
    db.session.commit()
    auth.login("manager@example.org", "manager-password-1")

    response = client.get("/triage/corrections.zip")

    assert response.status_code == 200


def test_corrections_export_command_writes_manifest(app: Flask, tmp_path: Path) -> None:
    correct_three_tickets(app, tmp_path)
    register_triage_commands(app)
    out = tmp_path / "cli-export"

    result = app.test_cli_runner().invoke(args=["corrections", "export", str(out)])

    assert result.exit_code == 0, result.output
    assert "2 labelled examples" in result.output
    assert (out / "MANIFEST.csv").is_file()


def test_queue_shows_confidence_and_secondary_types(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))
    ticket.confidence = 0.4
    ticket.secondary_types = ["access"]
    db.session.commit()

    page = signed_in.get("/").get_data(as_text=True)

    assert "40%" in page
    assert "check type" in page
    assert "Access request" in page
    assert f"/triage/tickets/{ticket.reference}/confirm" in page
    assert 'form="bulk-form"' in page


def test_queue_hides_confirm_for_confident_ticket(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**ACCESS_MAIL))
    ticket.confidence = 0.9
    db.session.commit()

    page = signed_in.get("/").get_data(as_text=True)

    assert f"/triage/tickets/{ticket.reference}/confirm" not in page


def test_ticket_page_offers_confirm_until_confirmed(
    app: Flask, tmp_path: Path, signed_in: FlaskClient
) -> None:
    (ticket,) = import_mails(app, tmp_path, make_mail(**MIXED_MAIL))
    confirm_url = f"/triage/tickets/{ticket.reference}/confirm"

    before = signed_in.get(f"/tickets/{ticket.reference}").get_data(as_text=True)
    signed_in.post(confirm_url)
    after = signed_in.get(f"/tickets/{ticket.reference}").get_data(as_text=True)

    assert confirm_url in before
    assert confirm_url not in after
    assert "100%" in after


CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
"""The CSRF token in a rendered form."""


@pytest.fixture
def csrf_client(make_app: Any) -> Iterator[FlaskClient]:
    """A client of an app with CSRF protection on, signed in as the admin."""
    application = make_app(WTF_CSRF_ENABLED=True)
    with application.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="test"
        )
        db.session.commit()
        client = application.test_client()
        token = CSRF_FIELD.search(client.get("/login").get_data(as_text=True)).group(1)
        client.post(
            "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
        )
        yield client
        db.session.remove()


def test_bulk_without_csrf_token_rejected(csrf_client: FlaskClient) -> None:
    response = csrf_client.post("/triage/bulk", data=bulk_form("merge", ["PRQ-2026-00001"]))

    assert response.status_code == 400


def test_bulk_with_queue_csrf_token_accepted(csrf_client: FlaskClient, tmp_path: Path) -> None:
    (ticket,) = import_mails(current_app, tmp_path, make_mail(**ACCESS_MAIL))
    page = csrf_client.get("/").get_data(as_text=True)
    token = CSRF_FIELD.search(page).group(1)

    response = csrf_client.post(
        "/triage/bulk",
        data=bulk_form("retype", [ticket.reference], type="erasure", csrf_token=token),
    )

    assert response.status_code == 302
    db.session.refresh(ticket)
    assert ticket.type == "erasure"
