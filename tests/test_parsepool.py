"""The parse worker: same results as parsing in the poller, and a fallback when it fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from inbox.classify import classify
from inbox.errors import ParseError
from inbox.extensions import db
from inbox.mail import parsepool, poller
from inbox.mail.ingest import IngestSettings, process_raw
from inbox.mail.parse import parse_message
from inbox.mail.parsepool import ParsePool, Prepared, prepare, prepare_batch, without_file_bytes
from inbox.mail.quoting import split_reply
from inbox.mail.store import store_raw
from inbox.models.ticket import Ticket
from inbox.services.intake import ingest_settings, poll_mailboxes
from inbox.sla import SlaPolicy
from tests.conftest import database_kind, empty_database
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
        if parsed.in_reply_to or parsed.references:
            # A reply most likely joins its ticket; the poller classifies it if it does not.
            assert prepared.classification is None, path.name
        else:
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
        in_process = prepare(raw, None)
        expected = replace(in_process, parsed=without_file_bytes(in_process.parsed))
        assert results[index] == expected, SAMPLES[index].name
        assert dict(results[index].parsed.headers) == dict(parse_message(raw).headers)


def test_worker_sends_no_file_bytes_but_forwarded_mail() -> None:
    forwarded = make_mail(subject="Inzageverzoek", message_id="<inner@example.net>")
    outer = EmailMessage()
    outer["From"] = "collega@example.org"
    outer["To"] = "privacy@example.org"
    outer["Subject"] = "Fwd: Inzageverzoek"
    outer.set_content("Zie het doorgestuurde verzoek.")
    outer.add_attachment(b"%PDF-1.4 scan", "application", "pdf", filename="scan.pdf")
    outer.add_attachment(message_from_bytes(forwarded, policy=default), filename="verzoek.eml")

    results = prepare_batch({1: outer.as_bytes()}, None)

    pdf, mail = results[1].parsed.attachments
    assert (pdf.data, pdf.size, pdf.sha256) == (b"", 13, sha256(b"%PDF-1.4 scan").hexdigest())
    assert mail.content_type == "message/rfc822"
    assert parse_message(mail.data).message_id == "inner@example.net"


def test_pool_fault_leaves_parsing_to_poller() -> None:
    pool = ParsePool(None)
    assert pool._executor is not None
    crash = pool._executor.submit(os._exit, 3)  # the worker dies mid-batch

    assert pool.results(crash) == {}
    assert pool.submit({1: make_mail()}) is None
    pool.close()


def test_pool_logs_one_failure_per_fault(caplog: pytest.LogCaptureFixture) -> None:
    pool = ParsePool(None)
    assert pool._executor is not None
    crash = pool._executor.submit(os._exit, 3)
    queued = pool.submit({1: make_mail()})

    assert pool.results(crash) == {}
    assert pool.results(queued) == {}
    assert caplog.text.count("parse worker failed") == 1
    pool.close()


def test_close_kills_stopped_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsepool, "CLOSE_TIMEOUT_SECONDS", 0.5)
    pool = ParsePool(None)
    pool.results(pool.submit({1: make_mail()}))
    assert pool._executor is not None
    worker_pid = next(iter(pool._executor._processes))
    os.kill(worker_pid, signal.SIGSTOP)
    pool.submit({2: make_mail()})  # left in the stopped worker, as when a poll fails

    started = time.monotonic()
    pool.close()

    assert time.monotonic() - started < 5
    assert not is_running(worker_pid)


def test_pool_setup_failure_parses_in_poller(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_shared_memory(max_attachment_bytes: int | None) -> ParsePool:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(poller, "ParsePool", no_shared_memory)
    monkeypatch.setattr(parsepool, "MIN_MESSAGES", 1)

    settings = IngestSettings(policy=SlaPolicy(), parse_worker=True)

    assert poller.start_parse_pool(settings, 500) is None


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
    second_connection = "storing batches over a second database connection" in caplog.text
    assert second_connection == (database_kind() == "postgresql")
    assert len(snapshots[0]) > 20
    assert snapshots[0] == snapshots[1]


KILLED_POLLER = """
import time
from inbox.mail.parsepool import ParsePool

if __name__ == "__main__":
    pool = ParsePool(None)
    pool.results(pool.submit({1: b"Subject: x\\r\\n\\r\\nbody\\r\\n"}))
    print(next(iter(pool._executor._processes)), flush=True)
    time.sleep(120)
"""


def is_running(pid: int) -> bool:
    """Tell whether a process exists and has not exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_worker_exits_when_poller_is_killed() -> None:
    poller = subprocess.Popen(
        [sys.executable, "-c", KILLED_POLLER],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller.stdout is not None
    worker_pid = int(poller.stdout.readline())
    assert is_running(worker_pid)

    poller.send_signal(signal.SIGKILL)
    poller.wait()
    poller.stdout.close()

    deadline = time.monotonic() + 10 * parsepool.PARENT_CHECK_SECONDS
    while is_running(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(worker_pid)
