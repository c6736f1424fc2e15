"""The RQ path: the poll job in a real worker on Redis, and its cron registration."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import select

from inbox.extensions import db
from inbox.jobs import POLL_QUEUE, build_cron_scheduler, poll_job, run_idle_pollers
from inbox.mail.ingest import process_batch
from inbox.mail.store import store_raw
from inbox.models.ticket import Ticket
from inbox.services.intake import ingest_settings, poll_mailboxes
from inbox.services.replies import OUTGOING_QUEUE, UNENQUEUED_AFTER
from tests.conftest import imap_settings
from tests.factories import leave_acknowledgement_uncomposed, make_mail
from tests.servers import Dovecot, SmtpSink


@pytest.fixture
def redis_connection(redis_test_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_test_url)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def test_poll_job_runs_in_rq_worker(
    imap_app: Flask, mailbox: Dovecot, redis_connection: Redis
) -> None:
    mailbox.append("INBOX", make_mail(), msg_time=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    queue = Queue(POLL_QUEUE, connection=redis_connection)
    job = queue.enqueue(poll_job)

    # SimpleWorker runs the job in this process, inside the test app's context.
    SimpleWorker([queue], connection=redis_connection).work(burst=True)

    job.refresh()
    assert job.is_finished
    assert job.return_value() == {"mailboxes": 1, "errors": 0, "new_tickets": 1, "replies": 0}
    assert db.session.scalars(select(Ticket)).one().type == "access"


def test_cron_scheduler_enqueues_poll(redis_connection: Redis) -> None:
    scheduler = build_cron_scheduler(redis_connection, interval_seconds=60)

    enqueued = scheduler.enqueue_jobs()

    assert len(enqueued) == 1
    queue = Queue(POLL_QUEUE, connection=redis_connection)
    assert queue.jobs[0].func_name == "inbox.jobs.poll_job"


def test_poll_job_twice_is_harmless(imap_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", make_mail(), msg_time=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))

    first = poll_job()
    second = poll_job()

    assert first["new_tickets"] == 1
    assert second["new_tickets"] == 0


def test_idle_pollers_pick_up_new_mail(imap_app: Flask, mailbox: Dovecot) -> None:
    stop = threading.Event()
    watcher = threading.Thread(target=run_idle_pollers, args=(imap_app, stop), daemon=True)
    watcher.start()
    try:
        time.sleep(1.0)
        mailbox.append("INBOX", make_mail(), msg_time=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            db.session.remove()
            if db.session.scalars(select(Ticket)).first() is not None:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join(timeout=30)

    assert db.session.scalars(select(Ticket)).one().type == "access"
    assert not watcher.is_alive()


def test_acknowledgement_delivered_by_rq_worker(
    make_app: Any, redis_test_url: str, redis_connection: Redis, smtp_sink: SmtpSink
) -> None:
    app = make_app(
        REDIS_URL=redis_test_url,
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
        SMTP_SECURITY="none",
        MAIL_FROM="privacy@example.org",
    )
    with app.app_context():
        stored = store_raw(db.session, make_mail(), datetime.now(UTC), None, "test")
        db.session.commit()
        process_batch(db.session, [stored.raw_message.id], ingest_settings(app.config))
        assert smtp_sink.messages == []

        queue = Queue(OUTGOING_QUEUE, connection=redis_connection)
        SimpleWorker([queue], connection=redis_connection).work(burst=True)

        assert len(smtp_sink.messages) == 1
        assert smtp_sink.messages[0].rcpt_tos == ("jan@example.net",)
        db.session.remove()


def test_poll_enqueues_acknowledgement_never_enqueued(
    make_app: Any, mailbox: Dovecot, redis_test_url: str, redis_connection: Redis
) -> None:
    app = make_app(
        REDIS_URL=redis_test_url, MAIL_FROM="privacy@example.org", **imap_settings(mailbox)
    )
    with app.app_context():
        delivery = leave_acknowledgement_uncomposed(app.config)
        queue = Queue(OUTGOING_QUEUE, connection=redis_connection)

        poll_mailboxes(db.session, app.config)
        queued_when_recent = queue.count
        delivery.created_at = datetime.now(UTC) - UNENQUEUED_AFTER - timedelta(minutes=1)
        db.session.commit()
        poll_mailboxes(db.session, app.config)
        queued_when_stale = queue.count
        db.session.remove()

    assert queued_when_recent == 0
    assert queued_when_stale == 1
