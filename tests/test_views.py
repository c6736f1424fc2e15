"""Web screens through Flask's test client: sign-in, CSRF, queue, ticket page, downloads, Dutch."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from inbox.enums import RequestType
from inbox.extensions import db
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import Attachment, Message
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.user import Role
from inbox.models.workflow import StepStatus
from inbox.services.intake import import_path
from inbox.services.tickets import NewTicket, open_ticket, sla_policy
from inbox.services.users import create_user
from inbox.services.workflows import instance_of, next_steps_due, step_definition
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AuthActions
from tests.factories import make_mail

IMPORTED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
"""Fallback receipt time for imported files. Every test mail has a Date header, so none uses it."""

ACCESS_MAIL = {
    "subject": "Request for access",
    "body": "Under article 15 GDPR I ask for a copy of all personal data you hold about me.",
    "date": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
}
ERASURE_MAIL = {
    "subject": "Please delete my data",
    "body": "I want you to erase all my personal data under article 17 GDPR.",
    "sender": "Eva de Vries <eva@example.net>",
    "date": datetime(2026, 10, 20, 9, 0, tzinfo=UTC),
}
BREACH_MAIL = {
    "subject": "Data breach at the Utrecht office",
    "body": "A laptop with unencrypted customer records was stolen from a car this morning. "
    "This is a personal data breach.",
    "sender": "Piet Bakker <piet@example.org>",
    "date": datetime(2026, 11, 5, 9, 0, tzinfo=UTC),
}

ACCESS_DUE = datetime(2026, 12, 2, 22, 59, 59, tzinfo=UTC)
"""Due date of ACCESS_MAIL: the end of 2 December 2026 in Amsterdam, one month after receipt."""
BREACH_DUE = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
"""Due date of ACCESS_MAIL retyped as a breach: 72 elapsed hours after receipt."""

REFERENCE_LINK = re.compile(r'href="/tickets/([A-Z]+-\d{4}-\d{5})"')
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
DUE_FACT = re.compile(r'<dd id="ticket-due">([^<]*)</dd>')


def import_mails(app: Flask, folder: Path, *mails: bytes) -> list[str]:
    """Import raw mails through the file importer and return the ticket references, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, raw in enumerate(mails):
        (folder / f"{index:03d}.eml").write_bytes(raw)
    with app.app_context():
        result = import_path(db.session, folder, app.config, IMPORTED_AT)
        db.session.remove()
    return result.references


def make_html_mail() -> bytes:
    """Build an access request with a hostile HTML part and a PDF attachment."""
    message = EmailMessage()
    message["From"] = "Jan Jansen <jan@example.net>"
    message["To"] = "privacy@example.org"
    message["Subject"] = "Request for access"
    message["Date"] = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    message["Message-ID"] = make_msgid(domain="example.net")
    message.set_content(ACCESS_MAIL["body"])
    message.add_alternative(
        "<html><body><p>Under <b>article 15 GDPR</b> I ask for a copy of my personal data.</p>"
        "<script>alert('stolen session')</script>"
        "<p onclick=\"alert('x')\">Kind regards, Jan</p></body></html>",
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4 copy of my passport",
        maintype="application",
        subtype="pdf",
        filename="passport-copy.pdf",
    )
    return message.as_bytes()


def queue_references(html: str) -> list[str]:
    """Return the ticket references linked from a queue page, top to bottom."""
    return REFERENCE_LINK.findall(html)


def csrf_token_of(html: str) -> str:
    """Return the first CSRF token of a page."""
    match = CSRF_INPUT.search(html)
    assert match is not None, "no csrf_token input on the page"
    return match.group(1)


def due_shown(html: str) -> str:
    """Return the due date as the ticket page shows it."""
    match = DUE_FACT.search(html)
    assert match is not None, "no due date on the ticket page"
    return match.group(1)


def load_ticket(reference: str) -> Ticket:
    """Load a ticket by reference with a fresh session."""
    db.session.expire_all()
    return db.session.scalars(select(Ticket).where(Ticket.reference == reference)).one()


def audit_events(ticket: Ticket, tag: AuditTag) -> list[AuditEvent]:
    """Return the ticket's audit events with one tag, oldest first."""
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.ticket_id == ticket.id, AuditEvent.tag == str(tag))
            .order_by(AuditEvent.id)
        )
    )


@pytest.fixture
def three_tickets(app: Flask, tmp_path: Path) -> dict[str, str]:
    """Import an access request, an erasure request and a breach, keyed by type."""
    references = import_mails(
        app,
        tmp_path / "three",
        make_mail(**ACCESS_MAIL),
        make_mail(**ERASURE_MAIL),
        make_mail(**BREACH_MAIL),
    )
    return dict(zip(("access", "erasure", "breach"), references, strict=True))


@pytest.fixture
def html_ticket(app: Flask, tmp_path: Path) -> str:
    """Import the HTML mail with an attachment and return its reference."""
    (reference,) = import_mails(app, tmp_path / "html", make_html_mail())
    return reference


def test_queue_requires_login(client: FlaskClient) -> None:
    response = client.get("/")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_ticket_page_requires_login(client: FlaskClient, three_tickets: dict[str, str]) -> None:
    response = client.get(f"/tickets/{three_tickets['access']}")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_login_wrong_password_fails(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.login(password="wrong-password")

    assert response.status_code == 200
    assert "Unknown e-mail address or wrong password." in response.text
    assert client.get("/").status_code == 302


def test_login_unknown_address_fails(auth: AuthActions) -> None:
    response = auth.login(email="nobody@example.org")

    assert "Unknown e-mail address or wrong password." in response.text


def test_login_succeeds(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.login()

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_follows_safe_next(client: FlaskClient, admin: Any) -> None:
    response = client.post(
        "/login?next=/tickets/PRQ-2026-00001",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    )

    assert response.headers["Location"] == "/tickets/PRQ-2026-00001"


def test_login_ignores_offsite_next(client: FlaskClient, admin: Any) -> None:
    response = client.post(
        "/login?next=//evil.example/", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )

    assert response.headers["Location"] == "/"


def test_csrf_rejects_post_without_token(make_app: Any) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()

    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    assert response.status_code == 400


def test_csrf_accepts_login_with_token(make_app: Any) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="test"
        )
        db.session.commit()
    client = app.test_client()
    token = csrf_token_of(client.get("/login").text)

    response = client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    )

    assert response.status_code == 302


def test_csrf_rejects_type_change_without_token(make_app: Any, tmp_path: Path) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="test"
        )
        db.session.commit()
    (reference,) = import_mails(app, tmp_path / "csrf", make_mail(**ACCESS_MAIL))
    client = app.test_client()
    token = csrf_token_of(client.get("/login").text)
    client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    )

    response = client.post(f"/tickets/{reference}/type", data={"type": "erasure"})

    assert response.status_code == 400
    with app.app_context():
        assert load_ticket(reference).type == "access"


def test_queue_sorted_by_due_date(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    references = queue_references(client.get("/").text)

    # Due: breach 8 Nov (72 hours), erasure 20 Nov, access 2 Dec. The receipt order differs.
    assert references == [
        three_tickets["breach"],
        three_tickets["erasure"],
        three_tickets["access"],
    ]


def test_queue_filters_by_type(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    references = queue_references(client.get("/?type=erasure").text)

    assert references == [three_tickets["erasure"]]


def test_queue_ignores_unknown_type_filter(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    references = queue_references(client.get("/?type=nonsense").text)

    assert len(references) == 3


def test_queue_filters_by_status(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()
    close_as_admin(client, three_tickets["access"])

    closed = queue_references(client.get("/?status=closed").text)
    open_ = queue_references(client.get("/").text)
    everything = queue_references(client.get("/?status=all").text)

    assert closed == [three_tickets["access"]]
    assert three_tickets["access"] not in open_
    assert len(open_) == 2
    assert len(everything) == 3


def test_queue_empty_filter_says_so(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    response = client.get("/?type=portability")

    assert "No tickets match these filters." in response.text


def test_queue_paginates(make_app: Any, tmp_path: Path) -> None:
    app = make_app(PAGE_SIZE=2)
    with app.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="test"
        )
        db.session.commit()
    breach, erasure, access = import_mails(
        app,
        tmp_path / "pages",
        make_mail(**BREACH_MAIL),
        make_mail(**ERASURE_MAIL),
        make_mail(**ACCESS_MAIL),
    )
    client = app.test_client()
    AuthActions(client).login()

    first = client.get("/")
    second = client.get("/?page=2")
    beyond = client.get("/?page=3")

    assert queue_references(first.text) == [breach, erasure]
    assert "Page 1 of 2 (3 tickets)" in first.text
    assert 'href="/?page=2' in first.text
    assert queue_references(second.text) == [access]
    assert 'href="/?page=1' in second.text
    assert queue_references(beyond.text) == []


def test_ticket_page_shows_text(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    response = client.get(f"/tickets/{three_tickets['erasure']}")

    assert response.status_code == 200
    assert "I want you to erase all my personal data" in response.text
    assert "eva@example.net" in response.text
    assert "Erasure request" in response.text


def test_ticket_page_sanitises_html(
    client: FlaskClient, auth: AuthActions, html_ticket: str
) -> None:
    auth.login()

    page = client.get(f"/tickets/{html_ticket}").text

    assert "<b>article 15 GDPR</b>" in page
    assert "Kind regards, Jan" in page
    assert "<script" not in page
    assert "stolen session" not in page
    assert "onclick" not in page


def test_ticket_page_lists_attachments(
    client: FlaskClient, auth: AuthActions, html_ticket: str
) -> None:
    auth.login()

    page = client.get(f"/tickets/{html_ticket}").text

    assert "passport-copy.pdf" in page
    assert "application/pdf" in page


def test_type_change_recomputes_due(
    app: Flask, client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["access"]
    auth.login()

    response = client.post(f"/tickets/{reference}/type", data={"type": "breach"})

    assert response.status_code == 302
    ticket = load_ticket(reference)
    assert ticket.type == "breach"
    assert ticket.due_at == BREACH_DUE


def test_type_change_writes_audit_event(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["access"]
    auth.login()

    client.post(f"/tickets/{reference}/type", data={"type": "breach"})

    (event,) = audit_events(load_ticket(reference), AuditTag.TICKET_TYPE_CHANGE)
    assert event.actor == ADMIN_EMAIL
    assert event.data["from"] == "access"
    assert event.data["to"] == "breach"
    assert datetime.fromisoformat(event.data["due_from"]) == ACCESS_DUE
    assert datetime.fromisoformat(event.data["due_to"]) == BREACH_DUE


def test_type_change_shown_on_page(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["access"]
    auth.login()

    page = client.post(
        f"/tickets/{reference}/type", data={"type": "breach"}, follow_redirects=True
    ).text

    assert "Type changed; the due date was recomputed." in page
    assert 'data-type="breach"' in page
    assert "Data breach" in page
    assert due_shown(page).startswith("5 Nov 2026")
    assert str(AuditTag.TICKET_TYPE_CHANGE) in page
    assert "Access request → Data breach" in page


def test_type_change_to_same_type_not_audited(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["access"]
    auth.login()

    client.post(f"/tickets/{reference}/type", data={"type": "access"})

    assert audit_events(load_ticket(reference), AuditTag.TICKET_TYPE_CHANGE) == []


def test_type_change_unknown_type_rejected(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["access"]
    auth.login()

    response = client.post(f"/tickets/{reference}/type", data={"type": "nonsense"})

    assert response.status_code == 400
    assert load_ticket(reference).type == "access"


def test_status_change_audited(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["erasure"]
    auth.login()

    page = client.post(
        f"/tickets/{reference}/status", data={"status": "waiting"}, follow_redirects=True
    ).text

    ticket = load_ticket(reference)
    (event,) = audit_events(ticket, AuditTag.TICKET_STATUS_CHANGE)
    assert ticket.status == "waiting"
    assert event.actor == ADMIN_EMAIL
    assert event.data == {"from": "new", "to": "waiting"}
    assert "Status changed." in page
    assert "New → Waiting for requester" in page
    assert "Waiting for requester" in page


def close_as_admin(client: FlaskClient, reference: str) -> None:
    """Close a ticket through the close form, overriding open steps as the admin may."""
    client.post(
        f"/tickets/{reference}/close",
        data={"outcome": "withdrawn", "override_reason": "The requester withdrew by phone."},
    )


def test_close_form_sets_closed_at(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["erasure"]
    auth.login()

    close_as_admin(client, reference)

    assert load_ticket(reference).closed_at is not None


def test_status_form_cannot_close(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    reference = three_tickets["erasure"]
    auth.login()

    response = client.post(f"/tickets/{reference}/status", data={"status": "closed"})

    assert response.status_code == 400
    assert load_ticket(reference).closed_at is None


def test_raw_download_is_attachment(
    client: FlaskClient, auth: AuthActions, html_ticket: str
) -> None:
    auth.login()
    ticket = load_ticket(html_ticket)
    message = ticket.messages[0]

    response = client.get(f"/tickets/{html_ticket}/messages/{message.id}/raw")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{html_ticket}-{message.id}.eml"'
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/octet-stream"
    assert b"<script>alert('stolen session')</script>" in response.data


def test_attachment_download_is_attachment(
    client: FlaskClient, auth: AuthActions, html_ticket: str
) -> None:
    auth.login()
    ticket = load_ticket(html_ticket)
    item = db.session.scalars(
        select(Attachment).join(Message).where(Message.ticket_id == ticket.id)
    ).one()

    response = client.get(f"/tickets/{html_ticket}/attachments/{item.id}")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="passport-copy.pdf"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data == b"%PDF-1.4 copy of my passport"


def test_attachment_of_other_ticket_not_found(
    client: FlaskClient, auth: AuthActions, html_ticket: str, three_tickets: dict[str, str]
) -> None:
    auth.login()
    item = db.session.scalars(select(Attachment)).one()

    response = client.get(f"/tickets/{three_tickets['access']}/attachments/{item.id}")

    assert response.status_code == 404


def test_unknown_reference_not_found(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    response = client.get("/tickets/PRQ-2099-99999")

    assert response.status_code == 404
    assert "Ticket PRQ-2099-99999 does not exist." in response.text


def test_queue_dutch_from_browser_language(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    page = client.get("/", headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"}).text

    assert '<html lang="nl">' in page
    for word in ("Wachtrij", "Kenmerk", "Verzoeker", "Ontvangen", "Resterende tijd"):
        assert word in page
    for word in ("Inzageverzoek", "Verwijderverzoek", "Datalek"):
        assert word in page


def test_ticket_page_dutch_from_browser_language(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    page = client.get(f"/tickets/{three_tickets['access']}", headers={"Accept-Language": "nl"}).text

    for word in ("Inzageverzoek", "Uiterste datum", "Soort wijzigen", "Audittrail"):
        assert word in page


def test_login_page_dutch_from_browser_language(client: FlaskClient) -> None:
    page = client.get("/login", headers={"Accept-Language": "nl"}).text

    assert "Inloggen" in page
    assert "Wachtwoord" in page


def test_language_switch_to_dutch(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    response = client.post("/language/nl", data={"next": "/?type=access"})
    page = client.get("/", headers={"Accept-Language": "en"}).text

    assert response.headers["Location"] == "/?type=access"
    assert "Wachtrij" in page
    assert "Inzageverzoek" in page


def test_language_switch_back_to_english(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()
    client.post("/language/nl")

    client.post("/language/en")
    page = client.get("/", headers={"Accept-Language": "nl"}).text

    assert "Queue" in page
    assert "Wachtrij" not in page


def test_language_switch_ignores_unknown_code(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    client.post("/language/xx")
    page = client.get("/", headers={"Accept-Language": "nl"}).text

    assert "Wachtrij" in page


def test_dutch_flash_after_type_change(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()
    client.post("/language/nl")

    page = client.post(
        f"/tickets/{three_tickets['access']}/type",
        data={"type": "erasure"},
        follow_redirects=True,
    ).text

    assert "Soort gewijzigd. De uiterste datum is opnieuw berekend." in page
    assert "Verwijderverzoek" in page


def queue_row(html: str, reference: str) -> str:
    """Return the table row of one ticket on a queue page."""
    start = html.index(f'value="{reference}"')
    return html[start : html.index("</tr>", start)]


def count_statements(client: FlaskClient, path: str) -> int:
    """Count the SQL statements of one GET request, after a first request loaded the session."""
    client.get(path)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        client.get(path)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return len(statements)


def open_fresh_ticket(app: Flask) -> Ticket:
    """Open an access request received now, so none of its steps is overdue."""
    new = NewTicket(
        request_type=RequestType.ACCESS, received_at=utcnow(), requester_email="a@b.example"
    )
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    db.session.commit()
    return ticket


def test_queue_next_step_due_shown(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    ticket = open_fresh_ticket(app)

    step = next_steps_due(db.session, [ticket.id])[ticket.id]

    row = queue_row(client.get("/").text, ticket.reference)

    assert step_definition(step).text("title", "en") in row


def test_queue_next_step_is_earliest_open(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    ticket = open_fresh_ticket(app)
    instance = instance_of(db.session, ticket)
    assert instance is not None
    dated = sorted(
        (s for s in instance.steps if s.due_at is not None and s.status == StepStatus.OPEN),
        key=lambda s: (s.due_at, s.position),
    )
    first, second = dated[0], next(s for s in dated if s.due_at > dated[0].due_at)
    for step in dated:
        if step.due_at == first.due_at:
            step.status = StepStatus.SKIPPED
    db.session.commit()

    row = queue_row(client.get("/").text, ticket.reference)

    assert step_definition(second).text("title", "en") in row
    assert step_definition(first).text("title", "en") not in row


def test_queue_next_step_title_in_dutch(client: FlaskClient, auth: AuthActions, app: Flask) -> None:
    auth.login()
    ticket = open_fresh_ticket(app)
    step = next_steps_due(db.session, [ticket.id])[ticket.id]

    row = queue_row(client.get("/", headers={"Accept-Language": "nl"}).text, ticket.reference)

    assert step_definition(step).text("title", "nl") in row


def test_queue_next_step_overdue_highlighted(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    row = queue_row(client.get("/").text, three_tickets["access"])

    assert 'class="next-step overdue"' in row
    assert "overdue</span>" in row


def test_queue_next_step_not_overdue_plain(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    ticket = open_fresh_ticket(app)

    row = queue_row(client.get("/").text, ticket.reference)

    assert 'class="next-step"' in row
    assert 'badge warn">overdue' not in row


def test_queue_next_step_queries_per_page(
    client: FlaskClient, auth: AuthActions, app: Flask
) -> None:
    auth.login()
    open_fresh_ticket(app)
    one_ticket = count_statements(client, "/")
    for _index in range(4):
        open_fresh_ticket(app)

    five_tickets = count_statements(client, "/")

    assert five_tickets == one_ticket


def test_ticket_page_folds_quoted_text(
    client: FlaskClient, auth: AuthActions, app: Flask, tmp_path: Path
) -> None:
    auth.login()
    body = (
        "Under article 15 GDPR I ask for a copy of my personal data.\n"
        "\n"
        "On Mon, 2 Nov 2026 at 10:00, Privacy Desk <privacy@example.org> wrote:\n"
        "> We received your earlier question about the newsletter.\n"
    )
    (reference,) = import_mails(app, tmp_path / "quoted", make_mail(body=body))

    page = client.get(f"/tickets/{reference}").text
    folded = page[page.index('<details class="quoted">') :]

    assert "<summary>Quoted text</summary>" in folded
    assert "We received your earlier question" in folded
    assert "I ask for a copy of my personal data." in page[: page.index('<details class="quoted">')]


def test_ticket_page_signature_folded(
    client: FlaskClient, auth: AuthActions, app: Flask, tmp_path: Path
) -> None:
    auth.login()
    body = "Please erase my personal data under article 17 GDPR.\n-- \nEva de Vries\nUtrecht\n"
    (reference,) = import_mails(app, tmp_path / "signature", make_mail(body=body))

    page = client.get(f"/tickets/{reference}").text
    folded = page[page.index('<details class="quoted">') :]

    assert "Eva de Vries\nUtrecht" in folded
    assert "Please erase my personal data" not in folded


def test_ticket_page_plain_text_not_folded(
    client: FlaskClient, auth: AuthActions, three_tickets: dict[str, str]
) -> None:
    auth.login()

    page = client.get(f"/tickets/{three_tickets['erasure']}").text

    assert '<details class="quoted"' not in page


def test_ticket_page_html_mail_not_split(
    client: FlaskClient, auth: AuthActions, html_ticket: str
) -> None:
    auth.login()

    page = client.get(f"/tickets/{html_ticket}").text

    assert '<div class="body html">' in page
    assert '<details class="quoted"' not in page
