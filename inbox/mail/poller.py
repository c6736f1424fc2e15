"""Poll one IMAP mailbox: fetch new UIDs, store raw bytes, process, then mark on the server.

The server-side mark (\\Seen, or a move to the processed folder) happens only for messages whose
processing is committed, so a crash between fetch and mark loses nothing and the next poll
re-marks what is left. Fetches use BODY.PEEK[] so reading never sets \\Seen by itself.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

from flask import current_app, has_app_context
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox import attention
from inbox.attention import Attention
from inbox.audit import SYSTEM_ACTOR, record_event
from inbox.errors import MailboxError
from inbox.ids import begin_write_transaction, client_ids
from inbox.mail import parsepool
from inbox.mail.imap import (
    CONNECT_BACKOFF_SECONDS,
    DROPPED_CONNECTION_ERRORS,
    MailboxConfig,
    as_utc,
    connect_with_retry,
    logout_quietly,
)
from inbox.mail.ingest import (
    IngestSettings,
    IngestTally,
    ProcessResult,
    deliver_acknowledgements,
    process_batch,
    quarantine,
)
from inbox.mail.locks import LockSettings, mailbox_lock
from inbox.mail.parsepool import ParsePool, Prepared
from inbox.mail.store import (
    FetchedMail,
    Location,
    StoredBatch,
    store_fetched,
    store_raw,
    summarise,
)
from inbox.mail.storeahead import StoreAhead, runs_beside_poller
from inbox.models.audit import AuditTag
from inbox.models.mailbox import Mailbox
from inbox.models.message import MailLocation, RawMessage
from inbox.models.types import utcnow
from inbox.services.replies import (
    UNENQUEUED_AFTER,
    composed_mail_due,
    uncomposed_acknowledgements,
)

logger = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 5
"""Reconnections of one poll after its connection dropped mid-poll, before it reports the error."""

HEADERS_ONLY_SUFFIX = ":headers-only"
"""End of RawMessage.source for an oversize mail of which only the headers were stored."""


@dataclass
class PollResult(IngestTally):
    """Counts of one poll, for the command line and the admin page."""

    mailbox: str = ""
    uidvalidity: int = 0
    fetched: int = 0
    stored: int = 0
    oversize: int = 0
    marked: int = 0
    reconnects: int = 0
    skipped: bool = False
    # Acknowledgements committed by the poll and not yet handed to delivery.
    delivery_ids: list[int] = field(default_factory=list)
    # time.monotonic() when every new message was committed and marked, before delivery began.
    ingested_at: float | None = None

    def count(self, processed: ProcessResult | None) -> None:
        """Add one processing outcome, and keep its acknowledgement for delivery after the poll."""
        super().count(processed)
        if processed is not None and processed.delivery_id is not None:
            self.delivery_ids.append(processed.delivery_id)


def chunked(items: Sequence[int], size: int) -> Iterator[list[int]]:
    """Yield consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def known_uids(session: Session, mailbox: str, uidvalidity: int) -> set[int]:
    """Return the UIDs already stored for this mailbox and UIDVALIDITY."""
    return set(
        session.scalars(
            select(MailLocation.uid).where(
                MailLocation.mailbox == mailbox, MailLocation.uidvalidity == uidvalidity
            )
        )
    )


def mailbox_row(session: Session, config: MailboxConfig) -> Mailbox:
    """Return the Mailbox row that records this mailbox's poll state, creating it when missing."""
    row = session.scalars(select(Mailbox).where(Mailbox.name == config.name)).first()
    if row is None:
        row = Mailbox(
            name=config.name,
            host=config.host,
            port=config.port,
            security=config.security,
            username=config.username,
            password="",  # the environment keeps the secret of the default mailbox
            folder=config.folder,
            processed_action=config.processed_action,
            processed_folder=config.processed_folder,
        )
        session.add(row)
        session.flush()
    return row


def note_uidvalidity(session: Session, row: Mailbox, uidvalidity: int) -> None:
    """Record the mailbox's UIDVALIDITY and audit a change, which starts a content-hash re-scan."""
    if row.uidvalidity is not None and row.uidvalidity != uidvalidity:
        logger.warning(
            "mailbox %s UIDVALIDITY changed from %s to %s, re-scanning by content hash",
            row.name,
            row.uidvalidity,
            uidvalidity,
        )
        record_event(
            session,
            AuditTag.MAILBOX_UIDVALIDITY_CHANGE,
            SYSTEM_ACTOR,
            None,
            {"mailbox": row.name, "from": row.uidvalidity, "to": uidvalidity},
        )
    row.uidvalidity = uidvalidity


def poll_mailbox(
    session: Session,
    config: MailboxConfig,
    settings: IngestSettings,
    *,
    locks: LockSettings | None = None,
    after_batch: Callable[[IMAPClient, PollResult], None] | None = None,
) -> PollResult:
    """Fetch, store and process every new message of one mailbox, then mark them on the server.

    The poll holds the mailbox's lock, so a second worker skips the mailbox (``skipped`` is set)
    instead of ingesting it at the same time. A connection that drops mid-poll is reopened with
    back-off, and the poll goes on from what is committed.

    :param locks: where the lock lives; by default the app's REDIS_URL or its instance folder.
    :param after_batch: called with the connection after each fetched batch is processed;
        tests use it to cut the connection at a known point.
    :raises MailboxError: the server cannot be reached or fails a command; the mailbox row
        records the error.
    """
    with mailbox_lock(config.name, locks or default_lock_settings()) as acquired:
        if not acquired:
            logger.info("mailbox %s is being polled by another worker, skipped", config.name)
            return PollResult(mailbox=config.name, skipped=True)
        return poll_locked(session, config, settings, after_batch)


def default_lock_settings() -> LockSettings:
    """Return the lock store of the current app: Redis when REDIS_URL is set, else its folder."""
    if has_app_context():
        return LockSettings(
            redis_url=current_app.config.get("REDIS_URL") or "",
            lock_dir=Path(current_app.instance_path) / "locks",
        )
    # NOTE: without an app, the file locks are only shared by processes on this machine.
    return LockSettings(lock_dir=Path(tempfile.gettempdir()) / "privacy-inbox-locks")


def poll_locked(
    session: Session,
    config: MailboxConfig,
    settings: IngestSettings,
    after_batch: Callable[[IMAPClient, PollResult], None] | None,
) -> PollResult:
    """Poll the mailbox while holding its lock, recording success or failure on its row."""
    row = mailbox_row(session, config)
    row.last_poll_at = utcnow()
    session.commit()

    try:
        result = poll_with_reconnect(session, config, settings, after_batch)
    except (MailboxError, OSError, IMAPClientError) as exc:
        session.rollback()
        error = (
            exc
            if isinstance(exc, MailboxError)
            else MailboxError(f"IMAP command on {config.describe()} failed: {exc}")
        )
        row = mailbox_row(session, config)
        row.last_error = str(error)
        row.last_error_at = utcnow()
        session.commit()
        if error is exc:
            raise
        raise error from exc

    row = mailbox_row(session, config)
    row.last_success_at = utcnow()
    row.last_error = ""
    session.commit()
    return result


def poll_with_reconnect(
    session: Session,
    config: MailboxConfig,
    settings: IngestSettings,
    after_batch: Callable[[IMAPClient, PollResult], None] | None,
) -> PollResult:
    """Run the poll, reconnecting with doubling waits when the connection drops or times out.

    Each batch is committed before the next is fetched, so a new connection resumes after the
    last committed batch and nothing is fetched into the database twice.
    """
    result = PollResult(mailbox=config.name)
    delay = CONNECT_BACKOFF_SECONDS
    for attempt in range(RECONNECT_ATTEMPTS + 1):
        client = connect_with_retry(config)
        try:
            poll_connected(session, client, config, settings, result, after_batch)
            return result
        except DROPPED_CONNECTION_ERRORS as exc:
            session.rollback()
            if attempt == RECONNECT_ATTEMPTS:
                raise
            result.reconnects += 1
            logger.warning(
                "IMAP connection to %s dropped mid-poll (%s: %s), reconnecting in %.1f s",
                config.describe(),
                type(exc).__name__,
                exc,
                delay,
            )
            time.sleep(delay)
            delay *= 2
        finally:
            logout_quietly(client)
    raise AssertionError("unreachable")


def poll_connected(
    session: Session,
    client: IMAPClient,
    config: MailboxConfig,
    settings: IngestSettings,
    result: PollResult,
    after_batch: Callable[[IMAPClient, PollResult], None] | None = None,
) -> PollResult:
    """Run one poll over an open connection, adding its counts to ``result``."""
    selected = client.select_folder(config.folder)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    note_uidvalidity(session, mailbox_row(session, config), uidvalidity)
    session.commit()
    result.uidvalidity = uidvalidity

    # A run killed between storing and processing left raw messages behind: finish them first,
    # in the order they were stored, so a reply still finds the ticket of its parent.
    for batch in chunked(pending_raw_ids(session, config.name), config.batch_size):
        process_stored(session, batch, settings, result)

    on_server = client.search(["ALL"])
    seen = known_uids(session, config.name, uidvalidity)
    new_uids = sorted(uid for uid in on_server if uid not in seen)
    logger.info(
        "mailbox %s uidvalidity %s: %s on server, %s new",
        config.name,
        uidvalidity,
        len(on_server),
        len(new_uids),
    )

    # Sent by this process, acknowledgements go out once the whole backlog is committed and
    # marked, so a large backlog's tickets are not held up by composing and sending mail between
    # batches. Those a killed poll left queued go out with them.
    deliver = settings.deliver if settings.deliver_after_poll else None
    if deliver is not None:
        settings = replace(settings, deliver=None)
        result.delivery_ids.extend(uncomposed_acknowledgements(session))
        # Mail that failed, or whose sender stopped, is tried again once its retry is due.
        result.delivery_ids.extend(composed_mail_due(session, utcnow()))
    elif settings.deliver is not None:
        # With RQ, an acknowledgement that a killed poll never enqueued is enqueued now.
        stale = uncomposed_acknowledgements(session, utcnow() - UNENQUEUED_AFTER)
        deliver_acknowledgements(session, stale, settings.deliver)
    pool = start_parse_pool(settings, len(new_uids))
    engine = session.get_bind()
    ahead = (
        StoreAhead(engine, f"imap:{config.name}")
        if pool is not None and runs_beside_poller(engine)
        else None
    )
    if ahead is not None:
        logger.info("mailbox %s: storing batches over a second database connection", config.name)
    waiting: list[tuple[dict[int, bytes], Future[dict[int, Prepared]] | None]] = []

    def process_waiting(keep: int) -> None:
        while len(waiting) > keep:
            process_fetched(session, settings, result, pool, *waiting.pop(0))
            if after_batch is not None:
                after_batch(client, result)

    try:
        for number, uids in enumerate(chunked(new_uids, config.batch_size)):
            if ahead is not None:
                # Batch n is stored by the thread and n-1 parsed by the worker, while the
                # poller processes batch n-2.
                batch = fetch_batch(client, config, uidvalidity, uids)
                storing = ahead.submit(batch.mail)
                process_waiting(keep=1)
                stored = storing.result()
                raw_by_id = finish_store(
                    session, client, config, settings, uidvalidity, batch, stored, result
                )
            else:
                # While a stored batch waits to be processed, its commit also commits this
                # batch's raw bytes, a commit less per batch. Each batch is still committed
                # before any of its own processing starts.
                raw_by_id = fetch_and_store(
                    session, client, config, settings, uidvalidity, uids, result, commit=not waiting
                )
            # The poller parses the first batch itself while the worker process starts up.
            job = pool.submit(raw_by_id) if pool is not None and number > 0 else None
            waiting.append((raw_by_id, job))
            if ahead is None:
                # A parse worker parses the newest batch while the poller writes the one before
                # it. Without a worker, each batch is processed as soon as it is stored.
                process_waiting(keep=0 if pool is None else 1)
        process_waiting(keep=0)
    finally:
        if ahead is not None:
            ahead.close()
        if pool is not None:
            pool.close()

    result.marked += mark_processed(session, client, config, uidvalidity)
    result.ingested_at = time.monotonic()
    deliver_acknowledgements(session, list(dict.fromkeys(result.delivery_ids)), deliver)
    result.delivery_ids.clear()
    return result


def start_parse_pool(settings: IngestSettings, new_messages: int) -> ParsePool | None:
    """Return a parse worker for a poll with a large backlog, or None to parse in this process."""
    if not settings.parse_worker or new_messages < parsepool.MIN_MESSAGES:
        return None
    try:
        pool = ParsePool(settings.max_attachment_bytes)
    except Exception as exc:  # noqa: BLE001 - without the worker the poller parses alone
        logger.error("parse worker could not be set up, the poller parses itself: %s", exc)
        return None
    logger.info("%s new messages: parsing them in a worker process", new_messages)
    return pool


def process_fetched(
    session: Session,
    settings: IngestSettings,
    result: PollResult,
    pool: ParsePool | None,
    raw_by_id: dict[int, bytes],
    job: Future[dict[int, Prepared]] | None,
) -> None:
    """Process a stored batch with what the parse worker prepared of it, if anything."""
    prepared = pool.results(job) if pool is not None else {}
    for processed in process_batch(session, list(raw_by_id), settings, raw_by_id, prepared):
        result.count(processed)


def pending_raw_ids(session: Session, mailbox: str) -> list[int]:
    """Return the ids of stored but unprocessed raw messages fetched from ``mailbox``."""
    return list(
        session.scalars(
            select(RawMessage.id)
            .join(MailLocation, MailLocation.raw_message_id == RawMessage.id)
            .where(MailLocation.mailbox == mailbox, RawMessage.processed_at.is_(None))
            .distinct()
            .order_by(RawMessage.id)
        )
    )


def process_stored(
    session: Session, raw_message_ids: list[int], settings: IngestSettings, result: PollResult
) -> None:
    """Process stored messages as one batch; quarantine stored headers of oversize mail alone."""
    headers_only = set(
        session.scalars(
            select(RawMessage.id).where(
                RawMessage.id.in_(raw_message_ids),
                RawMessage.source.endswith(HEADERS_ONLY_SUFFIX),
            )
        )
    )
    for raw_message_id in headers_only:
        # A run stopped after storing the headers of an oversize mail but before flagging it.
        raw_message = session.get(RawMessage, raw_message_id)
        if raw_message is None or raw_message.is_processed:
            continue
        reason = Attention(attention.OVERSIZE_COPY, {"size": raw_message.size})
        processed = quarantine(session, raw_message, settings, reason)
        session.commit()
        result.ticket_references.append(processed.reference)

    batch = [i for i in raw_message_ids if i not in headers_only]
    for processed in process_batch(session, batch, settings):
        result.count(processed)


@dataclass(frozen=True)
class FetchedBatch:
    """One batch read from the server: the mail to store, and the UIDs too large to download."""

    mail: list[FetchedMail]
    oversize: dict[int, dict[bytes, object]]
    """RFC822.SIZE and INTERNALDATE of each message over the size limit, by UID."""


def fetch_batch(
    client: IMAPClient, config: MailboxConfig, uidvalidity: int, uids: list[int]
) -> FetchedBatch:
    """Fetch the messages of ``uids`` that are within the size limit, and list the others."""
    sizes = client.fetch(uids, ["RFC822.SIZE", "INTERNALDATE"])
    wanted = [
        uid
        for uid in uids
        if uid in sizes and sizes[uid][b"RFC822.SIZE"] <= config.max_message_bytes
    ]
    oversize = {uid: sizes[uid] for uid in uids if uid in sizes and uid not in wanted}

    fetched: list[FetchedMail] = []
    bodies = client.fetch(wanted, ["BODY.PEEK[]", "INTERNALDATE"]) if wanted else {}
    for uid in wanted:
        data = bodies.get(uid)
        if data is None or b"BODY[]" not in data:
            logger.warning(
                "mailbox %s uid %s vanished before it could be fetched", config.name, uid
            )
            continue
        location = Location(config.name, uidvalidity, uid)
        fetched.append(FetchedMail(data[b"BODY[]"], as_utc(data[b"INTERNALDATE"]), location))
    return FetchedBatch(fetched, oversize)


def fetch_and_store(
    session: Session,
    client: IMAPClient,
    config: MailboxConfig,
    settings: IngestSettings,
    uidvalidity: int,
    uids: list[int],
    result: PollResult,
    *,
    commit: bool = True,
) -> dict[int, bytes]:
    """Fetch one batch and store its raw bytes, committing them unless ``commit`` is false.

    Returns the raw bytes of every stored message that still needs processing, by raw message
    id in UID order, so processing does not read them back from the database. A caller that
    passes ``commit=False`` commits before it processes them.
    """
    batch = fetch_batch(client, config, uidvalidity, uids)
    # With ids handed out, the batch's rows go in as one INSERT per table, SQLite included.
    begin_write_transaction(session)
    with client_ids(session):
        stored = summarise(batch.mail, store_fetched(session, batch.mail, f"imap:{config.name}"))
    if commit:
        session.commit()
    else:
        session.flush()
    return finish_store(session, client, config, settings, uidvalidity, batch, stored, result)


def finish_store(
    session: Session,
    client: IMAPClient,
    config: MailboxConfig,
    settings: IngestSettings,
    uidvalidity: int,
    batch: FetchedBatch,
    stored: StoredBatch,
    result: PollResult,
) -> dict[int, bytes]:
    """Count a stored batch, keep the headers of its oversize mail, and return what to process."""
    result.fetched += stored.fetched
    result.stored += stored.created
    for uid, info in batch.oversize.items():
        store_oversize(session, client, config, settings, uidvalidity, uid, info, result)
    return stored.raw_by_id


def store_oversize(
    session: Session,
    client: IMAPClient,
    config: MailboxConfig,
    settings: IngestSettings,
    uidvalidity: int,
    uid: int,
    info: dict[bytes, object],
    result: PollResult,
) -> None:
    """Keep only the headers of a message over the size limit and flag it for manual retrieval.

    The full message stays on the server and is not marked there.
    """
    size = int(info[b"RFC822.SIZE"])  # type: ignore[call-overload]
    headers = client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {}).get(b"BODY[HEADER]", b"")
    stored = store_raw(
        session,
        headers,
        as_utc(info[b"INTERNALDATE"]),
        Location(config.name, uidvalidity, uid),
        source=f"imap:{config.name}{HEADERS_ONLY_SUFFIX}",
    )
    if not stored.raw_message.is_processed:
        reason = Attention(
            attention.OVERSIZE,
            {"size": size, "limit": config.max_message_bytes, "folder": config.folder, "uid": uid},
        )
        processed = quarantine(session, stored.raw_message, settings, reason)
        result.ticket_references.append(processed.reference)
        # The mail stays on the server: mark its location as handled so it is not fetched again.
        location = session.scalars(
            select(MailLocation).where(
                MailLocation.mailbox == config.name,
                MailLocation.uidvalidity == uidvalidity,
                MailLocation.uid == uid,
            )
        ).one()
        location.marked_at = utcnow()
    session.commit()
    result.oversize += 1
    logger.warning("mailbox %s uid %s is %s bytes, stored headers only", config.name, uid, size)


def mark_processed(
    session: Session, client: IMAPClient, config: MailboxConfig, uidvalidity: int
) -> int:
    """Flag or move every committed, processed message not yet marked on the server."""
    locations = session.scalars(
        select(MailLocation)
        .join(RawMessage, RawMessage.id == MailLocation.raw_message_id)
        .where(
            MailLocation.mailbox == config.name,
            MailLocation.uidvalidity == uidvalidity,
            MailLocation.marked_at.is_(None),
            RawMessage.processed_at.is_not(None),
        )
        .order_by(MailLocation.uid)
    ).all()
    if not locations:
        return 0
    if not sync_sqlite_log(session):
        logger.warning(
            "mailbox %s: the SQLite log could not be synced, %s messages stay unmarked until "
            "the next poll",
            config.name,
            len(locations),
        )
        return 0

    uids = [location.uid for location in locations]
    for batch in chunked(uids, 500):
        if config.processed_action == "move":
            move_messages(client, batch, config.processed_folder)
        else:
            client.add_flags(batch, [b"\\Seen"], silent=True)
    now = utcnow()
    for location in locations:
        location.marked_at = now
    session.commit()
    logger.info(
        "mailbox %s: marked %s messages (%s)", config.name, len(uids), config.processed_action
    )
    return len(uids)


def sync_sqlite_log(session: Session) -> bool:
    """Checkpoint SQLite's write-ahead log, which syncs it to disk; return False when busy.

    With synchronous=NORMAL a commit is not synced by itself, and a message moved on the
    server must not depend on a commit that a power failure could undo. Other databases sync
    every commit, so this returns True at once for them.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return True
    # FULL waits, through the busy timeout, for readers of older snapshots, so the whole log
    # is synced. The first column of the result is 1 when that wait timed out.
    busy, _log_frames, _checkpointed = connection.exec_driver_sql(
        "PRAGMA wal_checkpoint(FULL)"
    ).one()
    return not busy


def move_messages(client: IMAPClient, uids: list[int], folder: str) -> None:
    """Move messages to ``folder``, creating it when missing; COPY and expunge without MOVE."""
    if not client.folder_exists(folder):
        client.create_folder(folder)
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.delete_messages(uids)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:
        client.expunge()
