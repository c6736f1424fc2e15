"""Deadline changes: the Art. 12(3) extension with its notice, and clock pauses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from inbox.config import load_settings
from inbox.enums import RequestType
from inbox.extensions import db
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.ticket import Ticket
from inbox.models.user import Role
from inbox.models.workflow import ClockPause, MailDelivery, StepStatus
from inbox.services.deadlines import (
    DeadlineError,
    extend_and_notify,
    extend_deadline,
    pause_clock,
    resume_clock,
)
from inbox.services.replies import Reply, queue_reply
from inbox.services.tickets import NewTicket, open_ticket, sla_policy
from inbox.services.users import create_user
from inbox.services.verification import IdentityChange, update_identity
from inbox.services.workflows import check_step, close_ticket
from inbox.sla import compute_extended_due_at
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AuthActions
from tests.factories import step_of

AGENT = "agent@example.org"
REASON = "The request covers twelve years of records in four systems."


@pytest.fixture
def mail_app(make_app: Any) -> Iterator[Flask]:
    """The app with a sender address and the file outbox, with an app context pushed."""
    application = make_app(MAIL_FROM="privacy@example.org")
    with application.app_context():
        yield application
        db.session.remove()


def new_ticket(
    app: Flask, request_type: RequestType = RequestType.ACCESS, days_ago: int = 5
) -> Ticket:
    received = datetime.now(UTC) - timedelta(days=days_ago)
    new = NewTicket(
        request_type=request_type,
        received_at=received,
        requester_name="Jan Jansen",
        requester_email="jan@example.net",
        language="en",
    )
    ticket = open_ticket(db.session, new, sla_policy(app.config), "system")
    db.session.commit()
    return ticket


def events(tag: AuditTag) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag)))


def now() -> datetime:
    return datetime.now(UTC)


def test_extend_deadline_sets_extended_due(app: Flask) -> None:
    ticket = new_ticket(app)
    policy = sla_policy(app.config)

    extend_deadline(db.session, ticket, REASON, AGENT, policy, now())

    assert ticket.due_at == compute_extended_due_at(ticket.received_at, policy)


def test_extend_deadline_audits_original_due(app: Flask) -> None:
    ticket = new_ticket(app)
    original = ticket.due_at
    assert original is not None

    extend_deadline(db.session, ticket, REASON, AGENT, sla_policy(app.config), now())
    db.session.commit()

    (event,) = events(AuditTag.DEADLINE_EXTEND)
    assert event.data["original_due"] == original.isoformat()
    assert event.data["reason"] == REASON
    assert event.ticket_id == ticket.id


def test_extend_deadline_only_once(app: Flask) -> None:
    ticket = new_ticket(app)
    policy = sla_policy(app.config)
    extend_deadline(db.session, ticket, REASON, AGENT, policy, now())

    with pytest.raises(DeadlineError, match="allows one extension"):
        extend_deadline(db.session, ticket, REASON, AGENT, policy, now())


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_extend_deadline_needs_reason(app: Flask, reason: str) -> None:
    ticket = new_ticket(app)

    with pytest.raises(DeadlineError, match="needs a reason"):
        extend_deadline(db.session, ticket, reason, AGENT, sla_policy(app.config), now())


@pytest.mark.parametrize("request_type", [RequestType.BREACH, RequestType.OTHER])
def test_extend_deadline_only_requests(app: Flask, request_type: RequestType) -> None:
    ticket = new_ticket(app, request_type, days_ago=0)

    with pytest.raises(DeadlineError, match="no deadline that"):
        extend_deadline(db.session, ticket, REASON, AGENT, sla_policy(app.config), now())


def test_extend_deadline_before_original_due(app: Flask) -> None:
    ticket = new_ticket(app)
    assert ticket.due_at is not None
    late = ticket.due_at + timedelta(seconds=1)

    with pytest.raises(DeadlineError, match="must be announced before it"):
        extend_deadline(db.session, ticket, REASON, AGENT, sla_policy(app.config), late)


def test_extend_deadline_rejects_closed(app: Flask) -> None:
    create_user(
        db.session, email="m@example.org", password="pw-manager-1", role=Role.MANAGER, actor="t"
    )
    ticket = new_ticket(app)
    close_ticket(db.session, ticket, "withdrawn", "m@example.org", "requester withdrew")

    with pytest.raises(DeadlineError, match="is closed"):
        extend_deadline(db.session, ticket, REASON, AGENT, sla_policy(app.config), now())


def test_extend_and_notify_queues_notice(mail_app: Flask) -> None:
    ticket = new_ticket(mail_app)

    message = extend_and_notify(
        db.session, ticket, REASON, AGENT, sla_policy(mail_app.config), now()
    )
    db.session.commit()

    delivery = db.session.scalars(
        select(MailDelivery).where(MailDelivery.message_pk == message.id)
    ).one()
    assert delivery.template == "extension"
    assert REASON in message.text
    assert step_of(ticket, "extend_deadline").status == StepStatus.DONE


def test_reply_path_needs_recorded_extension(mail_app: Flask) -> None:
    ticket = new_ticket(mail_app)
    reply = Reply("More time needed", "We extend the period.", "extension")

    with pytest.raises(DeadlineError, match="not extended"):
        queue_reply(db.session, ticket, reply, AGENT)


def test_extend_page_extends_and_sends(make_app: Any) -> None:
    application = make_app(MAIL_FROM="privacy@example.org")
    client = application.test_client()
    with application.app_context():
        create_user(
            db.session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN, actor="t"
        )
        db.session.commit()
        ticket = new_ticket(application)
        AuthActions(client).login()
        before = client.get(f"/tickets/{ticket.reference}").text

        client.post(f"/tickets/{ticket.reference}/extend", data={"reason": REASON})
        after = client.get(f"/tickets/{ticket.reference}").text

        db.session.expire_all()
        stored = db.session.get(Ticket, ticket.id)
        assert stored is not None
        delivery = db.session.scalars(select(MailDelivery)).one()
        expected = compute_extended_due_at(stored.received_at, sla_policy(application.config))
        db.session.remove()

    assert "Extend deadline and send notice" in before
    assert "Deadline extended on" in after
    assert stored.due_at == expected
    assert delivery.template == "extension"
    assert delivery.status == "sent"


def test_reply_form_refuses_bare_extension(client: Any, auth: AuthActions, app: Flask) -> None:
    auth.login()
    ticket = new_ticket(app)

    page = client.post(
        f"/tickets/{ticket.reference}/reply",
        data={"template": "extension", "subject": "More time", "body": "We extend."},
        follow_redirects=True,
    ).text

    assert "Use Extend deadline in the checklist" in page
    assert db.session.scalars(select(MailDelivery)).first() is None


def test_resume_clock_moves_due_by_pause(app: Flask) -> None:
    ticket = new_ticket(app)
    due = ticket.due_at
    assert due is not None
    start = now()

    pause_clock(db.session, ticket, AGENT, "identity_verification", start)
    resume_clock(db.session, ticket, AGENT, start + timedelta(days=3, hours=2))
    db.session.commit()

    assert ticket.due_at == due + timedelta(days=3, hours=2)
    (resumed,) = events(AuditTag.CLOCK_RESUME)
    assert resumed.data["paused_seconds"] == 3 * 86400 + 7200
    assert len(events(AuditTag.CLOCK_PAUSE)) == 1


def test_pause_clock_twice_keeps_one(app: Flask) -> None:
    ticket = new_ticket(app)

    first = pause_clock(db.session, ticket, AGENT, "identity_verification", now())
    second = pause_clock(db.session, ticket, AGENT, "identity_verification", now())

    assert first is not None
    assert second is None


def test_pause_clock_without_clock(app: Flask) -> None:
    ticket = new_ticket(app, RequestType.OTHER)

    assert pause_clock(db.session, ticket, AGENT, "identity_verification", now()) is None


def test_extension_adds_paused_time(app: Flask) -> None:
    ticket = new_ticket(app)
    policy = sla_policy(app.config)
    start = now() - timedelta(days=2)
    pause_clock(db.session, ticket, AGENT, "identity_verification", start)
    resume_clock(db.session, ticket, AGENT, start + timedelta(days=1))

    extend_deadline(db.session, ticket, REASON, AGENT, policy, now())

    expected = compute_extended_due_at(ticket.received_at, policy) + timedelta(days=1)
    assert ticket.due_at == expected


def identity_ticket(app: Flask) -> Ticket:
    ticket = new_ticket(app)
    check_step(db.session, step_of(ticket, "assess_identity"), AGENT, "reasonable_doubt")
    return ticket


def test_identity_request_pauses_when_on(make_app: Any) -> None:
    application = make_app(SLA_PAUSE_FOR_IDENTITY=True)
    with application.app_context():
        ticket = identity_ticket(application)
        due = ticket.due_at
        assert due is not None
        step = step_of(ticket, "confirm_identity")

        update_identity(db.session, step, IdentityChange("requested"), AGENT)
        paused = db.session.scalars(select(ClockPause)).one()
        update_identity(db.session, step, IdentityChange("verified", "matches CRM"), AGENT)
        db.session.commit()

        assert paused.reason == "identity_verification"
        assert paused.ended_at is not None
        assert ticket.due_at is not None
        assert ticket.due_at >= due
        assert len(events(AuditTag.CLOCK_RESUME)) == 1
        db.session.remove()


def test_identity_request_runs_clock_when_off(app: Flask) -> None:
    ticket = identity_ticket(app)

    update_identity(
        db.session, step_of(ticket, "confirm_identity"), IdentityChange("requested"), AGENT
    )

    assert db.session.scalars(select(ClockPause)).first() is None


@pytest.mark.parametrize(("raw", "expected"), [(None, False), ("true", True), ("off", False)])
def test_pause_setting_parsed(tmp_path: Path, raw: str | None, expected: bool) -> None:
    environ = {"INBOX_SECRET_KEY": "x"}
    if raw is not None:
        environ["INBOX_SLA_PAUSE_FOR_IDENTITY"] = raw

    settings = load_settings(environ, tmp_path)

    assert settings["SLA_PAUSE_FOR_IDENTITY"] is expected
