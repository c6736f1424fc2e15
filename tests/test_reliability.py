"""Ingestion that never loses, duplicates or loops on mail, against the private Dovecot.

The crash test runs the poller in a child process, kills it with SIGKILL at random moments,
restarts it, and checks that every message ends up stored once, in one ticket per
conversation, and marked on the server.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from imapclient import IMAPClient
from sqlalchemy import func, select

from inbox.extensions import db
from inbox.mail.imap import MailboxConfig
from inbox.mail.ingest import MAX_PROCESS_ATTEMPTS
from inbox.mail.locks import LockSettings, mailbox_lock
from inbox.mail.poller import PollResult, poll_mailbox
from inbox.models.audit import AuditEvent, AuditTag
from inbox.models.message import MailLocation, Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.services.intake import default_mailbox_config, ingest_settings, poll_mailboxes
from tests.factories import incoming, make_mail
from tests.servers import DEFAULT_PASSWORD, DEFAULT_USER, Dovecot

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROJECT_ROOT = Path(__file__).resolve().parent.parent

CHILD_CODE = """
import json, sys
from inbox import create_app
from inbox.extensions import db
from inbox.services.intake import poll_mailboxes
app = create_app(json.loads(sys.argv[1]), instance_path=sys.argv[2])
with app.app_context():
    results, errors = poll_mailboxes(db.session, app.config)
    sys.exit(1 if errors else 0)
"""
"""A poller run as a separate process, so that SIGKILL hits it and not the test."""


@dataclass(frozen=True)
class Conversation:
    """Test mail: raw bytes with the index of the conversation each one belongs to."""

    mails: list[bytes]
    message_ids: list[str]
    thread_of: list[int]


def make_conversations(count: int, seed: int) -> Conversation:
    """Build ``count`` mails where about one in three replies to an earlier one."""
    rng = random.Random(seed)
    mails: list[bytes] = []
    message_ids: list[str] = []
    thread_of: list[int] = []
    for index in range(count):
        message_id = f"<crash-{seed}-{index}@example.net>"
        if index >= 3 and rng.random() < 1 / 3:
            parent = rng.randrange(index)
            mail = make_mail(
                subject=f"Re: Verzoek {thread_of[parent]}",
                body=f"Aanvulling {index} op mijn eerdere bericht.",
                sender=f"Afzender {thread_of[parent]} <person{thread_of[parent]}@example.net>",
                message_id=message_id,
                headers={"In-Reply-To": message_ids[parent], "References": message_ids[parent]},
            )
            thread_of.append(thread_of[parent])
        else:
            mail = make_mail(
                subject=f"Verzoek {index}",
                body=f"Ik wil inzage in mijn gegevens, verzoek nummer {index}.",
                sender=f"Afzender {index} <person{index}@example.net>",
                message_id=message_id,
            )
            thread_of.append(index)
        mails.append(mail)
        message_ids.append(message_id)
    return Conversation(mails, message_ids, thread_of)


def append_all(dovecot: Dovecot, mails: list[bytes], folder: str = "INBOX") -> None:
    """Append every mail to ``folder`` over one connection."""
    with dovecot.client() as client:
        for raw in mails:
            client.append(folder, raw, msg_time=RECEIVED)


def child_config(app: Flask, batch_size: int) -> dict[str, Any]:
    """Return the settings a poller child process needs to poll the same mailbox and database."""
    return {
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": "",
        "POLL_INLINE": False,
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": app.config["IMAP_PORT"],
        "IMAP_SECURITY": "none",
        "IMAP_USER": DEFAULT_USER,
        "IMAP_PASSWORD": DEFAULT_PASSWORD,
        "IMAP_FETCH_BATCH": batch_size,
        "IMAP_TIMEOUT_SECONDS": 10.0,
    }


def start_child(config: dict[str, Any], instance: Path) -> subprocess.Popen[bytes]:
    """Start a poller child process with its output in a log file under ``instance``."""
    instance.mkdir(parents=True, exist_ok=True)
    with (instance / "child.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, json.dumps(config), str(instance)],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )


def run_with_kills(
    config: dict[str, Any], instance: Path, kills: int, rng: random.Random
) -> tuple[int, int]:
    """Start the poller ``kills`` times and SIGKILL each run at random, then run it to the end.

    Returns how many runs were killed while working and the exit code of the clean run.
    """
    killed = 0
    for _ in range(kills):
        child = start_child(config, instance)
        time.sleep(rng.uniform(0.8, 3.0))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.wait(timeout=30)
    final = start_child(config, instance)
    return killed, final.wait(timeout=600)


def count(model: Any) -> int:
    """Return the number of rows of a model."""
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def tickets_per_conversation(conversation: Conversation) -> dict[int, set[int]]:
    """Map each conversation to the ids of the tickets its messages ended up in."""
    ticket_of = dict(db.session.execute(select(Message.message_id, Message.ticket_id)).all())
    found: dict[int, set[int]] = {}
    for message_id, thread in zip(conversation.message_ids, conversation.thread_of, strict=True):
        found.setdefault(thread, set()).add(ticket_of.get(message_id.strip("<>"), -1))
    return found


@pytest.mark.slow
def test_crash_sigkill_restart_ingests_exactly_once(
    imap_app: Flask, mailbox: Dovecot, tmp_path: Path
) -> None:
    seed = int(os.environ.get("INBOX_CRASH_SEED", "20260302"))
    conversation = make_conversations(150, seed)
    append_all(mailbox, conversation.mails)
    db.session.remove()

    killed, exit_code = run_with_kills(
        child_config(imap_app, batch_size=10), tmp_path / "child", 5, random.Random(seed)
    )

    log = (tmp_path / "child" / "child.log").read_text(errors="replace")[-3000:]
    assert exit_code == 0, log
    assert killed >= 1, "no run was killed mid-poll; the kill window is too late"
    assert count(RawMessage) == 150
    assert count(MailLocation) == 150
    assert count(Message) == 150
    assert count(Ticket) == len(set(conversation.thread_of))
    pending = db.session.scalar(
        select(func.count()).select_from(RawMessage).where(RawMessage.processed_at.is_(None))
    )
    assert pending == 0
    split = {thread: ids for thread, ids in tickets_per_conversation(conversation).items()}
    assert [thread for thread, ids in split.items() if len(ids) != 1 or -1 in ids] == []
    unseen = [uid for uid, flags in mailbox.flags("INBOX").items() if b"\\Seen" not in flags]
    assert unseen == []


def recreate_inbox_with(dovecot: Dovecot, mails: list[bytes]) -> None:
    """Delete and recreate the folder Requests with the same mail, which changes its UIDVALIDITY."""
    with dovecot.client() as client:
        if client.folder_exists("Requests"):
            client.delete_folder("Requests")
        client.create_folder("Requests")
    append_all(dovecot, mails, folder="Requests")


def test_uidvalidity_change_stores_nothing_twice(make_app: Any, mailbox: Dovecot) -> None:
    mails = make_conversations(6, seed=7).mails
    recreate_inbox_with(mailbox, mails)
    app = make_app(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER=DEFAULT_USER,
        IMAP_PASSWORD=DEFAULT_PASSWORD,
        IMAP_FOLDER="Requests",
    )
    with app.app_context():
        poll_mailboxes(db.session, app.config)
        first_validity = mailbox.uidvalidity("Requests")
        tickets_before = count(Ticket)

        recreate_inbox_with(mailbox, mails)
        results, errors = poll_mailboxes(db.session, app.config)

        assert errors == []
        assert mailbox.uidvalidity("Requests") != first_validity
        assert count(RawMessage) == 6
        assert count(Ticket) == tickets_before
        assert count(MailLocation) == 12
        assert results[0].stored == 0
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == str(AuditTag.MAILBOX_UIDVALIDITY_CHANGE))
        ).all()
        assert len(events) == 1
        assert events[0].data["to"] == mailbox.uidvalidity("Requests")
        unseen = [uid for uid, flags in mailbox.flags("Requests").items() if b"\\Seen" not in flags]
        assert unseen == []


def test_same_message_id_different_bytes_is_new_message(imap_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", make_mail(message_id="<same@example.net>", body="Eerste versie."))
    mailbox.append("INBOX", make_mail(message_id="<same@example.net>", body="Tweede versie."))

    results, errors = poll_mailboxes(db.session, imap_app.config)

    assert errors == []
    assert count(RawMessage) == 2
    assert count(Message) == 2


def imap_config(dovecot: Dovecot, batch_size: int = 100, **overrides: Any) -> MailboxConfig:
    """Return a MailboxConfig for the private Dovecot's INBOX."""
    values: dict[str, Any] = {
        "name": "default",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "none",
        "username": DEFAULT_USER,
        "password": DEFAULT_PASSWORD,
        "timeout_seconds": 5.0,
        "batch_size": batch_size,
    }
    values.update(overrides)
    return MailboxConfig(**values)


@pytest.mark.parametrize("worker", [False, True], ids=["in-process", "parse-worker"])
def test_reconnect_after_drop_between_batches(
    imap_app: Flask,
    mailbox: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    worker: bool,
) -> None:
    monkeypatch.setattr("inbox.mail.poller.CONNECT_BACKOFF_SECONDS", 0.2)
    monkeypatch.setattr("inbox.mail.parsepool.MIN_MESSAGES", 1)
    append_all(mailbox, make_conversations(30, seed=3).mails)
    drops: list[int] = []

    def drop_once(client: IMAPClient, result: PollResult) -> None:
        # Dovecot keeps established sessions over a restart, so the socket is cut as well:
        # the poll meets a dead connection, then a server that is down for a moment.
        if drops:
            return
        drops.append(result.fetched)
        mailbox.stop()
        client.socket().shutdown(socket.SHUT_RDWR)
        threading.Timer(0.5, mailbox.start).start()

    result = poll_mailbox(
        db.session,
        imap_config(mailbox, batch_size=10),
        replace(ingest_settings(imap_app.config), parse_worker=worker),
        locks=LockSettings(lock_dir=tmp_path),
        after_batch=drop_once,
    )

    # A parse worker works one batch ahead: the second batch is stored, not yet processed,
    # when the first one is done, and the reconnected poll processes it first.
    assert drops == [20 if worker else 10]
    assert result.reconnects == 1
    assert result.fetched == 30
    assert count(RawMessage) == 30
    assert count(Message) == 30
    assert all(b"\\Seen" in flags for flags in mailbox.flags("INBOX").values())


def test_poll_waits_for_server_that_restarts(
    imap_app: Flask, mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("inbox.mail.poller.CONNECT_BACKOFF_SECONDS", 0.3)
    append_all(mailbox, make_conversations(10, seed=4).mails)
    mailbox.stop()
    starter = threading.Timer(1.0, mailbox.start)
    starter.start()

    result = poll_mailbox(
        db.session,
        imap_config(mailbox),
        ingest_settings(imap_app.config),
        locks=LockSettings(lock_dir=tmp_path),
    )
    starter.join()

    assert result.fetched == 10
    assert count(Message) == 10


def test_connect_sets_socket_timeout(mailbox: Dovecot) -> None:
    from inbox.mail.imap import connect

    client = connect(imap_config(mailbox, timeout_seconds=7.0))
    try:
        assert client._imap.sock.gettimeout() == 7.0
    finally:
        client.logout()


def test_failing_message_is_quarantined_others_processed(
    imap_app: Flask, mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest classifies a new conversation through parsepool.classify_new_text.
    import inbox.mail.parsepool as parsepool

    real_classify = parsepool.classify
    calls: list[str] = []

    def flaky_classify(subject: str, text: str) -> Any:
        if "giftig" in subject:
            calls.append(subject)
            raise RuntimeError("classifier fault for this one message")
        return real_classify(subject, text)

    monkeypatch.setattr(parsepool, "classify", flaky_classify)
    mailbox.append("INBOX", make_mail(subject="Inzageverzoek 1"))
    mailbox.append("INBOX", make_mail(subject="Bericht giftig"))
    mailbox.append("INBOX", make_mail(subject="Inzageverzoek 2"))

    poll_mailboxes(db.session, imap_app.config)

    tickets = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    # Once in the batch processed together, then MAX_PROCESS_ATTEMPTS times on its own.
    assert len(calls) == 1 + MAX_PROCESS_ATTEMPTS
    assert len(tickets) == 3
    assert [t.needs_attention for t in tickets] == [False, True, False]
    assert "RuntimeError" in tickets[1].attention_reason
    assert all(b"\\Seen" in flags for flags in mailbox.flags("INBOX").values())


def test_oversize_message_keeps_headers_and_stays_unmarked(make_app: Any, mailbox: Dovecot) -> None:
    app = make_app(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER=DEFAULT_USER,
        IMAP_PASSWORD=DEFAULT_PASSWORD,
        MAX_MESSAGE_BYTES=20_000,
    )
    big_uid = mailbox.append("INBOX", make_mail(subject="Groot bestand", body="x" * 50_000))
    small_uid = mailbox.append("INBOX", make_mail(subject="Klein verzoek"))

    with app.app_context():
        results, errors = poll_mailboxes(db.session, app.config)
        big = db.session.scalars(select(Ticket).where(Ticket.subject == "Groot bestand")).one()
        raw = db.session.scalars(select(RawMessage).where(RawMessage.size < 20_000)).all()

        assert errors == []
        assert results[0].oversize == 1
        assert big.needs_attention is True
        assert "oversize" in big.attention_reason
        assert len(raw) == 2
        assert b"\\Seen" not in mailbox.flags("INBOX")[big_uid]
        assert b"\\Seen" in mailbox.flags("INBOX")[small_uid]

        again, _ = poll_mailboxes(db.session, app.config)
        assert again[0].fetched == 0
        assert count(Ticket) == 2


def test_lock_second_holder_is_refused(tmp_path: Path) -> None:
    settings = LockSettings(lock_dir=tmp_path)
    with mailbox_lock("default", settings) as first:
        with mailbox_lock("default", settings) as second:
            assert first is True
            assert second is False
    with mailbox_lock("default", settings) as again:
        assert again is True


def test_lock_redis_second_holder_is_refused(redis_test_url: str) -> None:
    settings = LockSettings(redis_url=redis_test_url, renew_seconds=0.2, timeout_seconds=1.0)
    with mailbox_lock("redis-test", settings) as first:
        # Longer than the lock's lifetime: only the renewal keeps it held.
        time.sleep(1.5)
        with mailbox_lock("redis-test", settings) as second:
            assert first is True
            assert second is False
    with mailbox_lock("redis-test", settings) as again:
        assert again is True


@pytest.mark.parametrize("store", ["file", "redis"])
def test_lock_two_threads_never_ingest_twice(
    imap_app: Flask, mailbox: Dovecot, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_test_url") if store == "redis" else ""
    locks = LockSettings(redis_url=redis_url, lock_dir=tmp_path)
    append_all(mailbox, make_conversations(40, seed=5).mails)
    config = default_mailbox_config(imap_app.config)
    assert config is not None
    settings = ingest_settings(imap_app.config)
    results: list[PollResult] = []
    start = threading.Barrier(2)

    def worker() -> None:
        with imap_app.app_context():
            start.wait()
            results.append(poll_mailbox(db.session, config, settings, locks=locks))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.skipped for r in results) == [False, True]
    assert count(RawMessage) == 40
    assert count(Message) == 40


def test_idle_append_wakes_poll_within_seconds(imap_app: Flask, mailbox: Dovecot) -> None:
    from inbox.mail.idle import IdleTiming, run_idle_loop

    config = default_mailbox_config(imap_app.config)
    assert config is not None
    wakes: list[float] = []
    polled = threading.Event()

    def on_wake() -> None:
        with imap_app.app_context():
            poll_mailboxes(db.session, imap_app.config)
            db.session.remove()
        wakes.append(time.monotonic())
        if len(wakes) > 1:
            polled.set()

    stop = threading.Event()
    # A poll interval of five minutes, so only the IDLE wake-up can poll within the test.
    timing = IdleTiming(poll_interval_seconds=300.0)
    loop = threading.Thread(target=run_idle_loop, args=(config, on_wake, stop, timing))
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not wakes and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        appended_at = time.monotonic()
        mailbox.append("INBOX", make_mail(subject="Verwijderverzoek via IDLE"))

        assert polled.wait(10)
    finally:
        stop.set()
        loop.join(timeout=15)

    assert wakes[1] - appended_at < 5.0
    assert count(Ticket) == 1
    assert loop.is_alive() is False


def test_idle_watchdog_renews_silent_connection(imap_app: Flask, mailbox: Dovecot) -> None:
    from inbox.mail.idle import IdleTiming, run_idle_loop

    config = default_mailbox_config(imap_app.config)
    assert config is not None
    wakes: list[float] = []
    stop = threading.Event()
    timing = IdleTiming(poll_interval_seconds=300.0, renew_seconds=1.0, watchdog_seconds=0.5)
    loop = threading.Thread(
        target=run_idle_loop, args=(config, lambda: wakes.append(time.monotonic()), stop, timing)
    )
    loop.start()
    time.sleep(2.5)
    mailbox.append("INBOX", make_mail(subject="Na verlenging"))
    deadline = time.monotonic() + 5
    while len(wakes) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    loop.join(timeout=15)

    assert len(wakes) == 2


@pytest.fixture
def org_app(make_app: Any, mailbox: Dovecot) -> Any:
    """The polling app with privacy@example.org as its address, so example.org is colleagues."""
    application = make_app(
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=mailbox.port,
        IMAP_SECURITY="none",
        IMAP_USER=DEFAULT_USER,
        IMAP_PASSWORD=DEFAULT_PASSWORD,
        MAIL_FROM="privacy@example.org",
    )
    with application.app_context():
        yield application
        db.session.remove()


def poll(app: Flask) -> None:
    """Poll the default mailbox once and fail on any error."""
    _results, errors = poll_mailboxes(db.session, app.config)
    assert errors == []


def first_ticket(app: Flask, mailbox: Dovecot) -> Ticket:
    """Poll a first request from jan@example.net and return its ticket."""
    mailbox.append("INBOX", make_mail(message_id="<first@example.net>"), msg_time=RECEIVED)
    poll(app)
    return db.session.scalars(select(Ticket)).one()


@pytest.mark.parametrize("prefix", ["Re:", "AW:", "SV:", "Antw:", "Fwd:", "WG:", "RE: Re:"])
def test_thread_subject_token_from_requester_joins(
    org_app: Flask, mailbox: Dovecot, prefix: str
) -> None:
    ticket = first_ticket(org_app, mailbox)
    mail = make_mail(
        subject=f"{prefix} [{ticket.reference}] Inzageverzoek", sender="JAN@example.net"
    )
    mailbox.append("INBOX", mail)

    poll(org_app)

    assert count(Ticket) == 1
    assert len(incoming(ticket)) == 2


def test_thread_subject_token_from_stranger_opens_followup(
    org_app: Flask, mailbox: Dovecot
) -> None:
    ticket = first_ticket(org_app, mailbox)
    mail = make_mail(subject=f"AW: [{ticket.reference}]", sender="Piet <piet@example.com>")
    mailbox.append("INBOX", mail)

    poll(org_app)

    other = db.session.scalars(select(Ticket).where(Ticket.id != ticket.id)).one()
    assert other.needs_attention is True
    assert other.possible_followup_of == ticket.id
    assert ticket.reference in other.attention_reason
    assert len(incoming(ticket)) == 1


def forwarded_as_attachment() -> bytes:
    """Build a colleague's mail that carries the original request as message/rfc822."""
    original = make_mail(
        sender="Mevrouw de Vries <vries@example.com>",
        date=datetime(2026, 2, 20, 8, 30, tzinfo=UTC),
        subject="Verwijder mijn gegevens",
        body="Ik verzoek u al mijn gegevens te wissen (art. 17 AVG).",
    )
    outer = EmailMessage()
    outer["From"] = "Kees Collega <kees@example.org>"
    outer["To"] = "privacy@example.org"
    outer["Subject"] = "Fwd: Verwijder mijn gegevens"
    outer["Message-ID"] = "<fwd-attach@example.org>"
    outer["Date"] = "Mon, 02 Mar 2026 09:00:00 +0000"
    outer.set_content("Zie bijgevoegd verzoek, binnengekomen bij de klantenservice.")
    outer.add_attachment(email.message_from_bytes(original, policy=email.policy.default))
    return outer.as_bytes()


FORWARD_INLINE = {
    "en": "---------- Forwarded message ---------\nFrom: {sender}\nDate: {date}\nSubject: Data\n",
    "nl": (
        "---------- Doorgestuurd bericht ----------\n"
        "Van: {sender}\nDatum: {date}\nOnderwerp: Data\n"
    ),
    "de": (
        "-------- Weitergeleitete Nachricht --------\n"
        "Von: {sender}\nDatum: {date}\nBetreff: Data\n"
    ),
}


@pytest.mark.parametrize("language", sorted(FORWARD_INLINE))
def test_forward_inline_block_sets_original_requester(
    org_app: Flask, mailbox: Dovecot, language: str
) -> None:
    block = FORWARD_INLINE[language].format(
        sender="Mevrouw de Vries <vries@example.com>", date="Fri, 20 Feb 2026 08:30:00 +0000"
    )
    body = f"Graag oppakken.\n\n{block}\nIk wil weten welke gegevens u van mij heeft.\n"
    mail = make_mail(sender="Kees Collega <kees@example.org>", subject="Fwd: Data", body=body)
    mailbox.append("INBOX", mail, msg_time=RECEIVED)

    poll(org_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.requester_email == "vries@example.com"
    assert ticket.forwarded_by == "kees@example.org"
    assert ticket.received_at == datetime(2026, 2, 20, 8, 30, tzinfo=UTC)


def test_forward_attachment_sets_original_requester(org_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", forwarded_as_attachment(), msg_time=RECEIVED)

    poll(org_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.requester_email == "vries@example.com"
    assert ticket.requester_name == "Mevrouw de Vries"
    assert ticket.forwarded_by == "kees@example.org"
    assert ticket.received_at == datetime(2026, 2, 20, 8, 30, tzinfo=UTC)


def test_forward_from_stranger_keeps_sender(org_app: Flask, mailbox: Dovecot) -> None:
    block = FORWARD_INLINE["en"].format(
        sender="a@example.com", date="Fri, 20 Feb 2026 08:30:00 +0000"
    )
    mail = make_mail(sender="b@example.net", subject="Fwd: Data", body=f"Kijk.\n\n{block}\nTekst\n")
    mailbox.append("INBOX", mail, msg_time=RECEIVED)

    poll(org_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.requester_email == "b@example.net"
    assert ticket.forwarded_by == ""


def delivery_report(original_message_id: str) -> bytes:
    """Build an RFC 3464 delivery report about a mail with ``original_message_id``."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: privacy@example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.org>\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; jan@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: privacy@example.org\r\nTo: jan@example.net\r\n"
        f"Message-ID: <{original_message_id}>\r\nSubject: Ontvangstbevestiging\r\n"
        "\r\n--b1--\r\n"
    ).encode()


def test_bounce_attaches_to_ticket_and_flags_it(org_app: Flask, mailbox: Dovecot) -> None:
    ticket = first_ticket(org_app, mailbox)
    db.session.add(
        Message(
            ticket=ticket,
            direction="out",
            message_id="ack-1@example.org",
            received_at=RECEIVED,
        )
    )
    db.session.commit()
    mailbox.append("INBOX", delivery_report("ack-1@example.org"))

    poll(org_app)

    assert count(Ticket) == 1
    assert len(incoming(ticket)) == 2
    assert ticket.needs_attention is True
    assert ticket.attention_reason.startswith("requester address failed")


def test_bounce_about_unknown_mail_opens_ticket(org_app: Flask, mailbox: Dovecot) -> None:
    mailbox.append("INBOX", delivery_report("unknown@example.org"))

    poll(org_app)

    ticket = db.session.scalars(select(Ticket)).one()
    assert ticket.type == "other"
