"""Tests for the server helpers in tests/servers.py, run against the real servers."""

from __future__ import annotations

import re
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import imapclient
import psycopg
import pytest
import redis

from tests.servers import (
    DEFAULT_USER,
    Dovecot,
    ServerUnavailableError,
    SmtpSink,
    find_free_port,
    postgres_url,
    redis_url,
    require_postgres,
    require_redis,
    start_dovecot,
)


def make_raw_mail(subject: str = "Access request", body: str = "Please send my data.") -> bytes:
    """Build a small test mail as raw bytes with CRLF line endings."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = "requester@example.test"
    message["To"] = "privacy@example.test"
    message["Subject"] = subject
    message["Message-ID"] = "<server-helper-test@example.test>"
    message.set_content(body)
    return message.as_bytes()


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """Run one private Dovecot for the tests of this module that do not restart it.

    It replaces conftest's session-wide dovecot fixture, so these tests add users and folders
    on a server of their own.
    """
    # A shared server saves about a second per test, which Dovecot's log process takes to exit.
    server = start_dovecot(tmp_path_factory.mktemp("dovecot"))
    yield server
    server.stop()


@pytest.fixture
def own_dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """Run a private Dovecot for one test that stops or restarts it."""
    server = start_dovecot(tmp_path / "dovecot")
    yield server
    server.stop()


@pytest.fixture
def folder(dovecot: Dovecot, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create an empty folder named after the test in the shared Dovecot's default mailbox."""
    name = request.node.name.replace("[", "-").replace("]", "")
    dovecot.create_folder(name)
    yield name
    dovecot.delete_folder(name)


def test_dovecot_fetch_by_uid_returns_raw(dovecot: Dovecot, folder: str) -> None:
    raw = make_raw_mail()
    uid = dovecot.append(folder, raw)

    with dovecot.client() as client:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch([uid], [b"BODY.PEEK[]"])

    assert fetched[uid][b"BODY[]"] == raw


def test_dovecot_body_peek_keeps_unseen(dovecot: Dovecot, folder: str) -> None:
    uid = dovecot.append(folder, make_raw_mail())

    with dovecot.client() as client:
        client.select_folder(folder)
        client.fetch([uid], [b"BODY.PEEK[]"])

    assert b"\\Seen" not in dovecot.flags(folder)[uid]


def test_dovecot_append_sets_flags(dovecot: Dovecot, folder: str) -> None:
    uid = dovecot.append(folder, make_raw_mail(), flags=(b"\\Flagged",))

    assert b"\\Flagged" in dovecot.flags(folder)[uid]


def test_dovecot_internaldate_is_msg_time(dovecot: Dovecot, folder: str) -> None:
    msg_time = datetime(2024, 3, 29, 16, 45, 12, tzinfo=timezone(timedelta(hours=1)))
    uid = dovecot.append(folder, make_raw_mail(), msg_time=msg_time)

    with dovecot.client() as client:
        # Without normalise_times imapclient returns INTERNALDATE with its time zone.
        client.normalise_times = False
        client.select_folder(folder, readonly=True)
        internaldate = client.fetch([uid], [b"INTERNALDATE"])[uid][b"INTERNALDATE"]

    # Maildir keeps INTERNALDATE as the file's mtime, so Dovecot returns the same instant in
    # the server's time zone, not the +01:00 that was sent.
    assert internaldate == msg_time


def test_dovecot_uids_ascend_per_append(dovecot: Dovecot, folder: str) -> None:
    first = dovecot.append(folder, make_raw_mail(subject="First"))
    second = dovecot.append(folder, make_raw_mail(subject="Second"))

    assert second > first
    assert dovecot.uids(folder) == [first, second]


def test_dovecot_restart_keeps_mail(own_dovecot: Dovecot) -> None:
    raw = make_raw_mail()
    uid = own_dovecot.append("INBOX", raw)
    uidvalidity = own_dovecot.uidvalidity("INBOX")
    port = own_dovecot.port

    own_dovecot.restart()

    with own_dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch([uid], [b"BODY.PEEK[]"])
    assert own_dovecot.port == port
    assert own_dovecot.uidvalidity("INBOX") == uidvalidity
    assert fetched[uid][b"BODY[]"] == raw


def test_dovecot_stop_closes_port(own_dovecot: Dovecot) -> None:
    own_dovecot.stop()

    with pytest.raises(OSError):
        imapclient.IMAPClient("127.0.0.1", port=own_dovecot.port, ssl=False, timeout=2)


def test_dovecot_users_are_separate(dovecot: Dovecot) -> None:
    dovecot.add_user("first-user", "first-password")
    dovecot.add_user("second-user", "second-password")

    uid = dovecot.append("INBOX", make_raw_mail(), user="first-user")

    assert dovecot.uids("INBOX", user="first-user") == [uid]
    assert dovecot.uids("INBOX", user="second-user") == []


def test_dovecot_rejects_wrong_password(dovecot: Dovecot) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)

    with pytest.raises(imapclient.exceptions.LoginError):
        client.login(DEFAULT_USER, "wrong-password")
    client.shutdown()


def test_dovecot_create_and_delete_folder(dovecot: Dovecot) -> None:
    dovecot.create_folder("Processed")
    uid = dovecot.append("Processed", make_raw_mail())
    assert dovecot.uids("Processed") == [uid]

    dovecot.delete_folder("Processed")

    with dovecot.client() as client:
        assert not client.folder_exists("Processed")


def test_dovecot_client_turns_off_imaplib_debug(dovecot: Dovecot) -> None:
    with dovecot.client() as client:
        assert client._imap.debug == 0


def test_dovecot_unreachable_workdir_links_files(own_dovecot: Dovecot, tmp_path: Path) -> None:
    link = tmp_path / "dovecot" / own_dovecot.workdir.name

    assert own_dovecot.workdir.parent == Path("/tmp")
    assert link.resolve() == own_dovecot.workdir


def test_dovecot_reachable_workdir_holds_files() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="inbox-test-", dir="/tmp"))
    try:
        server = Dovecot(workdir)
        assert server.workdir == workdir
        assert server.config_path.parent == workdir
    finally:
        shutil.rmtree(workdir)


def test_dovecot_missing_binary_names_install_script(tmp_path: Path) -> None:
    with pytest.raises(ServerUnavailableError, match="scripts/install-test-deps.sh"):
        Dovecot(tmp_path, binary=tmp_path / "no-such-dovecot")


def test_dovecot_rejects_invalid_user_name(dovecot: Dovecot) -> None:
    with pytest.raises(ValueError, match="invalid test user name"):
        dovecot.add_user("bad:name", "password")


def test_postgres_answers_select() -> None:
    require_postgres(postgres_url())

    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", postgres_url())
    connection = psycopg.connect(dsn, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            (database,) = cursor.fetchone()
    finally:
        connection.close()
    assert database == "test"


def test_postgres_url_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/other"
    monkeypatch.setenv("INBOX_TEST_POSTGRES_URL", url)

    assert postgres_url() == url


def test_postgres_unreachable_names_start_command() -> None:
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:{find_free_port()}/test"

    with pytest.raises(ServerUnavailableError) as raised:
        require_postgres(url)

    assert "pg_ctlcluster" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_redis_answers_ping() -> None:
    require_redis(redis_url())

    client = redis.Redis.from_url(redis_url())
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_redis_unreachable_names_start_command() -> None:
    with pytest.raises(ServerUnavailableError, match="redis-server --daemonize yes"):
        require_redis(f"redis://127.0.0.1:{find_free_port()}/15")


def test_smtp_sink_receives_mail() -> None:
    raw = make_raw_mail(subject="Acknowledgement")
    recipients = ["requester@example.test", "copy@example.test"]

    with (
        SmtpSink() as sink,
        smtplib.SMTP(sink.host, sink.port, local_hostname="client.localhost") as smtp,
    ):
        smtp.sendmail("privacy@example.test", recipients, raw)
        received = sink.messages

    assert len(received) == 1
    assert received[0].mail_from == "privacy@example.test"
    assert received[0].rcpt_tos == tuple(recipients)
    assert received[0].raw == raw


def test_smtp_sink_clear_forgets_messages() -> None:
    with (
        SmtpSink() as sink,
        smtplib.SMTP(sink.host, sink.port, local_hostname="client.localhost") as smtp,
    ):
        smtp.sendmail("privacy@example.test", ["requester@example.test"], make_raw_mail())
        sink.clear()
        received = sink.messages

    assert received == []
