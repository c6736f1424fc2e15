"""Mailboxes added by an admin in the web UI: stored encrypted, audited, and polled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from inbox.extensions import db
from inbox.models.audit import AuditEvent
from inbox.models.mailbox import Mailbox
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.services.intake import poll_mailboxes
from inbox.services.users import create_user
from tests.factories import make_mail
from tests.servers import Dovecot

SECOND_USER = "second"
SECOND_PASSWORD = "second-test-password"


@pytest.fixture(scope="module")
def second_login(dovecot: Dovecot) -> str:
    if SECOND_USER not in dovecot.users:
        dovecot.add_user(SECOND_USER, SECOND_PASSWORD)
    return SECOND_USER


def mailbox_form(port: int, **overrides: Any) -> dict[str, Any]:
    form = {
        "name": "dpo",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": SECOND_USER,
        "password": SECOND_PASSWORD,
        "folder": "INBOX",
        "processed_action": "seen",
        "processed_folder": "Processed",
        "enabled": "y",
    }
    form.update(overrides)
    return form


def test_admin_adds_mailbox_with_encrypted_password(
    app: Flask, client: FlaskClient, auth: Any, dovecot: Dovecot, second_login: str
) -> None:
    auth.login()

    response = client.post("/admin/mailboxes", data=mailbox_form(dovecot.port))

    assert response.status_code == 302
    row = db.session.scalars(select(Mailbox).where(Mailbox.name == "dpo")).one()
    assert row.password.startswith("fernet:")
    assert SECOND_PASSWORD not in row.password
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.tag == "admin:mailbox:create")
    ).one()
    assert SECOND_PASSWORD not in str(event.data)


def test_admin_mailbox_rejects_plain_imap_to_remote_host(
    app: Flask, client: FlaskClient, auth: Any
) -> None:
    auth.login()

    response = client.post("/admin/mailboxes", data=mailbox_form(143, host="imap.example.org"))

    assert response.status_code == 200
    assert b"only allowed for a loopback host" in response.data
    assert db.session.scalars(select(Mailbox)).first() is None


def test_added_mailbox_is_polled(
    app: Flask, client: FlaskClient, auth: Any, dovecot: Dovecot, second_login: str
) -> None:
    auth.login()
    client.post("/admin/mailboxes", data=mailbox_form(dovecot.port))
    dovecot.append(
        "INBOX",
        make_mail(subject="Verwijderverzoek", body="Verwijder al mijn gegevens (art. 17 AVG)."),
        msg_time=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        user=SECOND_USER,
    )

    results, errors = poll_mailboxes(db.session, app.config, only="dpo")

    assert errors == []
    assert results[0].new_tickets == 1
    assert db.session.scalars(select(Ticket)).one().type == "erasure"
    row = db.session.scalars(select(Mailbox).where(Mailbox.name == "dpo")).one()
    assert row.last_success_at is not None


def test_mailbox_page_is_admin_only(app: Flask, client: FlaskClient) -> None:
    create_user(
        db.session,
        email="agent@example.org",
        password="agent-password-1",
        role=Role.AGENT,
        actor="test",
    )
    db.session.commit()
    client.post("/login", data={"email": "agent@example.org", "password": "agent-password-1"})

    response = client.get("/admin/mailboxes")

    assert response.status_code == 403
