"""Fixes for what a new user found: approval skips, huge ids, error pages, throttling, layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from inbox.enums import RequestType
from inbox.extensions import db
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.mailbox import Mailbox
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.user import Role
from inbox.models.workflow import StepStatus, WorkflowStep
from inbox.services.replies import _format_day
from inbox.services.tickets import NewTicket, open_ticket, sla_policy
from inbox.services.users import (
    MAX_FAILED_SIGN_INS,
    SignInThrottledError,
    address_digest,
    authenticate,
    create_user,
    throttled_until,
)
from inbox.services.workflows import WorkflowStateError, check_step, skip_step
from inbox.views import CONTENT_SECURITY_POLICY
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AuthActions
from tests.factories import make_mail, step_of
from tests.test_views import ACCESS_MAIL, import_mails, load_ticket

HUGE = "99999999999999999999999"
"""A number far above 2**63 - 1, the largest integer SQLite and PostgreSQL store."""

MANAGER = "manager@example.org"
AGENT = "agent@example.org"
AGENT_PASSWORD = "pw-agent-12345"
RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make_staff() -> None:
    """Create a manager and an agent next to the admin."""
    create_user(db.session, email=MANAGER, password="pw-manager-123", role=Role.MANAGER, actor="t")
    create_user(db.session, email=AGENT, password=AGENT_PASSWORD, role=Role.AGENT, actor="t")
    db.session.commit()


def ticket_with_open_approval(app: Flask) -> Ticket:
    """Open an access request and decide to refuse it, which opens the approval step."""
    new = NewTicket(
        request_type=RequestType.ACCESS, received_at=RECEIVED, requester_email="a@b.example"
    )
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    check_step(db.session, step_of(ticket, "decide_outcome"), AGENT, "refused")
    db.session.commit()
    return ticket


@pytest.fixture
def access_ticket(app: Flask, tmp_path: Path) -> str:
    """Import one access request and return its reference."""
    (reference,) = import_mails(app, tmp_path / "one", make_mail(**ACCESS_MAIL))
    return reference


# Item 1: approval steps.


def test_skip_approval_rejected_for_agent(app: Flask) -> None:
    make_staff()
    ticket = ticket_with_open_approval(app)

    with pytest.raises(WorkflowStateError, match="only a manager or admin may skip it"):
        skip_step(db.session, step_of(ticket, "approve_refusal"), AGENT, "not needed")


@pytest.mark.parametrize("actor", [MANAGER, ADMIN_EMAIL])
def test_skip_approval_allowed_for_manager(app: Flask, admin: Any, actor: str) -> None:
    make_staff()
    ticket = ticket_with_open_approval(app)

    step = skip_step(db.session, step_of(ticket, "approve_refusal"), actor, "approved by phone")

    assert step.status == StepStatus.SKIPPED


def test_skip_task_allowed_for_agent(app: Flask) -> None:
    make_staff()
    ticket = ticket_with_open_approval(app)

    step = skip_step(db.session, step_of(ticket, "search_systems"), AGENT, "no systems apply")

    assert step.status == StepStatus.SKIPPED


def test_skip_approval_view_says_manager_only(app: Flask, client: FlaskClient) -> None:
    make_staff()
    ticket = ticket_with_open_approval(app)
    step = step_of(ticket, "approve_refusal")
    AuthActions(client).login(AGENT, AGENT_PASSWORD)

    page = client.post(
        f"/tickets/{ticket.reference}/steps/{step.id}/skip",
        data={"reason": "not needed"},
        follow_redirects=True,
    ).text

    assert "Only a manager or admin may skip an approval step." in page
    db.session.expire_all()
    assert db.session.get(WorkflowStep, step.id).status == StepStatus.OPEN


# Item 2: numbers too large for the database, and NUL characters.


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/tickets/{reference}/messages/" + HUGE + "/raw"),
        ("get", "/tickets/{reference}/attachments/" + HUGE),
        ("post", "/tickets/{reference}/steps/" + HUGE + "/check"),
        ("get", "/admin/mailboxes/" + HUGE),
        ("post", "/admin/mailboxes/" + HUGE + "/delete"),
    ],
)
def test_huge_url_id_not_found(
    client: FlaskClient, auth: AuthActions, access_ticket: str, method: str, path: str
) -> None:
    auth.login()

    response = getattr(client, method)(path.format(reference=access_ticket))

    assert response.status_code == 404
    assert f"No record has the number {HUGE}." in response.text


def test_huge_assignee_rejected(client: FlaskClient, auth: AuthActions, access_ticket: str) -> None:
    auth.login()
    step = step_of(load_ticket(access_ticket), "search_systems")

    response = client.post(
        f"/tickets/{access_ticket}/steps/{step.id}/assign", data={"assignee": HUGE}
    )

    assert response.status_code == 400
    assert f"User {HUGE} does not exist." in response.text


def test_huge_evidence_file_rejected(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    auth.login()
    step = step_of(load_ticket(access_ticket), "search_systems")

    response = client.post(
        f"/tickets/{access_ticket}/steps/{step.id}/search",
        data={"system": "CRM", "result": "data_found", "attachment": HUGE},
    )

    assert response.status_code == 400


def test_huge_queue_page_shows_empty_page(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    auth.login()

    response = client.get(f"/?page={HUGE}")

    assert response.status_code == 200


def test_nul_in_form_rejected(client: FlaskClient, auth: AuthActions, access_ticket: str) -> None:
    auth.login()
    step = step_of(load_ticket(access_ticket), "search_systems")

    response = client.post(
        f"/tickets/{access_ticket}/steps/{step.id}/note", data={"text": "a\x00b"}
    )

    assert response.status_code == 400
    assert "The field text contains a NUL character" in response.text


def test_nul_in_login_rejected(client: FlaskClient) -> None:
    response = client.post("/login", data={"email": "a\x00@example.org", "password": "x"})

    assert response.status_code == 400


def test_nul_in_query_rejected(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    response = client.get("/?type=access%00")

    assert response.status_code == 400


def test_nul_in_url_rejected(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    response = client.get("/tickets/PRQ%00")

    assert response.status_code == 400
    assert "The address contains a NUL character" in response.text


# Item 3: error pages.


def test_error_405_rendered_and_translated(client: FlaskClient) -> None:
    response = client.get("/logout", headers={"Accept-Language": "nl"})

    assert response.status_code == 405
    assert "Methode niet toegestaan" in response.text
    assert "POST" in response.headers["Allow"]
    assert "The method is not allowed" not in response.text


def test_error_400_rendered_and_translated(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    auth.login()

    response = client.post(
        f"/tickets/{access_ticket}/type",
        data={"type": "nonsense"},
        headers={"Accept-Language": "nl"},
    )

    assert response.status_code == 400
    assert "Ongeldig verzoek" in response.text
    assert 'class="top"' in response.text


def test_error_413_rendered(make_app: Any) -> None:
    app = make_app(MAX_CONTENT_LENGTH=1000)
    client = app.test_client()

    response = client.post("/login", data={"email": "a@example.org", "password": "x" * 5000})

    assert response.status_code == 413
    assert "Request too large" in response.text


def test_error_404_default_text_translated(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={"Accept-Language": "nl"})

    assert response.status_code == 404
    assert "Niet gevonden" in response.text
    assert "The requested URL was not found" not in response.text
    assert "Deze pagina bestaat niet." in response.text


def test_error_404_keeps_own_description(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    response = client.get("/tickets/PRQ-2099-99999")

    assert "Ticket PRQ-2099-99999 does not exist." in response.text


def test_csrf_failure_says_reload(make_app: Any) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()

    response = client.post(
        "/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Accept-Language": "nl"},
    )

    assert response.status_code == 400
    assert "Laad de pagina opnieuw en probeer het nog eens." in response.text
    assert "CSRF" not in response.text


# Item 4: the queue's status filter.


def test_queue_default_selects_all_open(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    page = client.get("/").text

    assert '<option value="active" selected>' in page


def test_queue_status_open_selects_open_only(
    app: Flask, client: FlaskClient, auth: AuthActions, tmp_path: Path
) -> None:
    new, opened = import_mails(
        app, tmp_path / "two", make_mail(**ACCESS_MAIL), make_mail(**ACCESS_MAIL)
    )
    auth.login()
    client.post(f"/tickets/{opened}/status", data={"status": "open"})

    page = client.get("/?status=open").text
    everything_open = client.get("/?status=active").text

    assert '<option value="open" selected>' in page
    assert opened in page
    assert new not in page
    assert new in everything_open
    assert opened in everything_open


# Item 5: sign-in throttling and security headers.


def fail_sign_ins(client: FlaskClient, email: str, count: int) -> None:
    """Post ``count`` sign-ins with a wrong password."""
    for _attempt in range(count):
        client.post("/login", data={"email": email, "password": "wrong-password"})


def test_login_throttled_after_five_failures(client: FlaskClient, admin: Any) -> None:
    fail_sign_ins(client, ADMIN_EMAIL, MAX_FAILED_SIGN_INS)

    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    assert response.status_code == 429
    assert "Too many failed sign-ins for this address." in response.text
    assert client.get("/").status_code == 302


def test_login_not_throttled_after_four_failures(client: FlaskClient, admin: Any) -> None:
    fail_sign_ins(client, ADMIN_EMAIL, MAX_FAILED_SIGN_INS - 1)

    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    assert response.status_code == 302


def test_login_throttle_counts_case_insensitively(client: FlaskClient, admin: Any) -> None:
    fail_sign_ins(client, ADMIN_EMAIL.upper(), MAX_FAILED_SIGN_INS)

    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    assert response.status_code == 429


def test_login_throttle_per_address(client: FlaskClient, admin: Any) -> None:
    fail_sign_ins(client, "nobody@example.org", MAX_FAILED_SIGN_INS)

    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    assert response.status_code == 302


def test_login_throttle_ends_after_lock(app: Flask, admin: Any) -> None:
    for _attempt in range(MAX_FAILED_SIGN_INS):
        authenticate(db.session, ADMIN_EMAIL, "wrong-password", utcnow())
    db.session.commit()

    with pytest.raises(SignInThrottledError):
        authenticate(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, utcnow())
    later = utcnow() + timedelta(minutes=16)

    assert throttled_until(db.session, ADMIN_EMAIL, later) is None
    assert authenticate(db.session, ADMIN_EMAIL, ADMIN_PASSWORD, later) is not None


def test_login_failure_audits_address_hash(client: FlaskClient) -> None:
    fail_sign_ins(client, "Nobody@Example.org", 1)

    (event,) = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == str(AuditTag.USER_LOGIN_FAIL))
    ).all()
    assert event.data["address_sha256"] == address_digest("nobody@example.org")
    assert "nobody@example.org" not in str(event.data).lower()


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Frame-Options", "DENY"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ],
)
def test_signed_in_page_has_security_header(
    client: FlaskClient, auth: AuthActions, header: str, value: str
) -> None:
    auth.login()

    response = client.get("/")

    assert response.headers[header] == value


def test_login_page_has_frame_and_csp(client: FlaskClient) -> None:
    response = client.get("/login")

    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_download_keeps_sandbox_policy(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    auth.login()
    message = load_ticket(access_ticket).messages[0]

    response = client.get(f"/tickets/{access_ticket}/messages/{message.id}/raw")

    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["Cache-Control"] == "no-store"


def test_templates_have_no_inline_style_or_script() -> None:
    templates = Path(__file__).resolve().parent.parent / "templates"

    for path in templates.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert " style=" not in text, path
        assert "<script" not in text, path
        assert "<style" not in text, path


# Item 6: layout and wording.


def test_ticket_page_dates_british_english(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    auth.login()

    page = client.get(f"/tickets/{access_ticket}", headers={"Accept-Language": "en-US"}).text

    assert '<html lang="en">' in page
    assert "2 Dec 2026" in page
    assert 'data-lang="en">EN' in page.replace(" current", "")


def test_language_switch_marks_english_current(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    page = client.get("/", headers={"Accept-Language": "en"}).text

    assert 'class="link current" lang="en"' in page


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "2 December 2026"), ("nl", "2 december 2026")],
)
def test_format_day_mail_dates(language: str, expected: str) -> None:
    day = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    assert _format_day(day, language, "Europe/Amsterdam") == expected


def test_queue_pages_singular(client: FlaskClient, auth: AuthActions, access_ticket: str) -> None:
    auth.login()

    page = client.get("/").text

    assert "Page 1 of 1 (1 ticket)" in page


def test_queue_reference_cell_does_not_wrap(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    auth.login()

    page = client.get("/").text

    assert '<td class="reference">' in page


def test_mailbox_password_autocomplete_new(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()

    page = client.get("/admin/mailboxes").text

    assert 'autocomplete="new-password"' in page


def test_mailbox_edit_password_autocomplete_new(client: FlaskClient, auth: AuthActions) -> None:
    mailbox = Mailbox(
        name="second", host="127.0.0.1", port=993, username="privacy", password="sealed"
    )
    db.session.add(mailbox)
    db.session.commit()
    auth.login()

    page = client.get(f"/admin/mailboxes/{mailbox.id}").text

    assert 'autocomplete="new-password"' in page


def test_page_links_empty_favicon(client: FlaskClient) -> None:
    page = client.get("/login").text

    assert '<link rel="icon" href="data:,">' in page


def test_ticket_page_hides_empty_requester(
    client: FlaskClient, auth: AuthActions, access_ticket: str
) -> None:
    ticket = load_ticket(access_ticket)
    ticket.requester_email = ""
    ticket.requester_name = ""
    ticket.language = "und"
    db.session.commit()
    auth.login()

    page = client.get(f"/tickets/{access_ticket}", headers={"Accept-Language": "nl"}).text

    assert "&lt;&gt;" not in page
    assert '<dd id="ticket-requester">onbekend</dd>' in page
    assert '<dd id="ticket-language">onbekend</dd>' in page


def test_ticket_page_truncates_long_subject(
    app: Flask, client: FlaskClient, auth: AuthActions, tmp_path: Path
) -> None:
    subject = "Request for access " + "x" * 48_000
    (reference,) = import_mails(
        app, tmp_path / "long", make_mail(subject=subject, body=ACCESS_MAIL["body"])
    )
    auth.login()

    page = client.get(f"/tickets/{reference}").text
    heading = page.split("<h1>", 1)[1].split("</h1>", 1)[0]

    assert len(heading) < 400
    assert '<details class="full-subject">' in page
