"""Ids handed out before the INSERT, so that a batch's new rows go in one statement per table."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from inbox.audit import verify_chain
from inbox.extensions import db
from inbox.ids import begin_write_transaction, client_ids, ensure_id, hands_out_ids
from inbox.mail.ingest import process_batch
from inbox.mail.store import store_raw
from inbox.models.ticket import Ticket
from inbox.services.intake import ingest_settings
from tests.conftest import database_kind
from tests.factories import make_mail, sent_statements

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def new_ticket(number: int, forwarded_by: str | None = None) -> Ticket:
    """Return an unsaved ticket; ``forwarded_by`` None leaves that column to its default."""
    ticket = Ticket(
        reference=f"PRQ-2026-{number:05d}",
        type="access",
        subject=f"Verzoek {number}",
        requester_email=f"person{number}@example.net",
        received_at=RECEIVED,
    )
    if forwarded_by is not None:
        ticket.forwarded_by = forwarded_by
    return ticket


def inserts_into(table: str) -> AbstractContextManager[list[str]]:
    """Collect the INSERT statements sent for ``table`` while the block runs."""
    return sent_statements(lambda statement: statement.startswith(f"INSERT INTO {table} "))


def test_client_ids_ascending_mixed_shapes(app: Flask) -> None:
    session = db.session
    begin_write_transaction(session)
    with inserts_into("ticket") as statements, client_ids(session):
        # Every other ticket sets a defaulted column, which would split a plain flush.
        tickets = [new_ticket(n, "collega@example.org" if n % 2 else None) for n in range(1, 7)]
        session.add_all(tickets)
        first = ensure_id(session, tickets[0])
        assert all(t.id is None for t in tickets[1:])
        session.flush()
    session.commit()

    assert [t.id for t in tickets] == list(range(first, first + 6))
    assert len(statements) == 1
    assert [t.forwarded_by for t in tickets] == ["collega@example.org", ""] * 3


def test_ensure_id_flushes_outside_client_ids(app: Flask) -> None:
    ticket = new_ticket(1)
    db.session.add(ticket)

    assert not hands_out_ids(db.session)
    assert ensure_id(db.session, ticket) == ticket.id
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_hands_out_ids_sqlite_needs_write_lock(app: Flask) -> None:
    session = db.session
    session.scalar(select(func.count()).select_from(Ticket))  # opens a deferred transaction
    with client_ids(session):
        # PostgreSQL reads ids from the sequence in any transaction; SQLite counts them itself
        # only while this transaction holds the write lock since its start.
        assert hands_out_ids(session) == (session.get_bind().dialect.name == "postgresql")


def test_client_ids_after_database_ids(app: Flask) -> None:
    db.session.add(new_ticket(1))
    db.session.commit()

    begin_write_transaction(db.session)
    with client_ids(db.session):
        ticket = new_ticket(2)
        db.session.add(ticket)
        handed_out = ensure_id(db.session, ticket)
    db.session.commit()

    assert handed_out > db.session.scalar(select(func.min(Ticket.id)))
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 2


def test_process_batch_one_insert_per_table(app: Flask) -> None:
    mails = [
        make_mail(subject=f"Inzageverzoek {n}", message_id=f"<ids{n}@example.net>")
        for n in range(1, 7)
    ]
    ids = [store_raw(db.session, raw, RECEIVED, None, "test").raw_message.id for raw in mails]
    db.session.commit()
    # The first request also stores the shipped workflow as version 1, which writes at once.
    process_batch(db.session, ids[:1], ingest_settings(app.config))

    with inserts_into("ticket") as tickets, inserts_into("workflow_step") as steps:
        results = process_batch(db.session, ids[1:], ingest_settings(app.config))

    assert [r.reference[-5:] for r in results] == ["00002", "00003", "00004", "00005", "00006"]
    assert len(tickets) == 1
    assert len(steps) == 1
    assert verify_chain(db.session).is_intact


def test_postgres_batch_reads_sequence_once(app: Flask) -> None:
    if database_kind() != "postgresql":
        pytest.skip("only PostgreSQL reads ids from a sequence")
    session = db.session
    reads = sent_statements(lambda statement: "nextval" in statement)
    with reads as statements, client_ids(session):
        tickets = [new_ticket(n) for n in range(1, 101)]
        session.add_all(tickets)
        ids = [ensure_id(session, ticket) for ticket in tickets]
        session.flush()
    session.commit()

    assert len(statements) == 1
    assert ids == sorted(set(ids))


def test_process_batch_reads_workflows_once(app: Flask) -> None:
    subjects = ["Inzageverzoek", "Verwijderverzoek"] * 3
    mails = [
        make_mail(subject=subject, message_id=f"<wf{n}@example.net>")
        for n, subject in enumerate(subjects)
    ]
    ids = [store_raw(db.session, raw, RECEIVED, None, "test").raw_message.id for raw in mails]
    db.session.commit()
    # The first batch stores the shipped workflow of both types as their version 1.
    process_batch(db.session, ids[:2], ingest_settings(app.config))

    reads = sent_statements(lambda statement: "FROM workflow_version" in statement)
    with reads as statements:
        results = process_batch(db.session, ids[2:], ingest_settings(app.config))

    assert {r.ticket.type for r in results} == {"access", "erasure"}
    assert len(statements) == 1
