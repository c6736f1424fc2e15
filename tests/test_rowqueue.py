"""Rows queued for the next flush: checklist steps and audit events of a batch, and look-ups
that find a batch's unflushed rows without flushing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from inbox.audit import verify_chain
from inbox.extensions import db
from inbox.ids import begin_write_transaction, client_ids
from inbox.mail.ingest import process_batch
from inbox.mail.store import store_raw
from inbox.mail.threading import look_up_threads, ticket_by_message_ids, ticket_by_reference
from inbox.models.audit import AuditEvent
from inbox.models.message import Message
from inbox.models.ticket import Ticket
from inbox.models.workflow import WorkflowStep
from inbox.rowqueue import has_queued
from inbox.services.intake import ingest_settings
from inbox.services.tickets import NewTicket, open_ticket
from inbox.services.workflows import instance_of, version_in_force
from inbox.txcache import transaction_cache
from tests.factories import make_mail, sent_statements

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@contextmanager
def counted_flushes() -> Iterator[list[int]]:
    """Count the flushes of any session while the block runs."""
    flushes: list[int] = []

    def listen(session: Session, context: Any, instances: Any) -> None:
        flushes.append(1)

    event.listen(Session, "before_flush", listen)
    try:
        yield flushes
    finally:
        event.remove(Session, "before_flush", listen)


def open_one(app: Flask, number: int) -> Ticket:
    new = NewTicket(
        request_type="access",
        received_at=RECEIVED,
        subject=f"Inzageverzoek {number}",
        requester_name="Jan",
        requester_email=f"jan{number}@example.net",
    )
    return open_ticket(db.session, new, ingest_settings(app.config).policy, "system")


def store_access_workflow() -> None:
    """Store the shipped access workflow, whose first use would otherwise flush to add it."""
    version_in_force(db.session, "access")
    db.session.commit()


def count(model: type) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_steps_queued_until_flush(app: Flask) -> None:
    session = db.session
    begin_write_transaction(session)
    with client_ids(session):
        open_one(app, 1)
        assert has_queued(session, WorkflowStep.__table__)
        session.flush()

    assert not has_queued(session, WorkflowStep.__table__)
    session.commit()
    assert count(WorkflowStep) > 1
    assert verify_chain(session).is_intact


def test_instance_of_sees_queued_steps(app: Flask) -> None:
    session = db.session
    begin_write_transaction(session)
    with client_ids(session):
        ticket = open_one(app, 2)
        instance = instance_of(session, ticket)

        assert instance is not None
        assert "acknowledge" in [step.step_id for step in instance.steps]
    session.commit()


def test_rollback_drops_queued_rows(app: Flask) -> None:
    session = db.session
    begin_write_transaction(session)
    with client_ids(session):
        savepoint = session.begin_nested()
        open_one(app, 3)
        savepoint.rollback()

    assert not has_queued(session, WorkflowStep.__table__)
    session.commit()
    assert count(WorkflowStep) == 0
    assert count(AuditEvent) == 0


def test_commit_writes_rows_left_queued(app: Flask) -> None:
    session = db.session
    begin_write_transaction(session)
    with client_ids(session):
        open_one(app, 4)
    session.commit()

    assert count(WorkflowStep) > 1
    assert verify_chain(session).is_intact


def test_reply_in_same_batch_joins_without_flush(app: Flask) -> None:
    first = make_mail(message_id="first@example.net", body="Ik wil inzage in mijn gegevens.")
    reply = make_mail(
        message_id="reply@example.net",
        subject="Re: inzage",
        body="Nog een vraag.",
        headers={"In-Reply-To": "<first@example.net>"},
    )
    store_access_workflow()
    ids = []
    for raw in (first, reply):
        ids.append(store_raw(db.session, raw, RECEIVED, None, "test").raw_message.id)
    db.session.commit()

    with counted_flushes() as flushes:
        results = process_batch(db.session, ids, ingest_settings(app.config))

    assert [r.new_ticket for r in results] == [True, False]
    assert results[0].ticket.id == results[1].ticket.id
    # One flush for the whole batch, and the commit's flush finds nothing left.
    assert len(flushes) <= 2
    assert verify_chain(db.session).is_intact


def test_lookups_find_unflushed_rows(app: Flask) -> None:
    store_access_workflow()
    session = db.session
    begin_write_transaction(session)
    with client_ids(session), counted_flushes() as flushes:
        ticket = open_one(app, 5)
        session.add(Message(ticket=ticket, direction="in", message_id="pending@example.net"))

        assert ticket_by_message_ids(session, ["pending@example.net"]) is ticket
        assert ticket_by_reference(session, ticket.reference) is ticket
        assert ticket_by_message_ids(session, ["unknown@example.net"]) is None
    assert flushes == []
    session.rollback()


def test_mail_bytes_compressed_with_lz4(app: Flask) -> None:
    if db.engine.dialect.name != "postgresql":
        return
    rows = db.session.execute(
        text(
            "SELECT c.relname, a.attcompression FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE (c.relname, a.attname) IN (('raw_message_content', 'raw'), ('blob', 'data'))"
        )
    ).all()
    assert sorted(rows) == [("blob", "l"), ("raw_message_content", "l")]


def selects_from(table: str) -> AbstractContextManager[list[str]]:
    """Collect the row look-ups of ``table`` while the block runs, id counters left out."""
    return sent_statements(
        lambda statement: (
            statement.startswith("SELECT")
            and not statement.startswith("SELECT max(")
            and f"FROM {table}" in statement
        )
    )


def test_batch_threads_with_one_query_each(app: Flask) -> None:
    store_access_workflow()
    first = make_mail(message_id="start@example.net")
    stored = store_raw(db.session, first, RECEIVED, None, "test").raw_message.id
    db.session.commit()
    [opened] = process_batch(db.session, [stored], ingest_settings(app.config))
    reference = opened.reference
    replies = [
        make_mail(subject="Re: inzage", headers={"In-Reply-To": "<start@example.net>"}),
        make_mail(subject=f"Antw: [{reference}] nog iets", body="Nog een vraag over mijn verzoek."),
        make_mail(sender="Iemand <iemand@example.net>", subject=f"Re: [{reference}]"),
    ]
    ids = [store_raw(db.session, raw, RECEIVED, None, "test").raw_message.id for raw in replies]
    db.session.commit()

    with selects_from("ticket") as ticket_queries, selects_from("message") as message_queries:
        results = process_batch(db.session, ids, ingest_settings(app.config))

    assert [r.new_ticket for r in results] == [False, False, True]
    assert results[0].reference == reference
    assert results[1].reference == reference
    # The stranger's mail opens its own ticket, marked as a possible follow-up.
    assert results[2].ticket.possible_followup_of == opened.ticket.id
    assert len(ticket_queries) == 1
    assert len(message_queries) == 1


def test_flush_forgets_batch_lookups(app: Flask) -> None:
    store_access_workflow()
    session = db.session
    begin_write_transaction(session)
    look_up_threads(session, [])
    assert transaction_cache(session).get("threading.looked_up") is not None

    with client_ids(session):
        open_one(app, 6)
        session.flush()

    assert transaction_cache(session).get("threading.looked_up") is None
    session.rollback()
