"""The fast ingest paths: batch store, one transaction per batch, cached audit tail, SQLite WAL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from inbox.audit import SYSTEM_ACTOR, cached_tail, record_event, verify_chain
from inbox.extensions import db
from inbox.mail.ingest import process_batch
from inbox.mail.store import (
    FetchedMail,
    Location,
    header_block,
    message_id_of,
    store_fetched,
    store_raw,
)
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import MailLocation, RawMessage
from inbox.models.ticket import Ticket
from inbox.models.workflow import MailDelivery
from inbox.services.intake import ingest_settings, use_sqlite_wal
from tests.factories import make_mail

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def count(model: Any) -> int:
    """Return the number of rows of a model."""
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def stored_ids(mails: list[bytes], received: datetime = RECEIVED) -> list[int]:
    """Store mails as imported files, commit, and return their raw message ids."""
    ids = [store_raw(db.session, raw, received, None, "test").raw_message.id for raw in mails]
    db.session.commit()
    return ids


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Subject: a\r\n\r\nbody\r\n\r\nmore", b"Subject: a\r\n\r\n"),
        (b"Subject: a\n\nbody\r\n\r\nmore", b"Subject: a\n\n"),
        (b"Subject: a\r\nX: b\r\n", b"Subject: a\r\nX: b\r\n"),
    ],
)
def test_header_block_ends_at_first_blank_line(raw: bytes, expected: bytes) -> None:
    assert header_block(raw) == expected


def test_message_id_of_ignores_body_lines() -> None:
    raw = b"Message-ID: <a@example.net>\r\n\r\nMessage-ID: <b@example.net>\r\n"

    assert message_id_of(raw) == "a@example.net"


def test_store_fetched_same_bytes_two_uids_one_raw(app: Flask) -> None:
    raw = make_mail(message_id="<twice@example.net>")
    fetched = [FetchedMail(raw, RECEIVED, Location("default", 7, uid)) for uid in (1, 2)]

    results = store_fetched(db.session, fetched, "imap:default")
    db.session.commit()

    assert [result.created for result in results] == [True, False]
    assert count(RawMessage) == 1
    assert count(MailLocation) == 2


def test_store_fetched_known_location_is_noop(app: Flask) -> None:
    fetched = [FetchedMail(make_mail(), RECEIVED, Location("default", 7, 1))]
    store_fetched(db.session, fetched, "imap:default")
    db.session.commit()

    again = store_fetched(db.session, fetched, "imap:default")
    db.session.commit()

    assert again[0].created is False
    assert count(MailLocation) == 1


def test_process_batch_fault_rolls_back_one_message(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest classifies a new conversation through parsepool.classify_new_text.
    import inbox.mail.parsepool as parsepool

    real_classify = parsepool.classify

    def flaky_classify(subject: str, text: str) -> Any:
        if "giftig" in subject:
            raise RuntimeError("classifier fault for this one message")
        return real_classify(subject, text)

    monkeypatch.setattr(parsepool, "classify", flaky_classify)
    ids = stored_ids(
        [
            make_mail(subject="Inzageverzoek 1", message_id="<b1@example.net>"),
            make_mail(subject="Bericht giftig", message_id="<b2@example.net>"),
            make_mail(subject="Inzageverzoek 2", message_id="<b3@example.net>"),
        ]
    )

    results = process_batch(db.session, ids, ingest_settings(app.config))
    db.session.expire_all()

    tickets = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert [result.quarantined for result in results] == [False, True, False]
    assert [ticket.needs_attention for ticket in tickets] == [False, True, False]
    assert [ticket.reference[-5:] for ticket in tickets] == ["00001", "00002", "00003"]
    assert verify_chain(db.session).is_intact


def test_process_batch_delivers_acknowledgements_after_commit(make_app: Any) -> None:
    app = make_app(MAIL_FROM="privacy@example.org")
    with app.app_context():
        check_acknowledgements_delivered_after_commit(app)


def check_acknowledgements_delivered_after_commit(app: Flask) -> None:
    """Ingest two requests; the deliver hook must see both queued mails committed."""
    ids = stored_ids(
        [
            make_mail(message_id="<hook1@example.net>", sender="one@example.net"),
            make_mail(message_id="<hook2@example.net>", sender="two@example.net"),
        ],
        # A request whose deadline has passed gets no acknowledgement.
        received=datetime.now(UTC),
    )
    committed: list[int] = []

    def deliver(session: Any, delivery_ids: list[int]) -> None:
        # A second connection can read the queued mail only after the batch is committed.
        with db.engine.connect() as connection:
            found = connection.execute(
                select(MailDelivery.id).where(MailDelivery.id.in_(delivery_ids))
            ).all()
        committed.append(len(found))

    settings = ingest_settings(app.config)
    settings = type(settings)(**{**settings.__dict__, "deliver": deliver})

    results = process_batch(db.session, ids, settings)

    assert committed == [2]
    assert all(result.delivery_id is not None for result in results)


def test_acknowledgement_fault_keeps_the_ticket(app: Flask) -> None:
    ids = stored_ids([make_mail(message_id="<fault@example.net>")])

    def acknowledge(session: Any, ticket: Ticket) -> None:
        record_event(session, AuditTag.MAIL_SUPPRESS, SYSTEM_ACTOR, ticket, {"reason": "x"})
        raise RuntimeError("template broke")

    settings = ingest_settings(app.config)
    settings = type(settings)(**{**settings.__dict__, "acknowledge": acknowledge})

    results = process_batch(db.session, ids, settings)

    assert [(r.new_ticket, r.quarantined, r.delivery_id) for r in results] == [(True, False, None)]
    assert count(Ticket) == 1
    assert count(MailDelivery) == 0
    reasons = [
        event.data["reason"]
        for event in db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == str(AuditTag.MAIL_SUPPRESS))
        )
    ]
    assert reasons == ["acknowledgement failed: RuntimeError: template broke"]
    assert verify_chain(db.session).is_intact


def test_process_batch_skips_processed_message(app: Flask) -> None:
    ids = stored_ids([make_mail(message_id="<once@example.net>")])
    settings = ingest_settings(app.config)
    process_batch(db.session, ids, settings)

    again = process_batch(db.session, ids, settings)

    assert again == []
    assert count(Ticket) == 1


def test_record_event_tail_forgotten_after_savepoint_rollback(app: Flask) -> None:
    record_event(db.session, AuditTag.TICKET_CREATE, SYSTEM_ACTOR, None, {"n": 1})
    savepoint = db.session.begin_nested()
    record_event(db.session, AuditTag.TICKET_CREATE, SYSTEM_ACTOR, None, {"n": 2})
    savepoint.rollback()

    assert cached_tail(db.session) is None
    record_event(db.session, AuditTag.TICKET_CREATE, SYSTEM_ACTOR, None, {"n": 3})
    db.session.commit()

    assert count(AuditEvent) == 2
    assert verify_chain(db.session).is_intact


def test_record_event_tail_not_reused_after_commit(app: Flask) -> None:
    first = record_event(db.session, AuditTag.TICKET_CREATE, SYSTEM_ACTOR, None, {"n": 1})
    db.session.commit()

    assert cached_tail(db.session) is None
    second = record_event(db.session, AuditTag.TICKET_CREATE, SYSTEM_ACTOR, None, {"n": 2})

    assert second.prev_hash == first.hash


def test_use_sqlite_wal_sets_journal_mode(app: Flask) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("WAL is a SQLite setting")
    use_sqlite_wal(db.engine)

    with db.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()

    assert mode == "wal"
    assert synchronous == 1
