"""The IMAP poller against a real Dovecot: fetch, store, classify, mark, and never twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from inbox.errors import MailboxError
from inbox.extensions import db
from inbox.mail.locks import LockSettings, mailbox_lock
from inbox.mail.store import content_digest
from inbox.models.message import MailLocation, RawMessage
from inbox.models.ticket import Ticket
from inbox.models.workflow import DeliveryStatus
from inbox.services.intake import import_path, poll_mailboxes
from tests.conftest import imap_settings
from tests.factories import incoming, leave_acknowledgement_uncomposed, make_mail
from tests.servers import Dovecot

RECEIVED = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)


def poll_once(app: Flask) -> None:
    results, errors = poll_mailboxes(db.session, app.config)
    assert errors == []


def ticket_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Ticket)) or 0


def test_poll_creates_typed_ticket_with_due_date(imap_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", make_mail(), msg_time=RECEIVED)

    poll_once(imap_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.type == "access"
    assert ticket.reference == "PRQ-2026-00001"
    assert ticket.requester_email == "jan@example.net"
    assert ticket.received_at == RECEIVED
    # 31 January 2026 10:00 in Amsterdam: no 31 February, so 28 February, a Saturday, moves to
    # Monday 2 March, due at the end of that day.
    assert ticket.due_at is not None
    assert ticket.due_at.isoformat() == "2026-03-02T22:59:59+00:00"


def test_poll_uses_internaldate_not_date_header(imap_app: Flask, mailbox: Dovecot) -> None:
    raw = make_mail(date=datetime(2020, 5, 5, 12, 0, tzinfo=UTC))
    mailbox.append("INBOX", raw, msg_time=RECEIVED)

    poll_once(imap_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.received_at == RECEIVED
    assert ticket.messages[0].date_header == datetime(2020, 5, 5, 12, 0, tzinfo=UTC)


def test_poll_twice_ingests_nothing_twice(imap_app: Flask, mailbox: Dovecot) -> None:
    for index in range(3):
        mailbox.append("INBOX", make_mail(subject=f"Verwijderverzoek {index}"), msg_time=RECEIVED)

    poll_once(imap_app)
    poll_once(imap_app)

    assert ticket_count() == 3
    assert db.session.scalar(select(func.count()).select_from(RawMessage)) == 3
    assert db.session.scalar(select(func.count()).select_from(MailLocation)) == 3


def test_poll_marks_seen_only_after_commit(imap_app: Flask, mailbox: Dovecot) -> None:
    uid = mailbox.append("INBOX", make_mail(), msg_time=RECEIVED)

    poll_once(imap_app)

    assert b"\\Seen" in mailbox.flags("INBOX")[uid]


def test_poll_moves_when_configured(make_app, mailbox: Dovecot) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER="inbox",
        IMAP_PASSWORD="inbox-test-password",
        IMAP_PROCESSED_ACTION="move",
    )
    mailbox.append("INBOX", make_mail(), msg_time=RECEIVED)

    with app.app_context():
        poll_once(app)

    assert mailbox.uids("INBOX") == []
    assert len(mailbox.uids("Processed")) == 1


def test_poll_reply_joins_existing_ticket(imap_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", make_mail(message_id="<first@example.net>"), msg_time=RECEIVED)
    poll_once(imap_app)
    reply = make_mail(
        subject="Re: Inzageverzoek",
        body="Hierbij een kopie van mijn paspoort, zwartgemaakt.",
        headers={"In-Reply-To": "<first@example.net>", "References": "<first@example.net>"},
    )
    mailbox.append("INBOX", reply, msg_time=RECEIVED)

    poll_once(imap_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert len(incoming(ticket)) == 2


def test_poll_unparseable_mail_is_quarantined_not_lost(imap_app: Flask, mailbox: Dovecot) -> None:
    broken = b"From: <x@example.net>\r\nSubject: kapot\r\nContent-Type: multipart/mixed\r\n\r\n\x00\x00\x00"
    mailbox.append("INBOX", broken, msg_time=RECEIVED)
    mailbox.append("INBOX", make_mail(), msg_time=RECEIVED)

    poll_once(imap_app)

    assert ticket_count() == 2
    raws = db.session.scalars(select(RawMessage)).all()
    assert all(raw.processed_at is not None for raw in raws)


def test_poll_wrong_password_names_host_and_user(make_app, mailbox: Dovecot) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER="inbox",
        IMAP_PASSWORD="wrong-password",
    )
    with app.app_context():
        results, errors = poll_mailboxes(db.session, app.config)

    assert results == []
    assert "inbox@127.0.0.1" in str(errors[0])
    assert "wrong-password" not in str(errors[0])


def test_poll_command_once_exits_nonzero_when_unreachable(make_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("inbox.mail.poller.CONNECT_BACKOFF_SECONDS", 0.01)
    app = make_app(
        IMAP_HOST="127.0.0.1", IMAP_PORT=1, IMAP_SECURITY="none", IMAP_USER="u", IMAP_PASSWORD="p"
    )

    result = app.test_cli_runner().invoke(args=["poll", "--once"])

    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.output


def test_poll_command_reports_skipped_mailbox(imap_app: Flask) -> None:
    lock_dir = Path(imap_app.instance_path) / "locks"
    with mailbox_lock("default", LockSettings(lock_dir=lock_dir)) as acquired:
        assert acquired
        result = imap_app.test_cli_runner().invoke(args=["poll", "--once"])

    assert result.exit_code == 0
    assert "default: skipped, another poller holds its lock" in result.output


def test_tickets_json_lists_polled_ticket(imap_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", make_mail(), msg_time=RECEIVED)
    poll_once(imap_app)

    result = imap_app.test_cli_runner().invoke(args=["tickets", "--json"])

    row = json.loads(result.output.splitlines()[0])
    assert row["type"] == "access"
    assert row["due_at"] == "2026-03-02T23:59:59+01:00"
    assert row["received_at"] == "2026-01-31T10:00:00+01:00"


def test_connect_error_is_mailbox_error() -> None:
    from inbox.mail.imap import MailboxConfig, connect

    config = MailboxConfig("x", "127.0.0.1", 1, "none", "u", "p", timeout_seconds=2)
    with pytest.raises(MailboxError):
        connect(config)


def test_poll_sends_acknowledgements_left_queued(make_app, mailbox: Dovecot) -> None:  # type: ignore[no-untyped-def]
    app = make_app(**imap_settings(mailbox), MAIL_FROM="privacy@example.org")
    with app.app_context():
        delivery = leave_acknowledgement_uncomposed(app.config)
        assert delivery.message_pk is None

        poll_once(app)

        db.session.refresh(delivery)
        assert delivery.status == DeliveryStatus.SENT
        assert delivery.message_pk is not None
        assert list((Path(app.instance_path) / "outbox").iterdir())
        db.session.remove()


def test_import_of_fetched_mail_adds_nothing(
    imap_app: Flask, mailbox: Dovecot, tmp_path: Path
) -> None:
    raw = make_mail(message_id="<saved-copy@example.net>")
    mailbox.append("INBOX", raw, msg_time=RECEIVED)
    poll_once(imap_app)
    # A mail client saves the same mail with bare LF line endings.
    saved = tmp_path / "saved.eml"
    saved.write_bytes(raw.replace(b"\r\n", b"\n"))

    result = import_path(db.session, saved, imap_app.config, RECEIVED)

    assert result.stored == 0
    assert db.session.scalar(select(func.count()).select_from(RawMessage)) == 1
    assert ticket_count() == 1


@pytest.mark.parametrize(
    ("raw", "same_as_crlf"),
    [
        (b"Subject: a\r\n\r\nline\r\n", True),
        (b"Subject: a\n\nline\n", True),
        (b"Subject: a\r\n\nline\n", True),
        (b"Subject: a\r\n\r\nline", True),
        (b"Subject: a\n\nline\n\n\n", True),
        (b"Subject: a\r\n\r\nline two\r\n", False),
        (b"Subject: a\r\n\r\nline\r\n\r\nline\r\n", False),
    ],
)
def test_content_digest_ignores_line_ending_style(raw: bytes, same_as_crlf: bool) -> None:
    crlf = content_digest(b"Subject: a\r\n\r\nline\r\n")

    assert (content_digest(raw) == crlf) is same_as_crlf
