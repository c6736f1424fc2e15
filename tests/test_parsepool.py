"""The parse worker: same results as parsing in the poller, and a fallback when it fails."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from inbox.classify import classify
from inbox.errors import ParseError
from inbox.extensions import db
from inbox.mail import parsepool
from inbox.mail.ingest import process_raw, store_raw
from inbox.mail.parse import parse_message
from inbox.mail.parsepool import ParsePool, Prepared, prepare, prepare_batch
from inbox.mail.quoting import split_reply
from inbox.models.ticket import Ticket
from inbox.services.intake import ingest_settings, poll_mailboxes
from tests.conftest import empty_database
from tests.factories import incoming, make_mail
from tests.servers import DEFAULT_PASSWORD, DEFAULT_USER, Dovecot

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples" / "mail").glob("*.eml"))
RECEIVED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_prepare_matches_parse_and_classify() -> None:
    for path in SAMPLES:
        raw = path.read_bytes()
        parsed = parse_message(raw)
        new_text, _quoted = split_reply(parsed.text)

        prepared = prepare(raw, None)

        assert prepared.parsed == parsed, path.name
        assert prepared.classification == classify(parsed.subject, new_text), path.name


def test_pool_results_match_in_process_parse() -> None:
    raw_by_id = {index: path.read_bytes() for index, path in enumerate(SAMPLES)}
    pool = ParsePool(None)
    try:
        results = pool.results(pool.submit(raw_by_id))
    finally:
        pool.close()

    assert sorted(results) == sorted(raw_by_id)
    for index, raw in raw_by_id.items():
        assert results[index] == prepare(raw, None), SAMPLES[index].name
        assert dict(results[index].parsed.headers) == dict(parse_message(raw).headers)


def test_pool_fault_leaves_parsing_to_poller() -> None:
    pool = ParsePool(None)
    assert pool._executor is not None
    crash = pool._executor.submit(os._exit, 3)  # the worker dies mid-batch

    assert pool.results(crash) == {}
    assert pool.submit({1: make_mail()}) is None
    pool.close()


def test_prepare_batch_leaves_out_faulty_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(raw: bytes, max_attachment_bytes: int | None) -> Prepared:
        if b"kapot" in raw:
            raise RuntimeError("library fault")
        return Prepared(None, parse_error="unused")

    monkeypatch.setattr(parsepool, "prepare", fail)

    prepared = prepare_batch({1: make_mail(subject="kapot"), 2: make_mail()}, None)

    assert list(prepared) == [2]


def test_prepared_parse_error_quarantines(app: Flask) -> None:
    stored = store_raw(db.session, make_mail(), RECEIVED, None, "test")

    result = process_raw(
        db.session,
        stored.raw_message,
        ingest_settings(app.config),
        Prepared(None, parse_error="mail-parser failed on the MIME tree"),
    )

    assert result.quarantined
    assert "mail-parser failed" in result.ticket.attention_reason
    with pytest.raises(ParseError):
        Prepared(None).parsed_or_raise()


def snapshot() -> list[tuple[Any, ...]]:
    """Describe every ticket by what the ingest decided about it."""
    tickets = db.session.scalars(select(Ticket).order_by(Ticket.reference)).all()
    return [
        (
            ticket.reference,
            ticket.type,
            ticket.subject,
            ticket.requester_email,
            ticket.language,
            ticket.confidence,
            tuple(ticket.evidence),
            tuple(
                (m.text, m.html, tuple(a.filename for a in m.attachments))
                for m in incoming(ticket)
            ),
        )
        for ticket in tickets
    ]


def test_poll_with_worker_matches_poll_without(
    make_app: Any,
    mailbox: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for path in SAMPLES:
        mailbox.append("INBOX", path.read_bytes(), msg_time=RECEIVED)
    monkeypatch.setattr(parsepool, "MIN_MESSAGES", 1)
    imap = {
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": mailbox.port,
        "IMAP_SECURITY": "none",
        "IMAP_USER": DEFAULT_USER,
        "IMAP_PASSWORD": DEFAULT_PASSWORD,
        "IMAP_FETCH_BATCH": 4,
    }

    caplog.set_level("INFO", logger="inbox.mail.poller")
    snapshots = []
    for worker in (True, False):
        app = make_app(PARSE_WORKER=worker, **imap)
        with app.app_context():
            results, errors = poll_mailboxes(db.session, app.config)
            assert errors == []
            assert sum(r.fetched for r in results) == len(SAMPLES)
            snapshots.append(snapshot())
            # The next poll starts from an empty database and fetches every message again.
            empty_database()
            db.session.remove()

    assert "parsing them in a worker process" in caplog.text
    assert len(snapshots[0]) > 20
    assert snapshots[0] == snapshots[1]
