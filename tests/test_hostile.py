"""Hostile and broken mail through the real poller: nothing crashes, stalls or gets lost.

Each file in tests/data/hostile is APPENDed to the private Dovecot and polled once. The table in
EXPECTED.yaml gives, per file, the exact subject and sender, the start of the body and the
attachment names that the stored message must have.
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import select

from inbox.extensions import db
from inbox.models.message import MailLocation, Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.services.intake import poll_mailboxes
from tests.servers import Dovecot

HOSTILE_DIR = Path(__file__).parent / "data" / "hostile"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load(
    (HOSTILE_DIR / "EXPECTED.yaml").read_text(encoding="utf-8")
)
POLL_SECONDS_LIMIT = 60.0
"""A poll of the whole corpus taking longer than this counts as a stall."""


@pytest.fixture(scope="module")
def corpus_files() -> list[Path]:
    """Return the hostile .eml files in name order."""
    return sorted(HOSTILE_DIR.glob("*.eml"))


def test_hostile_corpus_has_expected_row_per_file(corpus_files: list[Path]) -> None:
    assert len(corpus_files) >= 40
    assert sorted(EXPECTED) == [path.name for path in corpus_files]


def poll_corpus(app: Flask, dovecot: Dovecot, files: list[Path]) -> dict[str, Message]:
    """Append the whole corpus, poll once, and map each file name to its stored message.

    Messages are found by their UID, not by hash, because Dovecot may rewrite bytes such as NUL
    on APPEND.
    """
    uids = {path.name: dovecot.append("INBOX", path.read_bytes()) for path in files}

    started = time.monotonic()
    results, errors = poll_mailboxes(db.session, app.config)
    elapsed = time.monotonic() - started

    assert errors == []
    assert elapsed < POLL_SECONDS_LIMIT
    assert results[0].fetched == len(files)
    found = {}
    for name, uid in uids.items():
        location = db.session.scalars(select(MailLocation).where(MailLocation.uid == uid)).one()
        message = db.session.scalars(
            select(Message).where(Message.raw_message_id == location.raw_message_id)
        ).first()
        assert message is not None, f"{name}: no ticket or reply"
        found[name] = message
    return found


def test_hostile_corpus_polls_and_matches(
    imap_app: Flask, mailbox: Dovecot, corpus_files: list[Path]
) -> None:
    polled = poll_corpus(imap_app, mailbox, corpus_files)

    mismatches = []
    for name, expected in sorted(EXPECTED.items()):
        message = polled[name]
        actual = {
            "subject": message.subject,
            "sender": message.from_addr,
            "body": message.text[: len(expected["body"])],
            "attachments": [attachment.filename for attachment in message.attachments],
        }
        for field, value in expected.items():
            if actual[field] != value:
                mismatches.append(f"{name} {field}: expected {value!r}, got {actual[field]!r}")
    assert mismatches == []
    pending = db.session.scalars(select(RawMessage).where(RawMessage.processed_at.is_(None))).all()
    assert pending == []
    for name in ACTIVE_HTML_FILES:
        assert "alert" not in polled[name].text, name
        assert "steal()" not in polled[name].text, name
        assert "javascript:" not in polled[name].text, name
    assert "\x00" not in polled["20-nul-body.eml"].text
    tnef = polled["17-tnef-winmail.eml"].attachments[0]
    assert tnef.content_type == "application/ms-tnef"
    assert tnef.size > 0


ACTIVE_HTML_FILES = (
    "23-html-script.eml",
    "24-html-event-handlers.eml",
    "25-html-javascript-link.eml",
    "26-html-iframe-form.eml",
)
"""HTML-only mails whose scripts, handlers and javascript: links must not reach the text."""


@pytest.mark.slow
def test_hostile_30mb_attachment_ingested(make_app: Any, mailbox: Dovecot) -> None:
    app = make_app(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER="inbox",
        IMAP_PASSWORD="inbox-test-password",
        IMAP_TIMEOUT_SECONDS=60.0,
        MAX_ATTACHMENT_BYTES=64 * 1024 * 1024,
    )
    mail = EmailMessage()
    mail["From"] = "Groot <groot@example.net>"
    mail["To"] = "privacy@example.org"
    mail["Subject"] = "Export van 30 MB"
    mail["Message-ID"] = "<big-30mb@example.net>"
    mail.set_content("Bijgevoegd het volledige bestand.")
    mail.add_attachment(
        bytes(range(256)) * (30_000_000 // 256),
        maintype="application",
        subtype="zip",
        filename="export.zip",
    )
    raw = mail.as_bytes()
    mailbox.append("INBOX", raw)

    with app.app_context():
        started = time.monotonic()
        results, errors = poll_mailboxes(db.session, app.config)
        elapsed = time.monotonic() - started
        ticket = db.session.scalars(select(Ticket)).one()
        attachment = ticket.messages[0].attachments[0]

        assert errors == []
        assert elapsed < POLL_SECONDS_LIMIT
        assert ticket.subject == "Export van 30 MB"
        assert attachment.filename == "export.zip"
        assert attachment.size == 30_000_000 // 256 * 256
