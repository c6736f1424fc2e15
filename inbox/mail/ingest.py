"""From raw bytes to a ticket: store first, then parse, filter, thread, classify and open.

Both the IMAP poller and the file importer go through ``store.store_raw`` and ``process_raw``.
The raw bytes are committed before anything else happens, so a crash at any later point leaves a
stored, unprocessed message that the next run picks up with ``process_pending``.

``process_batch`` processes many stored messages in one transaction with a SAVEPOINT per
message: a fault rolls back only that message, and the batch costs one commit instead of one
per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from inbox import attention
from inbox.attention import Attention
from inbox.audit import SYSTEM_ACTOR, record_event
from inbox.classify import Classification
from inbox.enums import RequestType, TicketStatus
from inbox.errors import ParseError
from inbox.ids import begin_write_transaction, client_ids, ensure_id
from inbox.mail.filters import AutoCheck, check_automatic
from inbox.mail.parse import ParsedAttachment, ParsedMail, parse_message, shown_inline
from inbox.mail.parsepool import Prepared, classify_new_text, prepare
from inbox.mail.store import blob_for, look_up_blobs
from inbox.mail.threading import (
    find_bounced_ticket,
    find_forwarded,
    look_up_threads,
    match_thread,
)
from inbox.models.audit import AuditTag
from inbox.models.message import Attachment, Message, RawMessage
from inbox.models.ticket import Ticket
from inbox.models.types import utcnow
from inbox.models.workflow import MailDelivery
from inbox.services.replies import check_recent_automatic_mail
from inbox.services.tickets import NewTicket, change_status, flag_ticket, open_ticket
from inbox.services.workflows import look_up_versions
from inbox.sla import SlaPolicy

logger = logging.getLogger(__name__)

MAX_PROCESS_ATTEMPTS = 3
"""Attempts to process a stored message before it is quarantined for a person to look at."""


@dataclass(frozen=True)
class IngestSettings:
    """Settings of the ingest pipeline, taken from the app settings."""

    policy: SlaPolicy
    own_addresses: frozenset[str] = frozenset()
    max_attachment_bytes: int | None = None
    colleague_domains: frozenset[str] = frozenset()
    # Parse and classify a poll's large backlog in a second process (see parsepool).
    parse_worker: bool = False
    # Called in the transaction that opens a ticket, after its first message is added, to queue
    # the acknowledgement; returns the queued delivery or None. After a fault there, the message
    # is processed again without an acknowledgement, so the ticket is opened either way.
    acknowledge: Callable[[Session, Ticket], MailDelivery | None] | None = None
    # Called after the batch commit with the ids of the deliveries queued in it, to send them.
    # A fault there is logged; the mail stays queued.
    deliver: Callable[[Session, list[int]], object] | None = None
    # Whether the poller sends a poll's acknowledgements once all its mail is committed, instead
    # of after each batch. True where this process sends them itself, false where workers do.
    deliver_after_poll: bool = False


@dataclass
class ProcessResult:
    """Outcome of processing one stored message."""

    ticket: Ticket
    new_ticket: bool
    quarantined: bool = False
    notes: list[str] = field(default_factory=list)
    delivery_id: int | None = None
    # Copied from the ticket, so a summary after the commit does not reload each ticket.
    reference: str = field(init=False)

    def __post_init__(self) -> None:
        self.reference = self.ticket.reference


@dataclass
class IngestTally:
    """Counts of processed messages, shared by the poll and import summaries."""

    new_tickets: int = 0
    replies: int = 0
    quarantined: int = 0
    ticket_references: list[str] = field(default_factory=list)

    def count(self, processed: ProcessResult | None) -> None:
        """Add one processing outcome; None (already processed elsewhere) counts nothing."""
        if processed is None:
            return
        self.ticket_references.append(processed.reference)
        if processed.quarantined:
            self.quarantined += 1
        elif processed.new_ticket:
            self.new_tickets += 1
        else:
            self.replies += 1


def process_raw(
    session: Session,
    raw_message: RawMessage,
    settings: IngestSettings,
    prepared: Prepared | None = None,
) -> ProcessResult:
    """Turn a stored raw message into a new ticket or a message on an existing one.

    A message that cannot be parsed becomes a quarantined ticket that shows the raw bytes; the
    caller commits either way.

    :param prepared: the parse and classification a parse worker already made of these bytes.
    """
    try:
        if prepared is not None:
            parsed = prepared.parsed_or_raise()
        else:
            parsed = parse_message(
                raw_message.raw, max_attachment_bytes=settings.max_attachment_bytes
            )
    except ParseError as exc:
        logger.warning("raw message %s could not be parsed, quarantined: %s", raw_message.id, exc)
        return quarantine(
            session, raw_message, settings, Attention(attention.PARSE_FAILED, {"error": str(exc)})
        )

    auto = check_automatic(parsed, own_addresses=settings.own_addresses)
    if auto.is_bounce:
        bounced = find_bounced_ticket(session, raw_message.raw)
        if bounced is not None:
            add_message(session, bounced, raw_message, parsed, auto)
            flag_ticket(session, bounced, Attention(attention.BOUNCE))
            raw_message.processed_at = utcnow()
            return ProcessResult(bounced, new_ticket=False)

    match = match_thread(session, parsed)
    if match.ticket is not None and match.copy_of is not None:
        return add_copy(session, match.ticket, match.copy_of, raw_message)
    if match.ticket is not None:
        message = add_message(session, match.ticket, raw_message, parsed, auto)
        reopen_if_closed(session, match.ticket, message)
        raw_message.processed_at = utcnow()
        return ProcessResult(match.ticket, new_ticket=False)

    new = new_ticket_for(
        parsed, raw_message, auto, prepared.classification if prepared is not None else None
    )
    forwarded = None
    if not auto.is_automatic:
        forwarded = find_forwarded(
            parsed, forwarded_attachment(parsed), colleague_domains(settings)
        )
    if forwarded is not None:
        # The colleague only passed the request on: the data subject is the original sender,
        # and the legal clock starts when the organisation first received the request.
        new.requester_name = forwarded.sender_name
        new.requester_email = forwarded.sender_addr
        if forwarded.date is not None and forwarded.date <= raw_message.internaldate:
            new.received_at = forwarded.date
    if match.possible_followup_of is not None:
        new.attention = Attention(
            attention.POSSIBLE_FOLLOWUP, {"reference": match.possible_followup_of.reference}
        )

    ticket = open_ticket(session, new, settings.policy, SYSTEM_ACTOR)
    if forwarded is not None:
        ticket.forwarded_by = forwarded.forwarded_by[:320]
    if match.possible_followup_of is not None:
        ticket.possible_followup_of = match.possible_followup_of.id
    add_message(session, ticket, raw_message, parsed, auto)
    raw_message.processed_at = utcnow()
    delivery_id = acknowledge(session, ticket, settings)
    return ProcessResult(ticket, new_ticket=True, delivery_id=delivery_id)


def add_copy(
    session: Session, ticket: Ticket, original: Message, raw_message: RawMessage
) -> ProcessResult:
    """Keep a second copy of a stored mail with ``ticket``, the first's, never as a new request.

    The copy reads the same as the first, so it adds no message and the ticket shows the mail
    once. Its raw bytes stay stored, and the audit trail names them. The ticket is not reopened,
    because the mail is not new.
    """
    record_event(
        session,
        AuditTag.TICKET_MESSAGE_COPY,
        SYSTEM_ACTOR,
        ticket,
        {"raw_message": raw_message.id, "copy_of": ensure_id(session, original)},
    )
    raw_message.processed_at = utcnow()
    return ProcessResult(ticket, new_ticket=False)


class AcknowledgementError(Exception):
    """Queueing a new ticket's acknowledgement failed."""


def acknowledge(session: Session, ticket: Ticket, settings: IngestSettings) -> int | None:
    """Queue a new ticket's acknowledgement; return the delivery id, or None when none is due.

    :raises AcknowledgementError: any fault of the acknowledgement, so that the caller can open
        the ticket again without it.
    """
    if settings.acknowledge is None:
        return None
    try:
        delivery = settings.acknowledge(session, ticket)
    except Exception as exc:  # noqa: BLE001 - the caller retries without the mail
        raise AcknowledgementError(f"{type(exc).__name__}: {exc}") from exc
    return delivery.id if delivery is not None else None


def new_ticket_for(
    parsed: ParsedMail,
    raw_message: RawMessage,
    auto: AutoCheck,
    classification: Classification | None = None,
) -> NewTicket:
    """Classify a mail that starts a conversation and describe the ticket to open for it."""
    result = classification or classify_new_text(parsed)
    new = NewTicket(
        request_type=result.type,
        received_at=raw_message.internaldate,
        subject=parsed.subject,
        requester_name=parsed.from_name,
        requester_email=parsed.from_addr,
        language=result.language,
        confidence=result.confidence,
        secondary_types=[str(t) for t in result.secondary],
        evidence=list(result.evidence),
    )
    if auto.is_automatic:
        # Automatic mail is kept and shown, but it is not a request from a person: it gets no
        # legal clock until someone decides otherwise.
        new.request_type = RequestType.OTHER
        new.evidence = [f"automatic mail: {', '.join(auto.reasons)}"]
    return new


def colleague_domains(settings: IngestSettings) -> frozenset[str]:
    """Return the mail domains of colleagues: the setting, else the domains of our own addresses."""
    if settings.colleague_domains:
        return settings.colleague_domains
    return frozenset(a.rpartition("@")[2].lower() for a in settings.own_addresses if "@" in a)


def forwarded_attachment(parsed: ParsedMail) -> ParsedMail | None:
    """Parse the first message/rfc822 attachment of a mail, or return None."""
    for part in parsed.attachments:
        if part.content_type != "message/rfc822" or not part.data:
            continue
        try:
            return parse_message(part.data)
        except ParseError:
            return None
    return None


def add_message(
    session: Session, ticket: Ticket, raw_message: RawMessage, parsed: ParsedMail, auto: AutoCheck
) -> Message:
    """Attach a parsed mail and its attachments to a ticket, and audit it."""
    message = Message(
        ticket=ticket,
        raw_message_id=raw_message.id,
        direction="in",
        message_id=(parsed.message_id or "")[:998],
        in_reply_to=list(parsed.in_reply_to),
        references=list(parsed.references),
        subject=parsed.subject,
        from_name=parsed.from_name[:255],
        from_addr=parsed.from_addr[:320],
        to_addrs=list(parsed.to),
        date_header=parsed.date,
        received_at=raw_message.internaldate,
        text=parsed.text,
        html=parsed.html,
        is_automatic=auto.is_automatic,
        auto_reasons=list(auto.reasons),
        defects=list(parsed.defects),
    )
    session.add(message)
    for part in parsed.attachments:
        message.attachments.append(store_attachment(session, part))
    ensure_id(session, message)

    record_event(
        session,
        AuditTag.TICKET_MESSAGE_ADD,
        SYSTEM_ACTOR,
        ticket,
        {
            "message": message.id,
            "raw_message": raw_message.id,
            "automatic": auto.is_automatic,
            "attachments": len(parsed.attachments),
        },
    )
    return message


def store_attachment(session: Session, part: ParsedAttachment) -> Attachment:
    """Return an attachment's row and make sure a blob row has its hash.

    The bytes stay in the raw mail, once, and ``inbox.mail.attachments`` reads them from there.
    A part the mail shows inline keeps them in the blob row too, because each view loads it.
    """
    sha256 = part.sha256 if part.size else None
    if sha256 is not None:
        blob_for(session, sha256, part.size, part.data if shown_inline(part) else None)
    return Attachment(
        filename=part.filename[:255],
        content_type=part.content_type[:255],
        size=part.size,
        content_id=part.content_id,
        is_inline=part.is_inline,
        sha256=sha256,
    )


def reopen_if_closed(session: Session, ticket: Ticket, message: Message) -> None:
    """Reopen a closed ticket when its requester writes again; automatic mail never reopens."""
    if not ticket.is_closed or message.is_automatic:
        return
    if message.from_addr != ticket.requester_email:
        return
    change_status(session, ticket, TicketStatus.OPEN, SYSTEM_ACTOR)


def quarantine(
    session: Session, raw_message: RawMessage, settings: IngestSettings, reason: Attention
) -> ProcessResult:
    """Open a "needs attention" ticket for a message that could not be processed."""
    subject, sender = best_effort_headers(raw_message.raw)
    new = NewTicket(
        request_type=RequestType.OTHER,
        received_at=raw_message.internaldate,
        subject=subject,
        requester_email=sender,
        attention=reason,
    )
    ticket = open_ticket(session, new, settings.policy, SYSTEM_ACTOR)
    message = Message(
        ticket=ticket,
        raw_message_id=raw_message.id,
        direction="in",
        message_id=raw_message.message_id,
        subject=subject,
        from_addr=sender,
        received_at=raw_message.internaldate,
        text="",
        parse_failed=True,
        defects=[reason.english[:2000]],
    )
    session.add(message)
    raw_message.error = reason.english[:2000]
    raw_message.processed_at = utcnow()
    ensure_id(session, message)
    record_event(
        session,
        AuditTag.TICKET_QUARANTINE,
        SYSTEM_ACTOR,
        ticket,
        {"raw_message": raw_message.id, "reason": reason.english[:500]},
    )
    return ProcessResult(ticket, new_ticket=True, quarantined=True)


def best_effort_headers(raw: bytes) -> tuple[str, str]:
    """Read Subject and From with the standard parser for a quarantined ticket, never raising."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536], headersonly=True)
        subject = str(headers.get("Subject", "") or "")[:500]
        sender = str(headers.get("From", "") or "")[:320]
    except Exception:  # noqa: BLE001 - any fault here must not lose the message
        return "", ""
    return subject, sender


def process_with_retries(
    session: Session, raw_message_id: int, settings: IngestSettings
) -> ProcessResult | None:
    """Process one stored message in its own transaction, quarantining it after repeated faults.

    Returns None when the message was already processed (by an earlier run or another worker).
    """
    results = process_batch(session, [raw_message_id], settings)
    return results[0] if results else None


def process_batch(
    session: Session,
    raw_message_ids: Iterable[int],
    settings: IngestSettings,
    raw_by_id: dict[int, bytes] | None = None,
    prepared: dict[int, Prepared] | None = None,
) -> list[ProcessResult]:
    """Process stored messages in one transaction with a SAVEPOINT each, then commit once.

    A message that fails is rolled back alone and retried, and quarantined after
    MAX_PROCESS_ATTEMPTS. The acknowledgements queued in the batch are handed to
    ``settings.deliver`` once it is committed. Messages already processed elsewhere are left
    out of the returned list.

    :param raw_by_id: raw bytes the caller still holds, so they are not read back from the
        database; each must be the stored bytes of that id.
    :param prepared: parses and classifications a parse worker made, by raw message id.
    """
    ids = list(raw_message_ids)
    if not ids:
        return []
    prepared = prepared or {}
    begin_write_transaction(session)
    # One query loads every row of the batch instead of one per message.
    query = select(RawMessage).where(RawMessage.id.in_(ids))
    if not raw_by_id:
        # Read the bytes now: loading them later, message by message, would flush each time.
        query = query.options(selectinload(RawMessage.content))
    rows = session.scalars(query).all()
    for raw_message in rows:
        if raw_by_id and raw_message.id in raw_by_id:
            raw_message.hold_raw(raw_by_id[raw_message.id])

    results = process_together(session, ids, settings, prepared)
    if results is None:
        results = []
        for raw_message_id in ids:
            result = process_in_savepoint(
                session, raw_message_id, settings, prepared.get(raw_message_id)
            )
            if result is not None:
                results.append(result)
    session.commit()

    deliver_queued_acknowledgements(session, results, settings)
    return results


def process_together(
    session: Session, ids: list[int], settings: IngestSettings, prepared: dict[int, Prepared]
) -> list[ProcessResult] | None:
    """Process a batch in one SAVEPOINT and one flush, or return None if anything in it failed.

    The session hands out ids, so no message needs a flush of its own, and the flush at the end
    writes each table's rows in one statement. Any fault rolls the whole batch back. The caller
    then processes it with one SAVEPOINT per message, which isolates the message at fault.
    """
    if len(ids) < 2:
        # A single message gains nothing here, and a fault would cost it a second attempt.
        return None
    try:
        with session.begin_nested(), client_ids(session):
            prepared = parse_batch(session, ids, settings, prepared)
            look_up_batch(session, settings, [p.parsed for p in prepared.values() if p.parsed])
            results = []
            for raw_message_id in ids:
                raw_message = session.get(RawMessage, raw_message_id)
                if raw_message is None or raw_message.is_processed:
                    continue
                results.append(
                    process_raw(session, raw_message, settings, prepared.get(raw_message_id))
                )
            session.flush()
    except Exception as exc:  # noqa: BLE001 - the caller goes through the batch message by message
        logger.info(
            "processing raw messages %s to %s together failed (%s: %s), retrying one by one",
            ids[0],
            ids[-1],
            type(exc).__name__,
            exc,
            exc_info=True,
        )
        # A SAVEPOINT rollback expires only the objects changed in it. Objects loaded in it may
        # show rows that are gone, whose ids the one-by-one pass can reuse, so all are reloaded.
        session.expire_all()
        return None
    return results


def parse_batch(
    session: Session, ids: list[int], settings: IngestSettings, prepared: dict[int, Prepared]
) -> dict[int, Prepared]:
    """Return the parse of every message of a batch: the worker's, else one made now.

    Parsing first lets ``look_up_batch`` read what the whole batch needs before processing.
    """
    parsed = dict(prepared)
    for raw_message_id in ids:
        if raw_message_id in parsed:
            continue
        raw_message = session.get(RawMessage, raw_message_id)
        if raw_message is None or raw_message.is_processed:
            continue
        parsed[raw_message_id] = prepare(
            raw_message.raw, settings.max_attachment_bytes, classified=False
        )
    return parsed


def look_up_batch(session: Session, settings: IngestSettings, mails: list[ParsedMail]) -> None:
    """Read what a batch's messages will look up, a query per kind instead of one per message."""
    if settings.acknowledge is not None:
        check_recent_automatic_mail(session, [mail.from_addr for mail in mails])
    look_up_blobs(
        session, {part.sha256 for mail in mails for part in mail.attachments if part.size}
    )
    look_up_threads(session, mails)
    look_up_versions(session)


def process_in_savepoint(
    session: Session,
    raw_message_id: int,
    settings: IngestSettings,
    prepared: Prepared | None = None,
) -> ProcessResult | None:
    """Process one stored message in a SAVEPOINT of the caller's transaction; the caller commits.

    Returns None when the message was already processed (by an earlier run or another worker).
    A fault in the acknowledgement rolls the message back and processes it again without one,
    so a broken mail template never costs a request its ticket.
    """
    acknowledgement_error = ""
    while True:
        raw_message = session.get(RawMessage, raw_message_id)
        if raw_message is None or raw_message.is_processed:
            return None
        try:
            with session.begin_nested():
                result = process_raw(session, raw_message, settings, prepared)
                if acknowledgement_error:
                    reason = f"acknowledgement failed: {acknowledgement_error}"[:2000]
                    tag = AuditTag.MAIL_SUPPRESS
                    record_event(session, tag, SYSTEM_ACTOR, result.ticket, {"reason": reason})
                return result
        except IntegrityError:
            # Another worker processed it at the same moment; its commit wins.
            logger.info("raw message %s was processed concurrently", raw_message_id)
            return None
        except AcknowledgementError as exc:
            logger.error(
                "acknowledgement for raw message %s failed, processing it without one",
                raw_message_id,
                exc_info=True,
            )
            acknowledgement_error = str(exc)
            settings = replace(settings, acknowledge=None)
            continue
        except Exception as exc:  # noqa: BLE001 - one message's fault must not stop the batch
            logger.error("processing raw message %s failed", raw_message_id, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"[:2000]

        raw_message = session.get(RawMessage, raw_message_id)
        assert raw_message is not None
        raw_message.attempts += 1
        raw_message.error = error
        if raw_message.attempts >= MAX_PROCESS_ATTEMPTS:
            with session.begin_nested():
                failure = Attention(attention.PROCESSING_FAILED, {"error": error})
                return quarantine(session, raw_message, settings, failure)


def deliver_queued_acknowledgements(
    session: Session, results: list[ProcessResult], settings: IngestSettings
) -> None:
    """Hand the acknowledgements committed with a batch to ``settings.deliver``."""
    delivery_ids = [r.delivery_id for r in results if r.delivery_id is not None]
    deliver_acknowledgements(session, delivery_ids, settings.deliver)


def deliver_acknowledgements(
    session: Session,
    delivery_ids: list[int],
    deliver: Callable[[Session, list[int]], object] | None,
) -> None:
    """Hand committed acknowledgements to ``deliver``. A fault is logged, and the mail stays."""
    if deliver is None or not delivery_ids:
        return
    try:
        deliver(session, delivery_ids)
    except Exception:  # noqa: BLE001 - the tickets are committed; a mail fault must not undo them
        session.rollback()
        logger.error("delivery of %s acknowledgements failed", len(delivery_ids), exc_info=True)


def process_pending(session: Session, settings: IngestSettings) -> list[ProcessResult]:
    """Process every stored message that is not yet processed, oldest first."""
    pending = session.scalars(
        select(RawMessage.id).where(RawMessage.processed_at.is_(None)).order_by(RawMessage.id)
    ).all()
    results = []
    for raw_message_id in pending:
        result = process_with_retries(session, raw_message_id, settings)
        if result is not None:
            results.append(result)
    return results
