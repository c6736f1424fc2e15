"""Start and check the real servers the tests run against: Dovecot, PostgreSQL, Redis, SMTP.

Dovecot and the SMTP sink are private to the test run, on free loopback ports. PostgreSQL
and Redis are the machine's own servers, which `scripts/install-test-deps.sh` installs and
starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import imapclient
import psycopg
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

logger = logging.getLogger(__name__)

INSTALL_HINT = "run `sudo bash scripts/install-test-deps.sh` from the repository root"
"""Advice in every error about a missing or stopped server."""

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
"""Path of the Dovecot master binary from Debian's dovecot-core package."""

MAIL_UID = 1000
"""Numeric uid and gid that own the test mailboxes. No system user with this id is needed."""

DOVECOT_START_TIMEOUT_SECONDS = 10.0
"""Time Dovecot gets to accept connections on its port before start() gives up."""

DOVECOT_STOP_TIMEOUT_SECONDS = 10.0
"""Time the Dovecot master gets to exit after SIGTERM before it is killed."""

MAX_ROOT_LENGTH = 70
"""Maximum length of a Dovecot's directory, so the Unix socket paths in it fit in 108 bytes."""

DEFAULT_USER = "inbox"
"""Login of the mailbox that start_dovecot() creates."""

DEFAULT_PASSWORD = "inbox-test-password"
"""Password of DEFAULT_USER."""

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""SQLAlchemy URL of the test database unless INBOX_TEST_POSTGRES_URL is set."""

REDIS_URL = "redis://127.0.0.1:6379/15"
"""Redis URL for tests. Database number 15 keeps test keys apart from development data in 0."""

_USER_NAME_PATTERN = re.compile(r"[A-Za-z0-9._@+-]+")
_APPENDUID_PATTERN = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


class ServerUnavailableError(RuntimeError):
    """Raised when a server the tests need is missing, stopped or does not start."""


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    # NOTE: another process can take the port between close() and the server's bind().
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _choose_root(workdir: Path) -> Path:
    """Return the directory for a Dovecot's files: workdir, or a new one under /tmp.

    Dovecot's auth process (user dovecot) and its mail processes (MAIL_UID) must traverse every
    parent directory, and pytest creates its temporary directories with mode 0700 and resets
    its temporary root to 0700 at the start of every session. A workdir below such a parent,
    or one too long for socket paths, gets a link to a new directory under /tmp instead.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    is_reachable = all(parent.stat().st_mode & stat.S_IXOTH for parent in workdir.parents)
    if is_reachable and len(str(workdir)) <= MAX_ROOT_LENGTH:
        root = workdir
    else:
        root = Path(tempfile.mkdtemp(prefix="inbox-dovecot-", dir="/tmp"))
        (workdir / root.name).symlink_to(root)
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        logger.info("Dovecot files for %s are in %s", workdir, root)

    # Only the execute bit is added, so other users still cannot list the directory.
    root.chmod(stat.S_IMODE(root.stat().st_mode) | stat.S_IXOTH)
    return root


class Dovecot:
    """A private Dovecot 2.3 IMAP server on a loopback port, with its files under workdir.

    NOTE: when Dovecot's processes cannot reach workdir, such as pytest's tmp_path, the files
    are in a new directory under /tmp, linked from workdir and removed when Python exits.
    """

    def __init__(self, workdir: Path, binary: Path = DOVECOT_BINARY) -> None:
        if not binary.exists():
            raise ServerUnavailableError(
                f"Dovecot is not installed because {binary} is missing: {INSTALL_HINT}"
            )
        if os.geteuid() != 0:
            raise ServerUnavailableError(
                "the test Dovecot must run as root, but this process is not root"
            )

        self.binary = binary
        self.workdir = _choose_root(workdir)
        self.base_dir = self.workdir / "run"
        self.state_dir = self.workdir / "state"
        self.config_path = self.workdir / "dovecot.conf"
        self.passwd_path = self.workdir / "passwd"
        self.log_path = self.workdir / "dovecot.log"
        self.output_path = self.workdir / "dovecot.out"
        self.port = find_free_port()
        self.users: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._write_files()

    def _write_files(self) -> None:
        """Create the directories, an empty passwd file and the configuration file."""
        for directory in (self.state_dir, self.workdir / "home"):
            directory.mkdir(exist_ok=True)

        # Dovecot's auth process runs as user dovecot and reads the passwords from here.
        self.passwd_path.touch()
        shutil.chown(self.passwd_path, user="root", group="dovecot")
        self.passwd_path.chmod(0o640)

        # auth_failure_delay and the anvil-auth-penalty listener with mode 0 turn off the
        # delays after a failed login (2 s, then up to 15 s per IP), which would slow down tests
        # that try a wrong password.
        self.config_path.write_text(
            f"""\
base_dir = {self.base_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_UID}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.passwd_path}
}}
userdb {{
  driver = passwd-file
  args = {self.passwd_path}
}}
""",
            encoding="utf-8",
        )

    def add_user(self, name: str, password: str) -> None:
        """Add a mailbox login with its own home and Maildir under the work directory."""
        if not _USER_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"invalid test user name {name!r}: use letters, digits and ._@+-")
        if ":" in password or "\n" in password:
            raise ValueError("invalid test password: it must not contain ':' or a newline")
        if name in self.users:
            raise ValueError(f"test user {name!r} already exists")

        home = self.workdir / "home" / name
        home.mkdir(mode=0o700)
        os.chown(home, MAIL_UID, MAIL_UID)

        # passwd-file fields: user:password:uid:gid:gecos:home:shell:extra. Dovecot reads the
        # file again when its modification time changes, so a running server finds the user.
        with self.passwd_path.open("a", encoding="utf-8") as passwd:
            passwd.write(f"{name}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        self.users[name] = password
        logger.info("Added Dovecot test user %s on port %s", name, self.port)

    def start(self) -> None:
        """Start the Dovecot master and wait until the IMAP port accepts connections.

        :raises ServerUnavailableError: when Dovecot exits or the port stays closed for
            DOVECOT_START_TIMEOUT_SECONDS; the message contains the end of Dovecot's log.
        """
        if self._process is not None:
            raise RuntimeError(f"Dovecot on port {self.port} is already running")

        # -F keeps the master in the foreground as our child, so stop() can wait for it.
        # Its output goes to a file because a caller that captures output would otherwise
        # wait until Dovecot stops.
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                [str(self.binary), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        atexit.register(self.stop)

        deadline = time.monotonic() + DOVECOT_START_TIMEOUT_SECONDS
        while not self._accepts_connections():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise ServerUnavailableError(
                    f"Dovecot exited with status {code}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerUnavailableError(
                    f"Dovecot did not accept connections on 127.0.0.1:{self.port} within "
                    f"{DOVECOT_START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        logger.info("Started Dovecot pid %s on 127.0.0.1:%s", self._process.pid, self.port)

    def stop(self) -> None:
        """Stop the Dovecot master with SIGTERM and wait until it has exited."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return

        process.terminate()
        try:
            process.wait(timeout=DOVECOT_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("Dovecot pid %s ignored SIGTERM; killing it", process.pid)
            process.kill()
            process.wait()
        logger.info("Stopped Dovecot pid %s on port %s", process.pid, self.port)

    def restart(self) -> None:
        """Stop and start Dovecot on the same port, keeping the mailboxes and their UIDVALIDITY."""
        self.stop()
        self.start()

    def __enter__(self) -> Dovecot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accepts_connections(self) -> bool:
        """Return whether the IMAP port sends an "* OK" greeting."""
        # imap-login sends its greeting only once the auth process is ready, so a greeting
        # means that a login will be served.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                return probe.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of Dovecot's log file and of its standard output."""
        tail: list[str] = []
        for path in (self.log_path, self.output_path):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
                tail.extend(f"{path.name}: {line}" for line in text.splitlines()[-lines:])
        return "\n".join(tail) or "(Dovecot wrote no log)"

    def client(self, user: str = DEFAULT_USER) -> imapclient.IMAPClient:
        """Connect to this Dovecot and log in as user; the caller logs out."""
        client = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)

        # imapclient 4.1 sets imaplib's debug level to 5 on connect. imaplib then formats every
        # fetched literal with repr() for its log hook, which makes fetch about 7 times slower.
        client._imap.debug = 0

        password = self.users.get(user)
        if password is None:
            client.shutdown()
            raise ValueError(f"test user {user!r} not found: call add_user() first")
        try:
            client.login(user, password)
        except imapclient.exceptions.LoginError:
            client.shutdown()
            raise
        return client

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: tuple[bytes | str, ...] = (),
        msg_time: datetime | None = None,
        user: str = DEFAULT_USER,
    ) -> int:
        """Append a raw message to folder over IMAP and return its UID.

        msg_time sets the INTERNALDATE. imapclient sends a naive datetime as local time.
        """
        with self.client(user) as client:
            response = client.append(folder, raw, flags=flags, msg_time=msg_time)
        match = _APPENDUID_PATTERN.search(response)
        if match is None:
            raise RuntimeError(f"Dovecot's APPEND response has no APPENDUID: {response!r}")
        return int(match.group(2))

    def create_folder(self, name: str, user: str = DEFAULT_USER) -> None:
        """Create a folder in the user's mailbox."""
        with self.client(user) as client:
            client.create_folder(name)

    def delete_folder(self, name: str, user: str = DEFAULT_USER) -> None:
        """Delete a folder and the messages in it from the user's mailbox."""
        with self.client(user) as client:
            client.delete_folder(name)

    def uids(self, folder: str, user: str = DEFAULT_USER) -> list[int]:
        """Return the UIDs of all messages in folder, in ascending order."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))

    def flags(self, folder: str, user: str = DEFAULT_USER) -> dict[int, tuple[bytes, ...]]:
        """Return the flags of every message in folder, by UID."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            return dict(client.get_flags(client.search("ALL")))

    def uidvalidity(self, folder: str, user: str = DEFAULT_USER) -> int:
        """Return the UIDVALIDITY of folder."""
        with self.client(user) as client:
            status = client.folder_status(folder, [b"UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])


def start_dovecot(workdir: Path) -> Dovecot:
    """Start a private Dovecot under workdir with the user DEFAULT_USER and return it.

    :raises ServerUnavailableError: when Dovecot is not installed or does not start.
    """
    dovecot = Dovecot(workdir)
    dovecot.add_user(DEFAULT_USER, DEFAULT_PASSWORD)
    dovecot.start()
    return dovecot


def postgres_url() -> str:
    """Return the SQLAlchemy URL of the test database: INBOX_TEST_POSTGRES_URL or POSTGRES_URL."""
    return os.environ.get("INBOX_TEST_POSTGRES_URL") or POSTGRES_URL


def _redact_password(url: str) -> str:
    """Return url with the password, if any, replaced by ***."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def require_postgres(url: str) -> None:
    """Connect to the PostgreSQL database at url (an SQLAlchemy or libpq URL) and run SELECT 1.

    :raises ServerUnavailableError: with the command that starts PostgreSQL.
    """
    # psycopg takes libpq URLs, which have no "+driver" part after the scheme.
    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    try:
        connection = psycopg.connect(dsn, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ServerUnavailableError(
            f"PostgreSQL at {_redact_password(url)} is not available: {str(exc).strip()}. "
            "Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main "
            f"start`, or {INSTALL_HINT}, which also creates the test database and allows trust "
            "auth for 127.0.0.1"
        ) from exc
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def redis_url() -> str:
    """Return the Redis URL for tests: INBOX_TEST_REDIS_URL or REDIS_URL."""
    return os.environ.get("INBOX_TEST_REDIS_URL") or REDIS_URL


def require_redis(url: str = REDIS_URL) -> None:
    """Send PING to the Redis server at url.

    :raises ServerUnavailableError: with the command that starts Redis.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServerUnavailableError(
            f"Redis at {_redact_password(url)} did not answer PING: {exc}. Start it with "
            '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" '
            f"--appendonly no`, or {INSTALL_HINT}"
        ) from exc
    finally:
        client.close()


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP sink received it: envelope sender, recipients, raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


class SmtpSink:
    """An SMTP server on a free loopback port that keeps every message it receives."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = find_free_port()
        self._received: list[ReceivedMail] = []
        self._lock = threading.Lock()

        # server_hostname is set so that aiosmtpd does not call socket.getfqdn(), which can
        # send a DNS query for this machine's name.
        self._controller = Controller(
            self, hostname=self.host, port=self.port, server_hostname="smtp-sink.localhost"
        )

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the received message; aiosmtpd calls this after the DATA command."""
        content: Any = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
        mail = ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw)
        with self._lock:
            self._received.append(mail)
        logger.debug(
            "SMTP sink on port %s received a message for %s recipients",
            self.port,
            len(mail.rcpt_tos),
        )
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[ReceivedMail]:
        """Return a copy of the messages received so far, oldest first."""
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self._received.clear()

    def start(self) -> None:
        """Start the server thread; returns once the port accepts connections."""
        self._controller.start()
        logger.info("Started SMTP sink on %s:%s", self.host, self.port)

    def stop(self) -> None:
        """Stop the server thread and close the port."""
        self._controller.stop()
        logger.info("Stopped SMTP sink on %s:%s", self.host, self.port)

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
