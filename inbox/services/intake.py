"""Mail intake as the app runs it: mailboxes from settings, polling, and importing files."""

from __future__ import annotations

import logging
import mailbox as stdlib_mailbox
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session

from inbox.errors import InputError, MailboxError
from inbox.mail.imap import MailboxConfig
from inbox.mail.ingest import IngestSettings, IngestTally, process_with_retries
from inbox.mail.poller import PollResult, poll_mailbox
from inbox.mail.store import store_raw
from inbox.models.mailbox import Mailbox
from inbox.secrets_box import decrypt_secret
from inbox.services.replies import dispatch, queue_acknowledgement
from inbox.services.tickets import sla_policy

logger = logging.getLogger(__name__)

DEFAULT_MAILBOX = "default"
"""Name of the mailbox configured through the INBOX_IMAP_* settings."""

SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
"""Settings of every SQLite connection of the app.

In WAL mode with synchronous=NORMAL a commit appends to the write-ahead log without an fsync;
the log is synced at each checkpoint. A crash of the process loses no committed transaction,
and a power failure can lose only the transactions after the last checkpoint, which
``mark_processed`` forces before it marks mail on the server. Readers no longer block the
poller's writes either.
"""


def set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Apply SQLITE_PRAGMAS to a new SQLite connection (a SQLAlchemy "connect" listener)."""
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def use_sqlite_wal(engine: Engine) -> None:
    """Make every new connection of a SQLite engine use SQLITE_PRAGMAS; other engines are left.

    create_app calls it for every process; mail intake calls it again, which is a no-op then.
    """
    if engine.dialect.name != "sqlite" or event.contains(engine, "connect", set_sqlite_pragmas):
        return
    event.listen(engine, "connect", set_sqlite_pragmas)
    # Pooled connections were opened without the listener: let the pool open new ones. A
    # connection that is checked out now stays valid until it is returned.
    engine.dispose(close=False)


def ingest_settings(config: Mapping[str, Any]) -> IngestSettings:
    """Build the pipeline settings from the app settings."""
    own = {config["IMAP_USER"].lower()} if "@" in config["IMAP_USER"] else set()
    if config.get("MAIL_FROM"):
        own.add(str(config["MAIL_FROM"]).lower())
    return IngestSettings(
        policy=sla_policy(config),
        own_addresses=frozenset(own),
        max_attachment_bytes=config["MAX_ATTACHMENT_BYTES"],
        parse_worker=bool(config.get("PARSE_WORKER", False)),
        acknowledge=queue_acknowledgement if config["AUTO_ACKNOWLEDGE"] else None,
        deliver=dispatch,
        deliver_after_poll=not config.get("REDIS_URL"),
    )


def default_mailbox_config(config: Mapping[str, Any]) -> MailboxConfig | None:
    """Return the mailbox of the INBOX_IMAP_* settings, or None when INBOX_IMAP_HOST is unset."""
    if not config["IMAP_HOST"]:
        return None
    port = config["IMAP_PORT"] or (993 if config["IMAP_SECURITY"] == "ssl" else 143)
    return MailboxConfig(
        name=DEFAULT_MAILBOX,
        host=config["IMAP_HOST"],
        port=port,
        security=config["IMAP_SECURITY"],
        username=config["IMAP_USER"],
        password=config["IMAP_PASSWORD"],
        folder=config["IMAP_FOLDER"],
        processed_action=config["IMAP_PROCESSED_ACTION"],
        processed_folder=config["IMAP_PROCESSED_FOLDER"],
        timeout_seconds=config["IMAP_TIMEOUT_SECONDS"],
        batch_size=config["IMAP_FETCH_BATCH"],
        max_message_bytes=config["MAX_MESSAGE_BYTES"],
    )


def mailbox_configs(session: Session, config: Mapping[str, Any]) -> list[MailboxConfig]:
    """Return every mailbox to poll: the settings' default, then those added by an admin."""
    configs = []
    default = default_mailbox_config(config)
    if default is not None:
        configs.append(default)
    rows = session.scalars(
        select(Mailbox).where(Mailbox.enabled.is_(True), Mailbox.name != DEFAULT_MAILBOX)
    ).all()
    for row in rows:
        configs.append(
            MailboxConfig(
                name=row.name,
                host=row.host,
                port=row.port,
                security=row.security,
                username=row.username,
                password=decrypt_secret(row.password, config["SECRET_KEY"]),
                folder=row.folder,
                processed_action=row.processed_action,
                processed_folder=row.processed_folder,
                timeout_seconds=config["IMAP_TIMEOUT_SECONDS"],
                batch_size=config["IMAP_FETCH_BATCH"],
                max_message_bytes=config["MAX_MESSAGE_BYTES"],
            )
        )
    return configs


def poll_mailboxes(
    session: Session | scoped_session[Session],
    config: Mapping[str, Any],
    only: str | None = None,
) -> tuple[list[PollResult], list[MailboxError]]:
    """Poll each configured mailbox once; one mailbox's failure does not stop the others."""
    if isinstance(session, scoped_session):
        # The same session, without the registry look-up that each call through the proxy
        # costs: a large poll makes hundreds of thousands of calls.
        session = session()
    use_sqlite_wal(session.get_bind())
    configs = [c for c in mailbox_configs(session, config) if only is None or c.name == only]
    if only is not None and not configs:
        raise InputError(f"no mailbox named {only!r} is configured")
    settings = ingest_settings(config)
    results, errors = [], []
    for mailbox_config in configs:
        try:
            results.append(poll_mailbox(session, mailbox_config, settings))
        except MailboxError as exc:
            logger.error("poll of mailbox %s failed: %s", mailbox_config.name, exc)
            errors.append(exc)
    return results, errors


@dataclass
class ImportResult(IngestTally):
    """Counts of one file import."""

    files: int = 0
    stored: int = 0

    @property
    def references(self) -> list[str]:
        """References of the tickets that the imported mails opened or joined."""
        return self.ticket_references


def iter_mail_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (source name, raw bytes) from a .eml file, a folder of them, a Maildir or an mbox.

    :raises InputError: the path does not exist or is not a mail source.
    """
    if not path.exists():
        raise InputError(
            f"import path {path} does not exist: give a .eml file, a folder, a Maildir or an mbox"
        )
    if path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir():
        maildir = stdlib_mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(maildir.keys()):
            yield f"maildir:{path.name}/{key}", maildir.get_bytes(key)
        return
    if path.is_dir():
        for file in sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml" and p.is_file()):
            yield f"file:{file.name}", file.read_bytes()
        return
    if path.suffix.lower() == ".eml":
        yield f"file:{path.name}", path.read_bytes()
        return
    with path.open("rb") as handle:
        first_line = handle.readline()
    if not first_line.startswith(b"From "):
        raise InputError(
            f"{path} is neither a .eml file nor an mbox (no 'From ' line at the start)"
        )
    mbox = stdlib_mailbox.mbox(path, factory=None, create=False)
    for key in mbox.keys():
        yield f"mbox:{path.name}/{key}", mbox.get_bytes(key)


def receipt_time_of_file(raw: bytes, fallback: datetime) -> datetime:
    """Use the Date header as receipt time of an imported file, which has no INTERNALDATE."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536], headersonly=True)
        value = headers.get("Date")
        if not value:
            return fallback
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return fallback
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def import_path(
    session: Session, path: Path, config: Mapping[str, Any], now: datetime
) -> ImportResult:
    """Store and process every mail found at ``path`` through the same pipeline as the poller."""
    use_sqlite_wal(session.get_bind())
    settings = ingest_settings(config)
    result = ImportResult()
    for source, raw in iter_mail_files(path):
        result.files += 1
        stored = store_raw(session, raw, receipt_time_of_file(raw, now), None, source)
        session.commit()
        if stored.created:
            result.stored += 1
        logger.info("imported %s as raw message %s", source, stored.raw_message.id)
        result.count(process_with_retries(session, stored.raw_message.id, settings))
    return result
